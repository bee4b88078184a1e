// Per-thread state of the slab layer: for every cache, the one slab this
// thread allocates from without atomics (its *active* slab). A thread's
// state is created on its first allocation and flushed — every active slab
// detached and handed back to its cache — on demand and at thread exit.
//
// Caches are numbered by a small id (a slot in every ThreadHeap); ids are
// reused after destroy, so each entry also records the serial of the cache
// it belongs to, and a stale entry is ignored.
// Depends on: config, slab.
#pragma once

#include <cstdint>

#include "alloc/config.h"
#include "alloc/slab.h"

namespace mslab::detail {

struct ThreadHeap {
  struct Entry {
    Slab* active;          // nullptr: none
    std::uint64_t serial;  // serial of the cache these fields belong to
    // Frees into one slab that is not ours, chained through the slab's links
    // and pushed onto its xfree with one CAS when the thread moves on to
    // another slab (see SlabCache::free_other).
    Slab* pending;
    std::uint16_t pending_head, pending_tail, pending_count;
    std::uint16_t pending_base;  // the slab's xfree count when the chain began
  };
  std::uint32_t max_id_used;  // highest id with an entry + 1 (bounds the flush walk)
  Entry entries[MSLAB_MAX_CACHES];

  /// The value stored in Slab::owner for slabs active in this thread.
  std::uintptr_t token() const noexcept { return reinterpret_cast<std::uintptr_t>(this); }
};

/// This thread's heap, or nullptr before its first allocation.
extern constinit thread_local ThreadHeap* tl_heap __attribute__((tls_model("initial-exec")));

/// Creates this thread's heap and arranges its flush at thread exit.
/// Returns nullptr when out of memory. Not async-signal-safe.
ThreadHeap* create_thread_heap() noexcept;

/// Detaches every active slab of the calling thread (all caches).
void flush_thread_heap() noexcept;

/// Detaches every active slab recorded in `heap` whose cache still exists.
/// Called by the owning thread (or its exit hook). Takes the registry lock.
void flush_heap(ThreadHeap* heap) noexcept;

// Cache ids. register_cache() returns an id < MSLAB_MAX_CACHES and the serial
// to record in heap entries, or false when every id is taken.
bool register_cache(SlabCache* cache, std::uint32_t* id, std::uint64_t* serial) noexcept;
void unregister_cache(std::uint32_t id) noexcept;

}  // namespace mslab::detail
