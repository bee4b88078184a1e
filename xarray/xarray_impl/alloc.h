// XArray ID allocation: alloc() and alloc_cyclic() of allocating arrays.
//
// The free mark (mark 0, the kernel's XA_FREE_MARK) is kept by the writers
// of an allocating array (write.h): in a leaf, bit i is set iff slot i is
// empty (not even reserved); in an inner node, bit i is set iff slot i is
// empty or the child there has a free bit. A new node starts all free.
// So a free index is found by following set bits down from the root:
// O(height) nodes, one bit scan each. Indices beyond the root's range are
// free too. Everything here runs under the array lock; readers never look
// at the free mark.
#pragma once

#include <algorithm>
#include <bit>

namespace mslab {

// The first free index in [min, max]; false if there is none.
template <unsigned Shift, class A>
bool BasicXArray<Shift, A>::find_free_locked(unsigned long min, unsigned long max,
                                             unsigned long* out) const noexcept {
  if (flags_ == XaFlags::kAlloc1 && min == 0) min = 1;
  if (min > max) return false;
  const Raw head = head_.load(std::memory_order_relaxed);
  if (!xa_detail::is_node(head)) {  // empty, or one entry at index 0
    if (head == 0 || min != 0) {
      *out = min;
      return true;
    }
    if (max == 0) return false;
    *out = 1;
    return true;
  }
  const Node* node = Node::from_raw(head);
  unsigned long idx = min;
  if (idx > Node::max_index(node->shift)) {
    *out = idx;
    return true;
  }
  for (;;) {
    const unsigned shift = node->shift;
    const unsigned off = (idx >> shift) & Node::kMask;
    const std::uint64_t bits =
        node->marks[kXaFreeMark].load(std::memory_order_relaxed) & Node::slot_mask(shift) & (~std::uint64_t{0} << off);
    if (bits != 0) {
      const unsigned hit = static_cast<unsigned>(std::countr_zero(bits));
      if (hit != off) {  // the start of a later slot of this node
        const unsigned span = shift + Shift;
        const unsigned long base = span >= 64 ? 0 : (idx >> span) << span;
        idx = base | (static_cast<unsigned long>(hit) << shift);
      }
      if (idx > max) return false;
      const Raw s = node->slots[hit].load(std::memory_order_relaxed);
      if (shift == 0 || s == 0) {  // a free leaf slot, or a wholly empty subtree
        *out = idx;
        return true;
      }
      node = Node::from_raw(s);
      continue;
    }
    // Nothing free from idx to the end of this node: continue after it, in
    // the nearest ancestor that has slots left.
    const unsigned span = shift + Shift;
    if (span >= 64) return false;  // this node reaches ULONG_MAX
    idx = ((idx >> span) + 1) << span;
    if (idx == 0 || idx > max) return false;
    for (;;) {
      const Node* parent = node->parent.load(std::memory_order_relaxed);
      if (parent == nullptr) {  // beyond the root's range: free
        *out = idx;
        return true;
      }
      const bool was_last = node->offset == Node::kMask;
      node = parent;
      if (!was_last) break;
    }
  }
}

template <unsigned Shift, class A>
XaError BasicXArray<Shift, A>::alloc_locked(Raw raw, unsigned long min, unsigned long max,
                                            unsigned long* id) noexcept {
  unsigned long idx;
  if (!find_free_locked(min, max, &idx)) return XaError::kBusy;
  Raw old;
  if (const XaError err = store_locked(idx, 0, raw, &old); err != XaError::kOk) return err;
  *id = idx;
  return XaError::kOk;
}

template <unsigned Shift, class A>
XaAllocResult BasicXArray<Shift, A>::alloc(Entry entry, XaLimit limit) noexcept {
  if (!track_free() || !entry.valid() || limit.min > limit.max) return XaError::kInvalid;
  const Raw raw = entry.empty() ? xa_detail::kZero : entry.raw();  // a NULL allocation stays busy
  std::lock_guard guard(lock_);
  unsigned long id = 0;
  if (const XaError err = alloc_locked(raw, limit.min, limit.max, &id); err != XaError::kOk) return err;
  return XaAllocResult::success(id, false);
}

template <unsigned Shift, class A>
XaAllocResult BasicXArray<Shift, A>::alloc_cyclic(Entry entry, XaLimit limit, unsigned long& next) noexcept {
  if (!track_free() || !entry.valid() || limit.min > limit.max) return XaError::kInvalid;
  const Raw raw = entry.empty() ? xa_detail::kZero : entry.raw();
  if (flags_ == XaFlags::kAlloc1 && limit.min == 0) limit.min = 1;  // so that 0 never counts as a wrap
  std::lock_guard guard(lock_);
  const unsigned long from = std::max(limit.min, next);
  unsigned long id = 0;
  bool wrapped = false;
  XaError err = alloc_locked(raw, from, limit.max, &id);  // kBusy when from > max
  if (err == XaError::kBusy && from > limit.min) {
    err = alloc_locked(raw, limit.min, limit.max, &id);
    wrapped = err == XaError::kOk;
  }
  if (err != XaError::kOk) return err;
  wrapped = wrapped || alloc_wrapped_;
  next = id + 1;
  alloc_wrapped_ = next == 0;
  return XaAllocResult::success(id, wrapped);
}

}  // namespace mslab
