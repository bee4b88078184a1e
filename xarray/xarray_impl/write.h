// XArray writer side: store (of any order), erase, insert, cmpxchg,
// reserve/release, marks, clear. Every function here runs under the array
// lock (lock_). A writer first allocates every node it may need
// (NodePool), so running out of memory leaves the array untouched.
//
// Multi-index entries: an entry of order k lives in a node of shift
// k - k % Shift, in 2^(k % Shift) consecutive slots — the entry in the
// first ("canonical") slot, sibling entries in the others. Its marks are
// kept on the canonical slot only. Publication order, relied on by the
// readers' sibling check (read.h): a store writes the canonical slot
// before the siblings; an erase clears the siblings before the canonical
// slot. Tree shape: tree.h.
#pragma once

#include <algorithm>
#include <cstdlib>

namespace mslab {

// ---- Store and erase ------------------------------------------------------

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::store_locked(unsigned long index, unsigned order, Raw raw, Raw* old) noexcept {
  if (raw == 0) {  // order-0 erase; callers erase larger ranges themselves
    *old = erase_locked(index);
    return XaError::kOk;
  }
  const unsigned target = order - order % Shift;
  const unsigned long last = index | ((1UL << order) - 1);
  // The entry covering index. For order 0 it is the slot create_slot()
  // finds (a leaf slot, or a larger entry's canonical slot), read below
  // without a second walk; a larger order may cover a subtree.
  if (order != 0) *old = load_locked(index);
  NodePool pool;
  if (!pool.fill(nodes_needed(index, target, last))) return XaError::kNoMemory;
  Node* node;
  unsigned off;
  std::atomic<Raw>* slot = create_slot(index, target, last, pool, &node, &off);
  pool.drain();  // what a conservative count left over was never published
  const Raw prev = slot->load(std::memory_order_relaxed);
  if (order == 0) *old = prev;
  if (node == nullptr) {  // the head entry
    if (raw == xa_detail::kZero && prev != 0 && prev != xa_detail::kZero)
      root_marks_.store(0, std::memory_order_relaxed);  // a reservation takes no marks
    slot->store(raw, std::memory_order_release);  // pairs with the readers' head acquire
    return XaError::kOk;
  }
  // The slots the entry covers here: its own range when the node is at its
  // level; a larger entry already there keeps its range (the store updates it).
  unsigned n = node->shift == target ? 1u << (order - target) : 1u;
  if (prev != 0 && !xa_detail::is_node(prev)) n = std::max(n, extent(node, off));
  replace_slots(node, off, n, raw);
  return XaError::kOk;
}

// Replaces slots [off, off + n) of `node` by `raw` (canonical slot `off`)
// and its siblings. The marks of what was there are ORed onto the entry
// (xas_squash_marks; a reservation takes none); entries and subtrees that
// were there are gone, the subtrees' nodes retired after the new slots are
// published (readers inside them restart and find the new entry).
template <unsigned Shift, class A>
void BasicXArray<Shift, A>::replace_slots(Node* node, unsigned off, unsigned n, Raw raw) noexcept {
  Node* dropped[Node::kSlots];
  unsigned ndropped = 0;
  unsigned marks = 0;
  unsigned was_empty = 0;
  int values = xa_detail::is_value(raw) ? 1 : 0;
  for (unsigned i = off; i < off + n; ++i) {
    const Raw e = node->slots[i].load(std::memory_order_relaxed);
    for (XaMark m = 0; m < kXaMarks; ++m)
      if (user_mark(m) && node->get_mark(i, m)) marks |= 1u << m;
    if (e == 0) ++was_empty;
    else if (xa_detail::is_node(e)) dropped[ndropped++] = Node::from_raw(e);
    else if (xa_detail::is_value(e)) --values;
  }
  if (raw == xa_detail::kZero) marks = 0;
  // Marks first, as erase does: set on the canonical slot (so the node's
  // bits never drop to zero on the way), then cleared on the siblings.
  for (XaMark m = 0; m < kXaMarks; ++m) {
    if (!user_mark(m)) continue;
    if ((marks >> m) & 1) propagate_set(node, off, m);
    else if (node->get_mark(off, m)) propagate_clear(node, off, m);
    for (unsigned i = off + 1; i < off + n; ++i)
      if (node->get_mark(i, m)) propagate_clear(node, i, m);
  }
  node->slots[off].store(raw, std::memory_order_release);  // canonical first; pairs with the readers' acquire
  const Raw sibling = xa_detail::make_sibling(off);
  for (unsigned i = off + 1; i < off + n; ++i)
    if (node->slots[i].load(std::memory_order_relaxed) != sibling) node->slots[i].store(sibling, std::memory_order_release);
  node->count = static_cast<std::uint8_t>(node->count + was_empty);
  node->nr_values = static_cast<std::uint8_t>(node->nr_values + values);
  if (track_free())  // every covered index is busy now
    for (unsigned i = off; i < off + n; ++i)
      if (node->get_mark(i, kXaFreeMark)) propagate_clear(node, i, kXaFreeMark);
  for (unsigned i = 0; i < ndropped; ++i) free_subtree(dropped[i]);
}

template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::load_locked(unsigned long index) noexcept {
  Node* node;
  unsigned off;
  std::atomic<Raw>* slot = locate(index, &node, &off);
  return slot != nullptr ? slot->load(std::memory_order_relaxed) : 0;
}

// Erases the whole entry covering `index` (all its slots) and its marks.
template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::erase_locked(unsigned long index) noexcept {
  Node* node;
  unsigned off;
  std::atomic<Raw>* slot = locate(index, &node, &off);
  if (slot == nullptr) return 0;
  const Raw old = slot->load(std::memory_order_relaxed);
  if (old == 0) return 0;
  if (node == nullptr) {  // the head entry
    root_marks_.store(0, std::memory_order_relaxed);
    head_.store(0, std::memory_order_release);
    return old;
  }
  const unsigned n = extent(node, off);
  // Marks go first, as in xas_store: a marked search that still finds the
  // entry finds it unmarked or present, never a marked empty slot below.
  for (XaMark m = 0; m < kXaMarks; ++m)
    if (node->get_mark(off, m)) propagate_clear(node, off, m);
  if (track_free())  // xas_init_marks: the indices are free again
    for (unsigned i = off; i < off + n; ++i) propagate_set(node, i, kXaFreeMark);
  for (unsigned i = off + n; i-- > off + 1;) node->slots[i].store(0, std::memory_order_release);  // siblings first
  slot->store(0, std::memory_order_release);
  node->count = static_cast<std::uint8_t>(node->count - n);
  if (xa_detail::is_value(old)) --node->nr_values;
  if (node->count == 0) delete_empty(node);
  else shrink();
  return old;
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
void BasicXArray<Shift, A>::propagate_set(Node* node, unsigned offset, XaMark m) noexcept {
  for (;;) {
    if (node->get_mark(offset, m)) return;  // already set: so is everything above
    node->marks[m].fetch_or(std::uint64_t{1} << offset, std::memory_order_relaxed);
    Node* parent = node->parent.load(std::memory_order_relaxed);
    if (parent == nullptr) {
      root_marks_.fetch_or(1u << m, std::memory_order_relaxed);
      return;
    }
    offset = node->offset;
    node = parent;
  }
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::set_mark(unsigned long index, XaMark m) noexcept {
  if (!user_mark(m)) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  Node* node;
  unsigned off;
  std::atomic<Raw>* slot = locate(index, &node, &off);
  if (slot == nullptr) return XaError::kOk;
  const Raw e = slot->load(std::memory_order_relaxed);
  if (e == 0 || e == xa_detail::kZero) return XaError::kOk;
  if (node != nullptr) propagate_set(node, off, m);
  else root_marks_.fetch_or(1u << m, std::memory_order_relaxed);
  return XaError::kOk;
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::clear_mark(unsigned long index, XaMark m) noexcept {
  if (!user_mark(m)) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  Node* node;
  unsigned off;
  std::atomic<Raw>* slot = locate(index, &node, &off);
  if (slot == nullptr || slot->load(std::memory_order_relaxed) == 0) return XaError::kOk;
  if (node == nullptr) root_marks_.fetch_and(~(1u << m), std::memory_order_relaxed);
  else if (node->get_mark(off, m)) propagate_clear(node, off, m);
  return XaError::kOk;
}

// ---- Public writers -------------------------------------------------------

template <unsigned Shift, class A>
XaResult BasicXArray<Shift, A>::store_order(unsigned long index, unsigned order, Entry entry) noexcept {
  if (!entry.valid() || order >= 64 || (index & ((1UL << order) - 1)) != 0) return XaError::kInvalid;
  // An allocating array keeps a stored-empty id allocated (__xa_store).
  const Raw raw = entry.empty() && track_free() ? xa_detail::kZero : entry.raw();
  std::lock_guard guard(lock_);
  Raw old = 0;
  if (raw == 0 && order != 0) {
    // Erasing a range: one reservation over it (which drops whatever was
    // there), then erase that — a walk over the range's entries otherwise.
    if (const XaError err = store_locked(index, order, xa_detail::kZero, &old); err != XaError::kOk) return err;
    erase_locked(index);
  } else if (const XaError err = store_locked(index, order, raw, &old); err != XaError::kOk) {
    return err;
  }
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
  return store_locked(index, 0, entry.empty() ? xa_detail::kZero : entry.raw(), &old);
}

template <unsigned Shift, class A>
XaResult BasicXArray<Shift, A>::compare_exchange(unsigned long index, Entry expected, Entry desired) noexcept {
  if (!expected.valid() || !desired.valid()) return XaError::kInvalid;
  std::lock_guard guard(lock_);
  const Raw cur = load_locked(index);
  const Entry seen = Entry::from_raw(cur == xa_detail::kZero ? 0 : cur);
  if (seen != expected || cur == desired.raw()) return seen;
  Raw old;
  if (const XaError err = store_locked(index, 0, desired.raw(), &old); err != XaError::kOk) return err;
  return seen;
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::reserve(unsigned long index) noexcept {
  std::lock_guard guard(lock_);
  if (load_locked(index) != 0) return XaError::kOk;
  Raw old;
  return store_locked(index, 0, xa_detail::kZero, &old);
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
