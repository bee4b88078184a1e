// Marks (check_xa_mark: independence, propagation, "marked" at the root
// after set/clear/erase) and searching (check_find: find/find_after over
// every (i, j, k) placement, iteration and marked iteration, extract).
#include <set>
#include <vector>

#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

TEST_CASE("marks: an empty index cannot be marked; a store sets none") {
  XArray xa;
  for (unsigned long i : {0UL, 4UL, 64UL, 4095UL, ~0UL}) {
    CAPTURE(i);
    CHECK(xa.set_mark(i, 0) == XaError::kOk);
    CHECK_FALSE(xa.get_mark(i, 0));
    CHECK_FALSE(xa.marked(0));
    xa.store(i, index_entry(i));
    for (XaMark m = 0; m < kXaMarks; ++m) CHECK_FALSE(xa.get_mark(i, m));
    xa.set_mark(i, 0);
    CHECK(xa.get_mark(i, 0));
    CHECK_FALSE(xa.get_mark(i, 1));
    CHECK(xa.marked(0));
    CHECK_FALSE(xa.marked(1));
    // a store over a marked entry keeps its marks
    xa.store(i, index_entry(i + 1));
    CHECK(xa.get_mark(i, 0));
    // erase clears marks; re-storing does not bring them back
    xa.erase(i);
    CHECK_FALSE(xa.marked(0));
    xa.store(i, index_entry(i));
    CHECK_FALSE(xa.get_mark(i, 0));
    xa.erase(i);
    CHECK(xa.empty());
  }
}

TEST_CASE("marks: independent per index and per mark; propagation to the root") {
  XArray xa;
  const unsigned long far = 1UL << 40;
  for (unsigned long i : {0UL, 1UL, 2UL, 100UL, far, far + 1}) xa.store(i, index_entry(i));
  xa.set_mark(1, 0);
  xa.set_mark(far, 0);
  xa.set_mark(far + 1, 2);
  CHECK(xa.get_mark(1, 0));
  CHECK_FALSE(xa.get_mark(2, 0));
  CHECK_FALSE(xa.get_mark(0, 0));
  CHECK(xa.get_mark(far, 0));
  CHECK_FALSE(xa.get_mark(far, 2));
  CHECK(xa.get_mark(far + 1, 2));
  CHECK(xa.marked(0));
  CHECK_FALSE(xa.marked(1));
  CHECK(xa.marked(2));
  xa.clear_mark(1, 0);
  CHECK(xa.marked(0));  // far is still marked
  xa.clear_mark(far, 0);
  CHECK_FALSE(xa.marked(0));
  xa.erase(far + 1);
  CHECK_FALSE(xa.marked(2));
  // clearing an unmarked or absent index is harmless
  CHECK(xa.clear_mark(5, 1) == XaError::kOk);
  CHECK(xa.clear_mark(2, 1) == XaError::kOk);
}

TEST_CASE("marks survive growing and shrinking") {
  XArray xa;
  xa.store(0, index_entry(0));
  xa.set_mark(0, 1);  // marked while it lives in the head
  xa.store(~0UL, index_entry(1));  // grows: the index-0 entry moves into a leaf
  CHECK(xa.get_mark(0, 1));
  CHECK_FALSE(xa.get_mark(~0UL, 1));
  unsigned long i = 0;
  CHECK(xa.find(&i, ~0UL, XaFilter::marked(1)) == index_entry(0));
  xa.erase(~0UL);  // shrinks back to the head
  CHECK(xa.stats().nodes == 0);
  CHECK(xa.get_mark(0, 1));
  CHECK(xa.marked(1));
  xa.clear_mark(0, 1);
  CHECK_FALSE(xa.marked(1));
}

TEST_CASE("1000 marked entries are counted by marked iteration") {
  XArray xa;
  std::set<unsigned long> marked;
  for (unsigned long i = 0; i < 4000; ++i) {
    xa.store(i * 37, index_entry(i));
    if (i % 4 == 0) {
      xa.set_mark(i * 37, 2);
      marked.insert(i * 37);
    }
  }
  std::set<unsigned long> seen;
  unsigned long last = 0;
  bool first = true;
  for (auto [index, entry] : xa.marked_range(2)) {
    CHECK((first || index > last));
    first = false;
    last = index;
    CHECK(entry == index_entry(index / 37));
    seen.insert(index);
  }
  CHECK(seen == marked);
  CHECK(seen.size() == 1000);
  int none = 0;
  for (auto e : xa.marked_range(1)) (void)e, ++none;
  CHECK(none == 0);
  for (auto e : xa.marked_range(7)) (void)e, ++none;  // invalid mark: empty
  CHECK(none == 0);
}

TEST_CASE("find over every (i, j, k) placement (check_find_1/2)") {
  const unsigned long n = kSanitized ? 40 : 100;
  for (unsigned long i = 0; i < n; i += (kSanitized ? 3 : 1)) {
    for (unsigned long j = 0; j < i; ++j) {
      XArray xa;
      xa.store(i, index_entry(i));
      xa.store(j, index_entry(j));
      xa.set_mark(i, 0);
      for (unsigned long k = 0; k < n; ++k) {
        unsigned long idx = k;
        const Entry e = xa.find(&idx, ~0UL);
        if (k <= j) {
          REQUIRE(idx == j);
          REQUIRE(e == index_entry(j));
        } else if (k <= i) {
          REQUIRE(idx == i);
          REQUIRE(e == index_entry(i));
        } else {
          REQUIRE(e.empty());
          REQUIRE(idx == k);
        }
        idx = k;
        const Entry m = xa.find(&idx, ~0UL, XaFilter::marked(0));
        if (k <= i) {
          REQUIRE(idx == i);
          REQUIRE(m == index_entry(i));
        } else {
          REQUIRE(m.empty());
        }
      }
    }
  }
}

TEST_CASE("find respects max; find_after; range iteration bounds") {
  XArray xa;
  const unsigned long idx[] = {0, 7, 63, 64, 65, 4096, 1UL << 30, ~0UL - 1, ~0UL};
  for (unsigned long i : idx) xa.store(i, index_entry(i));
  unsigned long i = 8;
  CHECK(xa.find(&i, 62).empty());
  CHECK(i == 8);
  CHECK(xa.find(&i, 63) == index_entry(63));
  CHECK(i == 63);
  CHECK(xa.find_after(&i, ~0UL) == index_entry(64));
  CHECK(i == 64);
  i = 65;
  CHECK(xa.find_after(&i, 4096) == index_entry(4096));
  i = 4096;
  CHECK(xa.find_after(&i, 4096).empty());
  std::vector<unsigned long> got;
  for (auto [index, e] : xa) got.push_back(index);
  CHECK(got == std::vector<unsigned long>(std::begin(idx), std::end(idx)));
  got.clear();
  for (auto [index, e] : xa.range(64, 4096)) got.push_back(index);
  CHECK(got == std::vector<unsigned long>{64, 65, 4096});
  got.clear();
  for (auto [index, e] : xa.range(~0UL, ~0UL)) got.push_back(index);
  CHECK(got == std::vector<unsigned long>{~0UL});
}

TEST_CASE("extract copies matching entries in order, up to the buffer size") {
  XArray xa;
  for (unsigned long i = 0; i < 300; ++i) {
    xa.store(i * 3, index_entry(i));
    if (i % 2) xa.set_mark(i * 3, 1);
  }
  std::vector<Entry> buf(500);
  CHECK(xa.extract(buf, 0, ~0UL) == 300);
  for (unsigned long i = 0; i < 300; ++i) CHECK(buf[i] == index_entry(i));
  CHECK(xa.extract(std::span(buf).first(10), 30, ~0UL) == 10);
  CHECK(buf[0] == index_entry(10));
  CHECK(buf[9] == index_entry(19));
  CHECK(xa.extract(buf, 0, ~0UL, XaFilter::marked(1)) == 150);
  CHECK(buf[0] == index_entry(1));
  CHECK(buf[149] == index_entry(299));
  CHECK(xa.extract(buf, 10, 9) == 0);  // invalid range
  CHECK(xa.extract(buf, 0, 8) == 3);
}

TEST_CASE("erasing every entry while iterating empties the array (check_xas_erase)") {
  XArray xa;
  for (unsigned long i = 0; i < 200; ++i)
    for (unsigned long j = i; j < 2 * i + 17; ++j) xa.store(j, index_entry(j));
  xa.store(~0UL, index_entry(~0UL));
  unsigned long n = 0;
  for (auto [index, e] : xa) {
    CHECK(xa.erase(index) == e);
    ++n;
  }
  CHECK(n == 2 * 199 + 17 + 1);
  CHECK(xa.empty());
  CHECK(xa.stats().nodes == 0);
}
