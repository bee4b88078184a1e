// The general allocator's C++ API: malloc-compatible functions over size
// classes (size_class.h). Three paths by size:
//   small  (≤ 32 KiB)        one slab cache per class, per-thread fast path
//   medium (≤ 1 MiB)         a buddy block of the global page allocator,
//                            tagged as ours on every page (freed by tag)
//   huge   (> 1 MiB)         its own mapping from the OS (platform.h),
//                            recorded in a registry; realloc uses mremap
// Every function is thread-safe; any thread may free any pointer. Nothing
// here throws. Failure returns nullptr with errno = ENOMEM. Bad pointers
// (foreign, interior, already freed) are reported through error.h and the
// call has no effect. The allocator initialises itself on first use
// (options.h reads the MSLAB_* environment then) and is never torn down,
// so it works before main, in exit handlers and in exiting threads.
// Depends on: alloc/ (slab caches, page allocator, platform).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"
#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"
#include "malloc/size_class.h"
#include "malloc/tcache.h"
#include "malloc/transfer.h"

namespace mslab {

/// Returns at least `size` bytes aligned to 16 (8 for sizes ≤ 8), or
/// nullptr. malloc(0) returns a unique pointer. Lock-free on the fast path.
void* malloc(std::size_t size) noexcept;

/// Frees a pointer from any function here; nullptr is ignored.
void free(void* p) noexcept;

/// Frees `p`, which the caller asserts was allocated with `size` bytes
/// (operator delete's sized form). The size is only a hint: it is not
/// trusted for anything but speed, so a wrong size is still safe.
void free_sized(void* p, std::size_t size) noexcept;

/// Zeroed `n * size` bytes; nullptr on overflow or out of memory.
void* calloc(std::size_t n, std::size_t size) noexcept;

/// Resizes in place when the block allows (same small class, medium block
/// large enough, huge mapping via mremap), else moves. realloc(nullptr, n)
/// is malloc(n); realloc(p, 0) frees p and returns nullptr (as glibc). On
/// failure returns nullptr and `p` is untouched.
void* realloc(void* p, std::size_t size) noexcept;

/// `size` bytes aligned to `alignment` (a power of two, any size; up to
/// 4096 from the size classes, up to 2 MiB from buddy blocks, above from the
/// OS). nullptr with errno = EINVAL for an alignment that is not a power of
/// two.
void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept;

/// Bytes usable at `p` (≥ the size asked for); 0 for nullptr. A pointer not
/// from this allocator is reported and 0 returned.
std::size_t usable_size(const void* p) noexcept;

// ---- Cooperative defragmentation (Redis/Valkey's activedefrag, as with
// jemalloc's je_get_defrag_hint and MALLOCX_TCACHE_NONE). The application
// walks its own data and moves what the hint names: q = malloc_direct(n),
// copy, repoint, free_direct(p).

/// True when moving the live object `p` would lower fragmentation: a small
/// object in a slab that no thread owns, whose occupancy is at most 1.125 ×
/// its class's average (SlabCache::should_move). False for medium and huge
/// blocks, for nullptr and for pointers not from this allocator (never
/// reported: the hint may be asked about anything). Lock-free; any thread.
bool should_move(const void* p) noexcept;

/// As malloc(size), but a small object comes straight from the fullest
/// partial slab of its class (SlabCache::alloc_direct), bypassing the
/// per-thread caches, so that a moved copy lands where it packs memory.
/// Takes the class cache's lock. Thread-safe.
void* malloc_direct(std::size_t size) noexcept;

/// Frees `p` straight into its slab (SlabCache::free_direct), bypassing the
/// per-thread caches, so that the slab it leaves can empty. Other blocks are
/// freed as free() does. Thread-safe.
void free_direct(void* p) noexcept;

/// Gives free memory back to the OS now: flushes the calling thread's
/// caches and purges every free page (as malloc_trim). Returns bytes given
/// back. May block.
std::size_t trim() noexcept;

namespace detail {

// One cache per class, created on first use (nullptr until then), written
// once under the init lock after its ClassGeometry entry (tcache.h), with
// the reserved cache id kFirstClassCacheId + c.
extern constinit std::atomic<SlabCache*> g_class_cache[kClasses];

void* malloc_slow(std::size_t size) noexcept;
// Class c's stack is empty: a transfer batch, else the class cache (out of
// line, so that the inlined malloc stays small).
void* malloc_small(unsigned c) noexcept;
void free_slow(void* p) noexcept;

/// The class cache whose slabs carry owner tag `owner` (any hint), or
/// nullptr when `owner` is not a malloc class's slab tag. Slow paths only.
inline SlabCache* class_cache_of_tag(std::uint32_t owner) noexcept {
  const std::uint32_t c = class_of_tag(owner);
  return c < kClasses ? g_class_cache[c].load(std::memory_order_acquire) : nullptr;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Fast paths.

// Small sizes: this thread's stack of the class, else a batch from the
// class's transfer pool, else the class cache's per-thread slab. Frees of
// small objects go onto this thread's stack.
MSLAB_ALWAYS_INLINE void* malloc(std::size_t size) noexcept {
  // The table's range first: one compare for the common sizes.
  unsigned c;
  if (MSLAB_LIKELY(size <= detail::kTableMax))
    c = detail::kClassTable[(size + 7) >> 3];
  else if (size <= detail::kSmallMax)
    c = detail::class_above_128(size);
  else
    return detail::malloc_slow(size);
  if (void* p = detail::tcache_pop(c); MSLAB_LIKELY(p != nullptr)) return p;
  return detail::malloc_small(c);
}

MSLAB_ALWAYS_INLINE void free(void* p) noexcept {
  unsigned c;
  if (MSLAB_LIKELY(detail::free_class(p, &c)) && detail::kTCacheEnabled) return detail::tcache_free(p, c);
  detail::free_slow(p);
}

MSLAB_ALWAYS_INLINE void free_sized(void* p, std::size_t) noexcept { free(p); }

}  // namespace mslab
