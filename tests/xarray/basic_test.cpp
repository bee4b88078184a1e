// XArray basics, after the kernel's test_xarray.c: store/load/erase,
// insert, compare_exchange, reserve/release, value entries, invalid input,
// large indices up to ULONG_MAX, growing and shrinking, clear.
#include <climits>
#include <vector>

#include "rcu/deferred_free.h"
#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

TEST_CASE("entries: encoding and validation") {
  CHECK(Entry{}.empty());
  CHECK(Entry::pointer(nullptr).empty());
  const Entry v = Entry::value(12345);
  CHECK(v.is_value());
  CHECK_FALSE(v.is_pointer());
  CHECK(v.to_value() == 12345);
  CHECK(Entry::value(Entry::kMaxValue).valid());
  CHECK(Entry::value(Entry::kMaxValue).to_value() == Entry::kMaxValue);
  CHECK_FALSE(Entry::value(Entry::kMaxValue + 1).valid());
  alignas(8) static char buf[16];
  CHECK(Entry::pointer(buf).is_pointer());
  CHECK(Entry::pointer(buf).to_pointer<char>() == buf);
  for (int off = 1; off < 4; ++off) CHECK_FALSE(Entry::pointer(buf + off).valid());  // "Motorola 68000"
  CHECK(Entry::pointer(buf + 4).valid());
}

TEST_CASE("store, load and erase 0..N one at a time (check_xa_load)") {
  XArray xa;
  const unsigned long n = kSanitized ? 256 : 1024;
  for (unsigned long i = 0; i < n; ++i) {
    REQUIRE(xa.store(i, index_entry(i)).entry().empty());
    for (unsigned long j = 0; j < n; ++j)
      REQUIRE(xa.load(j) == (j <= i ? index_entry(j) : Entry{}));
  }
  for (unsigned long i = 0; i < n; ++i) {
    REQUIRE(xa.erase(i) == index_entry(i));
    for (unsigned long j = 0; j < n; ++j)
      REQUIRE(xa.load(j) == (j > i ? index_entry(j) : Entry{}));
  }
  CHECK(xa.empty());
  CHECK(xa.stats().nodes == 0);
}

TEST_CASE("store returns the old entry; empty store erases") {
  XArray xa;
  CHECK(xa.store(5, index_entry(5)).entry().empty());
  CHECK(xa.store(5, fake_pointer(7)).entry() == index_entry(5));
  CHECK(xa.load(5) == fake_pointer(7));
  CHECK(xa.store(5, Entry{}).entry() == fake_pointer(7));
  CHECK(xa.empty());
  CHECK(xa.erase(5).empty());
  CHECK(xa.erase(~0UL).empty());
}

TEST_CASE("invalid input is rejected and changes nothing") {
  XArray xa;
  alignas(8) static char buf[8];
  xa.store(3, index_entry(3));
  CHECK(xa.store(3, Entry::pointer(buf + 2)).error() == XaError::kInvalid);
  CHECK(xa.store(4, Entry::value(~0UL)).error() == XaError::kInvalid);
  CHECK(xa.insert(4, Entry::pointer(buf + 1)) == XaError::kInvalid);
  CHECK(xa.compare_exchange(3, index_entry(3), Entry::pointer(buf + 3)).error() == XaError::kInvalid);
  CHECK(xa.set_mark(3, 3) == XaError::kInvalid);
  CHECK(xa.clear_mark(3, 7) == XaError::kInvalid);
  CHECK_FALSE(xa.get_mark(3, 3));
  CHECK_FALSE(xa.marked(3));
  unsigned long i = 10;
  CHECK(xa.find(&i, 5).empty());  // first > last
  CHECK(i == 10);
  i = 0;
  CHECK(xa.find(&i, ~0UL, XaFilter::marked(5)).empty());
  int n = 0;
  for (auto e : xa.range(9, 2)) (void)e, ++n;
  CHECK(n == 0);
  CHECK(xa.load(3) == index_entry(3));
  CHECK(xa.load(4).empty());
}

TEST_CASE("insert (check_insert): busy when present or reserved, neighbours untouched") {
  XArray xa;
  std::vector<unsigned long> idx;
  for (unsigned long i = 0; i < 1024; ++i) idx.push_back(i);
  for (int b = 10; b < 64; ++b) {
    idx.push_back(1UL << b);
    idx.push_back((1UL << b) - 1);
  }
  idx.push_back(~0UL);
  for (unsigned long i : idx) {
    XArray one;
    REQUIRE(one.insert(i, index_entry(i)) == XaError::kOk);
    CHECK(one.insert(i, index_entry(0)) == XaError::kBusy);
    CHECK(one.load(i) == index_entry(i));
    if (i != 0) CHECK(one.load(i - 1).empty());
    if (i != ~0UL) CHECK(one.load(i + 1).empty());
    CHECK(one.erase(i) == index_entry(i));
    CHECK(one.empty());
  }
}

TEST_CASE("compare_exchange (check_cmpxchg)") {
  XArray xa;
  const Entry five = index_entry(5), six = index_entry(6), lots = index_entry(12345678);
  CHECK(xa.store(12345678, lots).ok());
  CHECK(xa.insert(12345678, six) == XaError::kBusy);
  CHECK(xa.compare_exchange(12345678, six, five).entry() == lots);  // fails
  CHECK(xa.load(12345678) == lots);
  CHECK(xa.compare_exchange(12345678, lots, five).entry() == lots);  // succeeds
  CHECK(xa.load(12345678) == five);
  CHECK(xa.compare_exchange(5, five, Entry{}).entry().empty());  // absent: fails
  CHECK(xa.compare_exchange(5, Entry{}, five).entry().empty());  // absent → five
  CHECK(xa.load(5) == five);
  CHECK(xa.compare_exchange(12345678, five, Entry{}).entry() == five);
  CHECK(xa.insert(12345678, five) == XaError::kOk);
  CHECK(xa.erase(5) == five);
  CHECK(xa.erase(12345678) == five);
  CHECK(xa.empty());
}

TEST_CASE("reserve and release (check_reserve)") {
  XArray xa;
  for (unsigned long i : {0UL, 1UL, 63UL, 64UL, 1000UL, ~0UL}) {
    CAPTURE(i);
    REQUIRE(xa.reserve(i) == XaError::kOk);
    CHECK_FALSE(xa.empty());
    CHECK(xa.load(i).empty());
    CHECK(xa.insert(i, index_entry(i)) == XaError::kBusy);
    unsigned long f = 0;
    CHECK(xa.find(&f, ~0UL).empty());  // iteration skips reserved
    xa.release(i);
    CHECK(xa.empty());
    // reserve then store: store over it works; release is then a no-op
    REQUIRE(xa.reserve(i) == XaError::kOk);
    CHECK(xa.store(i, index_entry(i)).entry().empty());
    xa.release(i);
    CHECK(xa.load(i) == index_entry(i));
    CHECK(xa.erase(i) == index_entry(i));
    CHECK(xa.empty());
    // reserve then erase; cmpxchg(empty → v) over a reserved index
    REQUIRE(xa.reserve(i) == XaError::kOk);
    CHECK(xa.erase(i).empty());
    CHECK(xa.empty());
    REQUIRE(xa.reserve(i) == XaError::kOk);
    CHECK(xa.compare_exchange(i, Entry{}, index_entry(i)).entry().empty());
    CHECK(xa.load(i) == index_entry(i));
    CHECK(xa.erase(i) == index_entry(i));
    // inserting an empty entry reserves
    CHECK(xa.insert(i, Entry{}) == XaError::kOk);
    CHECK(xa.insert(i, index_entry(1)) == XaError::kBusy);
    xa.release(i);
    CHECK(xa.empty());
  }
  // reserve on an occupied index is a no-op
  xa.store(7, index_entry(7));
  CHECK(xa.reserve(7) == XaError::kOk);
  CHECK(xa.load(7) == index_entry(7));
  // a reserved index does not take marks
  xa.reserve(9);
  xa.set_mark(9, 0);
  CHECK_FALSE(xa.get_mark(9, 0));
  CHECK_FALSE(xa.marked(0));
}

TEST_CASE("a store into a reserved index needs no memory") {
  FailingArray xa;
  for (unsigned long i : {0UL, 5UL, 4096UL, ~0UL}) {
    REQUIRE(xa.reserve(i) == XaError::kOk);
    FailingNodeAlloc::arm(0, true);
    CHECK(xa.store(i, fake_pointer(i)).ok());
    FailingNodeAlloc::disarm();
    CHECK(xa.load(i) == fake_pointer(i));
  }
}

TEST_CASE("value entries and pointer entries coexist") {
  XArray xa;
  alignas(16) static int objects[64];
  for (unsigned long i = 0; i < 64; ++i) {
    xa.store(2 * i, Entry::pointer(&objects[i]));
    xa.store(2 * i + 1, Entry::value(Entry::kMaxValue - i));
  }
  for (unsigned long i = 0; i < 64; ++i) {
    CHECK(xa.load(2 * i).to_pointer<int>() == &objects[i]);
    CHECK(xa.load(2 * i + 1).is_value());
    CHECK(xa.load(2 * i + 1).to_value() == Entry::kMaxValue - i);
  }
}

TEST_CASE("grow and shrink (check_xa_shrink)") {
  XArray xa;
  constexpr unsigned long kSlots = XArray::kChunkSize;
  xa.store(0, index_entry(0));
  CHECK(xa.stats().nodes == 0);  // a lone index-0 entry lives in the head
  xa.store(1, index_entry(1));
  CHECK(xa.stats().nodes == 1);
  CHECK(xa.stats().bytes == sizeof(XArray::Node));
  xa.erase(1);
  CHECK(xa.stats().nodes == 0);  // shrunk back to the head
  CHECK(xa.load(0) == index_entry(0));
  CHECK(xa.load(1).empty());

  // Storing ULONG_MAX grows the tree to full height; erasing it shrinks back.
  xa.store(1, index_entry(1));
  const std::size_t before = xa.stats().nodes;
  xa.store(~0UL, index_entry(~0UL));
  const unsigned levels = (64 + XArray::kChunkShift - 1) / XArray::kChunkShift;
  CHECK(xa.stats().nodes == 1 + 2 * (levels - 1));  // old leaf, the spine up, and the path to ~0
  CHECK(xa.load(~0UL) == index_entry(~0UL));
  CHECK(xa.load(0) == index_entry(0));
  CHECK(xa.erase(~0UL) == index_entry(~0UL));
  CHECK(xa.stats().nodes == before);
  xa.erase(1);
  xa.erase(0);
  CHECK(xa.empty());
  CHECK(xa.stats().nodes == 0);

  // A far index alone: the path only.
  xa.store(kSlots * kSlots, index_entry(1));
  CHECK(xa.stats().nodes == 3);
  xa.erase(kSlots * kSlots);
  CHECK(xa.stats().nodes == 0);
  CHECK(xa.empty());
}

TEST_CASE("indices near the top of the range") {
  XArray xa;
  const unsigned long idx[] = {~0UL, ~0UL - 1, 1UL << 63, (1UL << 63) - 1, (1UL << 40) + 5, 1UL << 32, 0};
  for (unsigned long i : idx) CHECK(xa.store(i, index_entry(i)).ok());
  for (unsigned long i : idx) CHECK(xa.load(i) == index_entry(i));
  unsigned long i = ~0UL - 1;
  CHECK(xa.find_after(&i, ~0UL) == index_entry(~0UL));
  CHECK(i == ~0UL);
  CHECK(xa.find_after(&i, ~0UL).empty());  // nothing after ULONG_MAX
  for (unsigned long k : idx) CHECK(xa.erase(k) == index_entry(k));
  CHECK(xa.empty());
}

TEST_CASE("clear (check_destroy) frees every node through deferred free") {
  rcu::barrier();  // nodes of earlier tests' arrays
  const long live0 = FailingNodeAlloc::live.load();
  {
    FailingArray xa;
    xa.clear();  // empty
    CHECK(xa.empty());
    for (unsigned long i = 0; i < 1000; i += 7) xa.store(i, index_entry(i));
    xa.store(~0UL, index_entry(1));
    xa.set_mark(7, 1);
    CHECK(xa.stats().nodes > 0);
    xa.clear();
    CHECK(xa.empty());
    CHECK_FALSE(xa.marked(1));
    CHECK(xa.stats().nodes == 0);
    CHECK(xa.load(7).empty());
    CHECK(xa.load(~0UL).empty());
    xa.store(3, index_entry(3));  // usable afterwards
    CHECK(xa.load(3) == index_entry(3));
    for (unsigned long i = 0; i < 1000; ++i) xa.store(i * 1000, index_entry(i));
  }  // destructor clears
  rcu::barrier();
  CHECK(FailingNodeAlloc::live.load() == live0);
}

TEST_CASE("the malloc node policy works like the slab one") {
  BasicXArray<XArray::kChunkShift, MallocNodeAlloc> xa;
  for (unsigned long i = 0; i < 5000; i += 3) REQUIRE(xa.store(i, index_entry(i)).ok());
  for (unsigned long i = 0; i < 5000; ++i) REQUIRE(xa.load(i) == (i % 3 == 0 ? index_entry(i) : Entry{}));
  unsigned long n = 0;
  for (auto [index, entry] : xa) {
    CHECK(entry == index_entry(index));
    ++n;
  }
  CHECK(n == (5000 + 2) / 3);
}
