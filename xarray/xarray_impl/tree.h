// XArray tree shape, writer side: the node pool, creating the path to a
// slot (growing the tree on top: xas_expand / xas_create), finding the slot
// of an entry (siblings resolved), and freeing nodes again (xas_delete_node,
// xas_shrink, xas_free_nodes). Everything here runs under the array lock.
// New nodes are fully initialised before the release store that links them
// in (the head or a parent slot); readers acquire-load those words
// (read.h). Unlinked nodes go to retire(): state kRcuFree, then deferred
// free after a grace period.
#pragma once

#include <cstdlib>
#include <new>

namespace mslab {

// ---- Node pool ------------------------------------------------------------

template <unsigned Shift, class A>
bool BasicXArray<Shift, A>::NodePool::fill(unsigned count) noexcept {
  for (unsigned i = 0; i < count; ++i) {
    void* memory = A::allocate(sizeof(Node));
    if (memory == nullptr) {
      drain();
      return false;
    }
    nodes[n++] = new (memory) Node();
  }
  return true;
}

template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Node* BasicXArray<Shift, A>::NodePool::take() noexcept {
  if (n == 0) std::abort();  // nodes_needed() undercounted: a bug, never bad input
  return nodes[--n];
}

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::NodePool::drain() noexcept {
  while (n != 0) A::free_now(nodes[--n]);  // never published: no grace period needed
}

template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Node* BasicXArray<Shift, A>::new_node(NodePool& pool, unsigned shift,
                                                                      unsigned offset, Node* parent) noexcept {
  Node* node = pool.take();
  node->shift = static_cast<std::uint8_t>(shift);
  node->offset = static_cast<std::uint8_t>(offset);
  node->parent.store(parent, std::memory_order_relaxed);
  node->array.store(this->node_owner(), std::memory_order_relaxed);  // the ArrayAnchor
  // Every slot of a new node is empty, hence free (xas_alloc's node_mark_all).
  if (track_free()) node->marks[kXaFreeMark].store(Node::slot_mask(shift), std::memory_order_relaxed);
  // In the tree from the caller's publishing store on; the defragmenter
  // re-checks the state under lock_, which we hold until then.
  node->state.store(XaNodeState::kInTree, std::memory_order_release);
  nodes_.fetch_add(1, std::memory_order_relaxed);
  return node;
}

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::retire(Node* node) noexcept {
  node->state.store(XaNodeState::kRcuFree, std::memory_order_release);
  nodes_.fetch_sub(1, std::memory_order_relaxed);
  A::free_deferred(node);  // readers still inside it stay safe until they leave
}

// ---- Creating the path ----------------------------------------------------

template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::shift_for(unsigned long index) noexcept {
  unsigned s = 0;
  while (index > Node::max_index(s)) s += Shift;
  return s;
}

// The top shift a store of [index, last] whose entry goes into a node of
// shift `target` needs: the tree must reach `last` and have that level.
template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::top_for(unsigned long last, unsigned target) noexcept {
  const unsigned top = shift_for(last);
  return top > target ? top : target;
}

// How many nodes a store of a non-empty entry covering [index, last] into a
// node of shift `target` may create: new top levels (xas_expand) plus
// missing nodes on the path down (xas_create). Exact for order-0 stores;
// it may count a few too many when an old head entry moves down into the
// same path (the writer frees what it did not use).
template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::nodes_needed(unsigned long index, unsigned target,
                                             unsigned long last) const noexcept {
  const Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) {
    if (last == 0) return 0;  // an order-0 entry at index 0 lives in the head itself
    const unsigned top = top_for(last, target);
    // An existing index-0 entry moves into a new leaf, which grows up to
    // `top`; from `top` down the path to `index` is new.
    return head == 0 ? (top - target) / Shift + 1 : (top / Shift + 1) + (top - target) / Shift;
  }
  const Node* node = Node::from_raw(head);
  if (last > Node::max_index(node->shift) || target > node->shift) {
    const unsigned top = top_for(last, target);
    return (top - node->shift) / Shift + (top - target) / Shift;
  }
  while (node->shift > target) {
    const Raw e = node->slots[(index >> node->shift) & Node::kMask].load(std::memory_order_relaxed);
    if (e == 0) return (node->shift - target) / Shift;
    if (!xa_detail::is_node(e)) return 0;  // a larger entry covers index: the store goes there
    node = Node::from_raw(e);
  }
  return 0;
}

// A node of `shift` whose slot 0 holds `slot0` (the old top), with the old
// top's marks carried up as "marked below" bits.
template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Node* BasicXArray<Shift, A>::add_level(NodePool& pool, Node* below,
                                                                       unsigned shift, Raw slot0) noexcept {
  Node* up = new_node(pool, shift, 0, nullptr);
  up->slots[0].store(slot0, std::memory_order_relaxed);  // published by the caller's head store
  up->count = 1;
  up->nr_values = xa_detail::is_value(slot0) ? 1 : 0;
  const unsigned flags = root_marks_.load(std::memory_order_relaxed);
  for (XaMark m = 0; m < kXaMarks; ++m)
    if (user_mark(m) && ((flags >> m) & 1)) up->marks[m].store(1, std::memory_order_relaxed);
  // Free mark: slot 0 is free below iff the old top node has a free slot (an
  // old head entry is busy); the other slots are empty, hence free.
  if (track_free() && (below == nullptr || below->marks[kXaFreeMark].load(std::memory_order_relaxed) == 0))
    up->marks[kXaFreeMark].fetch_and(~std::uint64_t{1}, std::memory_order_relaxed);
  if (below != nullptr) {
    // Release: a reader that climbs from `below` to `up` (find_raw) sees it
    // initialised. `below` is the old root: its offset is 0 already.
    below->parent.store(up, std::memory_order_release);
  }
  return up;
}

// Makes the path for an entry covering [index, last] in a node of shift
// `target` and returns where it goes: *node = nullptr and the head (an
// order-0 entry at index 0 in an array without nodes), or the node and the
// offset of the slot that will hold the entry. If a larger entry already
// covers index (a sibling, or an entry in a node above `target`), that
// entry's node and canonical slot are returned: the store updates it.
template <unsigned Shift, class A>
std::atomic<typename BasicXArray<Shift, A>::Raw>* BasicXArray<Shift, A>::create_slot(
    unsigned long index, unsigned target, unsigned long last, NodePool& pool, Node** node_out,
    unsigned* offset) noexcept {
  Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) {
    if (last == 0) {
      *node_out = nullptr;
      return &head_;
    }
    const unsigned top = top_for(last, target);
    Node* node;
    if (head == 0) {
      node = new_node(pool, top, 0, nullptr);
    } else {  // the index-0 entry moves into a leaf; grow up to `top`
      node = add_level(pool, nullptr, 0, head);
      for (unsigned s = Shift; s <= top; s += Shift) node = add_level(pool, node, s, node->to_raw());
    }
    head = node->to_raw();
    head_.store(head, std::memory_order_release);  // pairs with the readers' head acquire
  } else if (Node* root = Node::from_raw(head); last > Node::max_index(root->shift) || target > root->shift) {
    const unsigned top = top_for(last, target);
    Node* node = root;
    for (unsigned s = root->shift + Shift; s <= top; s += Shift) node = add_level(pool, node, s, node->to_raw());
    head = node->to_raw();
    head_.store(head, std::memory_order_release);  // pairs with the readers' head acquire
  }
  Node* node = Node::from_raw(head);
  for (;;) {
    unsigned off = (index >> node->shift) & Node::kMask;
    Raw e = node->slots[off].load(std::memory_order_relaxed);
    if (xa_detail::is_sibling(e)) off = xa_detail::sibling_offset(e);
    if (node->shift == target || xa_detail::is_sibling(e) || (e != 0 && !xa_detail::is_node(e))) {
      *node_out = node;
      *offset = off;
      return &node->slots[off];
    }
    if (e == 0) {
      Node* child = new_node(pool, node->shift - Shift, off, node);
      e = child->to_raw();
      node->slots[off].store(e, std::memory_order_release);  // pairs with the readers' slot acquire
      ++node->count;
    }
    node = Node::from_raw(e);
  }
}

// The slot of the entry covering `index` (siblings resolved to the
// canonical slot), or the empty slot where the walk ended; nullptr when
// the path does not exist. *node = nullptr for the head.
template <unsigned Shift, class A>
std::atomic<typename BasicXArray<Shift, A>::Raw>* BasicXArray<Shift, A>::locate(unsigned long index, Node** node_out,
                                                                                unsigned* offset) noexcept {
  const Raw head = head_.load(std::memory_order_relaxed);
  *node_out = nullptr;
  *offset = 0;
  if (!xa_detail::is_node(head)) return index == 0 ? &head_ : nullptr;
  Node* node = Node::from_raw(head);
  if (index > Node::max_index(node->shift)) return nullptr;
  for (;;) {
    unsigned off = (index >> node->shift) & Node::kMask;
    Raw e = node->slots[off].load(std::memory_order_relaxed);
    if (xa_detail::is_sibling(e)) {
      off = xa_detail::sibling_offset(e);
      e = node->slots[off].load(std::memory_order_relaxed);
    }
    if (!xa_detail::is_node(e)) {
      *node_out = node;
      *offset = off;
      return &node->slots[off];
    }
    node = Node::from_raw(e);
  }
}

// How many slots the entry whose canonical slot is `off` spans in `node`.
template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::extent(const Node* node, unsigned off) noexcept {
  const Raw sibling = xa_detail::make_sibling(off);
  unsigned n = 1;
  while (off + n < Node::kSlots && node->slots[off + n].load(std::memory_order_relaxed) == sibling) ++n;
  return n;
}

// ---- Freeing nodes --------------------------------------------------------

// Frees empty nodes bottom-up (xas_delete_node), then shrinks the top.
// A reader still inside a freed node only reads empty slots: correct, as
// the entries it would have found were erased.
template <unsigned Shift, class A>
void BasicXArray<Shift, A>::delete_empty(Node* node) noexcept {
  while (node->count == 0) {
    Node* parent = node->parent.load(std::memory_order_relaxed);
    if (parent == nullptr) {
      root_marks_.store(0, std::memory_order_relaxed);
      head_.store(0, std::memory_order_release);
      retire(node);
      return;
    }
    parent->slots[node->offset].store(0, std::memory_order_release);
    --parent->count;
    retire(node);
    node = parent;
  }
  shrink();
}

// While the root has a single entry, in slot 0, that entry becomes the head
// (xas_shrink). A leaf entry left in the old root is replaced by a retry
// entry, so a reader inside it restarts rather than keep using a node that
// is no longer the tree; a child node stays (it is still valid and current).
// An entry in an inner root is a multi-index entry and stays: the head
// stands for index 0 alone.
template <unsigned Shift, class A>
void BasicXArray<Shift, A>::shrink() noexcept {
  for (;;) {
    const Raw head = head_.load(std::memory_order_relaxed);
    if (!xa_detail::is_node(head)) return;
    Node* node = Node::from_raw(head);
    if (node->count != 1) return;
    const Raw e = node->slots[0].load(std::memory_order_relaxed);
    if (e == 0 || (!xa_detail::is_node(e) && node->shift != 0)) return;
    if (xa_detail::is_node(e)) Node::from_raw(e)->parent.store(nullptr, std::memory_order_relaxed);
    // root_marks_ is unchanged: slot 0 held the only (possibly marked) entry.
    head_.store(e, std::memory_order_release);  // pairs with the readers' head acquire
    if (!xa_detail::is_node(e)) node->slots[0].store(xa_detail::kRetry, std::memory_order_release);
    node->count = 0;
    retire(node);
  }
}

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::free_subtree(Node* node) noexcept {
  for (auto& slot : node->slots) {
    const Raw e = slot.load(std::memory_order_relaxed);
    if (e == 0) continue;
    if (xa_detail::is_node(e)) free_subtree(Node::from_raw(e));
    slot.store(xa_detail::kRetry, std::memory_order_release);  // readers inside restart (xas_free_nodes)
  }
  retire(node);
}

}  // namespace mslab
