// Slab caches on one thread: allocation patterns, constructor semantics,
// statistics, options, the fullest-first policy, empty-slab release,
// isolation, pointer → slab lookup, flushing and out-of-memory.
//
// Note on flushing: a thread that frees into a slab it does not own holds
// those frees in its free buffer until it flushes (buffer full, allocation
// slow path, flush_thread_cache(), thread exit). validate() must accept that
// state (see "validate accepts a detached slab with frees still held by a
// thread"); the other tests flush the thread cache before they validate or
// look at slab lists, so that each checks one thing.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "alloc/platform.h"
#include "alloc/slab_cache.h"
#include "alloc/slab_geometry.h"
#include "test_util.h"

using namespace mslab;
using mslab::test::addr;
using mslab::test::capacity_of;
using mslab::test::occupancy_bin;
using mslab::test::CacheHandle;
using mslab::test::make_cache;
using mslab::test::TestPages;
using detail::Slab;

namespace {

std::vector<void*> alloc_n(SlabCache& cache, std::size_t n) {
  std::vector<void*> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    void* p = cache.alloc();
    REQUIRE(p != nullptr);
    out.push_back(p);
  }
  return out;
}

// Objects grouped by slab, slabs in order of first appearance.
struct SlabGroups {
  std::vector<Slab*> order;
  std::map<Slab*, std::vector<void*>> objects;
};

SlabGroups group_by_slab(const std::vector<void*>& objs) {
  SlabGroups g;
  for (void* p : objs) {
    Slab* s = detail::slab_of(p);
    REQUIRE(s != nullptr);
    if (g.objects.count(s) == 0) g.order.push_back(s);
    g.objects[s].push_back(p);
  }
  return g;
}

std::size_t bytes_in_use(PageAllocator& pages) { return pages.stats().bytes_in_use; }

std::set<void*> allocated_set(const Slab* s) {
  std::vector<void*> buf(s->capacity + 1);
  const std::size_t n = SlabCache::allocated_objects(s, buf);
  REQUIRE(n <= s->capacity);
  return std::set<void*>(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace

TEST_CASE("slab cache: alloc and free round trip") {
  SlabCache* cache = SlabCache::create({.name = "t64", .object_size = 64});
  REQUIRE(cache != nullptr);
  CHECK(std::string(cache->name()) == "t64");
  CHECK(cache->object_size() == 64);
  void* p = cache->alloc();
  REQUIRE(p != nullptr);
  CHECK(SlabCache::cache_of(p) == cache);
  CHECK(PageAllocator::global().owns(p));  // no PageAllocator given: the global one
  cache->free(p);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);
  CHECK(cache->stats().live_objects == 0);
  CHECK(cache->destroy().live_objects == 0);
}

TEST_CASE("slab cache: many objects are distinct and aligned and inside their slabs") {
  struct Param {
    std::size_t size, align;
  };
  const Param params[] = {{1, 0},   {3, 1},    {8, 0},    {24, 0},   {48, 0},    {64, 0},          {100, 0},
                          {100, 64}, {256, 0}, {1000, 0}, {2048, 0}, {4096, 4096}, {5000, 0}, {262144, 0}};
  for (const Param& param : params) {
    CAPTURE(param.size);
    CAPTURE(param.align);
    TestPages owner(mslab::test::steady_policy());
    PageAllocator& pages = owner.get();
    CacheHandle cache = make_cache("many", param.size, &pages, param.align);
    const std::size_t align = param.align != 0 ? param.align : (param.size % 16 == 0 ? 16 : 8);
    const detail::SlabGeometry g = detail::compute_slab_geometry(param.size, align);
    const CacheStats st0 = cache->stats();
    CHECK(st0.object_size == param.size);
    CHECK(st0.stride == g.stride);
    CHECK(st0.objects_per_slab == g.capacity);
    CHECK(st0.slab_order == g.order);
    CHECK(st0.slab_bytes == order_bytes(g.order));
    const std::size_t cap = g.capacity;
    const std::size_t n = 3 * cap + (cap > 5 ? 5 : 1);
    std::vector<void*> objs = alloc_n(*cache, n);

    std::set<void*> distinct(objs.begin(), objs.end());
    CHECK(distinct.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
      char* p = static_cast<char*>(objs[i]);
      Slab* s = detail::slab_of(p);
      REQUIRE(s != nullptr);
      CHECK(s->cache == cache.get());
      CHECK(SlabCache::cache_of(p) == cache.get());
      CHECK(addr(p) % align == 0);
      CHECK(s->objects == reinterpret_cast<char*>(s) + g.objects_offset);
      REQUIRE(p >= s->objects);
      const std::size_t offset = static_cast<std::size_t>(p - s->objects);
      CHECK(offset % g.stride == 0);
      CHECK(offset / g.stride < cap);
      CHECK(p + param.size <= reinterpret_cast<char*>(s) + order_bytes(s->order));
      CHECK(addr(s) % order_bytes(s->order) == 0);  // slabs are aligned to their size
      std::memset(p, static_cast<int>(i * 31 + 7), param.size);
    }
    // No two objects overlap: every object still holds its own pattern.
    std::size_t damaged = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const auto* p = static_cast<const unsigned char*>(objs[i]);
      const auto want = static_cast<unsigned char>(i * 31 + 7);
      for (std::size_t b = 0; b < param.size; ++b) damaged += p[b] != want;
    }
    CHECK(damaged == 0);

    CacheStats st = cache->stats();
    CHECK(st.live_objects == n);
    CHECK(st.slabs == 4);
    // All four are still this thread's: the active one and three it keeps
    // owned (its frees into them stay local), none detached as full.
    static_assert(detail::ThreadHeap::kOwnedSlabs >= 3);
    CHECK(st.slabs_full == 0);
    CHECK(st.slabs_active == 4);
    CHECK(st.bytes_reserved == 4 * st.slab_bytes);
    CHECK(bytes_in_use(pages) == 4 * st.slab_bytes);

    std::mt19937 rng(static_cast<unsigned>(param.size));
    std::shuffle(objs.begin(), objs.end(), rng);
    for (void* p : objs) cache->free(p);
    cache->flush_thread_cache();
    st = cache->stats();
    CHECK(st.live_objects == 0);
    CHECK(st.slabs == 1);  // empty_reserve = 1; the others went back
    CHECK(st.slabs_empty == 1);
    CHECK(st.slabs_freed == 3);
    CHECK(bytes_in_use(pages) == st.slab_bytes);
    CHECK_VALID(*cache);
    CHECK_VALID(pages);
  }
}

namespace {

struct CtorObject {
  std::uint64_t magic;
  std::uint64_t serial;
  std::uint64_t value;
};
constexpr std::uint64_t kCtorMagic = 0x5EED'C0FF'EE00'1234;

void construct(void* object, void* arg) {
  auto* counter = static_cast<std::size_t*>(arg);
  new (object) CtorObject{kCtorMagic, (*counter)++, 0};
}

}  // namespace

TEST_CASE("slab cache: the constructor runs once per object when its slab is made") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  std::size_t constructed = 0;
  SlabCache* raw = SlabCache::create({.name = "ctor",
                                      .object_size = sizeof(CtorObject),
                                      .ctor = &construct,
                                      .ctor_arg = &constructed,
                                      .empty_reserve = 8,
                                      .pages = &pages});
  REQUIRE(raw != nullptr);
  CacheHandle cache(raw);
  const std::size_t cap = cache->stats().objects_per_slab;
  CHECK(constructed == 0);  // no slab yet

  void* first = cache->alloc();
  REQUIRE(first != nullptr);
  CHECK(constructed == cap);  // the whole slab was constructed at once
  std::vector<void*> objs = alloc_n(*cache, 2 * cap);
  objs.insert(objs.begin(), first);
  CHECK(constructed == 3 * cap);

  std::set<std::uint64_t> serials;
  std::map<void*, std::uint64_t> written;
  for (std::size_t i = 0; i < objs.size(); ++i) {
    auto* o = static_cast<CtorObject*>(objs[i]);
    CHECK(o->magic == kCtorMagic);
    CHECK(o->value == 0);
    serials.insert(o->serial);
    o->value = 1000 + i;
    written[o] = o->value;
  }
  CHECK(serials.size() == objs.size());
  CHECK(*serials.rbegin() < 3 * cap);

  for (void* p : objs) cache->free(p);
  cache->flush_thread_cache();
  CHECK(cache->stats().slabs == 3);  // kept: empty_reserve = 8

  // The same slabs serve again: no constructor call, contents preserved.
  std::vector<void*> again = alloc_n(*cache, objs.size());
  CHECK(constructed == 3 * cap);
  std::size_t reused = 0;
  for (void* p : again) {
    auto* o = static_cast<CtorObject*>(p);
    CHECK(o->magic == kCtorMagic);
    auto it = written.find(p);
    if (it != written.end()) {
      CHECK(o->value == it->second);
      ++reused;
    } else {
      CHECK(o->value == 0);
    }
  }
  CHECK(reused >= cap);
  // alloc_direct() on a new slab constructs it too.
  std::vector<void*> more = alloc_n(*cache, 3 * cap - again.size());  // fill the three slabs
  void* direct = cache->alloc_direct();
  REQUIRE(direct != nullptr);
  CHECK(constructed == 4 * cap);
  CHECK(static_cast<CtorObject*>(direct)->magic == kCtorMagic);
  CHECK(cache->stats().live_objects == 3 * cap + 1);
  for (void* p : again) cache->free(p);
  for (void* p : more) cache->free(p);
  cache->free(direct);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("slab cache: statistics follow allocations and frees and flushes") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("stats64", 64, &pages);
  CacheStats st = cache->stats();
  const std::size_t cap = st.objects_per_slab;
  REQUIRE(cap >= 20);
  CHECK(st.object_size == 64);
  CHECK(st.stride == 64);
  CHECK(cap == detail::compute_slab_geometry(64, 16).capacity);
  CHECK(st.slab_order == 0);
  CHECK(st.slab_bytes == kPageSize);
  CHECK(st.live_objects == 0);
  CHECK(st.slabs == 0);
  CHECK(st.bytes_reserved == 0);
  CHECK(st.slabs_created == 0);
  for (std::size_t bin : st.occupancy) CHECK(bin == 0);

  std::vector<void*> objs = alloc_n(*cache, 1);
  st = cache->stats();
  CHECK(st.live_objects == 1);
  CHECK(st.slabs == 1);
  CHECK(st.slabs_active == 1);
  CHECK(st.occupancy[1] == 1);  // 1/cap is in (0, 10 %]
  CHECK(st.bytes_reserved == kPageSize);
  CHECK(st.slabs_created == 1);

  auto rest = alloc_n(*cache, cap - 1);
  objs.insert(objs.end(), rest.begin(), rest.end());
  st = cache->stats();
  CHECK(st.live_objects == cap);
  CHECK(st.slabs_active == 1);  // full, but still the thread's slab
  CHECK(st.occupancy[10] == 1);

  objs.push_back(cache->alloc());  // the full slab stays owned, a new one made
  REQUIRE(objs.back() != nullptr);
  st = cache->stats();
  CHECK(st.slabs == 2);
  CHECK(st.slabs_full == 0);
  CHECK(st.slabs_active == 2);
  CHECK(st.occupancy[10] == 1);
  CHECK(st.occupancy[1] == 1);
  CHECK(st.bytes_reserved == 2 * kPageSize);

  cache->flush_thread_cache();
  st = cache->stats();
  CHECK(st.slabs_active == 0);
  CHECK(st.slabs_partial == 1);
  CHECK(st.slabs_full == 1);
  CHECK(st.live_objects == cap + 1);

  const std::size_t half = cap / 2;
  for (std::size_t i = 0; i < half; ++i) cache->free(objs[i]);  // half of the first slab
  cache->flush_thread_cache();
  st = cache->stats();
  CHECK(st.live_objects == cap - half + 1);
  CHECK(st.slabs_partial == 2);
  CHECK(st.slabs_full == 0);
  CHECK(st.occupancy[occupancy_bin(cap - half, cap)] == 1);  // 50 % or just above
  CHECK(st.occupancy[1] == 1);
  CHECK(st.occupancy[10] == 0);

  cache->free(objs.back());  // the second slab becomes empty (kept: reserve 1)
  cache->flush_thread_cache();
  st = cache->stats();
  CHECK(st.live_objects == cap - half);
  CHECK(st.slabs_empty == 1);
  CHECK(st.slabs_partial == 1);
  CHECK(st.occupancy[0] == 1);
  CHECK(st.slabs == 2);
  CHECK(st.slabs_created == 2);
  CHECK(st.slabs_freed == 0);
  CHECK(bytes_in_use(pages) == 2 * kPageSize);
  std::size_t histogram_total = 0;
  for (std::size_t bin : st.occupancy) histogram_total += bin;
  CHECK(histogram_total == st.slabs);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);

  const DestroyReport report = cache.get()->destroy();
  cache.release();
  CHECK(report.live_objects == cap - half);
  CHECK(report.slabs == 2);
  CHECK(bytes_in_use(pages) == 0);
  CHECK_VALID(pages);
}

TEST_CASE("slab cache: invalid options return nullptr and a CacheError and never crash") {
  mslab::test::ErrorRecorder errors;  // nothing may be reported (the default would abort)
  struct Bad {
    const char* what;
    CacheOptions options;
    const char* message_part;
  };
  const Bad bad[] = {
      {"size 0", {.name = "bad", .object_size = 0}, "zero"},
      {"size above 256 KiB", {.name = "bad", .object_size = kMaxObjectSize + 1}, "256 KiB"},
      {"huge size", {.name = "bad", .object_size = ~std::size_t{0}}, "256 KiB"},
      {"align 3", {.name = "bad", .object_size = 64, .align = 3}, "power of two"},
      {"align 24", {.name = "bad", .object_size = 64, .align = 24}, "power of two"},
      {"align 8192", {.name = "bad", .object_size = 64, .align = 8192}, "4096"},
      {"null name", {.name = nullptr, .object_size = 64}, "name"},
      {"reserved id out of range", {.name = "bad", .object_size = 64, .reserved_id = kReservedCacheIds}, "range"},
  };
  for (const Bad& b : bad) {
    CAPTURE(b.what);
    CacheError error{ErrorCode::kCorruption, nullptr};
    CHECK(SlabCache::create(b.options, &error) == nullptr);
    CHECK(error.code == ErrorCode::kInvalidArgument);
    REQUIRE(error.message != nullptr);
    CHECK(mslab::test::contains(error.message, b.message_part));
    CHECK(SlabCache::create(b.options) == nullptr);  // no error out-parameter: still fine
  }
  CHECK(errors.count() == 0);
  // The limits themselves are accepted.
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  struct Limit {
    std::size_t size, align;
  };
  for (const Limit limit : {Limit{kMaxObjectSize, 0}, Limit{1, 1}, Limit{64, 4096}}) {
    const std::size_t size = limit.size, align = limit.align;
    CAPTURE(size);
    CacheError error{};
    SlabCache* c = SlabCache::create({.name = "", .object_size = size, .align = align, .pages = &pages}, &error);
    REQUIRE(c != nullptr);
    void* p = c->alloc();
    REQUIRE(p != nullptr);
    CHECK(addr(p) % (align == 0 ? 16 : align) == 0);
    c->free(p);
    c->flush_thread_cache();
    CHECK_VALID(*c);
    CHECK(c->destroy().live_objects == 0);
  }
}

TEST_CASE("slab cache: name is copied and truncated; default alignment follows the size") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  char name[64];
  std::strcpy(name, "a-very-long-cache-name-that-exceeds-the-limit");
  CacheHandle cache = make_cache(name, 24, &pages);
  name[0] = 'X';  // the cache keeps its own copy
  CHECK(std::string(cache->name()) == std::string("a-very-long-cache-name-that-exceeds-the-limit").substr(0, kMaxCacheName));
  CHECK(std::strlen(cache->name()) == kMaxCacheName);
  CHECK(cache->stats().stride == 24);  // 24 is not a multiple of 16: align 8

  CacheHandle c48 = make_cache("c48", 48, &pages);
  CHECK(c48->stats().stride == 48);  // align 16
  for (void* p : alloc_n(*c48, 100)) {
    CHECK(addr(p) % 16 == 0);
    c48->free(p);
  }
  CacheHandle c40 = make_cache("c40", 40, &pages);
  CHECK(c40->stats().stride == 40);  // align 8
  CacheHandle c40a = make_cache("c40a", 40, &pages, 32);
  CHECK(c40a->stats().stride == 64);  // rounded up to the alignment
  c48->flush_thread_cache();
  CHECK_VALID(*cache);
  CHECK_VALID(*c48);
}

TEST_CASE("slab cache: destroy reports live objects and gives every slab back") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  SlabCache* cache = make_cache("destroy", 64, &pages).release();
  const std::size_t cap = capacity_of(*cache);
  std::vector<void*> objs = alloc_n(*cache, 2 * cap + cap / 2);  // 3 slabs
  for (int i = 0; i < 20; ++i) cache->free(objs[static_cast<std::size_t>(i)]);
  // An isolated slab is given back too.
  cache->flush_thread_cache();
  REQUIRE(cache->isolate(detail::slab_of(objs[cap])));
  CHECK(cache->stats().live_objects == objs.size() - 20);
  CHECK(bytes_in_use(pages) == 3 * kPageSize);
  const DestroyReport report = cache->destroy();
  CHECK(report.live_objects == objs.size() - 20);
  CHECK(report.slabs == 3);
  CHECK(bytes_in_use(pages) == 0);
  CHECK(detail::slab_of(objs[cap]) == nullptr);
  CHECK_VALID(pages);

  // The thread's state for the destroyed cache is gone: a new cache (which
  // may reuse its id) starts clean.
  CacheHandle next = make_cache("after-destroy", 64, &pages);
  void* p = next->alloc();
  REQUIRE(p != nullptr);
  CHECK(detail::slab_of(p)->cache == next.get());
  CacheStats st = next->stats();
  CHECK(st.live_objects == 1);
  CHECK(st.slabs == 1);
  next->free(p);
  CHECK_VALID(*next);

  // An empty cache destroys cleanly.
  SlabCache* empty = make_cache("empty", 64, &pages).release();
  const DestroyReport r2 = empty->destroy();
  CHECK(r2.live_objects == 0);
  CHECK(r2.slabs == 0);
}

// ---------------------------------------------------------------------------
// Policy: fullest partial slab first; empty slabs beyond the reserve go back.

TEST_CASE("slab cache: allocation takes the fullest partial slab first") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("fullest", 64, &pages);
  const std::size_t kCap = capacity_of(*cache);
  REQUIRE(kCap >= 20);
  std::vector<void*> objs = alloc_n(*cache, 5 * kCap);
  cache->flush_thread_cache();
  SlabGroups g = group_by_slab(objs);
  REQUIRE(g.order.size() == 5);
  for (Slab* s : g.order) REQUIRE(g.objects[s].size() == kCap);
  CHECK(cache->stats().slabs_full == 5);

  // Leave about 10 %, 50 %, 90 %, none and all objects live in the five
  // slabs (three different partial buckets).
  const std::size_t keep[5] = {kCap / 10, kCap / 2, kCap * 9 / 10, 0, kCap};
  std::vector<void*> live;
  for (std::size_t k = 0; k < 5; ++k) {
    std::vector<void*>& in_slab = g.objects[g.order[k]];
    for (std::size_t i = keep[k]; i < kCap; ++i) cache->free(in_slab[i]);
    live.insert(live.end(), in_slab.begin(), in_slab.begin() + static_cast<std::ptrdiff_t>(keep[k]));
  }
  cache->flush_thread_cache();
  CacheStats st = cache->stats();
  CHECK(st.live_objects == keep[0] + keep[1] + keep[2] + keep[4]);
  CHECK(st.slabs_full == 1);
  CHECK(st.slabs_partial == 3);
  CHECK(st.slabs_empty == 1);
  std::size_t bins[kOccupancyBins] = {};
  for (std::size_t k : keep) ++bins[occupancy_bin(k, kCap)];
  for (unsigned b = 0; b < kOccupancyBins; ++b) CHECK(st.occupancy[b] == bins[b]);
  CHECK_VALID(*cache);

  std::size_t visited = 0;
  cache->for_each_detached_slab([&](Slab* s) {
    ++visited;
    CHECK(s->cache == cache.get());
    CHECK(s != g.order[3]);  // empty slabs are not listed
  });
  CHECK(visited == 4);

  auto take = [&](bool direct) {
    void* p = direct ? cache->alloc_direct() : cache->alloc();
    REQUIRE(p != nullptr);
    live.push_back(p);
    return detail::slab_of(p);
  };
  auto expect_fill = [&](bool direct) {
    // The fullest first: 90 % → 50 % → 10 % live, then the empty slab, then a new one.
    for (std::size_t i = keep[2]; i < kCap; ++i) CHECK(take(direct) == g.order[2]);
    for (std::size_t i = keep[1]; i < kCap; ++i) CHECK(take(direct) == g.order[1]);
    for (std::size_t i = keep[0]; i < kCap; ++i) CHECK(take(direct) == g.order[0]);
    for (std::size_t i = 0; i < kCap; ++i) CHECK(take(direct) == g.order[3]);
    Slab* fresh = take(direct);
    CHECK(std::find(g.order.begin(), g.order.end(), fresh) == g.order.end());
    CHECK(cache->stats().slabs_created == 6);
  };
  SUBCASE("alloc() through the thread cache") { expect_fill(false); }
  SUBCASE("alloc_direct()") { expect_fill(true); }

  for (void* p : live) cache->free(p);
  cache->flush_thread_cache();
  st = cache->stats();
  CHECK(st.live_objects == 0);
  CHECK(st.slabs == 1);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("slab cache: sparse slabs drain and go back to the page allocator") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("drain", 64, &pages, 0, /*empty_reserve=*/0);
  const std::size_t cap = capacity_of(*cache);
  std::vector<void*> objs = alloc_n(*cache, 2 * cap);
  cache->flush_thread_cache();
  SlabGroups g = group_by_slab(objs);
  REQUIRE(g.order.size() == 2);
  Slab* dense = g.order[0];
  Slab* sparse = g.order[1];
  std::vector<void*>& dense_objs = g.objects[dense];
  std::vector<void*>& sparse_objs = g.objects[sparse];
  for (std::size_t i = cap - 10; i < cap; ++i) cache->free(dense_objs[i]);  // cap - 10 live
  for (std::size_t i = 10; i < cap; ++i) cache->free(sparse_objs[i]);  // 10 live
  cache->flush_thread_cache();
  CHECK(cache->stats().slabs_partial == 2);
  CHECK(bytes_in_use(pages) == 2 * kPageSize);

  // Steady state: each new object lands in the dense slab while the program
  // frees the sparse slab's objects; the sparse slab empties and is freed.
  std::vector<void*> fresh;
  for (std::size_t i = 0; i < 10; ++i) {
    void* p = cache->alloc();
    REQUIRE(p != nullptr);
    CHECK(detail::slab_of(p) == dense);
    fresh.push_back(p);
    cache->free(sparse_objs[i]);
  }
  cache->flush_thread_cache();  // hands over frees still held by this thread
  CacheStats st = cache->stats();
  CHECK(st.slabs == 1);
  CHECK(st.slabs_freed == 1);
  CHECK(st.live_objects == cap);
  CHECK(bytes_in_use(pages) == kPageSize);
  CHECK(detail::slab_of(sparse_objs[0]) == nullptr);  // its pages are no longer a slab
  for (void* p : fresh) cache->free(p);
  for (std::size_t i = 0; i < cap - 10; ++i) cache->free(dense_objs[i]);
  cache->flush_thread_cache();
  CHECK(cache->stats().slabs == 0);
  CHECK(bytes_in_use(pages) == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("slab cache: empty slabs beyond empty_reserve go back to the page allocator") {
  for (std::size_t reserve : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    CAPTURE(reserve);
    TestPages owner(mslab::test::steady_policy());
    PageAllocator& pages = owner.get();
    CacheHandle cache = make_cache("reserve", 64, &pages, 0, reserve);
    std::vector<void*> objs = alloc_n(*cache, 5 * capacity_of(*cache));
    cache->flush_thread_cache();
    CHECK(bytes_in_use(pages) == 5 * kPageSize);
    for (void* p : objs) cache->free(p);
    cache->flush_thread_cache();
    CacheStats st = cache->stats();
    CHECK(st.live_objects == 0);
    CHECK(st.slabs == reserve);
    CHECK(st.slabs_empty == reserve);
    CHECK(st.slabs_freed == 5 - reserve);
    CHECK(bytes_in_use(pages) == reserve * kPageSize);
    CHECK_VALID(*cache);
    // A kept empty slab is reused before a new one is made.
    void* p = cache->alloc();
    REQUIRE(p != nullptr);
    CHECK(cache->stats().slabs_created == (reserve > 0 ? 5u : 6u));
    cache->free(p);
    cache->flush_thread_cache();
    CHECK_VALID(*cache);
    CHECK_VALID(pages);
  }
}

// ---------------------------------------------------------------------------
// Isolation (the defragmenter's hooks).

TEST_CASE("slab cache: an isolated slab serves no allocation but accepts frees") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("isolate", 64, &pages);
  const std::size_t cap = capacity_of(*cache);
  std::vector<void*> objs = alloc_n(*cache, 3 * cap);
  cache->flush_thread_cache();
  SlabGroups g = group_by_slab(objs);
  REQUIRE(g.order.size() == 3);
  Slab* victim = g.order[1];
  std::set<void*> model;
  std::vector<void*>& in_victim = g.objects[victim];
  for (std::size_t i = 0; i < in_victim.size(); ++i) {
    if (i % 2 == 0) cache->free(in_victim[i]);
    else model.insert(in_victim[i]);
  }
  cache->flush_thread_cache();
  REQUIRE(model.size() == cap / 2);

  CHECK(cache->isolate(victim));
  CHECK_FALSE(cache->isolate(victim));  // already isolated
  CacheStats st = cache->stats();
  CHECK(st.slabs_isolated == 1);
  CHECK(st.slabs_partial == 0);
  CHECK(st.live_objects == 2 * cap + model.size());
  CHECK(allocated_set(victim) == model);
  {  // a short buffer receives a prefix but the count is exact
    std::array<void*, 10> small{};
    CHECK(SlabCache::allocated_objects(victim, small) == model.size());
    for (void* p : small) CHECK(model.count(p) == 1);
  }
  cache->for_each_detached_slab([&](Slab* s) { CHECK(s != victim); });
  CHECK_VALID(*cache);

  // Neither path allocates from it, although it is the only slab with room.
  std::vector<void*> fresh;
  for (int i = 0; i < 100; ++i) {
    void* p = cache->alloc();
    REQUIRE(p != nullptr);
    CHECK(detail::slab_of(p) != victim);
    fresh.push_back(p);
    void* q = cache->alloc_direct();
    REQUIRE(q != nullptr);
    CHECK(detail::slab_of(q) != victim);
    fresh.push_back(q);
  }
  // Frees into it work and the listing follows them.
  std::size_t n = 0;
  for (auto it = model.begin(); it != model.end() && n < 10; ++n) {
    cache->free(*it);
    it = model.erase(it);
  }
  CHECK(allocated_set(victim) == model);
  CHECK(cache->stats().slabs_isolated == 1);

  // Releasing a non-empty slab returns it to the lists (false: not freed).
  CHECK_FALSE(cache->release_isolated(victim));
  CHECK_FALSE(cache->release_isolated(victim));  // no longer isolated
  cache->flush_thread_cache();
  st = cache->stats();
  CHECK(st.slabs_isolated == 0);
  bool listed = false;
  cache->for_each_detached_slab([&](Slab* s) { listed |= s == victim; });
  CHECK(listed);
  CHECK_VALID(*cache);

  // Isolate again, empty it, release: the slab goes back to the page allocator.
  REQUIRE(cache->isolate(victim));
  const std::size_t in_use = bytes_in_use(pages);
  const std::uint64_t freed_before = cache->stats().slabs_freed;
  void* some_victim_object = *model.begin();
  for (void* p : model) cache->free(p);
  model.clear();
  CHECK(SlabCache::allocated_objects(victim, {}) == 0);
  cache->flush_thread_cache();  // as the defragmenter does before it inspects the slab
  CHECK(cache->stats().slabs_isolated == 1);  // still isolated while empty
  CHECK(cache->release_isolated(victim));
  CHECK(cache->stats().slabs_isolated == 0);
  CHECK(cache->stats().slabs_freed == freed_before + 1);
  CHECK(bytes_in_use(pages) == in_use - kPageSize);
  CHECK(detail::slab_of(some_victim_object) == nullptr);

  for (void* p : fresh) cache->free(p);
  for (Slab* s : {g.order[0], g.order[2]})
    for (void* p : g.objects[s]) cache->free(p);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("slab cache: only detached slabs of the cache itself can be isolated") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("iso-a", 64, &pages);
  CacheHandle other = make_cache("iso-b", 64, &pages);
  void* p = cache->alloc();
  REQUIRE(p != nullptr);
  Slab* active = detail::slab_of(p);
  CHECK_FALSE(cache->isolate(active));  // the thread's active slab
  CHECK(cache->stats().slabs_isolated == 0);
  cache->flush_thread_cache();
  CHECK_FALSE(other->isolate(active));  // a slab of another cache
  CHECK(other->stats().slabs_isolated == 0);

  // A full detached slab can be isolated; a free into it keeps it isolated.
  const std::size_t cap = capacity_of(*cache);
  std::vector<void*> objs = alloc_n(*cache, cap - 1);  // fills `active` again (taken back)
  objs.push_back(p);
  for (void* q : objs) CHECK(detail::slab_of(q) == active);
  cache->flush_thread_cache();
  CHECK(cache->stats().slabs_full == 1);
  REQUIRE(cache->isolate(active));
  cache->free(objs[0]);
  cache->flush_thread_cache();
  CHECK(cache->stats().slabs_isolated == 1);
  CHECK(allocated_set(active).size() == cap - 1);
  CHECK_VALID(*cache);
  CHECK_FALSE(cache->release_isolated(active));
  CHECK(cache->stats().slabs_partial == 1);
  for (std::size_t i = 1; i < objs.size(); ++i) cache->free(objs[i]);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(*other);
}

// ---------------------------------------------------------------------------
// Pointer → slab lookup.

namespace {
int g_global_object = 0;
}

TEST_CASE("slab cache: slab_of and cache_of for every kind of address") {
  TestPages owner(mslab::test::steady_policy(4));
  PageAllocator& pages = owner.get();
  CacheHandle small = make_cache("lookup-64", 64, &pages);
  CacheHandle big = make_cache("lookup-2k", 2048, &pages);  // 32 KiB slabs (order 3)
  REQUIRE(big->stats().slab_order == 3);
  void* a = small->alloc();
  void* b = big->alloc();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);

  for (auto [cache, obj] : {std::pair<SlabCache*, void*>{small.get(), a}, {big.get(), b}}) {
    Slab* s = detail::slab_of(obj);
    REQUIRE(s != nullptr);
    CHECK(s->cache == cache);
    const std::size_t slab_bytes = order_bytes(s->order);
    auto* base = reinterpret_cast<char*>(s);
    for (std::size_t i = 0; i < s->capacity; ++i) {
      char* o = static_cast<char*>(s->object(i));
      CHECK(detail::slab_of(o) == s);
      CHECK(detail::slab_of(o + cache->object_size() - 1) == s);  // interior addresses too
      CHECK(SlabCache::cache_of(o) == cache);
      CHECK(SlabCache::cache_of(o + s->stride / 2) == cache);
    }
    CHECK(detail::slab_of(base) == s);                   // the header
    CHECK(detail::slab_of(base + slab_bytes - 1) == s);  // the last byte
    for (std::size_t off = 0; off < slab_bytes; off += kPageSize) CHECK(detail::slab_of(base + off) == s);
  }
  CHECK(SlabCache::cache_of(a) != SlabCache::cache_of(b));

  int on_stack = 0;
  void* heap = std::malloc(64);
  REQUIRE(heap != nullptr);
  CHECK(detail::slab_of(&on_stack) == nullptr);
  CHECK(detail::slab_of(heap) == nullptr);
  CHECK(detail::slab_of(&g_global_object) == nullptr);
  CHECK(detail::slab_of(nullptr) == nullptr);
  CHECK(detail::slab_of(reinterpret_cast<void*>(std::uintptr_t{1} << 50)) == nullptr);  // beyond 47 bits
  CHECK(SlabCache::cache_of(&on_stack) == nullptr);
  CHECK(SlabCache::cache_of(heap) == nullptr);
  CHECK(SlabCache::cache_of(&g_global_object) == nullptr);
  CHECK(SlabCache::cache_of(nullptr) == nullptr);
  std::free(heap);

  // Page-allocator memory that is not a slab: a raw block, a free page.
  void* raw = pages.alloc(0);
  REQUIRE(raw != nullptr);
  CHECK(detail::slab_of(raw) == nullptr);
  CHECK(SlabCache::cache_of(raw) == nullptr);
  pages.free(raw, 0);
  CHECK(detail::slab_of(raw) == nullptr);  // now a free page of a mapped chunk

  // After its slab is gone, the address no longer maps to a slab.
  Slab* sa = detail::slab_of(a);
  small->free(a);
  small.reset();  // destroy: the slab goes back, the chunk stays mapped
  CHECK(pages.owns(sa));
  CHECK(detail::slab_of(sa) == nullptr);
  CHECK(SlabCache::cache_of(a) == nullptr);
  big->free(b);
  big->flush_thread_cache();
  CHECK_VALID(*big);
  CHECK_VALID(pages);
}

// ---------------------------------------------------------------------------
// Flushing, held frees, out of memory.

TEST_CASE("slab cache: flush_thread_cache detaches the active slab and shares its free slots") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("flush", 64, &pages);
  void* p = cache->alloc();
  REQUIRE(p != nullptr);
  Slab* s = detail::slab_of(p);
  CHECK(cache->stats().slabs_active == 1);
  CHECK(s->owner.load() != 0);
  cache->flush_thread_cache();
  CacheStats st = cache->stats();
  CHECK(st.slabs_active == 0);
  CHECK(st.slabs_partial == 1);
  CHECK(st.live_objects == 1);
  CHECK(s->owner.load() == 0);
  CHECK_VALID(*cache);
  cache->flush_thread_cache();  // nothing to flush: harmless
  CHECK(cache->stats().slabs_partial == 1);

  // Its other free slots are visible to alloc_direct().
  std::vector<void*> direct;
  for (std::size_t i = 1; i < capacity_of(*cache); ++i) {
    void* q = cache->alloc_direct();
    REQUIRE(q != nullptr);
    CHECK(detail::slab_of(q) == s);
    direct.push_back(q);
  }
  st = cache->stats();
  CHECK(st.slabs_full == 1);
  CHECK(st.slabs == 1);
  CHECK_VALID(*cache);
  void* q = cache->alloc_direct();  // full: a new detached slab
  REQUIRE(q != nullptr);
  CHECK(detail::slab_of(q) != s);
  st = cache->stats();
  CHECK(st.slabs == 2);
  CHECK(st.slabs_active == 0);
  CHECK(st.slabs_partial == 1);
  CHECK_VALID(*cache);

  // detail::flush_thread_heap() flushes every cache of the thread.
  CacheHandle other = make_cache("flush-2", 64, &pages);
  void* r1 = cache->alloc();
  void* r2 = other->alloc();
  REQUIRE(r1 != nullptr);
  REQUIRE(r2 != nullptr);
  CHECK(cache->stats().slabs_active == 1);
  CHECK(other->stats().slabs_active == 1);
  detail::flush_thread_heap();
  CHECK(cache->stats().slabs_active == 0);
  CHECK(other->stats().slabs_active == 0);
  for (void* x : direct) cache->free(x);
  cache->free(p);
  cache->free(q);
  cache->free(r1);
  other->free(r2);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK(other->stats().live_objects == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(*other);
}

TEST_CASE("slab cache: validate accepts a detached slab with frees still held by a thread") {
  // A thread's frees into a slab it does not own wait in its free buffer
  // (design §4.3: capacity == live + xfree.count + buffered); that is a legal
  // state, which validate() must accept — other threads' buffers cannot be
  // flushed by the thread that validates.
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("held-frees", 64, &pages);
  const std::size_t cap = capacity_of(*cache);
  // One slab more than the thread can own: slab 0, the oldest, was given
  // back (detached) when the last one was made.
  const std::size_t slabs = detail::ThreadHeap::kOwnedSlabs + 2;
  std::vector<void*> objs = alloc_n(*cache, slabs * cap);
  Slab* first = detail::slab_of(objs[0]);
  REQUIRE(first->owner.load() == 0);
  cache->free(objs[0]);  // held by this thread, not yet pushed
  CHECK(cache->stats().live_objects == slabs * cap - 1);
  CHECK(allocated_set(first).size() == cap - 1);
  CHECK_VALID(*cache);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);
  for (std::size_t i = 1; i < objs.size(); ++i) cache->free(objs[i]);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);
}

TEST_CASE("slab cache: out of memory gives nullptr and allocation recovers") {
  SUBCASE("max_chunks reached") {
    PagePolicy policy = mslab::test::steady_policy(1);
    policy.max_chunks = 1;
    TestPages owner(policy);
    PageAllocator& pages = owner.get();
    CacheHandle cache = make_cache("oom-256k", kMaxObjectSize, &pages);
    CacheStats st = cache->stats();
    REQUIRE(st.slab_order == kMaxOrder);
    const std::size_t cap = st.objects_per_slab;
    std::vector<void*> objs = alloc_n(*cache, cap);
    CHECK(cache->alloc() == nullptr);
    CHECK(cache->alloc_direct() == nullptr);
    st = cache->stats();
    CHECK(st.live_objects == cap);
    CHECK(st.slabs == 1);
    cache->free(objs.back());
    objs.pop_back();
    void* p = cache->alloc();  // the freed slot serves again
    REQUIRE(p != nullptr);
    objs.push_back(p);
    CHECK(cache->alloc() == nullptr);
    for (void* q : objs) cache->free(q);
    cache->flush_thread_cache();
    CHECK(cache->stats().live_objects == 0);
    CHECK_VALID(*cache);
    CHECK_VALID(pages);
  }
  SUBCASE("injected OS failure") {
    TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
    PageAllocator& pages = owner.get();
    CacheHandle cache = make_cache("oom-inject", 64, &pages, 0, /*empty_reserve=*/0);
    // Warm up: the thread heap exists, and the chunk went back to the OS.
    void* w = cache->alloc();
    REQUIRE(w != nullptr);
    cache->free(w);
    cache->flush_thread_cache();
    REQUIRE(pages.stats().chunks_reserved == 0);

    os::inject_failure(0);
    CHECK(cache->alloc() == nullptr);
    CHECK(cache->stats().slabs == 0);
    os::inject_failure(0);
    CHECK(cache->alloc_direct() == nullptr);
    os::inject_failure(-1);
    void* p = cache->alloc();
    void* q = cache->alloc_direct();
    REQUIRE(p != nullptr);
    REQUIRE(q != nullptr);
    CHECK(cache->stats().live_objects == 2);
    cache->free(p);
    cache->free(q);
    cache->flush_thread_cache();
    CHECK(cache->stats().live_objects == 0);
    CHECK_VALID(*cache);
    CHECK_VALID(pages);
  }
  os::inject_failure(-1);
}

// ---------------------------------------------------------------------------
// The defragmenter's survey from dense metadata and isolation by address.

TEST_CASE("slab cache: survey_detached lists exactly the detached slabs with their live counts") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("survey", 64, &pages);
  CacheHandle other = make_cache("survey-other", 64, &pages);  // same pages, other tag
  const std::size_t cap = capacity_of(*cache);
  std::vector<void*> objs = alloc_n(*cache, 4 * cap);
  std::vector<void*> theirs = alloc_n(*other, 2 * cap);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  SlabGroups g = group_by_slab(objs);
  REQUIRE(g.order.size() == 4);
  // Slab k keeps cap - k live objects (slab 3 keeps cap - 3).
  std::map<Slab*, std::size_t> expected;
  std::set<void*> freed;
  for (std::size_t k = 0; k < g.order.size(); ++k) {
    std::vector<void*>& in = g.objects[g.order[k]];
    for (std::size_t i = 0; i < k; ++i) {
      cache->free(in[i]);
      freed.insert(in[i]);
    }
    expected[g.order[k]] = cap - k;
  }
  cache->flush_thread_cache();
  // One slab isolated, and a slab this thread allocates from: neither is listed.
  REQUIRE(cache->isolate(g.order[2]));
  expected.erase(g.order[2]);
  void* mine = cache->alloc();
  REQUIRE(mine != nullptr);
  Slab* active = detail::slab_of(mine);
  std::map<Slab*, std::size_t> seen;
  cache->survey_detached([&](Slab* s, std::size_t live) { CHECK(seen.emplace(s, live).second); });
  if (expected.count(active) == 0) {  // a new slab: not in the survey at all
    CHECK(seen.count(active) == 0);
  } else {  // one of ours became active: no longer detached
    expected.erase(active);
  }
  CHECK(seen == expected);
  std::size_t others = 0;
  other->survey_detached([&](Slab* s, std::size_t live) {
    ++others;
    CHECK(s->cache == other.get());
    CHECK(live == cap);
  });
  CHECK(others == 2);

  cache->free(mine);
  CHECK_FALSE(cache->release_isolated(g.order[2]));  // not empty: back on the lists
  for (void* p : objs)
    if (freed.count(p) == 0) cache->free(p);
  for (void* p : theirs) other->free(p);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("slab cache: isolate_listed isolates only still-detached slabs of the cache") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("listed", 64, &pages);
  CacheHandle other = make_cache("listed-other", 64, &pages);
  const std::size_t cap = capacity_of(*cache);
  std::vector<void*> objs = alloc_n(*cache, 3 * cap);
  std::vector<void*> theirs = alloc_n(*other, cap);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  SlabGroups g = group_by_slab(objs);
  REQUIRE(g.order.size() == 3);
  std::vector<std::uintptr_t> listed;
  for (Slab* s : g.order) listed.push_back(addr(s));
  listed.push_back(addr(detail::slab_of(theirs[0])));  // another cache's slab
  listed.push_back(addr(g.order[0]) + 64);              // not a slab start
  char on_stack[64];
  listed.push_back(addr(on_stack) & ~std::uintptr_t{4095});  // not ours at all
  std::array<Slab*, 8> out{};
  // Room for one: stops there.
  CHECK(cache->isolate_listed(listed, std::span<Slab*>(out.data(), 1)) == 1);
  CHECK(out[0] == g.order[0]);
  // The rest: the two other slabs of the cache, nothing else.
  const std::size_t n = cache->isolate_listed(listed, out);
  REQUIRE(n == 2);
  CHECK(std::set<Slab*>(out.begin(), out.begin() + 2) == std::set<Slab*>{g.order[1], g.order[2]});
  CHECK(cache->stats().slabs_isolated == 3);
  CHECK(cache->isolate_listed(listed, out) == 0);  // all isolated already
  CHECK(other->stats().slabs_isolated == 0);
  for (Slab* s : g.order) CHECK_FALSE(cache->release_isolated(s));
  CHECK(cache->stats().slabs_isolated == 0);
  CHECK_VALID(*cache);
  for (void* p : objs) cache->free(p);
  for (void* p : theirs) other->free(p);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  CHECK_VALID(*cache);
}

// The general allocator's classes rely on this: a reserved id is the one
// asked for, so the pages' tag is known in advance; other caches never get
// a reserved id.
TEST_CASE("slab cache: a reserved id gives that tag to the cache's pages; other caches never get one") {
  mslab::test::ErrorRecorder errors;
  TestPages owner(mslab::test::steady_policy());
  // The last reserved id: the general allocator uses the first 41.
  const std::uint32_t id = kReservedCacheIds - 1;
  SlabCache* reserved = SlabCache::create({.name = "reserved", .object_size = 48, .pages = &owner.get(), .reserved_id = id});
  REQUIRE(reserved != nullptr);
  SlabCache* plain = SlabCache::create({.name = "plain", .object_size = 48, .pages = &owner.get()});
  REQUIRE(plain != nullptr);
  void* a = reserved->alloc();
  void* b = plain->alloc();
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  const auto cache_tag = [](const void* p) { return detail::owner_tag_of(p) & ~detail::kOwnerHintMask; };
  CHECK(cache_tag(a) == detail::owner_tag(BlockKind::kSlab, id + 1));
  CHECK(cache_tag(b) > detail::owner_tag(BlockKind::kSlab, kReservedCacheIds));
  // Taken: a second cache cannot have it.
  CacheError error{ErrorCode::kCorruption, nullptr};
  CHECK(SlabCache::create({.name = "again", .object_size = 48, .pages = &owner.get(), .reserved_id = id}, &error) == nullptr);
  CHECK(error.code == ErrorCode::kInvalidArgument);
  REQUIRE(error.message != nullptr);
  CHECK(mslab::test::contains(error.message, "in use"));
  reserved->free(a);
  plain->free(b);
  CHECK(reserved->destroy().live_objects == 0);
  CHECK(plain->destroy().live_objects == 0);
  // Free again once its cache is destroyed.
  SlabCache* next = SlabCache::create({.name = "next", .object_size = 48, .pages = &owner.get(), .reserved_id = id});
  REQUIRE(next != nullptr);
  CHECK(next->destroy().live_objects == 0);
  CHECK(errors.count() == 0);
}
