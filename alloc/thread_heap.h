// Per-thread state of the slab layer: for every cache, the one slab this
// thread allocates from without atomics (its *active* slab) and a few more
// it still owns (earlier active slabs, kept so that this thread's frees
// into them stay local, as mimalloc's thread-owned pages). A thread's state
// is created on its first allocation and flushed — every owned slab
// detached and handed back to its cache — on demand and at thread exit.
//
// Caches are numbered by a small id (a slot in every ThreadHeap); ids are
// reused after destroy, so each entry also records the serial of the cache
// it belongs to, and a stale entry is ignored; destroy also clears the
// id's slab pointers in every heap, so the allocation fast path needs no
// serial test. Threads are numbered too
// (1 … 2047, from the cache registry): the number is the owner hint that
// the page tags of a thread's owned slabs carry (page_allocator.h).
// Depends on: config, slab.
#pragma once

#include <cstdint>

#include "alloc/config.h"
#include "alloc/page_allocator.h"
#include "alloc/slab.h"

namespace mslab::detail {

// ThreadHeap::owner_hint of a thread without a number: outside the hint
// field (in the kind byte), so that no tag ever matches it.
inline constexpr std::uint32_t kNoOwnerHint = 0xFF000000;

struct HeapRecord;  // thread_heap.cpp: the registry's list of heaps

struct ThreadHeap {
  // Frees into slabs this thread does not own, waiting for one flush under
  // the cache lock (SlabCache::free_other). Allocated on first use.
  struct FreeBuffer {
    static constexpr std::uint32_t kCapacity = 128;
    std::uint32_t count;
    void* objects[kCapacity];
  };
  // Owned slabs besides the active one (Slab::owner = token()). Few, so
  // that the defragmenter, which never isolates an owned slab, loses little
  // and a thread holds few free slots for itself.
  static constexpr unsigned kOwnedSlabs = 6;
  struct Entry {
    Slab* active;                    // nullptr: none
    Slab* owned[kOwnedSlabs];        // nullptr: free place
    std::uint64_t serial;            // serial of the cache these fields belong to
    FreeBuffer* buffer;              // kept across caches that reuse the id
    std::uint32_t next_victim;       // owned[] place to give back next when all are taken

    void clear() noexcept {
      active = nullptr;
      for (Slab*& o : owned) o = nullptr;
      next_victim = 0;
    }
  };
  // The owner hint of this thread's slabs' page tags (page_allocator.h:
  // its thread number << kOwnerHintShift), or kNoOwnerHint when the thread
  // got no number: its slabs then carry hint 0, and its frees into them take
  // the buffered path (correct, only slower).
  std::uint32_t owner_hint;
  std::uint32_t max_id_used;  // highest id with an entry + 1 (bounds the flush walk)
  Entry entries[MSLAB_MAX_CACHES];
  HeapRecord* record;  // its place in the registry's list of heaps (null in g_no_heap)

  /// The value stored in Slab::owner for slabs active in this thread.
  std::uintptr_t token() const noexcept { return reinterpret_cast<std::uintptr_t>(this); }
  /// The hint its owned slabs' tags carry (0 when it has no number).
  std::uint32_t tag_hint() const noexcept { return owner_hint == kNoOwnerHint ? 0 : owner_hint; }
};

static_assert(MSLAB_MAX_CACHES < (1u << kOwnerHintShift), "a slab tag (cache id + 1) must fit below the owner hint");

/// This thread's heap. Before the thread's first allocation, and after its
/// exit, the shared empty heap g_no_heap: every entry of it is empty and no
/// slab is owned by its token, so the fast paths need no null test.
extern constinit thread_local ThreadHeap* tl_heap __attribute__((tls_model("initial-exec")));
/// Never written: empty entries, owner_hint kNoOwnerHint.
extern constinit ThreadHeap g_no_heap;
/// tl_heap->owner_hint, kept beside it so that a free compares its page
/// tag's hint with one thread-local load, not two dependent ones.
extern constinit thread_local std::uint32_t tl_owner_hint __attribute__((tls_model("initial-exec")));

/// This thread's own heap, or nullptr while it has none.
inline ThreadHeap* current_heap() noexcept {
  ThreadHeap* heap = tl_heap;
  return heap == &g_no_heap ? nullptr : heap;
}

/// Creates this thread's heap and arranges its flush at thread exit.
/// Returns nullptr when out of memory. Not async-signal-safe.
ThreadHeap* create_thread_heap() noexcept;

/// Detaches every active slab of the calling thread (all caches).
void flush_thread_heap() noexcept;

/// Pushes the calling thread's buffered frees (every cache) into their
/// slabs, keeping the slabs it owns: afterwards every object it freed is
/// back on its slab's lists. Cheap when nothing is buffered (no lock);
/// otherwise takes the registry lock and each such cache's lock. For code
/// that frees in batches and must leave slabs exact after each (deferred
/// free: rcu::barrier() then means the slabs are exact).
void flush_free_buffers() noexcept;

/// Hands back everything `heap` holds of every cache that still exists:
/// flushes its free buffers and detaches its active slabs. With `release`
/// (thread exit) the buffers' memory is given back too. Called by the owning
/// thread or its exit hook. Takes the registry lock.
void flush_heap(ThreadHeap* heap, bool release = false) noexcept;

/// Fork support (alloc/fork.h): with `lock`, takes the registry lock and
/// then every registered cache's lock (the documented order); without,
/// releases them in reverse. Called around fork() only.
void lock_caches_for_fork(bool lock) noexcept;

// Cache ids. register_cache() gives `requested` (a reserved id, below
// kReservedCacheIds) or, for kAnyCacheId, the lowest free id above the
// reserved ones, and the serial to record in heap entries; false when that
// id is taken or every id is.
bool register_cache(SlabCache* cache, std::uint32_t requested, std::uint32_t* id, std::uint64_t* serial) noexcept;
void unregister_cache(std::uint32_t id) noexcept;

}  // namespace mslab::detail
