// The two-phase mobility contract (design §3): how the owner of a slab
// cache's objects lets the defragmenter empty a slab.
//
// A cache becomes movable by registering MobilityOps with a Registry
// (registry.h). For each slab it evacuates, the defragmenter:
//
//   1. isolates the slab: from now until it is released nothing is
//      allocated from it; frees into it still work (objects only leave);
//   2. phase 1 — can_free(objects, cookie) — runs under the cache lock over
//      every object allocated in the slab (objects freed into per-thread
//      buffers are never listed). It must not block, allocate, free, or take
//      long. It either establishes a stable reference to every object (a
//      refcount, a pin flag, a state transition: the owner's choice) and
//      returns true, or returns false having taken none (an object it cannot
//      handle, e.g. allocated but not yet published);
//   3. phase 2 — reclaim(objects, cookie) — runs with no allocator lock held,
//      only if phase 1 said true. It receives the same span can_free was
//      given, as can_free left it: phase 1 may rewrite entries (the XArray
//      node cache tags the nodes it pinned in their low bit). Anything goes: take owner locks one owner
//      at a time, allocate a replacement (alloc_direct() lands in the fullest
//      partial slab, never in an isolated slab or an excluded chunk), copy,
//      republish, free (free_direct() keeps the record exact at once) or
//      defer-free the old object, drop the references. Moving nothing is
//      allowed and breaks nothing;
//   4. the slab is released: if it is empty its pages go back to the page
//      allocator at once (and coalesce); otherwise it rejoins the lists.
//      With `defers_free`, objects still waiting for a grace period are
//      waited for (one rcu::barrier() per batch of slabs) before release.
//
// Objects racing to be freed by their owner during phase 1 may still be
// listed: the memory stays mapped and the slot is not reused while the slab
// is isolated, so the callbacks may read such an object's own state word to
// tell (design §3: "a stable reference … whatever the owner uses").
// Depends on: nothing (C++ types only).
#pragma once

#include <span>

namespace mslab::defrag {

struct MobilityOps {
  /// Phase 1. Under the cache lock; must not block or allocate.
  bool (*can_free)(std::span<void*> objects, void* cookie) noexcept = nullptr;
  /// Phase 2. No allocator lock held; may block, allocate, free.
  void (*reclaim)(std::span<void*> objects, void* cookie) noexcept = nullptr;
  void* cookie = nullptr;
  /// Phase 2 retires old objects through rcu::defer_free: the defragmenter
  /// waits for their grace period (rcu::barrier) before releasing slabs.
  bool defers_free = false;
};

}  // namespace mslab::defrag
