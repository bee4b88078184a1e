// Evacuating one isolated slab (evacuate.h).
#include "defrag/evacuate.h"

#include "rcu/deferred_free.h"

namespace mslab::defrag {

namespace {

struct Phase1 {
  const MobilityOps* ops;
  std::chrono::steady_clock::time_point entered;  // under the lock, after the listing
};

// Phase 1 through the cache's lock hook: the callback of the owner.
bool run_can_free(void* ctx, std::span<void*> objects) noexcept {
  auto* p = static_cast<Phase1*>(ctx);
  p->entered = std::chrono::steady_clock::now();
  return p->ops->can_free(objects, p->ops->cookie);
}

}  // namespace

SlabResult evacuate_slab(MovableCache& entry, detail::Slab* slab, std::span<void*> scratch) noexcept {
  SlabCache& cache = entry.cache();
  const MobilityOps& ops = entry.ops();
  SlabResult result{SlabOutcome::kRefused, 0, 0, {}};
  std::size_t nr = 0;
  // The pause charged to phase 1 is the lock hold from the callback's entry
  // to the unlock (the listing before it is a walk of the slot metadata);
  // waiting for the lock is the defragmenter's time, not the application's.
  Phase1 ctx{&ops, {}};
  const bool agreed = cache.pin_isolated(slab, scratch, &run_can_free, &ctx, &nr);
  if (ctx.entered != std::chrono::steady_clock::time_point{})
    result.phase1 = std::chrono::steady_clock::now() - ctx.entered;
  if (!agreed) {
    cache.release_isolated(slab);  // took nothing: back to normal use
    return result;
  }
  result.listed = nr;
  if (nr != 0) ops.reclaim(scratch.first(nr), ops.cookie);
  // Phase 2's plain frees wait in this thread's buffers: flush them so that
  // the slab's record is exact before it is inspected.
  detail::flush_thread_heap();
  const std::size_t live = SlabCache::allocated_objects(slab, {});
  if (live != 0 && ops.defers_free) {
    result.outcome = SlabOutcome::kPending;  // `left` is counted by finish_pending()
    return result;
  }
  result.left = live < nr ? nr - live : 0;
  result.outcome = cache.release_isolated(slab) ? SlabOutcome::kFreed : SlabOutcome::kKept;
  return result;
}

PendingResult finish_pending(SlabCache& cache, std::span<const PendingSlab> slabs) noexcept {
  PendingResult result{0, 0};
  if (slabs.empty()) return result;
  rcu::barrier();
  detail::flush_thread_heap();
  for (const PendingSlab& p : slabs) {
    const std::size_t live = SlabCache::allocated_objects(p.slab, {});
    result.left += live < p.listed ? p.listed - live : 0;
    result.freed += cache.release_isolated(p.slab) ? 1 : 0;
  }
  return result;
}

}  // namespace mslab::defrag
