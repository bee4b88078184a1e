// The defragmenter (defragmenter.h): survey, chunk evacuation, slab
// compaction.
//
// A pass works in steps, each on a fresh survey of the detached slabs of
// the movable caches:
//   1. chunk evacuation — chunks whose every used page is such a slab, and
//      whose live objects fit elsewhere (free slots, or new slabs from free
//      pages of other partly used chunks: Room), fewest live bytes first:
//      the chunk is excluded from page allocation, all its slabs are
//      isolated and evacuated; it ends as a free 2 MiB block;
//   2. slab compaction (not for make_available) — per cache, the sparsest
//      slabs whose objects fit in the free slots of the others are isolated
//      in batches and evacuated; their copies fill the densest slabs
//      (alloc_direct), so the pages of the emptied slabs go back;
//   3. chunk evacuation again (not for make_available), up to kExtraRounds
//      times while a round empties a chunk: compaction's holes are room.
#include "defrag/defragmenter.h"

#include <algorithm>
#include <bit>
#include <vector>

#include "alloc/meta_pool.h"
#include "defrag/evacuate.h"

namespace mslab::defrag {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kCompactBatch = 64;  // slabs isolated at once by slab compaction
constexpr int kExtraRounds = 3;             // chunk evacuation rounds after compaction

// The pass's working arrays come from the library's metadata pool, so that
// they go back to the OS after the pass (the survey alone is 32 B per slab:
// 0.5 MB for 16 000 slabs) instead of staying in the application's malloc.
template <class T>
using Vec = std::vector<T, detail::MetaAllocator<T>>;

std::uintptr_t chunk_base(const void* p) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) & ~static_cast<std::uintptr_t>(kChunkSize - 1);
}

std::size_t live_of(const detail::Slab& s) noexcept {
  return s.capacity - detail::XFree::count(s.xfree().load(std::memory_order_relaxed));
}

// One detached slab seen by a survey. The address is only a key: the slab
// may be gone when it is looked for again, under the cache lock.
struct SlabInfo {
  std::uintptr_t addr;
  std::uintptr_t chunk;
  std::uint32_t cache;  // index into the pass's references
  std::uint32_t live;   // capacity − free count (buffered frees count as live)
  std::uint32_t capacity;
  std::uint32_t pages;
};

// One cache's part of a chunk: its live objects there and the free slots
// of its slabs there.
struct ChunkNeed {
  std::size_t live = 0, free = 0;
};

struct ChunkPlan {
  std::uintptr_t base;
  std::size_t live_bytes;
  std::size_t first, last;  // its range in the survey (sorted by chunk)
  Vec<ChunkNeed> need;      // per cache (index into the pass's references)
};

// Where a chunk's live objects can go: free slots of their cache's slabs
// outside the chunk, then new slabs from free pages outside it (the page
// allocator hands them out elsewhere while the chunk is excluded). Only
// free blocks below order 9 count as pages: filling a wholly free chunk to
// empty another frees nothing, and the pass would chase its own tail. The
// free slot counts come from the survey and are kept current by
// evacuated(); the pages are read from the page allocator at each question.
struct Room {
  Vec<std::size_t> free_slots;  // per cache, in all surveyed slabs
  Vec<unsigned> slab_order;     // per cache
  Vec<std::size_t> capacity;    // per cache: objects per slab

  explicit Room(const std::vector<CacheRef>& refs)
      : free_slots(refs.size(), 0), slab_order(refs.size(), 0), capacity(refs.size(), 1) {
    for (std::size_t c = 0; c < refs.size(); ++c)
      capacity[c] = std::max<std::size_t>(1, refs[c]->cache().objects_per_slab());
  }

  /// True if `plan`'s live objects fit outside its chunk.
  bool fits(const ChunkPlan& plan, const PageAllocator& pages) const noexcept {
    // Free pages by order outside the chunk, below order 9 (the two reads
    // are not atomic together: a block freed in between errs either way by
    // one block).
    const PageStats st = pages.stats();
    std::size_t own[kMaxOrder + 1] = {};
    if (!pages.chunk_free_blocks(reinterpret_cast<void*>(plan.base), own)) return false;
    std::size_t by_order[kMaxOrder] = {};
    for (unsigned k = 0; k < kMaxOrder; ++k)
      by_order[k] = (st.free_blocks[k] - std::min(st.free_blocks[k], own[k])) << k;
    // Pages the shortfall needs, per slab order.
    std::size_t need_pages[kMaxOrder + 1] = {};
    for (std::size_t c = 0; c < plan.need.size(); ++c) {
      const std::size_t live = plan.need[c].live;
      if (live == 0) continue;
      const std::size_t outside = free_slots[c] - std::min(free_slots[c], plan.need[c].free);
      if (live <= outside) continue;
      if (slab_order[c] >= kMaxOrder) return false;
      const std::size_t slabs = (live - outside + capacity[c] - 1) / capacity[c];
      need_pages[slab_order[c]] += slabs << slab_order[c];
    }
    // From the largest slab order down: a slab of order k takes a free
    // block of order k or more.
    std::size_t spare = 0;
    for (unsigned k = kMaxOrder; k-- > 0;) {
      spare += by_order[k];
      if (need_pages[k] > spare) return false;
      spare -= need_pages[k];
    }
    return true;
  }

  /// `plan`'s chunk was evacuated: its slabs' free slots are gone and its
  /// objects took free slots elsewhere (or new slabs, whose spare slots are
  /// not counted: later questions only err towards too little).
  void evacuated(const ChunkPlan& plan) noexcept {
    for (std::size_t c = 0; c < plan.need.size(); ++c) {
      free_slots[c] -= std::min(free_slots[c], plan.need[c].free);
      free_slots[c] -= std::min(free_slots[c], plan.need[c].live);
    }
  }
};

struct Isolated {
  std::uint32_t cache;
  detail::Slab* slab;
  std::size_t live;
};

class Pass {
 public:
  Pass(PageAllocator& pages, Registry& registry, const Budget& budget, unsigned target, Report& report)
      : pages_(pages), budget_(budget), target_(target), r_(report), start_(Clock::now()) {
    registry.acquire_all(refs_);
    std::erase_if(refs_, [&](const CacheRef& ref) { return &ref->cache().page_allocator() != &pages_; });
    pending_.resize(refs_.size());
    visited_.resize(refs_.size());
    std::size_t max_capacity = 0;
    for (const CacheRef& ref : refs_) max_capacity = std::max(max_capacity, ref->cache().objects_per_slab());
    scratch_.resize(max_capacity);
    taken_.resize(std::max(kPagesPerChunk, kCompactBatch));
  }

  bool done() const noexcept { return r_.budget_exhausted || (target_ != kNoTarget && available()); }

  /// Returns the number of chunks it emptied.
  std::size_t evacuate_chunks() noexcept {
    const std::size_t emptied_before = r_.chunks_evacuated;
    survey();
    std::sort(survey_.begin(), survey_.end(), [](const SlabInfo& a, const SlabInfo& b) {
      return a.chunk != b.chunk ? a.chunk < b.chunk : a.live < b.live;
    });
    Room room(refs_);
    for (const SlabInfo& s : survey_) {
      room.free_slots[s.cache] += s.capacity - s.live;
      room.slab_order[s.cache] = static_cast<unsigned>(std::countr_zero(s.pages));
    }
    Vec<ChunkPlan> plans;
    Vec<std::uintptr_t> batch;
    for (std::size_t i = 0; i < survey_.size();) {
      ChunkPlan plan{survey_[i].chunk, 0, i, i, Vec<ChunkNeed>(refs_.size())};
      std::size_t slab_pages = 0;
      for (; plan.last < survey_.size() && survey_[plan.last].chunk == plan.base; ++plan.last) {
        const SlabInfo& s = survey_[plan.last];
        slab_pages += s.pages;
        plan.need[s.cache].live += s.live;
        plan.need[s.cache].free += s.capacity - s.live;
        plan.live_bytes += std::size_t{s.live} * refs_[s.cache]->cache().object_size();
      }
      const long free_pages = pages_.chunk_free_pages(reinterpret_cast<void*>(plan.base));
      const bool evacuable = free_pages >= 0 && static_cast<std::size_t>(free_pages) + slab_pages == kPagesPerChunk;
      i = plan.last;
      // Without room the objects could only move into new chunks:
      // compaction on demand accepts that, a plain pass does not.
      if (evacuable && (target_ != kNoTarget || room.fits(plan, pages_))) plans.push_back(std::move(plan));
    }
    std::sort(plans.begin(), plans.end(),
              [](const ChunkPlan& a, const ChunkPlan& b) { return a.live_bytes < b.live_bytes; });
    for (const ChunkPlan& plan : plans) {
      if (done()) break;
      // Earlier evacuations used up room: ask again with the page
      // allocator's figures of now.
      if (target_ == kNoTarget && !room.fits(plan, pages_)) continue;
      void* base = reinterpret_cast<void*>(plan.base);
      if (!pages_.exclude_chunk(base, true)) continue;  // the chunk went back to the OS
      // Every detached slab of the movable caches in the chunk is isolated,
      // so no relocation target lies in it.
      isolated_.clear();
      std::fill(visited_.begin(), visited_.end(), false);
      for (std::size_t k = plan.first; k < plan.last; ++k) {
        const std::uint32_t c = survey_[k].cache;
        if (visited_[c]) continue;
        visited_[c] = true;
        batch.clear();
        for (std::size_t q = k; q < plan.last; ++q)
          if (survey_[q].cache == c) batch.push_back(survey_[q].addr);
        isolate(c, batch);
      }
      evacuate_isolated();
      pages_.exclude_chunk(base, false);
      room.evacuated(plan);
      if (pages_.chunk_free_pages(base) == static_cast<long>(kPagesPerChunk)) ++r_.chunks_evacuated;
    }
    return r_.chunks_evacuated - emptied_before;
  }

  void compact_slabs() noexcept {
    survey();
    std::sort(survey_.begin(), survey_.end(), [](const SlabInfo& a, const SlabInfo& b) {
      return a.cache != b.cache ? a.cache < b.cache : a.live < b.live;
    });
    Vec<std::uintptr_t> batch;
    for (std::size_t i = 0; i < survey_.size() && !done();) {
      std::size_t j = i;
      while (j < survey_.size() && survey_[j].cache == survey_[i].cache) ++j;
      // The sparsest k slabs whose objects fit in the free slots of the rest.
      std::size_t free_rest = 0;
      for (std::size_t q = i; q < j; ++q) free_rest += survey_[q].capacity - survey_[q].live;
      std::size_t k = i, moving = 0;
      while (k < j) {
        const SlabInfo& s = survey_[k];
        free_rest -= s.capacity - s.live;
        if (moving + s.live > free_rest) break;
        moving += s.live;
        ++k;
      }
      for (std::size_t q = i; q < k && !done(); q += kCompactBatch) {
        batch.clear();
        for (std::size_t b = q; b < std::min(k, q + kCompactBatch); ++b) batch.push_back(survey_[b].addr);
        isolated_.clear();
        isolate(survey_[i].cache, batch);
        evacuate_isolated();
      }
      i = j;
    }
  }

 private:
  bool available() const noexcept {
    const PageStats st = pages_.stats();
    for (unsigned k = target_; k <= kMaxOrder; ++k)
      if (st.free_blocks[k] != 0) return true;
    return false;
  }

  void note_pause(Clock::time_point locked) noexcept {
    if (locked != Clock::time_point{})
      r_.max_pause = std::max(r_.max_pause, std::chrono::nanoseconds(Clock::now() - locked));
  }

  // Pauses are charged from the first callback under a cache lock to the
  // unlock: waiting for the lock is the defragmenter's time, not the
  // application's. The survey holds no cache lock but the page allocator's
  // (SlabCache::survey_detached): its whole call is charged.
  void survey() noexcept {
    survey_.clear();
    for (std::uint32_t c = 0; c < refs_.size(); ++c) {
      const SlabCache& cache = refs_[c]->cache();
      const auto capacity = static_cast<std::uint32_t>(cache.objects_per_slab());
      const auto pages = static_cast<std::uint32_t>(cache.slab_pages());
      const Clock::time_point start = Clock::now();
      cache.survey_detached([&](detail::Slab* s, std::size_t live) {
        survey_.push_back({reinterpret_cast<std::uintptr_t>(s), chunk_base(s), c, static_cast<std::uint32_t>(live),
                           capacity, pages});
      });
      note_pause(start);
    }
    r_.slabs_scanned += survey_.size();
  }

  // Isolates the slabs at `slabs` (survey addresses of cache `c`) that are
  // still detached; the lock hold is charged as a pause.
  void isolate(std::uint32_t c, const Vec<std::uintptr_t>& slabs) noexcept {
    const Clock::time_point start = Clock::now();
    const std::size_t n = refs_[c]->cache().isolate_listed(slabs, taken_);
    note_pause(start);
    for (std::size_t q = 0; q < n; ++q) isolated_.push_back({c, taken_[q], live_of(*taken_[q])});
    r_.slabs_isolated += n;
  }

  // Evacuates the isolated slabs, fewest live objects first; once the budget
  // is spent the rest are only released.
  void evacuate_isolated() noexcept {
    std::sort(isolated_.begin(), isolated_.end(), [](const Isolated& a, const Isolated& b) { return a.live < b.live; });
    for (const Isolated& iso : isolated_) {
      SlabCache& cache = refs_[iso.cache]->cache();
      if (r_.budget_exhausted) {
        r_.slabs_freed += cache.release_isolated(iso.slab) ? 1 : 0;
        continue;
      }
      pages_done_ += std::size_t{1} << iso.slab->order;
      const SlabResult res = evacuate_slab(*refs_[iso.cache].get(), iso.slab, scratch_);
      r_.max_pause = std::max(r_.max_pause, res.phase1);
      switch (res.outcome) {
        case SlabOutcome::kRefused: ++r_.slabs_refused; break;
        case SlabOutcome::kFreed: ++r_.slabs_freed; break;
        case SlabOutcome::kKept: break;
        case SlabOutcome::kPending: pending_[iso.cache].push_back({iso.slab, res.listed}); break;
      }
      count_moved(cache, res.left);
      if ((budget_.pages != 0 && pages_done_ >= budget_.pages) ||
          (budget_.time.count() != 0 && Clock::now() - start_ >= budget_.time))
        r_.budget_exhausted = true;
    }
    // Slabs waiting for deferred frees: one grace period per cache and batch.
    for (std::size_t c = 0; c < refs_.size(); ++c) {
      if (pending_[c].empty()) continue;
      const PendingResult done = finish_pending(refs_[c]->cache(), pending_[c]);
      r_.slabs_freed += done.freed;
      count_moved(refs_[c]->cache(), done.left);
      pending_[c].clear();
    }
  }

  void count_moved(const SlabCache& cache, std::size_t n) noexcept {
    r_.objects_moved += n;
    r_.bytes_copied += n * cache.object_size();
  }

  static constexpr unsigned kNoTarget = ~0u;
  PageAllocator& pages_;
  const Budget budget_;
  const unsigned target_;
  Report& r_;
  const Clock::time_point start_;
  std::vector<CacheRef> refs_;  // held for the whole pass
  Vec<SlabInfo> survey_;
  Vec<Isolated> isolated_;
  Vec<detail::Slab*> taken_;
  Vec<void*> scratch_;
  Vec<Vec<PendingSlab>> pending_;
  Vec<bool> visited_;
  std::size_t pages_done_ = 0;
};

}  // namespace

Report& Report::operator+=(const Report& o) noexcept {
  if (passes == 0) free_2m_before = o.free_2m_before;
  if (o.passes != 0) free_2m_after = o.free_2m_after;
  slabs_scanned += o.slabs_scanned;
  slabs_isolated += o.slabs_isolated;
  slabs_refused += o.slabs_refused;
  slabs_freed += o.slabs_freed;
  objects_moved += o.objects_moved;
  bytes_copied += o.bytes_copied;
  chunks_evacuated += o.chunks_evacuated;
  elapsed += o.elapsed;
  max_pause = std::max(max_pause, o.max_pause);
  budget_exhausted = budget_exhausted || o.budget_exhausted;
  passes += o.passes;
  return *this;
}

bool Defragmenter::available(unsigned order) const noexcept {
  const PageStats st = pages_.stats();
  for (unsigned k = std::min(order, kMaxOrder); k <= kMaxOrder; ++k)
    if (st.free_blocks[k] != 0) return true;
  return false;
}

double Defragmenter::fragmentation() noexcept {
  // From the surveys' free counts (dense metadata only: no slab header, no
  // cache lock — the background defragmenter asks every 500 ms): slab
  // bytes over live bytes of the detached slabs. Slabs owned by threads are
  // left out; frees still in thread buffers count as live.
  std::vector<CacheRef> refs;
  registry_.acquire_all(refs);
  std::size_t reserved = 0, live = 0;
  for (const CacheRef& ref : refs) {
    SlabCache& cache = ref->cache();
    if (&cache.page_allocator() != &pages_) continue;
    const std::size_t slab_bytes = cache.slab_pages() * kPageSize;
    cache.survey_detached([&](detail::Slab*, std::size_t n) {
      reserved += slab_bytes;
      live += n * cache.object_size();
    });
  }
  return live == 0 ? 0.0 : static_cast<double>(reserved) / static_cast<double>(live);
}

Report Defragmenter::run(const Budget& budget) noexcept { return pass(budget, kNoTarget); }

Report Defragmenter::make_available(unsigned order, const Budget& budget) noexcept {
  return pass(budget, std::min(order, kMaxOrder));
}

Report Defragmenter::pass(const Budget& budget, unsigned target) noexcept {
  std::lock_guard serial(run_lock_);
  const Clock::time_point start = Clock::now();
  Report r;
  r.passes = 1;
  r.free_2m_before = pages_.stats().free_2m_blocks();
  if (target == kNoTarget || !available(target)) {
    // Our own owned slabs become detached (isolatable), our buffered frees land.
    detail::flush_thread_heap();
    Pass pass(pages_, registry_, budget, target, r);
    pass.evacuate_chunks();
    if (target == kNoTarget && !pass.done()) pass.compact_slabs();
    // The holes compaction left are room for more chunks; each round's
    // own holes may make room for another (a few rounds at most).
    for (int round = 0; round < kExtraRounds && target == kNoTarget && !pass.done(); ++round)
      if (pass.evacuate_chunks() == 0) break;
  }  // the pass's references are dropped here, after every slab is released
  r.free_2m_after = pages_.stats().free_2m_blocks();
  r.elapsed = Clock::now() - start;
  return r;
}

}  // namespace mslab::defrag
