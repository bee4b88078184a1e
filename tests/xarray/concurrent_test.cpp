// RCU readers against a writer: readers load and iterate (plain and marked)
// under their own read sections while a writer stores, erases, marks, and
// grows and shrinks the tree. Every entry a reader sees must be one that was
// stored at that index; entries present throughout must always be seen;
// iteration is strictly increasing. Multi-index entries of mixed orders:
// a load or iteration never returns an entry for an index outside its
// range (the sibling check in read.h). Run under TSan and ASan in CI.
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

namespace {

// Stable indices: stored before the readers start, never touched after.
bool is_stable(unsigned long i) { return i % 7 == 0 && i < 7 * 400; }

// Runs `pass(rng)` over and over in two reader threads while `writer()`
// runs on this thread, then lets the readers make a few more passes over
// the final state before stopping them.
template <class Pass, class Writer>
void with_two_readers(Pass pass, Writer writer) {
  std::atomic<bool> done{false};
  std::atomic<long> passes{0};
  auto loop = [&](unsigned seed) {
    std::mt19937_64 rng(seed);
    while (!done.load(std::memory_order_relaxed)) {
      pass(rng);
      passes.fetch_add(1);
    }
  };
  std::thread r1(loop, 1), r2(loop, 2);
  writer();
  const long target = passes.load() + 4;
  while (passes.load() < target) std::this_thread::yield();
  done = true;
  r1.join();
  r2.join();
  CHECK(passes.load() > 0);
}

}  // namespace

TEST_CASE("concurrent readers see stable entries and only valid ones") {
  XArray xa;
  std::vector<unsigned long> stable;
  for (unsigned long i = 0; i < 7 * 400; i += 7) {
    stable.push_back(i);
    REQUIRE(xa.store(i, index_entry(i)).ok());
    REQUIRE(xa.set_mark(i, 0) == XaError::kOk);
  }
  std::atomic<long> failures{0};
  auto pass = [&](std::mt19937_64& rng) {
    // loads of stable and volatile indices
    for (int k = 0; k < 50; ++k) {
      const unsigned long s = stable[rng() % stable.size()];
      if (xa.load(s) != index_entry(s)) failures.fetch_add(1);
      const unsigned long v = rng() % 8000;
      const Entry e = xa.load(v);
      if (!e.empty() && e != index_entry(v)) failures.fetch_add(1);
    }
    // full iteration, plain or marked
    const bool by_mark = rng() % 2;
    std::size_t next_stable = 0;
    unsigned long last = 0;
    bool first = true;
    auto visit = [&](unsigned long index, Entry e) {
      if (e != index_entry(index)) failures.fetch_add(1);
      if (!first && index <= last) failures.fetch_add(1);
      first = false;
      last = index;
      if (next_stable < stable.size() && index > stable[next_stable]) failures.fetch_add(1);  // skipped one
      if (next_stable < stable.size() && index == stable[next_stable]) ++next_stable;
    };
    if (by_mark) {
      for (auto [index, e] : xa.marked_range(0)) visit(index, e);
    } else {
      for (auto [index, e] : xa) visit(index, e);
    }
    if (next_stable != stable.size()) failures.fetch_add(1);
  };

  with_two_readers(pass, [&] {
    std::mt19937_64 rng(7);
    const std::size_t ops = scaled(200000);
    for (std::size_t n = 0; n < ops; ++n) {
      unsigned long i = rng() % 8000;
      if (rng() % 64 == 0) i = rng() | (1UL << 40);  // far: the tree grows, and shrinks on erase
      if (is_stable(i)) continue;
      switch (rng() % 4) {
        case 0: case 1: xa.store(i, index_entry(i)); break;
        case 2: xa.erase(i); break;
        default: xa.set_mark(i, 0); break;
      }
      if (i >= (1UL << 40)) xa.erase(i);
    }
  });
  CHECK(failures.load() == 0);
}

TEST_CASE("concurrent readers across shrink to the head and regrowth") {
  XArray xa;
  xa.store(0, index_entry(0));
  xa.set_mark(0, 1);
  std::atomic<bool> done{false};
  std::atomic<long> failures{0}, reads{0};
  auto reader = [&] {
    while (!done.load(std::memory_order_relaxed)) {
      if (xa.load(0) != index_entry(0)) failures.fetch_add(1);
      if (!xa.get_mark(0, 1)) failures.fetch_add(1);
      unsigned long i = 0;
      if (xa.find(&i, ~0UL) != index_entry(0) || i != 0) failures.fetch_add(1);
      i = 0;
      if (xa.find(&i, ~0UL, XaFilter::marked(1)) != index_entry(0)) failures.fetch_add(1);
      const Entry far = xa.load(1);
      if (!far.empty() && far != index_entry(1)) failures.fetch_add(1);
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::thread r1(reader), r2(reader);
  const std::size_t ops = scaled(100000);
  const unsigned long far[] = {1, 100, 1UL << 20, ~0UL};
  for (std::size_t n = 0; n < ops; ++n) {
    const unsigned long i = far[n % 4];
    xa.store(i, index_entry(i));  // the head entry moves into a leaf
    xa.erase(i);                  // and back into the head (a retry entry is left behind)
  }
  while (reads.load() < 100) std::this_thread::yield();
  done = true;
  r1.join();
  r2.join();
  CHECK(failures.load() == 0);
  CHECK(xa.stats().nodes == 0);
}

TEST_CASE("concurrent readers while multi-index entries of mixed orders come and go") {
  // Each entry says which range it was stored for: value (first << 6) | order.
  // A reader must only ever see, at index i, an entry whose range holds i.
  XArray xa;
  auto encode = [](unsigned long first, unsigned order) { return Entry::value((first << 6) | order); };
  auto covers = [](Entry e, unsigned long i) {
    const unsigned long first = e.to_value() >> 6, order = e.to_value() & 63;
    return i >= first && i - first < (1UL << order);
  };
  std::atomic<long> failures{0};
  auto pass = [&](std::mt19937_64& rng) {
    for (int k = 0; k < 64; ++k) {
      const unsigned long i = rng() % 4096;
      const Entry e = xa.load(i);
      if (!e.empty() && !covers(e, i)) failures.fetch_add(1);
    }
    unsigned long last = 0;
    bool first = true;
    for (auto [index, e] : xa) {
      if (!covers(e, index) || (!first && index <= last)) failures.fetch_add(1);
      first = false;
      last = index;
    }
  };
  with_two_readers(pass, [&] {
    std::mt19937_64 rng(5);
    const std::size_t ops = scaled(100000);
    for (std::size_t n = 0; n < ops; ++n) {
      const unsigned order = rng() % 10;
      const unsigned long first = (rng() % 4096) & ~((1UL << order) - 1);
      if (rng() % 3 == 0) {
        xa.erase(first);
      } else {
        // A store into a larger entry keeps that entry's range, so store
        // what it covers (this thread is the only writer: no race here).
        const unsigned cur = xa.load(first).empty() ? 0 : xa.get_order(first);
        const unsigned o = cur > order ? cur : order;
        const unsigned long base = first & ~((1UL << o) - 1);
        xa.store_order(base, o, encode(base, o));
      }
    }
  });
  CHECK(failures.load() == 0);
  xa.clear();
}
