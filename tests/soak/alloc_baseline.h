// The soak's leak check: allocator statistics taken before the workload and
// compared after it has been torn down. Everything the soak allocates comes
// from the global page allocator: its three OwnedCache caches (destroyed at
// the end, their slabs returned) and the XArrays' "xa_node" cache of this
// fan-out (process-wide, never destroyed). After teardown, rcu::barrier()
// and the main thread's flush, we require:
//   - the xa_node cache holds as many live objects as at the baseline, and
//     no more slabs than max(baseline slabs, its empty_reserve of 1) —
//     empty slabs kept for reuse, as documented in alloc/slab_cache.h;
//   - the page allocator's bytes in use exceed the baseline by exactly the
//     xa_node cache's growth in reserved bytes (those retained empty slabs).
// Anything else is leaked: objects still live, and bytes in use beyond that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"
#include "rcu/deferred_free.h"
#include "xarray/xarray.h"

namespace mslab::soak {

struct AllocSnapshot {
  std::size_t page_bytes_in_use;
  std::size_t node_live, node_slabs, node_bytes_reserved;  // the xa_node cache
};

inline SlabCache* node_cache() { return xa_detail::node_cache(sizeof(XArray::Node)); }

/// Waits for every deferred free, flushes the calling thread's node-cache
/// state, then reads the statistics. Not inside a read section.
inline AllocSnapshot snapshot() {
  rcu::barrier();
  SlabCache* nodes = node_cache();
  nodes->flush_thread_cache();
  const CacheStats cs = nodes->stats();
  return {PageAllocator::global().stats().bytes_in_use, cs.live_objects, cs.slabs, cs.bytes_reserved};
}

struct Leaks {
  std::uint64_t objects = 0;  // live objects left (owned caches + xa_node beyond the baseline)
  std::size_t bytes = 0;      // page bytes in use beyond baseline + retained empty node slabs
  std::uint64_t count() const { return objects + (bytes + 4095) / 4096; }  // objects + pages
};

/// Compares `after` with `before` (see the top of the file); `owned_live`
/// is what the owned caches still held just before their destroy().
inline Leaks compare(const AllocSnapshot& before, const AllocSnapshot& after, std::uint64_t owned_live) {
  Leaks l;
  l.objects = owned_live + (after.node_live > before.node_live ? after.node_live - before.node_live : 0);
  const std::size_t slab_bytes = node_cache()->stats().slab_bytes;
  const std::size_t kept = before.node_slabs > 1 ? before.node_slabs : 1;
  if (after.node_slabs > kept) l.bytes += (after.node_slabs - kept) * slab_bytes;
  const std::size_t retained =
      after.node_bytes_reserved > before.node_bytes_reserved ? after.node_bytes_reserved - before.node_bytes_reserved : 0;
  const std::size_t allowed = before.page_bytes_in_use + retained;
  if (after.page_bytes_in_use > allowed) l.bytes += after.page_bytes_in_use - allowed;
  return l;
}

inline void print(const AllocSnapshot& before, const AllocSnapshot& after, std::uint64_t owned_live) {
  std::printf("  baseline: page bytes in use %zu -> %zu; xa_node live %zu -> %zu, slabs %zu -> %zu (%zu -> %zu bytes); "
              "owned objects live at destroy %llu\n",
              before.page_bytes_in_use, after.page_bytes_in_use, before.node_live, after.node_live, before.node_slabs,
              after.node_slabs, before.node_bytes_reserved, after.node_bytes_reserved,
              static_cast<unsigned long long>(owned_live));
}

}  // namespace mslab::soak
