// XArray node migration, the non-template half (node_mobility.h): the
// mobility callbacks of the "xa_node" caches and the array's existence
// guarantee. Phase 1 and phase 2 read nodes that may have been freed
// meanwhile (their slab is isolated: mapped, never reused) — under ASan
// such a node is poisoned, hence the uninstrumented accessors below.
#include "xarray/node_mobility.h"

#include <span>
#include <thread>

#include "alloc/slab_cache.h"
#include "defrag/registry.h"
#include "rcu/rcu.h"

namespace mslab {
namespace xa_detail {
namespace {

std::atomic<std::uint64_t> g_moved{0}, g_gone{0}, g_no_memory{0}, g_refused{0};

__attribute__((no_sanitize("address"))) std::uint8_t load_state_byte(const void* node) noexcept {
  return __atomic_load_n(static_cast<const std::uint8_t*>(node) + kNodeStateOffset, __ATOMIC_ACQUIRE);
}

__attribute__((no_sanitize("address"))) ArrayAnchor* load_node_array(const void* node) noexcept {
  const auto* word = reinterpret_cast<const std::uintptr_t*>(static_cast<const char*>(node) + kNodeArrayOffset);
  return reinterpret_cast<ArrayAnchor*>(__atomic_load_n(word, __ATOMIC_RELAXED));
}

// Phase 1 marks the entries it pinned by the low bit (nodes are 64-byte aligned).
constexpr std::uintptr_t kPinned = 1;
bool is_pinned(const void* p) noexcept { return (reinterpret_cast<std::uintptr_t>(p) & kPinned) != 0; }
void* tag(void* p) noexcept { return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) | kPinned); }
void* untag(void* p) noexcept { return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~kPinned); }

}  // namespace

XaNodeState load_node_state(const void* node) noexcept { return static_cast<XaNodeState>(load_state_byte(node)); }

// The mobility callbacks; a friend of ArrayAnchor.
struct NodeMobility {
  // Takes a pin on the node's array if the node is in a tree (inside phase
  // 1's read section).
  static bool pin(void* node) noexcept {
    if (load_node_state(node) != XaNodeState::kInTree) return false;
    ArrayAnchor* array = load_node_array(node);
    if (array == nullptr || array->migrate_ == nullptr) return false;  // not movable: treated as busy
    array->pins_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  static void unpin(void* node) noexcept { load_node_array(node)->pins_.fetch_sub(1, std::memory_order_release); }

  // Phase 1, under the cache lock.
  static bool can_free(std::span<void*> nodes, void*) noexcept {
    // The read section is what the destructor's grace period waits for: a
    // node seen in the tree here has its pin visible to the teardown.
    rcu::ReadGuard guard;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (pin(nodes[i])) {
        nodes[i] = tag(nodes[i]);
        continue;
      }
      if (load_node_state(nodes[i]) == XaNodeState::kRcuFree) continue;  // only its grace period
      for (std::size_t j = 0; j < i; ++j)  // busy: take nothing
        if (is_pinned(nodes[j])) {
          nodes[j] = untag(nodes[j]);
          unpin(nodes[j]);
        }
      g_refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  // Phase 2, no allocator lock.
  static void reclaim(std::span<void*> nodes, void*) noexcept {
    for (void*& p : nodes) {
      if (!is_pinned(p)) continue;
      p = untag(p);
      ArrayAnchor* array = load_node_array(p);
      switch (array->migrate_(array, p)) {
        case ArrayAnchor::Migrated::kMoved: g_moved.fetch_add(1, std::memory_order_relaxed); break;
        case ArrayAnchor::Migrated::kGone: g_gone.fetch_add(1, std::memory_order_relaxed); break;
        case ArrayAnchor::Migrated::kNoMemory: g_no_memory.fetch_add(1, std::memory_order_relaxed); break;
      }
      // The last touch of the array: its destructor may free it once it sees 0.
      array->pins_.fetch_sub(1, std::memory_order_release);
    }
  }
};

void free_node_direct(void* node) noexcept {
  if (SlabCache* cache = SlabCache::cache_of(node)) cache->free_direct(node);
}

bool register_node_cache(SlabCache* cache) noexcept {
  defrag::MobilityOps ops;
  ops.can_free = &NodeMobility::can_free;
  ops.reclaim = &NodeMobility::reclaim;
  ops.defers_free = true;  // old nodes are retired through rcu::defer_free
  return defrag::Registry::global().add(cache, ops) != nullptr;
}

void ArrayAnchor::wait_unpinned() noexcept {
  if (migrate_ == nullptr || !published_) return;
  rcu::synchronize();
  while (pins_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

}  // namespace xa_detail

XaMigrationStats xa_migration_stats() noexcept {
  using namespace xa_detail;
  return {g_moved.load(std::memory_order_relaxed), g_gone.load(std::memory_order_relaxed),
          g_no_memory.load(std::memory_order_relaxed), g_refused.load(std::memory_order_relaxed)};
}

}  // namespace mslab
