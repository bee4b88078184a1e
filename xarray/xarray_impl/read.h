// XArray reader side: load, find, get_mark, extract. Lock-free under an RCU
// read section. Every slot and head load is an acquire that pairs with the
// writer's release store which published the entry or node (write.h), so a
// reader that reaches a node sees it fully initialised. A retry entry means
// "this node was removed under you": the walk restarts from the head.
#pragma once

namespace mslab {

template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::walk(unsigned long index) const noexcept {
restart:
  Raw e = head_.load(std::memory_order_acquire);  // pairs with every head_ release store
  if (!xa_detail::is_node(e)) return index == 0 ? e : 0;
  const Node* node = Node::from_raw(e);
  if (index > Node::max_index(node->shift)) return 0;
  for (;;) {
    const unsigned off = (index >> node->shift) & Node::kMask;
    e = node->slots[off].load(std::memory_order_acquire);  // pairs with slot release stores
    if (e == xa_detail::kRetry) goto restart;
    if (node->shift == 0 || e == 0) return e;
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
    const unsigned off = (index >> node->shift) & Node::kMask;
    e = node->slots[off].load(std::memory_order_acquire);
    if (e == xa_detail::kRetry) goto restart;
    if (!node->get_mark(off, m)) return false;
    if (node->shift == 0) return e != 0 && e != xa_detail::kZero;
    if (e == 0) return false;
    node = Node::from_raw(e);
  }
}

// The first entry passing `filter` in [*index, max]. The scan keeps no node
// pointer across a restart: it tracks `idx`, the first index not yet
// examined, so a restart (retry entry, or a finished non-root node) descends
// again from the head at `idx` and never returns an index twice.
template <unsigned Shift, class A>
typename BasicXArray<Shift, A>::Raw BasicXArray<Shift, A>::find_raw(unsigned long* index, unsigned long max,
                                                                    XaFilter filter) const noexcept {
  unsigned long idx = *index;
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
  bool at_root = true;
  if (idx > Node::max_index(node->shift)) return 0;
  for (;;) {
    const unsigned shift = node->shift;
    unsigned off = (idx >> shift) & Node::kMask;
    const Node* child = nullptr;
    for (; off < Node::kSlots; ++off) {
      if (!by_mark || node->get_mark(off, filter.mark)) {
        const Raw s = node->slots[off].load(std::memory_order_acquire);
        if (s == xa_detail::kRetry) goto restart;
        if (s != 0 && s != xa_detail::kZero) {
          if (shift == 0) {
            *index = idx;
            return s;
          }
          child = Node::from_raw(s);
          break;
        }
      }
      // Skip to the first index of the next slot.
      const unsigned long next = ((idx >> shift) + 1) << shift;
      if (next == 0) return 0;  // wrapped past ULONG_MAX
      idx = next;
      if (idx > max) return 0;
    }
    if (child != nullptr) {
      node = child;
      at_root = false;
      continue;
    }
    // This node is finished; idx is the first index after it. Nothing lies
    // beyond the root; below it, descend afresh (the node may be stale).
    if (at_root) return 0;
    goto restart;
  }
}

template <unsigned Shift, class A>
Entry BasicXArray<Shift, A>::find(unsigned long* index, unsigned long max, XaFilter filter) const noexcept {
  if (filter.is_mark() && !user_mark(filter.mark)) return {};
  rcu::ReadGuard guard;
  return Entry::from_raw(find_raw(index, max, filter));
}

template <unsigned Shift, class A>
Entry BasicXArray<Shift, A>::find_after(unsigned long* index, unsigned long max, XaFilter filter) const noexcept {
  if (*index == ~0UL || *index >= max) return {};
  unsigned long i = *index + 1;
  const Entry e = find(&i, max, filter);
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
