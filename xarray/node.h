// The XArray node: one level of the radix tree, 2^Shift slots.
//
// Fields read by lock-free readers (slots, marks) are atomics; the state
// field is atomic too because node migration reads it from phase 1 without
// the array's lock (xarray/node_mobility.h). Everything else changes only
// under the array's lock. See docs/xarray.md for the layout.
#pragma once

#include <atomic>
#include <cstdint>

#include "xarray/entry.h"

// Fan-out of a node is 2^MSLAB_XA_CHUNK_SHIFT slots (default 64). The test
// suite also builds with 3 (8 slots) so that trees are deep.
#ifndef MSLAB_XA_CHUNK_SHIFT
#define MSLAB_XA_CHUNK_SHIFT 6
#endif

namespace mslab {

/// Life cycle of a node (design §4). kBuilding is 0 so that a node whose
/// memory was just zeroed (the slab cache's constructor) reads as "not in a
/// tree".
enum class XaNodeState : std::uint8_t {
  kBuilding = 0,  // allocated by a writer, not yet reachable
  kInTree = 1,    // reachable from its array's head
  kRcuFree = 2,   // unlinked; freed after a grace period
};

template <unsigned Shift>
struct XaNode {
  static_assert(Shift >= 1 && Shift <= 6, "mark bitmaps are one 64-bit word per node");
  static constexpr unsigned kSlots = 1u << Shift;
  static constexpr std::uintptr_t kMask = kSlots - 1;

  // --- set before publication, then changed only under the array lock.
  std::uint8_t shift = 0;      // index bits below this node (0 = leaf)
  std::uint8_t offset = 0;     // slot number in the parent
  std::uint8_t count = 0;      // non-empty slots (entries, reserved, children)
  std::uint8_t nr_values = 0;  // value entries among them
  std::atomic<XaNodeState> state{XaNodeState::kBuilding};
  std::atomic<XaNode*> parent{nullptr};   // nullptr at the top of the tree
  std::atomic<const void*> array{nullptr};  // the owning XArray

  // --- read by RCU readers. Slots hold encoded entries (entry.h); a
  // reader loads them with acquire, pairing with the writer's release store
  // that published the entry or child node.
  std::atomic<std::uintptr_t> slots[kSlots];
  // marks[m] bit i: slot i is marked (leaf) / has a marked entry below (inner).
  std::atomic<std::uint64_t> marks[kXaMarks];

  XaNode() noexcept {
    for (auto& s : slots) s.store(0, std::memory_order_relaxed);
    for (auto& m : marks) m.store(0, std::memory_order_relaxed);
  }

  /// Highest index below a node of `shift` (saturates at ULONG_MAX).
  static constexpr unsigned long max_index(unsigned shift) noexcept {
    return shift + Shift >= 64 ? ~0UL : (1UL << (shift + Shift)) - 1;
  }
  /// Bitmap of the slots of a node of `shift` that hold real indices: all
  /// of them, except in a top node whose range would pass ULONG_MAX.
  static constexpr std::uint64_t slot_mask(unsigned shift) noexcept {
    const unsigned n = shift + Shift > 64 ? 1u << (64 - shift) : kSlots;
    return n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
  }
  static XaNode* from_raw(std::uintptr_t raw) noexcept { return reinterpret_cast<XaNode*>(raw - 2); }
  std::uintptr_t to_raw() const noexcept { return reinterpret_cast<std::uintptr_t>(this) | 2; }

  bool get_mark(unsigned offset_, XaMark m) const noexcept {
    return (marks[m].load(std::memory_order_relaxed) >> offset_) & 1;
  }
};

}  // namespace mslab
