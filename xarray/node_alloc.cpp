// The process-wide "xa_node" slab caches, one per node size, created on
// first use. Nodes are never constructed by the cache: the XArray
// placement-constructs each node it allocates.
#include "xarray/node_alloc.h"

#include <atomic>
#include <cstring>
#include <mutex>

#include "alloc/slab_cache.h"
#include "xarray/node_mobility.h"

namespace mslab::xa_detail {
namespace {

// Node sizes in use are few (one per chunk shift compiled in); a small table
// looked up without a lock once filled.
constexpr int kMaxSizes = 8;
struct CacheSlot {
  std::atomic<std::size_t> bytes{0};
  std::atomic<SlabCache*> cache{nullptr};
};
CacheSlot g_caches[kMaxSizes];
std::mutex g_create_lock;

// Zeroed memory reads as XaNodeState::kBuilding: a node the defragmenter
// sees before its first use is "not in a tree".
void zero_node(void* object, void* arg) {
  const auto bytes = reinterpret_cast<std::size_t>(arg);
  std::memset(object, 0, bytes);
}

}  // namespace

SlabCache* node_cache(std::size_t bytes) noexcept {
  for (CacheSlot& s : g_caches) {
    SlabCache* c = s.cache.load(std::memory_order_acquire);
    if (c != nullptr && s.bytes.load(std::memory_order_relaxed) == bytes) return c;
  }
  std::lock_guard guard(g_create_lock);
  for (CacheSlot& s : g_caches) {
    SlabCache* c = s.cache.load(std::memory_order_relaxed);
    if (c == nullptr) {
      CacheOptions o;
      o.name = "xa_node";
      o.object_size = bytes;
      // 16, not a cache line: nodes (560 B at shift 6) then pack without
      // padding, 14 per 8 KiB slab instead of 13 on a 576-byte stride (7 %
      // less node memory). Entries need 4-byte alignment only, and a lookup
      // reads the header and one slot either way.
      o.align = 16;
      // Waste ≤ 1/32 of a slab, not 1/8: 29 nodes per 16 KiB slab instead of
      // 14 per 8 KiB (node slabs 1.047 -> 1.009 of the nodes they hold).
      // Nodes are movable, so the defragmenter keeps their slabs full and
      // bigger slabs cost little (design: CacheOptions::slab_waste).
      o.slab_waste = 32;
      o.ctor = &zero_node;
      o.ctor_arg = reinterpret_cast<void*>(bytes);
      c = SlabCache::create(o);
      if (c == nullptr) return nullptr;
      register_node_cache(c);  // movable from now on (out of memory: the nodes just stay put)
      s.bytes.store(bytes, std::memory_order_relaxed);
      s.cache.store(c, std::memory_order_release);  // pairs with the acquire above
      return c;
    }
    if (s.bytes.load(std::memory_order_relaxed) == bytes) return c;
  }
  return nullptr;  // more node sizes than slots: cannot happen with one shift per build
}

void* node_cache_alloc(std::size_t bytes) noexcept {
  SlabCache* c = node_cache(bytes);
  return c != nullptr ? c->alloc() : nullptr;
}

void node_cache_free(void* p) noexcept {
  if (SlabCache* c = SlabCache::cache_of(p)) c->free(p);
}

}  // namespace mslab::xa_detail
