// Workload `slab` for mslab-defrag: the same steps as workload_slab.h, with
// the objects in a defrag::OwnedCache (payload SIZE bytes plus its 8-byte
// header), each published in its own owner slot (an array mapped from the
// OS, like the plain form's pointer array), freed by retiring it, and one
// Defragmenter pass between the "before" and "after" readings.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "bench/options.h"
#include "bench/progress.h"
#include "bench/record.h"
#include "bench/scratch.h"
#include "bench/workload_slab_figures.h"
#include "bench/workload_util.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "rcu/deferred_free.h"

namespace mslab::bench {

inline void run_slab_movable(const Options& o, RunRecord& r) {
  defrag::OwnedOptions options;
  options.name = "bench";
  options.payload_size = o.size;
  CacheError error{};
  defrag::OwnedCache* cache = defrag::OwnedCache::create(options, &error);
  if (cache == nullptr)
    return set_outcome(r, RunStatus::kSkipped, std::string("OwnedCache::create failed: ") + error.message);
  struct Destroy {
    defrag::OwnedCache* c;
    ~Destroy() { c->destroy(); }
  } destroy{cache};
  PageAllocator& pages = PageAllocator::global();
  // Retired objects reach their slabs after a grace period; then this
  // thread's buffers go back, so empty slabs reach the page allocator.
  auto drain = [cache] {
    rcu::barrier();
    cache->slab_cache().flush_thread_cache();
  };

  SlabMeasures m;
  m.n = o.count;
  m.size = o.size;
  m.n_free = std::min(m.n, static_cast<std::size_t>(std::llround(static_cast<double>(m.n) * o.free_fraction)));
  ScratchArray<std::atomic<void*>> slots(m.n);  // zero-filled: every slot empty
  ScratchArray<std::size_t> order(m.n);
  if (!slots.ok() || !order.ok()) return set_outcome(r, RunStatus::kFailed, "cannot map the slot arrays");
  for (std::size_t i = 0; i < m.n; ++i) order[i] = i;

  const std::size_t baseline = os::resident_bytes();
  m.t_alloc0 = now_ns();
  for (std::size_t i = 0; i < m.n; ++i) {
    void* p = cache->alloc();
    if (p == nullptr) return set_outcome(r, RunStatus::kFailed, "out of memory in the allocation phase");
    std::memset(p, 0xA5, o.size);
    cache->exchange(slots[i], p);
  }
  m.t_alloc1 = now_ns();
  r.rss_bytes_peak = rss_since(baseline);
  // The same freed allocation indices as the plain form (same shuffle).
  seeded_shuffle(order.data(), m.n, o.seed);
  m.t_free0 = now_ns();
  for (std::size_t i = 0; i < m.n_free; ++i) cache->retire(cache->exchange(slots[order[i]], nullptr));
  m.t_free1 = now_ns();

  drain();
  m.free_2m_before = pages.stats().free_2m_blocks();
  pages.collect(true);
  m.rss_before = rss_since(baseline);

  Progress::show("slab/mslab-defrag defrag ...");
  const defrag::Report d = defrag::Defragmenter().run();
  Progress::show("");
  drain();
  m.free_2m_after = pages.stats().free_2m_blocks();
  pages.collect(true);
  m.rss_after = rss_since(baseline);
  set_slab_figures(r, m);
  r.defrag_ms = std::chrono::duration<double, std::milli>(d.elapsed).count();
  r.max_pause_ms = std::chrono::duration<double, std::milli>(d.max_pause).count();
  r.objects_moved = d.objects_moved;
  r.bytes_copied = d.bytes_copied;
  r.slabs_freed = d.slabs_freed;

  const std::size_t live = cache->slab_cache().stats().live_objects;
  if (live != m.n - m.n_free)
    return set_outcome(r, RunStatus::kFailed,
                       "the cache counts " + std::to_string(live) + " live objects, expected " +
                           std::to_string(m.n - m.n_free));
  for (std::size_t i = m.n_free; i < m.n; ++i) {
    const auto* p = static_cast<const unsigned char*>(slots[order[i]].load(std::memory_order_acquire));
    if (p == nullptr || p[0] != 0xA5 || p[o.size - 1] != 0xA5)
      return set_outcome(r, RunStatus::kFailed, "object " + std::to_string(order[i]) + " lost or corrupted");
  }
}

}  // namespace mslab::bench
