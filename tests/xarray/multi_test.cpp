// Multi-index entries, after the kernel's check_multi_store_1/2,
// check_cmpxchg_order, check_get_order, check_multi_find_1 and the marked
// multi-index part of check_xa_mark: every index of the range loads the
// entry, get_order at every index, erase at any index removes the whole
// range, stores into a multi-index entry update all of it, larger stores
// replace what lies below (marks ORed), find and iteration yield it once,
// then a random comparison against a range model.
#include <map>
#include <random>
#include <vector>

#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

namespace {

unsigned long span_of(unsigned order) { return 1UL << order; }

// Every index of [index, index + 2^order) loads `e` with order `order`;
// the neighbours do not (sampled for large orders).
void check_range(const XArray& xa, unsigned long index, unsigned order, Entry e) {
  const unsigned long last = index + (span_of(order) - 1);
  const unsigned long step = order > 10 ? span_of(order) / 512 : 1;
  for (unsigned long i = index;; i += step) {
    REQUIRE(xa.load(i) == e);
    REQUIRE(xa.get_order(i) == order);
    if (last - i < step) break;
  }
  REQUIRE(xa.load(last) == e);
  REQUIRE(xa.get_order(last) == order);
  if (index != 0) CHECK(xa.load(index - 1) != e);
  if (last != ~0UL) CHECK(xa.load(last + 1) != e);
}

}  // namespace

TEST_CASE("multi-index: store, load at every index, erase from any index (check_multi_store_1)") {
  XArray xa;
  for (unsigned order = 1; order < 24; ++order) {
    CAPTURE(order);
    for (unsigned long index : {0UL, span_of(order), 5 * span_of(order), span_of(40) - span_of(order)}) {
      CAPTURE(index);
      REQUIRE(xa.store_order(index, order, index_entry(index)).entry().empty());
      check_range(xa, index, order, index_entry(index));
      unsigned long found = 0;
      CHECK(xa.find(&found, ~0UL) == index_entry(index));
      CHECK(found == index);
      // a store at an inner index updates the whole entry and keeps its order
      const unsigned long inner = index + span_of(order) - 1 - span_of(order) / 4;
      CHECK(xa.store(inner, index_entry(inner)).entry() == index_entry(index));
      check_range(xa, index, order, index_entry(inner));
      // erase through the last index removes all of it
      CHECK(xa.erase(index + span_of(order) - 1) == index_entry(inner));
      CHECK(xa.load(index).empty());
      CHECK(xa.get_order(index) == 0);
      REQUIRE(xa.empty());
      REQUIRE(xa.stats().nodes == 0);
    }
  }
}

TEST_CASE("multi-index: orders up to 63, and a whole-array erase") {
  XArray xa;
  REQUIRE(xa.store(3, index_entry(3)).ok());
  REQUIRE(xa.store(1UL << 50, index_entry(50)).ok());
  REQUIRE(xa.store_order(1UL << 63, 63, index_entry(63)).ok());
  CHECK(xa.load(~0UL) == index_entry(63));
  CHECK(xa.get_order(~0UL) == 63);
  CHECK(xa.load(1UL << 63) == index_entry(63));
  CHECK(xa.load(3) == index_entry(3));
  CHECK(xa.store_order(0, 64, index_entry(1)).error() == XaError::kInvalid);
  CHECK(xa.store_order(4, 3, index_entry(1)).error() == XaError::kInvalid);  // not aligned
  alignas(8) static char buf[8];
  CHECK(xa.store_order(8, 3, Entry::pointer(buf + 1)).error() == XaError::kInvalid);
  // storing empty at order 63 twice clears everything (xa_store_order(NULL))
  CHECK(xa.store_order(0, 63, Entry{}).entry().empty());
  CHECK(xa.store_order(1UL << 63, 63, Entry{}).entry() == index_entry(63));
  CHECK(xa.empty());
  CHECK(xa.stats().nodes == 0);
  // order 63 at 0 over entries: replaced, and one entry remains
  REQUIRE(xa.store(7, index_entry(7)).ok());
  CHECK(xa.store_order(0, 63, index_entry(0)).entry().empty());
  CHECK(xa.load(7) == index_entry(0));
  CHECK(xa.load((1UL << 63) - 1) == index_entry(0));
  CHECK(xa.load(1UL << 63).empty());
  int n = 0;
  for (auto [i, e] : xa) {
    CHECK(i == 0);
    CHECK(e == index_entry(0));
    ++n;
  }
  CHECK(n == 1);
  xa.clear();
  CHECK(xa.empty());
}

TEST_CASE("multi-index: every pair of orders over one range (check_multi_store_2)") {
  XArray xa;
  const unsigned top = kSanitized ? 14 : 20;
  for (unsigned i = 0; i < top; ++i) {
    for (unsigned j = 0; j < top; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      REQUIRE(xa.store_order(0, i, index_entry(i)).ok());
      // a smaller store at 0 updates the larger entry; a larger one replaces it
      REQUIRE(xa.store_order(0, j, index_entry(j)).entry() == index_entry(i));
      const unsigned want = i > j ? i : j;
      CHECK(xa.get_order(0) == want);
      CHECK(xa.load(span_of(want) - 1) == index_entry(j));
      CHECK(xa.load(span_of(want)).empty());
      REQUIRE(xa.erase(0) == index_entry(j));
      REQUIRE(xa.empty());
      REQUIRE(xa.stats().nodes == 0);
    }
  }
}

TEST_CASE("multi-index: a larger store replaces entries below and ORs their marks") {
  XArray xa;
  const unsigned long base = 4 * span_of(12);
  for (unsigned long i = 0; i < 300; i += 3) REQUIRE(xa.store(base + i * 13, index_entry(i)).ok());
  REQUIRE(xa.set_mark(base + 3 * 13, 1) == XaError::kOk);
  REQUIRE(xa.set_mark(base + 27 * 13, 2) == XaError::kOk);
  REQUIRE(xa.get_mark(base + 27 * 13, 2));
  REQUIRE(xa.store(base + span_of(12), index_entry(1)).ok());  // just outside
  const std::size_t nodes_before = xa.stats().nodes;
  CHECK(xa.store_order(base, 12, index_entry(7)).entry() == index_entry(0));
  check_range(xa, base, 12, index_entry(7));
  CHECK(xa.get_mark(base + 100, 1));
  CHECK(xa.get_mark(base + span_of(12) - 1, 2));
  CHECK_FALSE(xa.get_mark(base + span_of(12), 1));
  CHECK(xa.stats().nodes < nodes_before);  // the subtree below went
  CHECK(xa.load(base + span_of(12)) == index_entry(1));
  // marks set/cleared at any index apply to the whole entry
  REQUIRE(xa.clear_mark(base + 5, 1) == XaError::kOk);
  CHECK_FALSE(xa.get_mark(base, 1));
  CHECK_FALSE(xa.marked(1));
  REQUIRE(xa.set_mark(base + span_of(11), 1) == XaError::kOk);
  CHECK(xa.get_mark(base + span_of(12) - 1, 1));
  CHECK(xa.marked(1));
  // erase clears them
  CHECK(xa.erase(base + 77) == index_entry(7));
  CHECK_FALSE(xa.marked(1));
  CHECK_FALSE(xa.marked(2));
  CHECK(xa.erase(base + span_of(12)) == index_entry(1));
  CHECK(xa.empty());
}

TEST_CASE("multi-index: compare_exchange and insert (check_cmpxchg_order)") {
  XArray xa;
  const Entry five = index_entry(5);
  REQUIRE(xa.store_order(0, 3, five).ok());
  REQUIRE(xa.store_order(8, 3, index_entry(8)).ok());
  for (unsigned long i = 0; i < 16; ++i) CHECK(xa.get_order(i) == 3);
  CHECK(xa.insert(3, index_entry(3)) == XaError::kBusy);
  CHECK(xa.compare_exchange(2, five, Entry{}).entry() == five);  // removes 0..7
  for (unsigned long i = 0; i < 8; ++i) {
    CHECK(xa.load(i).empty());
    CHECK(xa.get_order(i) == 0);
  }
  for (unsigned long i = 8; i < 16; ++i) CHECK(xa.load(i) == index_entry(8));
  CHECK(xa.insert(3, index_entry(3)) == XaError::kOk);
  xa.clear();
}

TEST_CASE("multi-index: find and iteration yield an entry once (check_multi_find_1)") {
  XArray xa;
  for (unsigned order = 2; order < 12; ++order) {
    CAPTURE(order);
    const unsigned long multi = 3UL << order, next = 4UL << order;
    REQUIRE(xa.store_order(multi, order, Entry::value(multi)).ok());
    REQUIRE(xa.store(next, index_entry(next)).ok());
    REQUIRE(xa.store(next + 1, index_entry(next + 1)).ok());
    REQUIRE(xa.set_mark(multi + 1, 1) == XaError::kOk);

    unsigned long index = 0;
    CHECK(xa.find(&index, ~0UL) == Entry::value(multi));
    CHECK(index == multi);
    index = multi + 1;  // from inside: found at the start index
    CHECK(xa.find(&index, ~0UL) == Entry::value(multi));
    CHECK(index == multi + 1);
    index = multi + 2;
    CHECK(xa.find(&index, ~0UL, XaFilter::marked(1)) == Entry::value(multi));
    CHECK(index == multi + 2);
    CHECK(xa.find_after(&index, ~0UL) == index_entry(next));
    CHECK(index == next);
    CHECK(xa.find_after(&index, next).empty());
    CHECK(index == next);
    index = multi;
    CHECK(xa.find_after(&index, ~0UL, XaFilter::marked(1)).empty());

    std::vector<std::pair<unsigned long, Entry>> seen;
    for (auto p : xa) seen.push_back(p);
    const std::vector<std::pair<unsigned long, Entry>> want = {
        {multi, Entry::value(multi)}, {next, index_entry(next)}, {next + 1, index_entry(next + 1)}};
    CHECK(seen == want);
    seen.clear();
    for (auto p : xa.marked_range(1)) seen.push_back(p);
    CHECK(seen.size() == 1);
    seen.clear();
    for (auto p : xa.range(multi + 3, next)) seen.push_back(p);
    CHECK(seen.size() == 2);
    Entry buf[4];
    CHECK(xa.extract(buf, 0, ~0UL) == 3);
    CHECK(buf[0] == Entry::value(multi));

    xa.erase(multi);
    xa.erase(next);
    xa.erase(next + 1);
    REQUIRE(xa.empty());
  }
}

TEST_CASE("multi-index: running out of memory leaves the array unchanged") {
  FailingArray xa;
  REQUIRE(xa.store(5, index_entry(5)).ok());
  const std::size_t nodes = xa.stats().nodes;
  for (long fail_at = 0; fail_at < 40; ++fail_at) {  // every allocation of the store fails once
    FailingNodeAlloc::arm(fail_at);
    const XaResult r = xa.store_order(1UL << 30, 9, index_entry(9));
    FailingNodeAlloc::disarm();
    if (r.ok()) break;
    CHECK(r.error() == XaError::kNoMemory);
    CHECK(xa.load(1UL << 30).empty());
    CHECK(xa.stats().nodes == nodes);
    CHECK(xa.load(5) == index_entry(5));
  }
  CHECK(xa.load((1UL << 30) + 511) == index_entry(9));
  xa.clear();
}

// ---- Random operations against a model of ranges ---------------------------

namespace {

struct Range {
  unsigned order;
  Entry entry;
  unsigned marks;
};

// Entries by first index; each covers [first, first + 2^order).
class RangeModel {
 public:
  std::map<unsigned long, Range> m;

  std::map<unsigned long, Range>::iterator covering(unsigned long i) {
    auto it = m.upper_bound(i);
    if (it == m.begin()) return m.end();
    --it;
    return i - it->first < span_of(it->second.order) ? it : m.end();
  }
  Entry load(unsigned long i) {
    auto it = covering(i);
    return it == m.end() ? Entry{} : it->second.entry;
  }
  // The semantics of store_order: a larger entry covering `index` is
  // updated in place; otherwise the range is cleared (marks ORed) and the
  // entry stored over it.
  void store(unsigned long index, unsigned order, Entry e) {
    if (auto it = covering(index); it != m.end() && it->second.order > order) {
      if (e.empty()) m.erase(it);
      else it->second.entry = e;
      return;
    }
    unsigned marks = 0;
    const unsigned long last = index + (span_of(order) - 1);
    for (auto it = m.lower_bound(index); it != m.end() && it->first <= last;) {
      marks |= it->second.marks;
      it = m.erase(it);
    }
    if (!e.empty()) m[index] = {order, e, marks};
  }
};

}  // namespace

TEST_CASE("multi-index: random stores of mixed orders against a range model") {
  std::mt19937_64 rng(12345);
  for (unsigned long window : {0UL, 1UL << 40}) {
    XArray xa;
    RangeModel model;
    const std::size_t ops = scaled(60000);
    for (std::size_t n = 0; n < ops; ++n) {
      const unsigned order = rng() % 3 == 0 ? 0 : rng() % 13;
      const unsigned long index = window + ((rng() % (1UL << 14)) & ~(span_of(order) - 1));
      const XaMark mk = 1 + rng() % 2;
      switch (rng() % 8) {
        case 0: case 1: {
          const Entry e = rng() % 10 == 0 ? Entry{} : index_entry(rng() % 100000);
          const XaResult r = xa.store_order(index, order, e);
          REQUIRE(r.ok());
          REQUIRE(r.entry() == model.load(index));
          model.store(index, order, e);
          break;
        }
        case 2: {
          REQUIRE(xa.erase(index) == model.load(index));
          if (auto it = model.covering(index); it != model.m.end()) model.m.erase(it);
          break;
        }
        case 3: {
          const auto it = model.covering(index);
          REQUIRE(xa.load(index) == (it == model.m.end() ? Entry{} : it->second.entry));
          REQUIRE(xa.get_order(index) == (it == model.m.end() ? 0 : it->second.order));
          REQUIRE(xa.get_mark(index, mk) == (it != model.m.end() && ((it->second.marks >> mk) & 1)));
          break;
        }
        case 4: {
          const bool set = rng() % 2;
          REQUIRE((set ? xa.set_mark(index, mk) : xa.clear_mark(index, mk)) == XaError::kOk);
          if (auto it = model.covering(index); it != model.m.end()) {
            if (set) it->second.marks |= 1u << mk;
            else it->second.marks &= ~(1u << mk);
          }
          break;
        }
        default: {  // find / find_after, present or marked
          const XaFilter f = rng() % 2 ? XaFilter::present() : XaFilter::marked(mk);
          const bool after = rng() % 2;
          unsigned long idx = index;
          const Entry got = after ? xa.find_after(&idx, ~0UL, f) : xa.find(&idx, ~0UL, f);
          auto pass = [&](const Range& r) { return !f.is_mark() || ((r.marks >> f.mark) & 1); };
          Entry want{};
          unsigned long want_idx = index;
          auto it = model.covering(index);
          if (!after && it != model.m.end() && pass(it->second)) {
            want = it->second.entry;
          } else {
            for (auto j = model.m.upper_bound(index); j != model.m.end(); ++j) {
              if (!pass(j->second)) continue;
              want = j->second.entry;
              want_idx = j->first;
              break;
            }
          }
          REQUIRE(got == want);
          REQUIRE(idx == want_idx);
          break;
        }
      }
      if (n % 5000 == 0) {
        std::vector<std::pair<unsigned long, Entry>> got, want;
        for (auto p : xa) got.push_back(p);
        for (const auto& [first, r] : model.m) want.emplace_back(first, r.entry);
        REQUIRE(got == want);
      }
    }
    xa.clear();
  }
}
