// XArray node migration, the non-template half: the "xa_node" slab caches
// registered as movable with the defragmenter, the two mobility callbacks
// that work on any node size, and the existence guarantee an XArray gives
// its nodes' migration (xa_detail::ArrayAnchor, a private base of
// BasicXArray). The per-array half — copy, reparent, publish under the
// array's lock — is a template (xarray_impl/migrate.h). See docs/xarray.md
// "Node migration".
//
// Phase 1 (under the node cache's lock; never blocks): per listed node,
//   building (allocated or preallocated by a writer, not in a tree) → busy,
//     the pins taken so far are dropped and the slab is refused;
//   waiting for RCU free → nothing to do (the defragmenter waits for the
//     grace period: the cache is registered with defers_free);
//   in a tree → pin: one reference on its array (ArrayAnchor::pins_), and the
//     entry of `objects` is tagged (low bit) so that phase 2 knows which nodes
//     carry a reference. Phase 2 receives the span phase 1 left.
// Phase 2 (no allocator lock): per tagged node, the array's migrate function
// moves it if it is still in the tree, then the pin is dropped.
//
// Existence guarantee: an array's destructor, after clear() has marked
// every node "waiting for RCU free", waits one grace period (phase 1 pins
// inside a read section, so every pin taken on a node it saw in the tree is
// visible after it) and then until its pins are back to zero. Readers are
// not affected: they never touch the pins.
// Depends on: defrag/ (registry), rcu/, alloc/slab_cache.h, xarray/node.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "xarray/node.h"

namespace mslab {

class SlabCache;

/// Process-wide counts of node migration (all arrays, all node sizes).
struct XaMigrationStats {
  std::uint64_t moved;       // nodes copied and republished
  std::uint64_t gone;        // pinned nodes erased or destroyed before phase 2 reached them
  std::uint64_t no_memory;   // replacement could not be allocated: left in place
  std::uint64_t refused;     // phase 1 calls that answered busy (a node being built)
};

/// Thread-safe, lock-free; monotonic counts.
XaMigrationStats xa_migration_stats() noexcept;

namespace xa_detail {

// Node fields phase 1 reads without knowing the fan-out: their offsets are
// the same in every XaNode<Shift> (checked in xarray_impl/migrate.h).
inline constexpr std::size_t kNodeStateOffset = 4;
inline constexpr std::size_t kNodeArrayOffset = 16;

/// The state word of a node that may have been freed concurrently (its slab
/// is isolated, so it stays mapped; under ASan it is poisoned, hence an
/// uninstrumented load). Acquire: pairs with the writer's release store.
XaNodeState load_node_state(const void* node) noexcept;

/// Deferred-free callback for a migrated-away node: free_direct() into its
/// slab cache, so that the isolated slab's record is exact at once.
void free_node_direct(void* node) noexcept;

/// Makes an "xa_node" cache movable in defrag::Registry::global(). Called
/// once per cache by node_cache() when it creates the cache. Returns false
/// when out of memory (the nodes then simply never move).
bool register_node_cache(SlabCache* cache) noexcept;

/// What every XArray is to its nodes' migration: the owner a node records
/// (XaNode::array points here), a reference count taken by phase 1 and
/// dropped by phase 2, and the array's migrate function.
class ArrayAnchor {
 public:
  enum class Migrated { kMoved, kGone, kNoMemory };
  /// Phase 2 for one node of this array: moves it if it is still in the
  /// tree (kGone if it was erased or the array cleared since phase 1).
  /// Takes the array's lock; allocates.
  using MigrateFn = Migrated (*)(ArrayAnchor* array, void* node) noexcept;

  ArrayAnchor(const ArrayAnchor&) = delete;
  ArrayAnchor& operator=(const ArrayAnchor&) = delete;

 protected:
  /// `migrate` nullptr: the nodes do not come from the movable caches.
  explicit ArrayAnchor(MigrateFn migrate) noexcept : migrate_(migrate) {}
  ~ArrayAnchor() = default;

  /// The owner a new node records; called under the array lock.
  const void* node_owner() noexcept {
    published_ = true;
    return this;
  }

  /// The existence guarantee, called by the array's destructor after
  /// clear(): if a node of this array was ever in a tree, waits a grace
  /// period, then until no phase 2 holds a pin. Blocks (bounded by one
  /// node migration); must not be called inside a read section.
  void wait_unpinned() noexcept;

 private:
  friend struct NodeMobility;  // the callbacks (node_mobility.cpp)

  MigrateFn migrate_;
  std::atomic<long> pins_{0};
  bool published_ = false;  // under the array lock
};

}  // namespace xa_detail
}  // namespace mslab
