// The defragmenter (defragmenter.h): survey, chunk ranking, per-chunk
// isolation and evacuation.
#include "defrag/defragmenter.h"

#include <algorithm>
#include <vector>

#include "defrag/evacuate.h"

namespace mslab::defrag {

namespace {

using Clock = std::chrono::steady_clock;

std::uintptr_t chunk_base(const void* p) noexcept {
  return reinterpret_cast<std::uintptr_t>(p) & ~static_cast<std::uintptr_t>(kChunkSize - 1);
}

std::size_t live_of(const detail::Slab& s) noexcept {
  return s.capacity - detail::XFree::count(s.xfree.load(std::memory_order_relaxed));
}

// One detached slab seen by the survey (the pointer is only a key: the slab
// may be gone by the time its chunk is processed).
struct SlabInfo {
  std::uintptr_t chunk;
  std::uint32_t cache;  // index into the pass's references
  std::uint32_t live;   // capacity − free count (buffered frees count as live)
  std::uint32_t capacity;
  std::uint32_t pages;
};

struct ChunkPlan {
  std::uintptr_t base;
  std::size_t live_bytes;
  bool evacuable;  // every used page is a surveyed slab: it can become wholly free
  std::size_t first, last;  // its range in the sorted survey
};

// A slab isolated for the chunk being processed.
struct Isolated {
  std::uint32_t cache;
  detail::Slab* slab;
  std::size_t live;
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
  std::vector<CacheRef> refs;
  registry_.acquire_all(refs);
  std::size_t reserved = 0, live = 0;
  for (const CacheRef& ref : refs) {
    if (&ref->cache().page_allocator() != &pages_) continue;
    const CacheStats st = ref->cache().stats();
    reserved += st.bytes_reserved;
    live += st.live_objects * st.object_size;
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
  auto finish = [&]() -> Report {
    r.free_2m_after = pages_.stats().free_2m_blocks();
    r.elapsed = Clock::now() - start;
    return r;
  };
  if (target != kNoTarget && available(target)) return finish();

  std::vector<CacheRef> refs;
  registry_.acquire_all(refs);
  std::erase_if(refs, [&](const CacheRef& ref) { return &ref->cache().page_allocator() != &pages_; });
  // Our own active slabs become detached (isolatable), our buffered frees land.
  detail::flush_thread_heap();

  // Survey: every detached slab of every movable cache, and per cache the
  // free slots that could take relocated objects.
  std::vector<SlabInfo> survey;
  std::vector<std::size_t> free_slots(refs.size(), 0);
  std::size_t max_capacity = 0;
  for (std::uint32_t c = 0; c < refs.size(); ++c) {
    SlabCache& cache = refs[c]->cache();
    max_capacity = std::max(max_capacity, cache.objects_per_slab());
    const Clock::time_point t0 = Clock::now();
    cache.for_each_detached_slab([&](detail::Slab* s) {
      const auto live = static_cast<std::uint32_t>(live_of(*s));
      survey.push_back({chunk_base(s), c, live, s->capacity, 1u << s->order});
      free_slots[c] += s->capacity - live;
    }, /*include_empty=*/true);
    r.max_pause = std::max(r.max_pause, std::chrono::nanoseconds(Clock::now() - t0));
  }
  r.slabs_scanned = survey.size();
  std::sort(survey.begin(), survey.end(), [](const SlabInfo& a, const SlabInfo& b) {
    return a.chunk != b.chunk ? a.chunk < b.chunk : a.live < b.live;
  });

  // Plan: per chunk, can it become wholly free, is there room elsewhere for
  // its live objects, and how many live bytes would move.
  std::vector<ChunkPlan> plans;
  std::vector<std::size_t> live_here(refs.size()), free_here(refs.size());
  for (std::size_t i = 0; i < survey.size();) {
    std::size_t j = i, slab_pages = 0, live_bytes = 0;
    std::fill(live_here.begin(), live_here.end(), 0);
    std::fill(free_here.begin(), free_here.end(), 0);
    while (j < survey.size() && survey[j].chunk == survey[i].chunk) {
      const SlabInfo& s = survey[j++];
      slab_pages += s.pages;
      live_here[s.cache] += s.live;
      free_here[s.cache] += s.capacity - s.live;
      live_bytes += std::size_t{s.live} * refs[s.cache]->cache().object_size();
    }
    bool room = true;
    for (std::size_t c = 0; c < refs.size(); ++c)
      room = room && free_slots[c] - free_here[c] >= live_here[c];
    const long free_pages = pages_.chunk_free_pages(reinterpret_cast<void*>(survey[i].chunk));
    const bool evacuable = free_pages >= 0 && static_cast<std::size_t>(free_pages) + slab_pages == kPagesPerChunk;
    // Without room the objects would only move into new slabs; compaction
    // on demand accepts that for a chunk that can become free.
    if (free_pages >= 0 && (room || (target != kNoTarget && evacuable)))
      plans.push_back({survey[i].chunk, live_bytes, evacuable, i, j});
    i = j;
  }
  std::sort(plans.begin(), plans.end(), [](const ChunkPlan& a, const ChunkPlan& b) {
    return a.evacuable != b.evacuable ? a.evacuable : a.live_bytes < b.live_bytes;
  });

  std::vector<void*> scratch(max_capacity);
  std::vector<detail::Slab*> taken(kPagesPerChunk);
  std::vector<Isolated> isolated;
  std::vector<bool> visited(refs.size());
  std::vector<std::vector<PendingSlab>> pending(refs.size());
  std::size_t pages_done = 0;
  for (const ChunkPlan& plan : plans) {
    if (r.budget_exhausted || (target != kNoTarget && available(target))) break;
    void* base = reinterpret_cast<void*>(plan.base);
    if (!pages_.exclude_chunk(base, true)) continue;  // the chunk went back to the OS
    // Isolate every detached slab of the movable caches in the chunk, so
    // that no relocation target lies in it.
    isolated.clear();
    std::fill(visited.begin(), visited.end(), false);
    for (std::size_t k = plan.first; k < plan.last; ++k) {
      const std::uint32_t c = survey[k].cache;
      if (visited[c]) continue;  // one isolate_matching per cache and chunk
      visited[c] = true;
      const Clock::time_point t0 = Clock::now();
      const std::size_t n = refs[c]->cache().isolate_matching(
          [&](const detail::Slab& s) { return chunk_base(&s) == plan.base; }, taken);
      r.max_pause = std::max(r.max_pause, std::chrono::nanoseconds(Clock::now() - t0));
      for (std::size_t q = 0; q < n; ++q) isolated.push_back({c, taken[q], live_of(*taken[q])});
    }
    r.slabs_isolated += isolated.size();
    std::sort(isolated.begin(), isolated.end(), [](const Isolated& a, const Isolated& b) { return a.live < b.live; });

    for (const Isolated& iso : isolated) {
      SlabCache& cache = refs[iso.cache]->cache();
      const bool chosen = plan.evacuable || iso.live * 2 <= iso.slab->capacity;
      if (!chosen || r.budget_exhausted) {
        r.slabs_freed += cache.release_isolated(iso.slab) ? 1 : 0;
        continue;
      }
      pages_done += std::size_t{1} << iso.slab->order;
      const SlabResult res = evacuate_slab(*refs[iso.cache].get(), iso.slab, scratch);
      r.max_pause = std::max(r.max_pause, res.phase1);
      switch (res.outcome) {
        case SlabOutcome::kRefused: ++r.slabs_refused; break;
        case SlabOutcome::kFreed: ++r.slabs_freed; break;
        case SlabOutcome::kKept: break;
        case SlabOutcome::kPending: pending[iso.cache].push_back({iso.slab, res.listed}); break;
      }
      r.objects_moved += res.left;
      r.bytes_copied += res.left * cache.object_size();
      if ((budget.pages != 0 && pages_done >= budget.pages) ||
          (budget.time.count() != 0 && Clock::now() - start >= budget.time))
        r.budget_exhausted = true;
    }
    // Slabs waiting for deferred frees: one grace period per cache and chunk.
    for (std::size_t c = 0; c < refs.size(); ++c) {
      if (pending[c].empty()) continue;
      const PendingResult done = finish_pending(refs[c]->cache(), pending[c]);
      r.slabs_freed += done.freed;
      r.objects_moved += done.left;
      r.bytes_copied += done.left * refs[c]->cache().object_size();
      pending[c].clear();
    }
    pages_.exclude_chunk(base, false);
    if (pages_.chunk_free_pages(base) == static_cast<long>(kPagesPerChunk)) ++r.chunks_evacuated;
  }
  return finish();
}

}  // namespace mslab::defrag
