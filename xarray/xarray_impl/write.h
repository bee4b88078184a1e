// XArray writer side: store/erase/insert/cmpxchg/reserve, marks, clear.
// Every function here runs under the array lock (lock_). A writer first
// allocates every node it may need (NodePool), so running out of memory
// leaves the array untouched. New nodes are fully initialised before the
// release store that links them in (the head or a parent slot); readers
// acquire-load those words (read.h). Unlinked nodes go to retire(): state
// kRcuFree, then deferred free after a grace period.
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

// ---- Walking --------------------------------------------------------------

template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::shift_for(unsigned long index) noexcept {
  unsigned s = 0;
  while (index > Node::max_index(s)) s += Shift;
  return s;
}

// How many nodes a store of a non-empty entry at `index` creates: new top
// levels (xas_expand) plus missing nodes on the path down (xas_create).
template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::nodes_needed(unsigned long index) const noexcept {
  const Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) {
    if (index == 0) return 0;  // the entry lives in the head itself
    const unsigned top = shift_for(index);
    // An existing index-0 entry moves into a new leaf, which grows up to
    // `top`; below `top` the path to `index` diverges from slot 0.
    return head == 0 ? top / Shift + 1 : (top / Shift + 1) + top / Shift;
  }
  const Node* node = Node::from_raw(head);
  if (index > Node::max_index(node->shift)) {
    const unsigned top = shift_for(index);
    return (top - node->shift) / Shift + top / Shift;
  }
  for (;;) {
    if (node->shift == 0) return 0;
    const Raw e = node->slots[(index >> node->shift) & Node::kMask].load(std::memory_order_relaxed);
    if (e == 0) return node->shift / Shift;
    node = Node::from_raw(e);
  }
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
    if ((flags >> m) & 1) up->marks[m].store(1, std::memory_order_relaxed);
  if (below != nullptr) {
    below->parent.store(up, std::memory_order_relaxed);
    below->offset = 0;
  }
  return up;
}

template <unsigned Shift, class A>
std::atomic<typename BasicXArray<Shift, A>::Raw>* BasicXArray<Shift, A>::create_slot(unsigned long index,
                                                                                     NodePool& pool,
                                                                                     Node** leaf) noexcept {
  Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) {
    if (index == 0) {
      *leaf = nullptr;
      return &head_;
    }
    const unsigned top = shift_for(index);
    Node* node;
    if (head == 0) {
      node = new_node(pool, top, 0, nullptr);
    } else {  // the index-0 entry moves into a leaf; grow up to `top`
      node = add_level(pool, nullptr, 0, head);
      for (unsigned s = Shift; s <= top; s += Shift) node = add_level(pool, node, s, node->to_raw());
    }
    head = node->to_raw();
    head_.store(head, std::memory_order_release);  // pairs with the readers' head acquire
  } else if (Node* root = Node::from_raw(head); index > Node::max_index(root->shift)) {
    const unsigned top = shift_for(index);
    Node* node = root;
    for (unsigned s = root->shift + Shift; s <= top; s += Shift) node = add_level(pool, node, s, node->to_raw());
    head = node->to_raw();
    head_.store(head, std::memory_order_release);  // pairs with the readers' head acquire
  }
  Node* node = Node::from_raw(head);
  for (;;) {
    const unsigned off = (index >> node->shift) & Node::kMask;
    if (node->shift == 0) {
      *leaf = node;
      return &node->slots[off];
    }
    Raw e = node->slots[off].load(std::memory_order_relaxed);
    if (e == 0) {
      Node* child = new_node(pool, node->shift - Shift, off, node);
      e = child->to_raw();
      node->slots[off].store(e, std::memory_order_release);  // pairs with the readers' slot acquire
      ++node->count;
    }
    node = Node::from_raw(e);
  }
}

template <unsigned Shift, class A>
std::atomic<typename BasicXArray<Shift, A>::Raw>* BasicXArray<Shift, A>::find_slot(unsigned long index,
                                                                                   Node** leaf) noexcept {
  const Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) {
    *leaf = nullptr;
    return index == 0 ? &head_ : nullptr;
  }
  Node* node = Node::from_raw(head);
  if (index > Node::max_index(node->shift)) return nullptr;
  for (;;) {
    const unsigned off = (index >> node->shift) & Node::kMask;
    if (node->shift == 0) {
      *leaf = node;
      return &node->slots[off];
    }
    const Raw e = node->slots[off].load(std::memory_order_relaxed);
    if (e == 0) return nullptr;
    node = Node::from_raw(e);
  }
}

template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::load_locked(unsigned long index) noexcept {
  Node* leaf;
  std::atomic<Raw>* slot = find_slot(index, &leaf);
  return slot != nullptr ? slot->load(std::memory_order_relaxed) : 0;
}

// ---- Store and erase ------------------------------------------------------

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::store_locked(unsigned long index, Raw raw, Raw* old) noexcept {
  if (raw == 0) {
    *old = erase_locked(index);
    return XaError::kOk;
  }
  NodePool pool;
  if (!pool.fill(nodes_needed(index))) return XaError::kNoMemory;
  Node* leaf;
  std::atomic<Raw>* slot = create_slot(index, pool, &leaf);
  if (pool.n != 0) std::abort();  // nodes_needed() overcounted: a bug
  *old = slot->load(std::memory_order_relaxed);
  if (leaf != nullptr) {
    if (*old == 0) ++leaf->count;
    leaf->nr_values = static_cast<std::uint8_t>(leaf->nr_values + xa_detail::is_value(raw) - xa_detail::is_value(*old));
  }
  slot->store(raw, std::memory_order_release);  // pairs with the readers' slot/head acquire
  return XaError::kOk;
}

template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::erase_locked(unsigned long index) noexcept {
  Node* leaf;
  std::atomic<Raw>* slot = find_slot(index, &leaf);
  if (slot == nullptr) return 0;
  const Raw old = slot->load(std::memory_order_relaxed);
  if (old == 0) return 0;
  if (leaf == nullptr) {  // the head entry
    root_marks_.store(0, std::memory_order_relaxed);
    head_.store(0, std::memory_order_release);
    return old;
  }
  // Marks go first, as in xas_store: a marked search that still finds the
  // entry finds it unmarked or present, never a marked empty slot below.
  clear_marks_locked(leaf, index);
  slot->store(0, std::memory_order_release);
  --leaf->count;
  if (xa_detail::is_value(old)) --leaf->nr_values;
  if (leaf->count == 0) delete_empty(leaf);
  else shrink();
  return old;
}

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
template <unsigned Shift, class A>
void BasicXArray<Shift, A>::shrink() noexcept {
  for (;;) {
    const Raw head = head_.load(std::memory_order_relaxed);
    if (!xa_detail::is_node(head)) return;
    Node* node = Node::from_raw(head);
    if (node->count != 1) return;
    const Raw e = node->slots[0].load(std::memory_order_relaxed);
    if (e == 0) return;
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
    if (node->shift != 0) free_subtree(Node::from_raw(e));  // inner slots hold only nodes
    slot.store(xa_detail::kRetry, std::memory_order_release);  // readers inside restart (xas_free_nodes)
  }
  retire(node);
}

// ---- Marks ----------------------------------------------------------------

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::propagate_clear(Node* node, unsigned offset, XaMark m) noexcept {
  for (;;) {
    const std::uint64_t left =
        node->marks[m].fetch_and(~(std::uint64_t{1} << offset), std::memory_order_relaxed) & ~(std::uint64_t{1} << offset);
    if (left != 0) return;  // something else below is still marked
    Node* parent = node->parent.load(std::memory_order_relaxed);
    if (parent == nullptr) {
      root_marks_.fetch_and(~(1u << m), std::memory_order_relaxed);
      return;
    }
    offset = node->offset;
    node = parent;
  }
}

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::clear_marks_locked(Node* leaf, unsigned long index) noexcept {
  const unsigned off = index & Node::kMask;
  for (XaMark m = 0; m < kXaMarks; ++m)
    if (leaf->get_mark(off, m)) propagate_clear(leaf, off, m);
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::set_mark(unsigned long index, XaMark m) noexcept {
  if (m >= kXaMarks) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  Node* node;
  std::atomic<Raw>* slot = find_slot(index, &node);
  if (slot == nullptr) return XaError::kOk;
  const Raw e = slot->load(std::memory_order_relaxed);
  if (e == 0 || e == xa_detail::kZero) return XaError::kOk;
  if (node != nullptr) {
    unsigned off = index & Node::kMask;
    for (;;) {
      if (node->get_mark(off, m)) return XaError::kOk;  // already set: so is everything above
      node->marks[m].fetch_or(std::uint64_t{1} << off, std::memory_order_relaxed);
      Node* parent = node->parent.load(std::memory_order_relaxed);
      if (parent == nullptr) break;
      off = node->offset;
      node = parent;
    }
  }
  root_marks_.fetch_or(1u << m, std::memory_order_relaxed);
  return XaError::kOk;
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::clear_mark(unsigned long index, XaMark m) noexcept {
  if (m >= kXaMarks) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  Node* leaf;
  std::atomic<Raw>* slot = find_slot(index, &leaf);
  if (slot == nullptr || slot->load(std::memory_order_relaxed) == 0) return XaError::kOk;
  if (leaf == nullptr) root_marks_.fetch_and(~(1u << m), std::memory_order_relaxed);
  else if (leaf->get_mark(index & Node::kMask, m)) propagate_clear(leaf, index & Node::kMask, m);
  return XaError::kOk;
}

// ---- Public writers -------------------------------------------------------

template <unsigned Shift, class A>
XaResult BasicXArray<Shift, A>::store(unsigned long index, Entry entry) noexcept {
  if (!entry.valid()) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  Raw old = 0;
  if (const XaError err = store_locked(index, entry.raw(), &old); err != XaError::kOk) return err;
  return Entry::from_raw(old == xa_detail::kZero ? 0 : old);
}

template <unsigned Shift, class A>
Entry BasicXArray<Shift, A>::erase(unsigned long index) noexcept {
  std::lock_guard guard(lock_);
  const Raw old = erase_locked(index);
  return Entry::from_raw(old == xa_detail::kZero ? 0 : old);
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::insert(unsigned long index, Entry entry) noexcept {
  if (!entry.valid()) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  if (load_locked(index) != 0) return XaError::kBusy;
  Raw old;
  return store_locked(index, entry.empty() ? xa_detail::kZero : entry.raw(), &old);
}

template <unsigned Shift, class A>
XaResult BasicXArray<Shift, A>::compare_exchange(unsigned long index, Entry expected, Entry desired) noexcept {
  if (!expected.valid() || !desired.valid()) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  const Raw cur = load_locked(index);
  const Entry seen = Entry::from_raw(cur == xa_detail::kZero ? 0 : cur);
  if (seen != expected || cur == desired.raw()) return seen;
  Raw old;
  if (const XaError err = store_locked(index, desired.raw(), &old); err != XaError::kOk) return err;
  return seen;
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::reserve(unsigned long index) noexcept {
  std::lock_guard guard(lock_);
  if (load_locked(index) != 0) return XaError::kOk;
  Raw old;
  return store_locked(index, xa_detail::kZero, &old);
}

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::release(unsigned long index) noexcept {
  std::lock_guard guard(lock_);
  if (load_locked(index) == xa_detail::kZero) erase_locked(index);
}

template <unsigned Shift, class A>
void BasicXArray<Shift, A>::clear() noexcept {
  std::lock_guard guard(lock_);
  const Raw head = head_.load(std::memory_order_relaxed);
  root_marks_.store(0, std::memory_order_relaxed);
  head_.store(0, std::memory_order_release);
  if (xa_detail::is_node(head)) free_subtree(Node::from_raw(head));
}

}  // namespace mslab
