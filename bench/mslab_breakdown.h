// Where an mslab-defrag run's resident memory goes, printed to stderr when
// the environment sets MSLAB_BENCH_BREAKDOWN (diagnostics for issue 5's
// RSS/live target, not part of the report; when enabled it runs between the
// measurements, and its own code and output add a little to the later RSS).
// Splits RSS into: the movable caches' slabs (live objects and the rest),
// other blocks in use, free pages resident (asked of the kernel: mincore),
// chunk descriptors, and what lies outside the chunks.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "alloc/meta_pool.h"
#include "alloc/page_allocator.h"
#include "alloc/platform.h"
#include "alloc/slab_cache.h"
#include "bench/smaps_growth.h"
#include "defrag/registry.h"

namespace mslab::bench {

/// The smaps snapshot of the breakdown: prepare() before the RSS baseline,
/// snapshot() right after it (both no-ops unless MSLAB_BENCH_BREAKDOWN).
inline SmapsGrowth& breakdown_smaps() {
  static SmapsGrowth s;
  return s;
}

/// mslab's chunk pages resident at the baseline (what an earlier warm-up
/// run left there), read right after it when the breakdown is enabled.
inline std::size_t& breakdown_baseline_chunk_bytes() {
  static std::size_t bytes = 0;
  return bytes;
}

/// Call right after the RSS baseline is read.
inline void breakdown_at_baseline() {
  if (std::getenv("MSLAB_BENCH_BREAKDOWN") == nullptr) return;
  breakdown_smaps().snapshot();
  breakdown_baseline_chunk_bytes() = PageAllocator::global().residency().chunk_bytes;
  std::vector<defrag::CacheRef> refs;
  defrag::Registry::global().acquire_all(refs);
  for (const defrag::CacheRef& ref : refs) {
    const CacheStats st = ref->cache().stats();
    if (st.slabs != 0)
      std::fprintf(stderr, "baseline: cache %s holds %zu slabs (%zu empty, %zu live objects) of %zu bytes\n",
                   ref->cache().name(), st.slabs, st.slabs_empty, st.live_objects, st.slab_bytes);
  }
  std::fprintf(stderr, "baseline: page allocator bytes in use %zu\n", PageAllocator::global().stats().bytes_in_use);
}

inline void print_mslab_breakdown(const char* when, std::size_t live_bytes, std::size_t baseline) {
  if (std::getenv("MSLAB_BENCH_BREAKDOWN") == nullptr) return;
  const double mb = 1e6, live = static_cast<double>(live_bytes);
  const auto share = [&](double bytes) { return live == 0 ? 0.0 : bytes / live; };
  const double rss = static_cast<double>(os::resident_bytes()) - static_cast<double>(baseline);
  std::fprintf(stderr, "breakdown %s: live %.3f MB, RSS since baseline %.3f MB (%.4f)\n", when, live / mb, rss / mb,
               share(rss));
  std::vector<defrag::CacheRef> refs;
  defrag::Registry::global().acquire_all(refs);
  double slab_bytes = 0, object_bytes = 0;
  for (const defrag::CacheRef& ref : refs) {
    const CacheStats s = ref->cache().stats();
    const double objects = static_cast<double>(s.live_objects * s.object_size);
    slab_bytes += static_cast<double>(s.bytes_reserved);
    object_bytes += objects;
    if (s.slabs == 0) continue;
    std::fprintf(stderr,
                 "  cache %-10s size %6zu stride %6zu order %u cap %5zu: slabs %6zu (partial %zu, empty %zu), "
                 "live %8zu, %.3f MB of slabs for %.3f MB (%.3f)\n",
                 ref->cache().name(), s.object_size, s.stride, s.slab_order, s.objects_per_slab, s.slabs,
                 s.slabs_partial, s.slabs_empty, s.live_objects, static_cast<double>(s.bytes_reserved) / mb,
                 objects / mb, objects == 0 ? 0.0 : static_cast<double>(s.bytes_reserved) / objects);
  }
  const PageStats p = PageAllocator::global().stats();
  const PageResidency res = PageAllocator::global().residency();
  const double free_resident = static_cast<double>(res.free_bytes);
  const double meta = static_cast<double>(detail::meta_mapped_bytes());
  const double other_used = static_cast<double>(p.bytes_in_use) - slab_bytes;
  std::fprintf(stderr, "  movable slabs beyond their objects %.3f MB (%.4f)\n", (slab_bytes - object_bytes) / mb,
               share(slab_bytes - object_bytes));
  std::fprintf(stderr, "  other blocks in use %.3f MB (%.4f)\n", other_used / mb, share(other_used));
  std::fprintf(stderr, "  free pages resident %.3f MB (%.4f); chunks %zu; free blocks by order:", free_resident / mb,
               share(free_resident), p.chunks_reserved);
  for (std::size_t n : p.free_blocks) std::fprintf(stderr, " %zu", n);
  std::fprintf(stderr, "\n  free pages never purged %.3f MB; chunks resident %.3f MB; chunk descriptors %.3f MB (%.4f)\n",
               static_cast<double>(p.bytes_free - p.bytes_purged) / mb, static_cast<double>(res.chunk_bytes) / mb,
               static_cast<double>(res.desc_bytes) / mb, share(static_cast<double>(res.desc_bytes)));
  std::fprintf(stderr, "  metadata mapped %.3f MB (%.4f)\n", meta / mb, share(meta));
  const double outside = rss - static_cast<double>(res.chunk_bytes);
  std::fprintf(stderr, "  outside the chunks (metadata included) %.3f MB (%.4f)\n", outside / mb,
               share(outside));
  if (std::strcmp(when, "after defrag") == 0) {
    std::fprintf(stderr, "  chunk pages resident at the baseline %.3f MB\n",
                 static_cast<double>(breakdown_baseline_chunk_bytes()) / mb);
    breakdown_smaps().print();
  }
}

}  // namespace mslab::bench
