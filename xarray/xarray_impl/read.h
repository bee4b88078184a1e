// XArray reader side: load, find, get_mark, get_order, extract. Lock-free
// under an RCU read section. Every slot and head load is an acquire that
// pairs with the writer's release store which published the entry or node
// (tree.h, write.h), so a reader that reaches a node sees it fully
// initialised. A retry entry means "this node was removed under you": the
// walk restarts from the head.
//
// A sibling slot (part of a multi-index entry) sends the reader to the
// canonical slot of the same node. Writers publish the canonical slot
// before its siblings and clear it after them, so once the reader has read
// the canonical slot, finding the sibling still in place proves the two
// belong together; otherwise (or if the canonical slot is not an entry)
// the reader restarts.
#pragma once

namespace mslab {

namespace xa_detail {
// The canonical slot a sibling `s` at slots[off] names, checked as above;
// kRetry when the reader must restart.
template <class Node>
std::uintptr_t read_canonical(const Node* node, unsigned off, std::uintptr_t s) noexcept {
  const std::uintptr_t c = node->slots[sibling_offset(s)].load(std::memory_order_acquire);
  if (c == kRetry || is_sibling(c) || is_node(c)) return kRetry;
  if (node->slots[off].load(std::memory_order_acquire) != s) return kRetry;
  return c;
}
}  // namespace xa_detail

// The entry covering `index` (raw); optionally the node and the canonical
// offset where it was found (node nullptr: the head, or nothing).
template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::walk(unsigned long index, const Node** node_out,
                                                                unsigned* offset) const noexcept {
restart:
  Raw e = head_.load(std::memory_order_acquire);  // pairs with every head_ release store
  if (node_out != nullptr) *node_out = nullptr;
  if (!xa_detail::is_node(e)) return index == 0 ? e : 0;
  const Node* node = Node::from_raw(e);
  if (index > Node::max_index(node->shift)) return 0;
  for (;;) {
    unsigned off = (index >> node->shift) & Node::kMask;
    e = node->slots[off].load(std::memory_order_acquire);  // pairs with slot release stores
    if (e == xa_detail::kRetry) goto restart;
    if (xa_detail::is_sibling(e)) {
      const Raw c = xa_detail::read_canonical(node, off, e);
      if (c == xa_detail::kRetry) goto restart;
      off = xa_detail::sibling_offset(e);
      e = c;
    }
    if (!xa_detail::is_node(e)) {
      if (node_out != nullptr) {
        *node_out = node;
        *offset = off;
      }
      return e;
    }
    node = Node::from_raw(e);
  }
}

template <unsigned Shift, class A>
Entry BasicXArray<Shift, A>::load(unsigned long index) const noexcept {
  rcu::ReadGuard guard;
  const Raw e = walk(index);
  return e == xa_detail::kZero ? Entry{} : Entry::from_raw(e);
}

template <unsigned Shift, class A>
bool BasicXArray<Shift, A>::get_mark(unsigned long index, XaMark m) const noexcept {
  if (!user_mark(m)) return false;
  rcu::ReadGuard guard;
restart:
  Raw e = head_.load(std::memory_order_acquire);
  if (!xa_detail::is_node(e)) return index == 0 && e != 0 && marked(m);
  const Node* node = Node::from_raw(e);
  if (index > Node::max_index(node->shift)) return false;
  for (;;) {
    unsigned off = (index >> node->shift) & Node::kMask;
    e = node->slots[off].load(std::memory_order_acquire);
    if (e == xa_detail::kRetry) goto restart;
    if (xa_detail::is_sibling(e)) {  // a multi-index entry's marks are on its canonical slot
      const Raw c = xa_detail::read_canonical(node, off, e);
      if (c == xa_detail::kRetry) goto restart;
      off = xa_detail::sibling_offset(e);
      e = c;
    }
    if (!node->get_mark(off, m)) return false;
    if (!xa_detail::is_node(e)) return e != 0 && e != xa_detail::kZero;
    node = Node::from_raw(e);
  }
}

template <unsigned Shift, class A>
unsigned BasicXArray<Shift, A>::get_order(unsigned long index) const noexcept {
  rcu::ReadGuard guard;
  const Node* node;
  unsigned off = 0;
  const Raw e = walk(index, &node, &off);
  if (e == 0 || e == xa_detail::kZero || node == nullptr) return 0;
  const unsigned n = extent(node, off);  // a power of two (store_locked)
  return node->shift + static_cast<unsigned>(std::countr_zero(n));
}

// The first entry passing `filter` in [*index, max]. The scan tracks `idx`,
// the first index not yet examined, so a restart (retry entry) descends
// again from the head at `idx` and never returns an index twice; a
// finished node hands over to its parent.
// A multi-index entry is returned at its first index, or at *index when
// *index lies inside it — unless `after` is set (find_after): then an entry
// that began before *index was returned already and is skipped.
template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::find_raw(unsigned long* index, unsigned long max,
                                                                    XaFilter filter, bool after) const noexcept {
  const unsigned long start = *index;
  unsigned long idx = start;
  if (idx > max) return 0;
  const bool by_mark = filter.is_mark();
restart:
  Raw e = head_.load(std::memory_order_acquire);
  if (!xa_detail::is_node(e)) {
    if (idx != 0 || e == 0 || e == xa_detail::kZero) return 0;
    if (by_mark && !marked(filter.mark)) return 0;
    *index = 0;
    return e;
  }
  const Node* node = Node::from_raw(e);
  if (idx > Node::max_index(node->shift)) return 0;
  for (;;) {
    const unsigned shift = node->shift;
    unsigned off = (idx >> shift) & Node::kMask;
    const Node* child = nullptr;
    for (; off < Node::kSlots; ++off) {
      // The slot holding `start` is always read: it may be a sibling whose
      // marks are on the canonical slot.
      const bool first = idx == start;
      do {
        if (by_mark && !first && !node->get_mark(off, filter.mark)) break;
        Raw s = node->slots[off].load(std::memory_order_acquire);
        if (s == xa_detail::kRetry) goto restart;
        unsigned mark_off = off;
        if (xa_detail::is_sibling(s)) {
          if (after || !first) break;  // met at its canonical slot, or began before start
          const Raw c = xa_detail::read_canonical(node, off, s);
          if (c == xa_detail::kRetry) goto restart;
          mark_off = xa_detail::sibling_offset(s);
          s = c;
        }
        if (s == 0 || s == xa_detail::kZero) break;
        if (by_mark && !node->get_mark(mark_off, filter.mark)) break;
        if (xa_detail::is_node(s)) {
          child = Node::from_raw(s);
          break;
        }
        // An entry; in a node above the leaves idx may lie inside its range.
        if (after && (idx & ((1UL << shift) - 1)) != 0) break;
        *index = idx;
        return s;
      } while (false);
      if (child != nullptr) break;
      // Skip to the first index of the next slot.
      const unsigned long next = ((idx >> shift) + 1) << shift;
      if (next == 0) return 0;  // wrapped past ULONG_MAX
      idx = next;
      if (idx > max) return 0;
    }
    if (child != nullptr) {
      node = child;
      continue;
    }
    // This node is finished; idx is the first index after it. Continue in
    // the nearest ancestor whose range holds idx (xas_find does the same).
    // The parent pointers are valid under the read section (nodes are freed
    // after a grace period); a removed ancestor holds empty slots or retry
    // entries, so going up through one finds nothing wrong. No parent: the
    // root is finished, nothing lies beyond it.
    for (;;) {
      const Node* parent = node->parent.load(std::memory_order_acquire);  // pairs with add_level's release
      if (parent == nullptr) return 0;
      node = parent;
      const unsigned span = parent->shift + Shift;
      if (span >= 64 || ((idx - 1) >> span) == (idx >> span)) break;
    }
  }
}

template <unsigned Shift, class A>
Entry BasicXArray<Shift, A>::find(unsigned long* index, unsigned long max, XaFilter filter) const noexcept {
  if (filter.is_mark() && !user_mark(filter.mark)) return {};
  rcu::ReadGuard guard;
  return Entry::from_raw(find_raw(index, max, filter, false));
}

template <unsigned Shift, class A>
Entry BasicXArray<Shift, A>::find_after(unsigned long* index, unsigned long max, XaFilter filter) const noexcept {
  if (*index == ~0UL || *index >= max) return {};
  if (filter.is_mark() && !user_mark(filter.mark)) return {};
  unsigned long i = *index + 1;
  rcu::ReadGuard guard;
  const Entry e = Entry::from_raw(find_raw(&i, max, filter, true));
  if (!e.empty()) *index = i;
  return e;
}

template <unsigned Shift, class A>
std::size_t BasicXArray<Shift, A>::extract(std::span<Entry> dst, unsigned long start, unsigned long max,
                                           XaFilter filter) const noexcept {
  if (dst.empty() || start > max) return 0;
  std::size_t n = 0;
  unsigned long i = start;
  Entry e = find(&i, max, filter);
  while (!e.empty()) {
    dst[n++] = e;
    if (n == dst.size()) break;
    e = find_after(&i, max, filter);
  }
  return n;
}

}  // namespace mslab
