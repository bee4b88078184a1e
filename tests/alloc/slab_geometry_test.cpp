// The slab order rule (alloc/slab_geometry.h), checked against an
// independent brute-force recomputation for every object size and a range of
// alignments, plus the worked examples of docs/design.md §4.2.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "alloc/slab.h"
#include "alloc/slab_cache.h"
#include "alloc/slab_geometry.h"
#include "test_util.h"

using namespace mslab;
using detail::SlabGeometry;

namespace {

constexpr std::size_t kHeader = sizeof(detail::Slab);  // 64: the slab header

// Bytes of per-object metadata after the header (the 2-byte link and the
// 1-byte state; checked against the docs below), read back from one reference
// geometry: waste = bytes - capacity * (stride + metadata). Everything else
// below is computed independently.
std::size_t slot_metadata() {
  const SlabGeometry g = detail::compute_slab_geometry(64, 16);
  const std::size_t used = order_bytes(g.order) - g.waste;
  REQUIRE(g.capacity > 0);
  REQUIRE(used % g.capacity == 0);
  const std::size_t m = used / g.capacity - g.stride;
  REQUIRE(m >= 2);  // at least the 16-bit link
  REQUIRE(m <= 8);
  return m;
}
std::size_t link_size() {
  static const std::size_t m = slot_metadata();
  return m;
}

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

std::size_t objects_offset(std::size_t capacity, std::size_t align) {
  return round_up(kHeader + capacity * link_size(), align);
}

bool fits(std::size_t capacity, std::size_t stride, std::size_t align, std::size_t bytes) {
  return objects_offset(capacity, align) + capacity * stride <= bytes;
}

// The largest capacity whose header, links and objects fit in `bytes`
// (fits() is monotone in the capacity: binary search), capped at the
// largest slot index the 16-bit links can name.
std::size_t max_capacity(std::size_t stride, std::size_t align, std::size_t bytes) {
  std::size_t lo = 0, hi = std::min(bytes / stride, detail::kMaxSlabObjects);
  while (lo < hi) {
    const std::size_t mid = (lo + hi + 1) / 2;
    if (fits(mid, stride, align, bytes)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

struct Candidate {
  unsigned order;
  std::size_t capacity, offset, waste, bytes;
};

// The rule, computed the slow way: the smallest order with ≥ 8 objects and
// waste ≤ 1/8; otherwise the order with the smallest waste fraction (the
// first one on a tie).
Candidate brute_force(std::size_t stride, std::size_t align) {
  std::vector<Candidate> all;
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    const std::size_t bytes = order_bytes(order);
    const std::size_t cap = max_capacity(stride, align, bytes);
    if (cap == 0) continue;
    all.push_back({order, cap, objects_offset(cap, align), bytes - cap * (stride + link_size()), bytes});
  }
  REQUIRE(!all.empty());
  for (const Candidate& c : all)
    if (c.capacity >= 8 && c.waste * 8 <= c.bytes) return c;
  Candidate best = all.front();
  for (const Candidate& c : all) {
    // c.waste / c.bytes < best.waste / best.bytes, exactly.
    if (static_cast<unsigned __int128>(c.waste) * best.bytes < static_cast<unsigned __int128>(best.waste) * c.bytes)
      best = c;
  }
  return best;
}

// Sizes to check: all of 1 … 262144 in a plain build; under sanitizers all
// up to 8192, then a stride with the sizes around every power of two.
std::vector<std::size_t> sizes_to_check() {
  std::vector<std::size_t> sizes;
  const std::size_t step = mslab::test::kSanitized ? 37 : 1;
  for (std::size_t s = 1; s <= kMaxObjectSize; s += (s <= 8192 ? 1 : step)) sizes.push_back(s);
  for (std::size_t p = 16; p <= kMaxObjectSize; p *= 2)
    for (std::size_t s : {p - 1, p, p + 1})
      if (s <= kMaxObjectSize) sizes.push_back(s);
  sizes.push_back(kMaxObjectSize);
  return sizes;
}

}  // namespace

TEST_CASE("slab geometry: every size and alignment matches the brute-force rule") {
  const std::vector<std::size_t> sizes = sizes_to_check();
  std::size_t checked = 0, failures = 0;
  for (std::size_t align = 1; align <= kMaxObjectAlign; align *= 2) {
    std::size_t cached_stride = 0;
    Candidate want{};
    for (std::size_t size : sizes) {
      const std::size_t stride = round_up(size, align);
      if (stride != cached_stride) {
        want = brute_force(stride, align);
        cached_stride = stride;
      }
      const SlabGeometry g = detail::compute_slab_geometry(size, align);
      const std::size_t bytes = order_bytes(g.order);
      ++checked;
      const bool ok = g.order <= kMaxOrder && g.stride == stride && g.capacity >= 1 &&
                      g.capacity <= detail::kMaxSlabObjects && g.objects_offset % align == 0 &&
                      g.objects_offset >= kHeader + g.capacity * link_size() &&
                      g.objects_offset + g.capacity * g.stride <= bytes &&
                      g.waste == bytes - g.capacity * (g.stride + link_size()) && g.order == want.order &&
                      g.capacity == want.capacity && g.objects_offset == want.offset;
      if (!ok && ++failures <= 10) {
        INFO("size " << size << " align " << align << ": got order " << g.order << " capacity " << g.capacity
                     << " offset " << g.objects_offset << " waste " << g.waste << "; want order " << want.order
                     << " capacity " << want.capacity << " offset " << want.offset << " waste " << want.waste);
        CHECK(ok);
      }
    }
  }
  CHECK(failures == 0);
  CHECK(checked >= sizes.size() * 13);
}

TEST_CASE("slab geometry: waste stays within 1/8 wherever the rule can meet it") {
  // For the default alignments (as SlabCache::create picks them) every
  // object up to 32 KiB gets a slab with ≥ 8 objects and ≤ 12.5 % waste.
  for (std::size_t size = 1; size <= 32 * 1024; size += (mslab::test::kSanitized ? 7 : 1)) {
    const std::size_t align = size % 16 == 0 ? 16 : 8;
    const SlabGeometry g = detail::compute_slab_geometry(size, align);
    const std::size_t bytes = order_bytes(g.order);
    if (g.capacity < 8 || g.waste * 8 > bytes) {
      INFO("size " << size << ": order " << g.order << " capacity " << g.capacity << " waste " << g.waste);
      CHECK(false);
      break;
    }
  }
}

TEST_CASE("slab geometry: the worked examples of the design") {
  struct Example {
    std::size_t size;
    unsigned order;
    std::size_t capacity;
  };
  // The table of docs/design.md §4.2 (4 bytes of slot metadata per object).
  CHECK(link_size() == detail::kSlotMetadata);
  const Example examples[] = {{16, 0, 201}, {64, 0, 59}, {256, 0, 15}, {2048, 3, 15}, {262144, 9, 7}};
  for (const Example& e : examples) {
    CAPTURE(e.size);
    const SlabGeometry g = detail::compute_slab_geometry(e.size, 16);
    CHECK(g.order == e.order);
    CHECK(g.capacity == e.capacity);
    CHECK(g.stride == e.size);
  }
  // 256 KiB objects: no order holds 8, so the least wasteful one (2 MiB, 7
  // objects) is the fallback.
  const SlabGeometry big = detail::compute_slab_geometry(kMaxObjectSize, 16);
  CHECK(big.capacity < detail::kMinObjectsPerSlab);
  CHECK(big.order == kMaxOrder);
  // Page-aligned objects: the header costs a whole page of padding.
  const SlabGeometry paged = detail::compute_slab_geometry(4096, 4096);
  CHECK(paged.objects_offset == 4096);
  CHECK(paged.order == 4);
  CHECK(paged.capacity == 15);
}

// CacheOptions::slab_waste: a lower waste bound picks bigger slabs, so
// that the header no longer costs a whole object slot.
TEST_CASE("slab geometry: a smaller waste bound gives bigger, fuller slabs") {
  const SlabGeometry fine = detail::compute_slab_geometry(256, 16, 32);
  CHECK(fine.order == 1);
  CHECK(fine.capacity == 31);  // of 32: the header and slot metadata take one slot's room
  CHECK(fine.waste * 32 <= order_bytes(fine.order));
  const SlabGeometry kv = detail::compute_slab_geometry(4096, 16, 32);
  CHECK(kv.order == 5);
  CHECK(kv.capacity == 31);
  // The default is unchanged.
  CHECK(detail::compute_slab_geometry(256, 16, detail::kMaxWasteFraction).capacity == 15);
  mslab::test::TestPages owner(mslab::test::steady_policy());
  SlabCache* cache = SlabCache::create({.name = "fine", .object_size = 256, .slab_waste = 32, .pages = &owner.get()});
  REQUIRE(cache != nullptr);
  CHECK(cache->objects_per_slab() == 31);
  CHECK(cache->stats().slab_order == 1);
  void* p = cache->alloc();
  REQUIRE(p != nullptr);
  CHECK(detail::slab_of(p)->order == 1);
  cache->free(p);
  CHECK(cache->destroy().live_objects == 0);
}

TEST_CASE("slab geometry: caches lay out their slabs as computed") {
  mslab::test::TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  struct Param {
    std::size_t size, align;
  };
  for (const Param& p : {Param{1, 0}, Param{24, 0}, Param{100, 0}, Param{100, 128}, Param{4000, 0},
                         Param{4096, 4096}, Param{70000, 0}}) {
    CAPTURE(p.size);
    CAPTURE(p.align);
    mslab::test::CacheHandle cache = mslab::test::make_cache("geometry", p.size, &pages, p.align);
    const std::size_t align = p.align != 0 ? p.align : (p.size % 16 == 0 ? 16 : 8);
    const SlabGeometry g = detail::compute_slab_geometry(p.size, align);
    void* obj = cache->alloc();
    REQUIRE(obj != nullptr);
    const detail::Slab* s = detail::slab_of(obj);
    REQUIRE(s != nullptr);
    CHECK(s->order == g.order);
    CHECK(s->capacity == g.capacity);
    CHECK(s->stride == g.stride);
    CHECK(s->objects - reinterpret_cast<const char*>(s) == static_cast<std::ptrdiff_t>(g.objects_offset));
    CHECK(obj == s->object(0));  // a fresh slab hands out slot 0 first
    const CacheStats st = cache->stats();
    CHECK(st.slab_order == g.order);
    CHECK(st.objects_per_slab == g.capacity);
    CHECK(st.stride == g.stride);
    cache->free(obj);
    cache->flush_thread_cache();
    CHECK_VALID(*cache);
  }
  CHECK_VALID(pages);
}
