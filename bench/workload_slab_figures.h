// The figures of the slab workload from its measurements, shared by its
// plain form (workload_slab.h) and its mslab-defrag form
// (workload_slab_defrag.h), so both report the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "bench/record.h"

namespace mslab::bench {

struct SlabMeasures {
  std::size_t n = 0, n_free = 0, size = 0;
  std::uint64_t t_alloc0 = 0, t_alloc1 = 0, t_free0 = 0, t_free1 = 0;
  std::int64_t rss_before = 0, rss_after = 0;
  std::optional<std::uint64_t> free_2m_before, free_2m_after;
};

inline void set_slab_figures(RunRecord& r, const SlabMeasures& m) noexcept {
  r.objects_allocated = m.n;
  r.objects_live = m.n - m.n_free;
  r.live_bytes = r.objects_live * m.size;
  r.rss_bytes_before = m.rss_before;
  r.rss_bytes_after = m.rss_after;
  if (*r.live_bytes > 0) {
    r.ratio_before = static_cast<double>(m.rss_before) / static_cast<double>(*r.live_bytes);
    r.ratio_after = static_cast<double>(m.rss_after) / static_cast<double>(*r.live_bytes);
  }
  r.free_2m_blocks_before = m.free_2m_before;
  r.free_2m_blocks_after = m.free_2m_after;
  r.alloc_ns = static_cast<double>(m.t_alloc1 - m.t_alloc0) / static_cast<double>(m.n);
  if (m.n_free > 0) {
    r.free_ns = static_cast<double>(m.t_free1 - m.t_free0) / static_cast<double>(m.n_free);
    r.ns_per_op = *r.alloc_ns + *r.free_ns;
  }
}

}  // namespace mslab::bench
