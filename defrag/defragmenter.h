// The defragmenter: empties sparse slabs of movable caches so that free
// pages coalesce back into 2 MiB (order-9) blocks.
//
// A pass surveys the registered caches, groups their detached slabs by the
// 2 MiB chunk they lie in, and picks the chunks that can become wholly free
// (every used page is a slab of a movable cache) and whose live objects fit
// elsewhere — free slots of their caches, or new slabs from free pages of
// other partly used chunks — fewest live bytes first. For each chosen chunk
// it excludes the chunk from page allocation, isolates every detached slab
// of the movable caches in it (so neither new slabs nor relocation targets
// land there), and evacuates the slabs with the fewest live objects first
// through the two phases (evacuate.h). Then slab compaction packs each
// cache's sparsest slabs into its densest, and chunk evacuation runs once
// more. Empty slabs go back to the page allocator at once; slabs waiting
// for deferred frees are released after one rcu::barrier() per batch.
//
// Entry points: run(budget) — one pass within a time or page budget;
// make_available(order) — compaction on demand until a free block of that
// order exists; BackgroundDefrag (background.h) — the control loop.
// Depends on: defrag/evacuate.h, defrag/registry.h, alloc/.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "alloc/page_allocator.h"
#include "defrag/registry.h"

namespace mslab::defrag {

/// Limits of one pass; zero means unlimited. The time limit is checked
/// between slabs, so a pass may overrun it by one slab's evacuation.
struct Budget {
  std::chrono::nanoseconds time{0};
  std::size_t pages = 0;  // pages of slabs evacuated
};

struct Report {
  std::size_t slabs_scanned = 0;   // detached slabs of movable caches surveyed
  std::size_t slabs_isolated = 0;
  std::size_t slabs_refused = 0;   // phase 1 said no
  std::size_t slabs_freed = 0;     // went back to the page allocator
  std::size_t objects_moved = 0;   // objects that left evacuated slabs during phase 2
  std::size_t bytes_copied = 0;    // objects_moved × object size
  std::size_t chunks_evacuated = 0;  // chunks wholly free after their evacuation
  std::size_t free_2m_before = 0;  // free order-9 blocks before and after
  std::size_t free_2m_after = 0;
  std::chrono::nanoseconds elapsed{0};
  std::chrono::nanoseconds max_pause{0};  // longest single hold of a cache lock by the pass
  bool budget_exhausted = false;
  std::size_t passes = 0;

  /// Adds the counts of `other` (before: the earlier one, after: the later).
  Report& operator+=(const Report& other) noexcept;
};

class Defragmenter {
 public:
  /// Works on the caches of `registry` whose slabs come from `pages`.
  explicit Defragmenter(PageAllocator& pages = PageAllocator::global(),
                        Registry& registry = Registry::global()) noexcept
      : pages_(pages), registry_(registry) {}

  /// One pass within `budget`. Blocks (callbacks, grace periods); passes of
  /// one Defragmenter are serialised. Must not be called inside a read
  /// section or from a mobility callback. Thread-safe.
  Report run(const Budget& budget = {}) noexcept;

  /// Compaction on demand: evacuates chunks until the page allocator holds a
  /// free block of at least `order` (0 … 9), or nothing more can be done, or
  /// the budget is spent. Returns the report; success is
  /// `available(order)`. Same context rules as run().
  Report make_available(unsigned order, const Budget& budget = {}) noexcept;

  /// True if the page allocator holds a free block of at least `order`.
  /// Thread-safe; takes the page allocator's lock.
  bool available(unsigned order) const noexcept;

  /// Fragmentation of the movable caches: bytes in their detached slabs
  /// over the bytes of the objects live in them (1.0 is perfect; 0 when
  /// nothing is live). Takes each cache's lock for a walk of its slab lists
  /// (not of their slots); frees still in thread buffers count as live.
  /// Thread-safe, also while a pass runs; must not be called under a cache
  /// lock (from phase 1).
  double fragmentation() noexcept;

  PageAllocator& pages() const noexcept { return pages_; }
  Registry& registry() const noexcept { return registry_; }

 private:
  static constexpr unsigned kNoTarget = ~0u;
  Report pass(const Budget& budget, unsigned target_order) noexcept;

  PageAllocator& pages_;
  Registry& registry_;
  std::mutex run_lock_;
};

}  // namespace mslab::defrag
