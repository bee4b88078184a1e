// ID allocation, after the kernel's check_xa_alloc_1/2/3 and
// check_reserve on allocating arrays: the lowest free id, base 0 and base 1
// arrays, erase and clear give ids back, a store or reservation takes one,
// empty allocations stay busy, range limits, alloc_cyclic and its wrap
// indication, the reserved free mark, and deep trees (the free mark must
// lead past full subtrees).
#include <climits>
#include <set>
#include <vector>

#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

namespace {

unsigned long base_of(const XArray& xa) { return xa.flags() == XaFlags::kAlloc1 ? 1 : 0; }

// xa_alloc_index: allocates index_entry(expected) and checks it got `expected`.
void alloc_expect(XArray& xa, unsigned long expected, XaLimit limit = {}) {
  CAPTURE(expected);
  const XaAllocResult r = xa.alloc(index_entry(expected), limit);
  CAPTURE(static_cast<int>(r.error()));
  REQUIRE(r.ok());
  REQUIRE(r.id() == expected);
  REQUIRE(xa.load(expected) == index_entry(expected));
}

void erase_expect(XArray& xa, unsigned long i) { REQUIRE(xa.erase(i) == index_entry(i)); }

}  // namespace

TEST_CASE("alloc: lowest free id, erase and clear give it back (check_xa_alloc_1)") {
  for (XaFlags flags : {XaFlags::kAlloc, XaFlags::kAlloc1}) {
    CAPTURE(static_cast<int>(flags));
    XArray xa(flags);
    const unsigned long base = base_of(xa);
    REQUIRE(xa.empty());
    alloc_expect(xa, base);
    erase_expect(xa, base);
    CHECK(xa.empty());
    alloc_expect(xa, base);

    // allocating and erasing many keeps the base
    for (unsigned long i = base + 1; i < 2 * XArray::kChunkSize; ++i) alloc_expect(xa, i);
    for (unsigned long i = base; i < 2 * XArray::kChunkSize; ++i) erase_expect(xa, i);
    CHECK(xa.stats().nodes == 0);
    alloc_expect(xa, base);

    xa.clear();  // the same as erasing
    alloc_expect(xa, base);
    alloc_expect(xa, base + 1);
    erase_expect(xa, base + 1);

    // a plain store takes the id
    REQUIRE(xa.store(base + 1, index_entry(base + 1)).ok());
    alloc_expect(xa, base + 2);
    erase_expect(xa, base);
    alloc_expect(xa, base);
    erase_expect(xa, base + 1);
    erase_expect(xa, base + 2);
    const unsigned long n = kSanitized ? 1000 : 5000;
    for (unsigned long i = 1; i < n; ++i) alloc_expect(xa, base + i);
    xa.clear();

    // the top of a range, then full
    alloc_expect(xa, UINT_MAX - 1UL, {UINT_MAX - 1UL, UINT_MAX});
    alloc_expect(xa, UINT_MAX, {UINT_MAX - 1UL, UINT_MAX});
    CHECK(xa.alloc(index_entry(0), {UINT_MAX - 1UL, UINT_MAX}).error() == XaError::kBusy);
    xa.clear();
    alloc_expect(xa, ~0UL, {~0UL, ~0UL});
    CHECK(xa.alloc(index_entry(1), {~0UL, ~0UL}).error() == XaError::kBusy);
    xa.clear();

    // bad input
    CHECK(xa.alloc(index_entry(10), {10, 5}).error() == XaError::kInvalid);
    alignas(8) static char buf[8];
    CHECK(xa.alloc(Entry::pointer(buf + 2)).error() == XaError::kInvalid);
    REQUIRE(xa.store(3, index_entry(3)).ok());
    CHECK(xa.alloc(index_entry(10), {10, 5}).error() == XaError::kInvalid);
    erase_expect(xa, 3);
    CHECK(xa.empty());
  }
}

TEST_CASE("alloc: empty allocations stay busy; storing empty keeps the id (check_xa_alloc_2)") {
  for (XaFlags flags : {XaFlags::kAlloc, XaFlags::kAlloc1}) {
    CAPTURE(static_cast<int>(flags));
    XArray xa(flags);
    const unsigned long base = base_of(xa);
    XaAllocResult r = xa.alloc(Entry{}, kXaLimit32b);
    REQUIRE(r.ok());
    CHECK(r.id() == base);
    CHECK_FALSE(xa.empty());
    CHECK(xa.load(base).empty());
    CHECK(xa.erase(r.id()).empty());
    CHECK(xa.empty());

    r = xa.alloc(Entry{}, kXaLimit32b);
    REQUIRE(r.ok());
    CHECK(r.id() == base);
    xa.clear();
    CHECK(xa.empty());

    for (unsigned long i = base; i < base + 10; ++i) {
      r = xa.alloc(Entry{}, kXaLimit32b);
      REQUIRE(r.ok());
      CHECK(r.id() == i);
    }
    CHECK(xa.store(3, index_entry(3)).entry().empty());
    CHECK(xa.store(4, index_entry(4)).entry().empty());
    CHECK(xa.store(4, Entry{}).entry() == index_entry(4));  // stays allocated
    CHECK(xa.erase(5).empty());
    r = xa.alloc(Entry{}, kXaLimit32b);
    REQUIRE(r.ok());
    CHECK(r.id() == 5);
    // iteration skips reservations; only 3 is present
    std::vector<unsigned long> seen;
    for (auto [index, e] : xa) seen.push_back(index), (void)e;
    CHECK(seen == std::vector<unsigned long>{3});
    erase_expect(xa, 3);
    for (unsigned long i = base; i < base + 9; ++i) {
      CHECK(xa.erase(i).empty());
      CHECK_FALSE(xa.empty());
    }
    CHECK(xa.erase(base + 9).empty());
    CHECK(xa.empty());
  }
}

TEST_CASE("alloc: reserve, release and compare_exchange on an allocating array (check_reserve)") {
  XArray xa(XaFlags::kAlloc);
  REQUIRE(xa.reserve(0) == XaError::kOk);
  alloc_expect(xa, 1);
  xa.release(0);  // released: free again
  alloc_expect(xa, 0);
  CHECK(xa.insert(2, Entry{}) == XaError::kOk);  // reserves 2
  alloc_expect(xa, 3);
  // compare_exchange to empty erases and frees the id (as __xa_cmpxchg)
  CHECK(xa.compare_exchange(1, index_entry(1), Entry{}).entry() == index_entry(1));
  alloc_expect(xa, 1);
  CHECK(xa.compare_exchange(2, Entry{}, Entry{}).entry().empty());
  alloc_expect(xa, 2);
  xa.clear();
}

TEST_CASE("alloc: the free mark is the array's; marks 1 and 2 work as usual") {
  XArray xa(XaFlags::kAlloc);
  alloc_expect(xa, 0);
  alloc_expect(xa, 1);
  CHECK(xa.set_mark(1, kXaFreeMark) == XaError::kInvalid);
  CHECK(xa.clear_mark(1, kXaFreeMark) == XaError::kInvalid);
  CHECK_FALSE(xa.get_mark(1, kXaFreeMark));
  CHECK_FALSE(xa.marked(kXaFreeMark));  // although index 2… are free
  unsigned long i = 0;
  CHECK(xa.find(&i, ~0UL, XaFilter::marked(kXaFreeMark)).empty());
  int n = 0;
  for (auto e : xa.marked_range(kXaFreeMark)) (void)e, ++n;
  CHECK(n == 0);
  CHECK(xa.set_mark(1, 2) == XaError::kOk);
  CHECK(xa.get_mark(1, 2));
  CHECK(xa.marked(2));
  i = 0;
  CHECK(xa.find(&i, ~0UL, XaFilter::marked(2)) == index_entry(1));
  CHECK(i == 1);
  erase_expect(xa, 1);
  CHECK_FALSE(xa.marked(2));
  alloc_expect(xa, 1);
  CHECK_FALSE(xa.get_mark(1, 2));
  // alloc on a plain array is invalid
  XArray plain;
  CHECK(plain.alloc(index_entry(0)).error() == XaError::kInvalid);
  unsigned long next = 0;
  CHECK(plain.alloc_cyclic(index_entry(0), {}, next).error() == XaError::kInvalid);
  CHECK(plain.empty());
  xa.clear();
}

TEST_CASE("alloc: free mark leads past full subtrees in deep trees") {
  XArray xa(XaFlags::kAlloc);
  const unsigned long fill = 3 * XArray::kChunkSize * XArray::kChunkSize + 5;
  for (unsigned long i = 0; i < fill; ++i) alloc_expect(xa, i);
  // holes, filled lowest first
  const std::vector<unsigned long> holes = {fill - 1, 7, XArray::kChunkSize * XArray::kChunkSize, 1};
  for (unsigned long h : holes) erase_expect(xa, h);
  std::set<unsigned long> sorted(holes.begin(), holes.end());
  for (unsigned long h : sorted) alloc_expect(xa, h);
  alloc_expect(xa, fill);
  // a minimum inside a full region, a maximum before the next hole
  alloc_expect(xa, fill + 1, {5, ~0UL});
  erase_expect(xa, 100);
  CHECK(xa.alloc(index_entry(0), {101, fill + 1}).error() == XaError::kBusy);
  alloc_expect(xa, 100, {50, fill});
  // far beyond the tree's range, and a range ending at ULONG_MAX
  alloc_expect(xa, 1UL << 50, {1UL << 50, ~0UL});
  alloc_expect(xa, (1UL << 50) + 1, {1UL << 50, ~0UL});
  alloc_expect(xa, 1UL << 49, {1UL << 49, ~0UL});
  alloc_expect(xa, ~0UL, {~0UL, ~0UL});
  alloc_expect(xa, ~0UL - 1, {~0UL - 1, ~0UL});
  CHECK(xa.alloc(index_entry(0), {~0UL - 1, ~0UL}).error() == XaError::kBusy);
  alloc_expect(xa, fill + 2);
  xa.clear();
}

TEST_CASE("alloc_cyclic: continues after the last id and wraps (check_xa_alloc_3)") {
  for (XaFlags flags : {XaFlags::kAlloc, XaFlags::kAlloc1}) {
    CAPTURE(static_cast<int>(flags));
    XArray xa(flags);
    const unsigned long base = base_of(xa);
    const XaLimit limit{1, 0x3fff};
    unsigned long next = 0;
    XaAllocResult r = xa.alloc_cyclic(index_entry(1), limit, next);
    REQUIRE(r.ok());
    CHECK(r.id() == 1);
    CHECK_FALSE(r.wrapped());
    CHECK(next == 2);

    next = 0x3ffd;
    r = xa.alloc_cyclic(index_entry(0x3ffd), limit, next);
    REQUIRE(r.ok());
    CHECK(r.id() == 0x3ffd);
    erase_expect(xa, 0x3ffd);
    erase_expect(xa, 1);
    CHECK(xa.empty());

    // 0x3ffe, 0x3fff, then wrap to 1, 2, 3
    for (unsigned long i = 0x3ffe; i < 0x4003; ++i) {
      const unsigned long want = i < 0x4000 ? i : i - 0x3fff;
      r = xa.alloc_cyclic(index_entry(want), limit, next);
      REQUIRE(r.ok());
      CHECK(r.id() == want);
      CHECK(r.wrapped() == (want == 1));
      CHECK(next == want + 1);
    }

    // next wrapping past the top of a 32-bit range
    xa.clear();
    next = UINT_MAX;
    r = xa.alloc_cyclic(index_entry(UINT_MAX), kXaLimit32b, next);
    REQUIRE(r.ok());
    CHECK(r.id() == UINT_MAX);
    CHECK_FALSE(r.wrapped());
    r = xa.alloc_cyclic(index_entry(base), kXaLimit32b, next);
    REQUIRE(r.ok());
    CHECK(r.id() == base);
    CHECK(r.wrapped());
    r = xa.alloc_cyclic(index_entry(base + 1), kXaLimit32b, next);
    REQUIRE(r.ok());
    CHECK(r.id() == base + 1);
    CHECK_FALSE(r.wrapped());

    // next wrapping past ULONG_MAX itself
    xa.clear();
    next = ~0UL;
    r = xa.alloc_cyclic(index_entry(7), {}, next);
    REQUIRE(r.ok());
    CHECK(r.id() == ~0UL);
    CHECK(next == 0);
    r = xa.alloc_cyclic(index_entry(base), {}, next);
    REQUIRE(r.ok());
    CHECK(r.id() == base);
    CHECK(r.wrapped());
    r = xa.alloc_cyclic(index_entry(base + 1), {}, next);
    CHECK_FALSE(r.wrapped());

    // a full range is busy, and `next` is left alone
    xa.clear();
    next = 5;
    for (unsigned long i = 5; i <= 8; ++i) REQUIRE(xa.alloc_cyclic(index_entry(i), {5, 8}, next).ok());
    const unsigned long before = next;
    CHECK(xa.alloc_cyclic(index_entry(9), {5, 8}, next).error() == XaError::kBusy);
    CHECK(next == before);
    CHECK(xa.alloc_cyclic(index_entry(9), {8, 5}, next).error() == XaError::kInvalid);
    xa.clear();
  }
}

TEST_CASE("alloc: running out of memory leaves the array unchanged") {
  FailingArray xa(XaFlags::kAlloc);
  for (unsigned long i = 0; i < FailingArray::kChunkSize; ++i) REQUIRE(xa.alloc(index_entry(i)).ok());
  FailingNodeAlloc::arm(0, true);
  const XaAllocResult r = xa.alloc(index_entry(99));
  FailingNodeAlloc::disarm();
  CHECK(r.error() == XaError::kNoMemory);
  CHECK(xa.load(FailingArray::kChunkSize).empty());
  const XaAllocResult again = xa.alloc(index_entry(FailingArray::kChunkSize));
  REQUIRE(again.ok());
  CHECK(again.id() == FailingArray::kChunkSize);
  xa.clear();
}
