// Helpers for the node migration tests: the node cache of this fan-out, its
// registry entry, one slab driven through the two mobility phases by hand,
// and node/slab queries over arrays.
#pragma once

#include <set>
#include <span>
#include <vector>

#include "alloc/slab_cache.h"
#include "defrag/evacuate.h"
#include "defrag/registry.h"
#include "rcu/deferred_free.h"
#include "xa_test_util.h"

namespace mslab::xatest {

inline SlabCache* node_slab_cache() { return xa_detail::node_cache(sizeof(XArray::Node)); }

/// The global registry's entry of this fan-out's node cache (a reference).
inline defrag::CacheRef node_cache_entry() {
  std::vector<defrag::CacheRef> refs;
  defrag::Registry::global().acquire_all(refs);
  for (defrag::CacheRef& r : refs)
    if (&r->cache() == node_slab_cache()) return std::move(r);
  return {};
}

/// Node addresses of `xa`, under its lock.
template <class Array>
std::vector<const void*> nodes_of(const Array& xa) {
  std::vector<const void*> out;
  xa.for_each_node([&](const void* n) { out.push_back(n); });
  return out;
}

template <class Array>
std::size_t nodes_in_slab(const Array& xa, const detail::Slab* slab) {
  std::size_t n = 0;
  xa.for_each_node([&](const void* node) { n += detail::slab_of(node) == slab; });
  return n;
}

/// One isolated slab of the node cache, phase by phase.
struct SlabDriver {
  defrag::CacheRef entry = node_cache_entry();
  SlabCache* cache = node_slab_cache();
  std::vector<void*> scratch = std::vector<void*>(cache->objects_per_slab());
  detail::Slab* slab = nullptr;
  std::size_t listed = 0;

  /// Isolates `s` and runs phase 1; on refusal the slab goes back to the lists.
  bool phase1(detail::Slab* s) {
    REQUIRE(entry);
    slab = s;
    cache->flush_thread_cache();
    REQUIRE(cache->isolate(s));
    listed = 0;
    auto fn = [](void* ctx, std::span<void*> objects) noexcept {
      const defrag::MobilityOps& ops = static_cast<SlabDriver*>(ctx)->entry->ops();
      return ops.can_free(objects, ops.cookie);
    };
    const bool agreed = cache->pin_isolated(s, scratch, fn, this, &listed);
    if (!agreed) cache->release_isolated(s);
    return agreed;
  }
  void phase2() {
    const defrag::MobilityOps& ops = entry->ops();
    ops.reclaim(std::span<void*>(scratch).first(listed), ops.cookie);
  }
  /// Waits for the deferred frees and releases the slab; true if it was freed.
  bool finish() {
    const defrag::PendingSlab p{slab, listed};
    return defrag::finish_pending(*cache, {&p, 1}).freed == 1;
  }
};

/// Evacuates the slab holding `node` through both phases and its release,
/// as the defragmenter does (skipped if the slab cannot be isolated).
/// `scratch` holds objects_per_slab() pointers.
inline void evacuate_slab_of(defrag::MovableCache& entry, const void* node, std::span<void*> scratch) {
  SlabCache* cache = node_slab_cache();
  detail::Slab* s = detail::slab_of(node);
  cache->flush_thread_cache();
  if (!cache->isolate(s)) return;
  const defrag::SlabResult r = defrag::evacuate_slab(entry, s, scratch);
  if (r.outcome == defrag::SlabOutcome::kPending) {
    const defrag::PendingSlab p{s, r.listed};
    defrag::finish_pending(*cache, {&p, 1});
  }
}

/// Starts every test from a quiet node cache: earlier deferred frees done,
/// this thread's buffers flushed.
inline void quiesce_nodes() {
  rcu::barrier();
  detail::flush_thread_heap();
  node_slab_cache()->flush_thread_cache();
}

}  // namespace mslab::xatest
