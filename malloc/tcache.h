// The per-thread front cache of the general allocator (as jemalloc's
// tcache): for every size class, a small stack of freed objects that the
// same thread's next malloc of that class takes back without touching the
// slab layer. A free pushes onto the *freeing* thread's stack whichever
// thread allocated the object, so producer/consumer and server workloads
// recycle objects locally; the slab layer sees them again only when a
// stack overflows (its older half is freed to the class cache) and at
// thread exit (everything is).
//
// Double frees stay detected: an object on a stack carries the process's
// random key in its first 8 bytes; a free that finds the key there is
// reported (kDoubleFree). The key is cleared when the object leaves the
// stack. A pointer that is not the start of an object of its class is
// never stacked: the class cache's own free reports it.
//
// Objects on a stack count as live in the slab caches' statistics. Under
// AddressSanitizer the stacks are off, so freed objects are poisoned by the
// slab layer at once.
// Depends on: size_class, alloc/slab_cache, alloc/slab_geometry.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"
#include "alloc/exact_divisor.h"
#include "alloc/page_allocator.h"
#include "alloc/sanitizer.h"
#include "alloc/slab_cache.h"
#include "malloc/size_class.h"

namespace mslab::detail {

#ifdef MSLAB_ASAN
inline constexpr bool kTCacheEnabled = false;
#else
inline constexpr bool kTCacheEnabled = true;
#endif

/// Stack depth per class: 32 KiB worth of objects, at least 2, at most 64.
constexpr std::uint16_t tcache_depth(unsigned c) noexcept {
  const std::size_t n = 32768 / kClassSize[c];
  return static_cast<std::uint16_t>(n < 2 ? 2 : n > 64 ? 64 : n);
}

inline constexpr std::array<std::uint16_t, kClasses + 1> kTCacheOffset = [] {
  std::array<std::uint16_t, kClasses + 1> off{};
  for (unsigned c = 0; c < kClasses; ++c) off[c + 1] = static_cast<std::uint16_t>(off[c] + tcache_depth(c));
  return off;
}();

struct TCache {
  struct Bin {
    void** slots;         // this class's part of `storage`
    std::uint32_t count;  // objects on the stack
    std::uint32_t max;    // 0 in the placeholder caches: nothing is ever pushed
  };
  Bin bins[kClasses];
  void* storage[kTCacheOffset[kClasses]];
};

// Class c's cache has the reserved cache id kFirstClassCacheId + c
// (CacheOptions::reserved_id), so its slabs' pages carry the tag
// kFirstClassCacheId + c + 1, and a free learns the class from the page's
// tag by a subtraction: no table.
inline constexpr std::uint32_t kFirstClassCacheId = 0;
static_assert(kFirstClassCacheId + kClasses <= kReservedCacheIds);

/// The class whose cache's slabs carry owner tag `owner` (any owner hint),
/// or a value ≥ kClasses for any other tag (another cache's slab, a
/// medium block, a free or foreign page).
MSLAB_ALWAYS_INLINE std::uint32_t class_of_tag(std::uint32_t owner) noexcept {
  return (owner & ~kOwnerHintMask) - owner_tag(BlockKind::kSlab, kFirstClassCacheId + 1);
}

// Class c's slab geometry, for the exact start-of-object check without
// reading a slab header. Written once, before the class cache is published.
struct alignas(32) ClassGeometry {
  ExactDivisor divisor;          // by the stride
  std::uint32_t offset_mask;     // slab bytes - 1 (slabs are aligned to their size)
  std::uint32_t objects_offset;  // of slot 0 from the slab start
  std::uint32_t capacity;        // objects per slab
};

extern ClassGeometry g_class_geometry[kClasses];
extern std::uint64_t g_tcache_key;

/// True when `p` is the start of an object of a malloc class's slab; sets
/// `*cls` to the class. Any pointer is safe to ask about.
MSLAB_ALWAYS_INLINE bool small_object_class(const void* p, unsigned* cls) noexcept {
  const std::uint32_t c = class_of_tag(owner_tag_of(p));
  if (MSLAB_UNLIKELY(c >= kClasses)) return false;
  const ClassGeometry& g = g_class_geometry[c];
  const std::uint64_t offset = (reinterpret_cast<std::uintptr_t>(p) & g.offset_mask) - std::uint64_t{g.objects_offset};
  *cls = c;
  return g.divisor.index(offset) < g.capacity;
}

/// The free path's test: true when `p` may be pushed onto a stack as an
/// object of class `*cls`. With full checks (MSLAB_CHECK_LEVEL=2) it is
/// small_object_class(): exactly the start of an object. The cheap level
/// leaves out the start-of-object division, the largest part of a free's
/// cost beyond mimalloc's (docs/benchmarks.md, "The chunk arena"): the page
/// must be a malloc class's slab page and `p` 16-byte aligned (every object
/// start is), so a 16-byte aligned pointer into such a slab that is not an
/// object's start (inside an object, or in the slab's header and slot
/// metadata) passes and is reported only if it reaches the class cache (a
/// stack's flush) before malloc hands it out again — like a wild pointer in
/// mimalloc's release build. Foreign pointers and double frees are found
/// exactly at every level.
MSLAB_ALWAYS_INLINE bool free_class(const void* p, unsigned* cls) noexcept {
  if constexpr (kFullChecks) return small_object_class(p, cls);
  const std::uint32_t c = class_of_tag(owner_tag_of(p));
  *cls = c;
  return c < kClasses && (reinterpret_cast<std::uintptr_t>(p) & 15) == 0;
}

// This thread's stacks. Starts as a placeholder with every max = 0 (the
// first push creates the real one); set to another placeholder at thread
// exit, so late frees go straight to the slab layer.
extern constinit thread_local TCache* tl_tcache __attribute__((tls_model("initial-exec")));

/// Records class `c`'s slab geometry (called when its cache is created,
/// before it is published).
void tcache_register_class(unsigned c) noexcept;

/// A push that found no room: creates this thread's stacks, or frees the
/// older half of a full one; then pushes `p` or frees it to the cache.
void tcache_push_slow(void* p, unsigned c) noexcept;

/// The stack of class `c` is empty: refills it with a batch from the
/// transfer pool (creating this thread's stacks if needed) and pops one;
/// nullptr when the pool has none.
void* tcache_refill(unsigned c) noexcept;

/// Frees every stacked object of the calling thread to the class caches.
void tcache_flush() noexcept;

/// Reports the double free of `p` (its key was found on a free).
void tcache_double_free(void* p) noexcept;

/// Pops an object of class `c`, or nullptr when the stack is empty.
MSLAB_ALWAYS_INLINE void* tcache_pop(unsigned c) noexcept {
  TCache* tc = tl_tcache;
  TCache::Bin& bin = tc->bins[c];
  if (bin.count == 0) return nullptr;
  void* p = bin.slots[--bin.count];
  if constexpr (kCheapChecks) *static_cast<std::uint64_t*>(p) = 0;  // drop the key
  return p;
}

/// Frees `p`, an object of class `c` (free_class()).
MSLAB_ALWAYS_INLINE void tcache_free(void* p, unsigned c) noexcept {
  if constexpr (kCheapChecks) {
    auto* word = static_cast<std::uint64_t*>(p);
    if (MSLAB_UNLIKELY(*word == g_tcache_key)) return tcache_double_free(p);
    *word = g_tcache_key;
  }
  TCache::Bin& bin = tl_tcache->bins[c];
  if (MSLAB_LIKELY(bin.count < bin.max)) {
    bin.slots[bin.count++] = p;
    return;
  }
  tcache_push_slow(p, c);
}

}  // namespace mslab::detail
