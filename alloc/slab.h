// The slab: one page-allocator block holding `capacity` objects of one cache,
// with its header in the first bytes of the block.
//
// Layout:   [ Slab header | links[capacity] (uint16) | pad | obj 0 | obj 1 | … ]
//
// Free-list links live in the header's links[] array, never inside objects:
// the allocator never reads or writes an object's memory, so the live objects
// of a slab can be listed while their owners use them, and objects keep their
// constructed state across free/alloc (kmem_cache constructor semantics).
// links[i] is kAllocated while slot i is allocated, otherwise the next slot
// of whichever free list holds slot i (kNil ends a list).
//
// A slab is either *active* (owned by one thread: it allocates from its
// local list without atomics) or *detached* (owned by no thread). Frees from
// other threads, and every free into a detached slab, push onto the
// lock-free `xfree` stack. A thread that frees several objects into one
// slab it does not own chains them privately through the same links first
// ("pending" frees) and pushes the chain with one CAS. Invariants:
//   active:   capacity == live + local_count + xfree.count + pending
//   detached: capacity == live + xfree.count + pending   (local list empty)
// The allocated slots are exactly those whose link is kAllocated: an object
// free in a thread's local or pending list is never counted live. A slab is
// only freed when xfree.count == capacity, so never under a pending chain. A slab active for a
// thread is never isolated; an isolated slab (defrag) is detached and nothing
// allocates from it, while frees into it still work.
// Depends on: config, page_allocator.
#pragma once

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"
#include "alloc/page_allocator.h"

namespace mslab {

class SlabCache;

namespace detail {

inline constexpr std::uint16_t kNil = 0xFFFF;        // end of a free list
inline constexpr std::uint16_t kAllocated = 0xFFFE;  // link of an allocated slot
inline constexpr std::size_t kMaxSlabObjects = 0xFFFD;

// The xfree word: head slot (16 bits) | free count (16) | flags.
struct XFree {
  static constexpr std::uint64_t kDetached = std::uint64_t{1} << 32;  // no owner thread
  static constexpr std::uint64_t kIsolated = std::uint64_t{1} << 33;  // defrag holds it

  static std::uint16_t head(std::uint64_t w) noexcept { return static_cast<std::uint16_t>(w); }
  static std::uint32_t count(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 16) & 0xFFFF; }
  static std::uint64_t flags(std::uint64_t w) noexcept { return w & ~std::uint64_t{0xFFFFFFFF}; }
  static std::uint64_t make(std::uint16_t head, std::uint32_t count, std::uint64_t flags) noexcept {
    return std::uint64_t{head} | (std::uint64_t{count} << 16) | flags;
  }
};

// Which of its cache's lists a slab is on (guarded by the cache lock).
enum class SlabList : std::uint8_t { kNone, kActive, kPartial, kFull, kEmpty, kIsolated };

struct alignas(64) Slab {
  // --- immutable after creation
  SlabCache* cache;
  char* objects;  // slot 0
  std::uint32_t stride;
  std::uint16_t capacity;
  std::uint8_t order;

  // --- guarded by the cache lock
  SlabList list;
  std::uint8_t bucket;  // partial: occupancy bucket it is filed under
  boost::intrusive::list_member_hook<> hook;

  // --- owner thread (token of its ThreadHeap; 0 when detached). Written
  // under the cache lock, read lock-free by frees.
  std::atomic<std::uintptr_t> owner;
  std::uint16_t local_head;                // owner only
  std::atomic<std::uint16_t> local_count;  // written by owner, read by stats

  // --- remote frees, on their own cache line (pushed by any thread)
  alignas(64) std::atomic<std::uint64_t> xfree;

  std::atomic<std::uint16_t>* links() noexcept {
    return reinterpret_cast<std::atomic<std::uint16_t>*>(this + 1);
  }
  const std::atomic<std::uint16_t>* links() const noexcept {
    return reinterpret_cast<const std::atomic<std::uint16_t>*>(this + 1);
  }
  std::uint16_t link(std::size_t i) const noexcept { return links()[i].load(std::memory_order_relaxed); }
  void set_link(std::size_t i, std::uint16_t v) noexcept { links()[i].store(v, std::memory_order_relaxed); }

  void* object(std::size_t i) const noexcept { return objects + i * stride; }
};

static_assert(sizeof(Slab) == 128);

/// The slab holding `p`, or nullptr if `p` is not in a slab. O(1), lock-free.
inline Slab* slab_of(const void* p) noexcept {
  const PageDesc* page = page_desc_of(p);
  // kind is kSlab only on the pages of a live slab (reset when freed).
  if (page == nullptr || page->kind != BlockKind::kSlab) return nullptr;
  return reinterpret_cast<Slab*>(page->block);
}

}  // namespace detail
}  // namespace mslab
