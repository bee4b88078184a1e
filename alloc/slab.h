// The slab: one page-allocator block holding `capacity` objects of one cache,
// with its header in the first bytes of the block.
//
// Layout:   [ Slab header | slots[capacity] {link u16, state u8, pad} | pad | obj 0 | … ]
// (and the slab's remote-free word, xfree, in its chunk descriptor)
//
// Each slot's link and state sit together (4 bytes), so a free that checks
// both touches one cache line. In the text below links[i] and states[i]
// name slots[i].link and slots[i].state.
//
// Free-list links live in the header's slot array, never inside objects:
// the allocator never reads or writes an object's memory, so the live objects
// of a slab can be listed while their owners use them, and objects keep their
// constructed state across free/alloc (kmem_cache constructor semantics).
// links[i] is kAllocated while slot i is allocated, otherwise the next slot
// of whichever free list holds it (kNil ends a list). states[i] is kFreed
// while the slot is freed but still in some thread's free buffer.
//
// A slab is either *owned* by one thread (its active slab, which it
// allocates from, or one of a few earlier ones it keeps: it frees into their
// local lists without atomics) or *detached* (owned by no thread). A free
// into any other slab stores states[i] = kFreed — a blind store, no load,
// so the cache misses of random frees overlap — and goes into the freeing
// thread's buffer for that cache. A full buffer is flushed under the cache
// lock: each slot is checked (a double free finds its link no longer
// kAllocated) and pushed onto its slab's `xfree` list (a CAS for a slab
// owned by another thread, which collects xfree without the lock; plain
// stores for a detached slab, whose xfree only changes under the lock).
// Invariants:
//   owned:    capacity == live + |local lists| + xfree.count + buffered
//   detached: capacity == live + xfree.count + buffered  (local lists empty)
// Slot i is live exactly when links[i] == kAllocated and states[i] != kFreed:
// an object free in a thread's local list or buffer is never counted live.
// A slab is only freed when xfree.count == capacity: never under a buffered
// free. A slab owned by a thread is never isolated; an isolated slab
// (defrag) is detached and nothing allocates from it, while frees into it
// still work.
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
inline constexpr std::uint8_t kFreed = 1;            // states[i]: freed, in a free buffer

// One slot's metadata, after the header.
struct SlotMeta {
  std::atomic<std::uint16_t> link;  // kAllocated, or the next slot of a free list
  std::atomic<std::uint8_t> state;  // kFreed: freed, waiting in a free buffer
  std::uint8_t unused;
};
static_assert(sizeof(SlotMeta) == 4);
inline constexpr std::size_t kSlotMetadata = sizeof(SlotMeta);

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
  ListHook hook;

  // --- owner thread (token of its ThreadHeap; 0 when detached). Written
  // under the cache lock. Frees tell an owned slab by the owner hint in its
  // page tags (page_allocator.h) instead, so as not to miss on this line.
  std::atomic<std::uintptr_t> owner;
  // Owner only. Allocation pops local_head; the owner's frees push onto
  // local_free, a separate list swapped in when local_head runs dry (free
  // list sharding, as mimalloc): an alloc right after a free does not wait
  // on that free's stores.
  std::uint16_t local_head;
  std::uint16_t local_free;

  /// The slab's remote-free word (XFree), pushed by any thread. It lives in
  /// the arena's dense block words (arena.h), not in this header: slab
  /// headers all sit at the same offset of their pages, so a batch of frees
  /// into many slabs kept evicting each other's header lines (they share a
  /// few cache sets), while the dense words of neighbouring slabs share
  /// lines and stay cached. Reaching it never reads this header.
  [[gnu::always_inline]] std::atomic<std::uint64_t>& xfree() const noexcept { return block_word(this); }

  // Through an integer, not `this + 1`: the slots lie beyond the header
  // object, and the compiler's array-bounds analysis must not object.
  [[gnu::always_inline]] SlotMeta* slots() noexcept {
    return reinterpret_cast<SlotMeta*>(reinterpret_cast<std::uintptr_t>(this) + sizeof(Slab));
  }
  [[gnu::always_inline]] const SlotMeta* slots() const noexcept {
    return reinterpret_cast<const SlotMeta*>(reinterpret_cast<std::uintptr_t>(this) + sizeof(Slab));
  }
  [[gnu::always_inline]] std::uint16_t link(std::size_t i) const noexcept {
    return slots()[i].link.load(std::memory_order_relaxed);
  }
  [[gnu::always_inline]] void set_link(std::size_t i, std::uint16_t v) noexcept {
    slots()[i].link.store(v, std::memory_order_relaxed);
  }
  [[gnu::always_inline]] std::uint8_t state(std::size_t i) const noexcept {
    return slots()[i].state.load(std::memory_order_relaxed);
  }
  [[gnu::always_inline]] void set_state(std::size_t i, std::uint8_t v) noexcept {
    slots()[i].state.store(v, std::memory_order_relaxed);
  }

  /// Slot i holds a live object (see the invariants above).
  bool is_live(std::size_t i) const noexcept { return link(i) == kAllocated && state(i) != kFreed; }

  void* object(std::size_t i) const noexcept { return objects + i * stride; }
};

static_assert(sizeof(Slab) == 64);

/// The slab holding `p`, or nullptr if `p` is not in a slab. O(1), lock-free.
inline Slab* slab_of(const void* p) noexcept {
  const PageDesc* page = page_desc_of(p);
  // kind is kSlab only on the pages of a live slab (reset when freed).
  if (page == nullptr || page->kind != BlockKind::kSlab) return nullptr;
  return reinterpret_cast<Slab*>(page->block);
}

}  // namespace detail
}  // namespace mslab
