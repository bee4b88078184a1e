// Evacuating one isolated slab: the two phases of the mobility contract
// (mobility.h) and the release that follows. The defragmenter drives this
// for each slab it has isolated; tests drive it directly.
// Depends on: defrag/registry.h, alloc/slab_cache.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>

#include "alloc/slab_cache.h"
#include "defrag/registry.h"

namespace mslab::defrag {

enum class SlabOutcome {
  kRefused,  // phase 1 answered false: nothing taken, slab back in the lists
  kFreed,    // empty after phase 2: its pages went back to the page allocator
  kKept,     // not empty after phase 2: back in the lists
  kPending,  // not empty, ops.defers_free: still isolated, finish_pending() releases it
};

struct SlabResult {
  SlabOutcome outcome;
  std::size_t listed;  // objects handed to the callbacks (0 when refused)
  std::size_t left;    // of those, objects that left the slab during phase 2
  std::chrono::nanoseconds phase1;  // cache lock held from can_free's entry to the unlock
};

/// Runs phase 1 and, if it agrees, phase 2 on `slab`, which the caller has
/// isolated in `entry`'s cache (and holds a reference to `entry`). Then
/// flushes the calling thread's free buffers (phase 2's frees) and releases
/// the slab — unless it is not yet empty and ops.defers_free, when it stays
/// isolated (kPending). `scratch` must hold objects_per_slab() pointers.
/// Blocks as the callbacks do; must not be called inside a read section.
SlabResult evacuate_slab(MovableCache& entry, detail::Slab* slab, std::span<void*> scratch) noexcept;

/// A slab left kPending, with the number of objects phase 1 listed.
struct PendingSlab {
  detail::Slab* slab;
  std::size_t listed;
};

struct PendingResult {
  std::size_t freed;  // slabs that were empty and went back to the page allocator
  std::size_t left;   // listed objects that had left their slabs by then
};

/// Releases slabs of `cache` left kPending: waits once for the deferred
/// frees queued so far (rcu::barrier()), flushes this thread's buffers and
/// releases each slab. Blocks; must not be called inside a read section.
PendingResult finish_pending(SlabCache& cache, std::span<const PendingSlab> slabs) noexcept;

}  // namespace mslab::defrag
