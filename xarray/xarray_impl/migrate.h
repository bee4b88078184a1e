// XArray node migration, the per-array half: phase 2 for one node (the
// defragmenter calls it through the array's ArrayAnchor, node_mobility.h),
// and the node walk the tests use.
//
// migrate_node, with no allocator lock held: a replacement from
// alloc_direct() (never from an isolated slab) → the array lock → re-check
// that the node is still in this tree → copy every field → point the
// children's parent at the copy (non-leaf nodes only: leaf slots are
// entries; release stores, as readers climb parent pointers) → publish
// the copy in the parent's slot or the head with a release store → mark
// the old node kRcuFree → unlock → rcu::defer_free the old node. Its slots
// are left as they were, so an RCU reader inside it keeps reading the
// snapshot from before the move, and its children stay alive.
#pragma once

#include <cstddef>
#include <new>

#include "alloc/slab_cache.h"

namespace mslab {

template <unsigned Shift, class A>
xa_detail::ArrayAnchor::Migrated BasicXArray<Shift, A>::migrate_node(xa_detail::ArrayAnchor* anchor,
                                                                      void* victim) noexcept {
  static_assert(offsetof(Node, state) == xa_detail::kNodeStateOffset, "node_mobility.h reads the state here");
  static_assert(offsetof(Node, array) == xa_detail::kNodeArrayOffset, "node_mobility.h reads the owner here");
  using Migrated = xa_detail::ArrayAnchor::Migrated;
  auto* self = static_cast<BasicXArray*>(anchor);
  auto* old = static_cast<Node*>(victim);
  SlabCache* cache = SlabCache::cache_of(old);
  void* memory = cache != nullptr ? cache->alloc_direct() : nullptr;
  if (memory == nullptr) return Migrated::kNoMemory;
  {
    std::lock_guard guard(self->lock_);
    // Erased, or the array cleared, since phase 1: the node may already be
    // freed (read without instrumentation); it is not copied.
    if (xa_detail::load_node_state(old) != XaNodeState::kInTree) {
      cache->free_direct(memory);
      return Migrated::kGone;
    }
    Node* copy = new (memory) Node();
    copy->shift = old->shift;
    copy->offset = old->offset;
    copy->count = old->count;
    copy->nr_values = old->nr_values;
    Node* parent = old->parent.load(std::memory_order_relaxed);
    copy->parent.store(parent, std::memory_order_relaxed);
    copy->array.store(old->array.load(std::memory_order_relaxed), std::memory_order_relaxed);
    for (unsigned i = 0; i < Node::kSlots; ++i)
      copy->slots[i].store(old->slots[i].load(std::memory_order_relaxed), std::memory_order_relaxed);
    for (XaMark m = 0; m < kXaMarks; ++m)
      copy->marks[m].store(old->marks[m].load(std::memory_order_relaxed), std::memory_order_relaxed);
    copy->state.store(XaNodeState::kInTree, std::memory_order_relaxed);
    if (copy->shift != 0) {  // only node pointers: inner slots may also hold multi-index entries
      for (unsigned i = 0; i < Node::kSlots; ++i) {
        const Raw e = copy->slots[i].load(std::memory_order_relaxed);
        // Release: a reader climbing from the child (find_raw follows parent
        // pointers with acquire) must see the copy fully built, even before
        // the copy is published below.
        if (xa_detail::is_node(e)) Node::from_raw(e)->parent.store(copy, std::memory_order_release);
      }
    }
    // Release: the copy's contents before the word that leads to it; pairs
    // with the readers' head/slot acquire loads.
    if (parent == nullptr) self->head_.store(copy->to_raw(), std::memory_order_release);
    else parent->slots[copy->offset].store(copy->to_raw(), std::memory_order_release);
    old->state.store(XaNodeState::kRcuFree, std::memory_order_release);
  }
  rcu::defer_free(old, &xa_detail::free_node_direct);
  return Migrated::kMoved;
}

template <unsigned Shift, class A>
template <class Fn>
void BasicXArray<Shift, A>::for_each_node(Fn&& fn) const {
  std::lock_guard guard(lock_);
  const Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) return;
  const Node* stack[kMaxLevels * Node::kSlots];
  std::size_t n = 0;
  stack[n++] = Node::from_raw(head);
  while (n != 0) {
    const Node* node = stack[--n];
    fn(static_cast<const void*>(node));
    if (node->shift == 0) continue;
    for (const auto& slot : node->slots) {
      const Raw e = slot.load(std::memory_order_relaxed);
      if (xa_detail::is_node(e)) stack[n++] = Node::from_raw(e);
    }
  }
}

}  // namespace mslab
