// XArray: a sparse array from unsigned long indices to entries (pointers
// or small integer values), Linux XArray semantics with a C++ API.
//
// Self-locking: every writer takes the array's own lock (a std::mutex: a
// writer may allocate a node while holding it, which may block in the page
// allocator, so a spinlock would spin for too long). Readers take no lock:
// load/find/iteration/extract/get_mark enter an RCU read section themselves
// (rcu::ReadGuard), never block, and may run concurrently with writers.
// Nodes removed from the tree are marked kRcuFree, have their entries
// replaced by retry entries where a stale reader could otherwise return a
// wrong answer, and are freed through rcu deferred free — never at once.
//
// What a concurrent reader may see: each load returns an entry that covered
// that index at some moment during the call (or empty if the index was
// empty at some moment during it) — never an entry for an index outside a
// multi-index entry's range. An iterating reader sees every entry that was
// present (at an unchanged index) for the whole iteration; it may or may not
// see entries stored or erased concurrently; it never sees an index twice,
// in decreasing order, or a freed node. Details: docs/xarray.md §3.
//
// Also here: ID allocation (allocating arrays, XaFlags::kAlloc/kAlloc1,
// which reserve mark 0 as the free mark) and multi-index entries
// (store_order: one entry over an aligned 2^order range, kept with sibling
// entries as in the kernel).
//
// Templates: BasicXArray<Shift, NodeAlloc>. Shift is the node fan-out
// (2^Shift slots); XArray uses MSLAB_XA_CHUNK_SHIFT (default 6). The array
// is header-only so that a translation unit built with another shift gets
// a distinct type (no ODR clash with the library); node_alloc.cpp, the only
// compiled part, does not depend on the shift. See docs/xarray.md.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <mutex>
#include <span>
#include <type_traits>
#include <utility>

#include "rcu/rcu.h"
#include "xarray/entry.h"
#include "xarray/id_types.h"
#include "xarray/node.h"
#include "xarray/node_alloc.h"
#include "xarray/node_mobility.h"

namespace mslab {

/// Filter for find/iteration/extract: any present entry, or entries with a
/// given mark (XA_PRESENT / XA_MARK_n).
struct XaFilter {
  static constexpr unsigned kPresentTag = 0xff;
  unsigned mark = kPresentTag;
  static constexpr XaFilter present() noexcept { return {}; }
  static constexpr XaFilter marked(XaMark m) noexcept { return {m}; }
  constexpr bool is_mark() const noexcept { return mark != kPresentTag; }
};

struct XaStats {
  std::size_t nodes;  // nodes in the tree (those awaiting RCU free excluded)
  std::size_t bytes;  // nodes × node size
};

template <unsigned Shift = MSLAB_XA_CHUNK_SHIFT, class NodeAlloc = SlabNodeAlloc>
class BasicXArray : private xa_detail::ArrayAnchor {
 public:
  using Node = XaNode<Shift>;
  static constexpr unsigned kChunkShift = Shift;
  static constexpr unsigned kChunkSize = 1u << Shift;

  /// With SlabNodeAlloc the nodes are movable: the defragmenter may migrate
  /// them at any time (xarray_impl/migrate.h, docs/xarray.md).
  BasicXArray() noexcept : xa_detail::ArrayAnchor(movable_nodes()) {}
  /// An array in the given mode; XaFlags::kAlloc / kAlloc1 make it an
  /// allocating array (alloc(), alloc_cyclic()), whose mark 0 is reserved.
  explicit BasicXArray(XaFlags flags) noexcept : xa_detail::ArrayAnchor(movable_nodes()), flags_(flags) {}
  /// Frees every node through deferred free (entries are not freed: they
  /// belong to the caller). No other thread may use the array any more —
  /// except readers already inside a read section, which stay safe. With
  /// movable nodes it then waits for a grace period and for any node
  /// migration that pinned this array (the existence guarantee; bounded by
  /// one node's move): blocks, must not run inside a read section.
  ~BasicXArray() {
    clear();
    wait_unpinned();
  }
  BasicXArray(const BasicXArray&) = delete;
  BasicXArray& operator=(const BasicXArray&) = delete;

  // ---- Readers: lock-free, take an RCU read section; never block. ------

  /// The entry at `index`; empty if none or reserved (xa_load).
  Entry load(unsigned long index) const noexcept;

  /// The first entry at index ≥ *index and ≤ max that passes `filter`; on
  /// success *index is set to its index — for a multi-index entry, its
  /// first index, or *index itself when *index lies inside it. Returns
  /// empty (and leaves *index) if there is none. Invalid: max < *index or
  /// a bad mark → empty. (xa_find)
  Entry find(unsigned long* index, unsigned long max, XaFilter filter = {}) const noexcept;
  /// As find(), strictly after *index, and never the multi-index entry that
  /// covers *index (xa_find_after): iteration yields each entry once.
  Entry find_after(unsigned long* index, unsigned long max, XaFilter filter = {}) const noexcept;

  /// Whether the entry at `index` has mark `m` (false for an invalid mark).
  bool get_mark(unsigned long index, XaMark m) const noexcept;
  /// log2 of the number of indices the entry at `index` covers; 0 for an
  /// order-0 entry or an empty index (xa_get_order). Exact unless a writer
  /// replaces that entry meanwhile.
  unsigned get_order(unsigned long index) const noexcept;

  /// Copies up to dst.size() entries with indices in [start, max] that pass
  /// `filter` into dst, in index order; returns how many. Not a snapshot:
  /// the same rules as iteration. (xa_extract)
  std::size_t extract(std::span<Entry> dst, unsigned long start, unsigned long max,
                      XaFilter filter = {}) const noexcept;

  // ---- No lock at all: one atomic load. --------------------------------

  /// No entry, and no reserved index (xa_empty).
  bool empty() const noexcept { return head_.load(std::memory_order_relaxed) == 0; }
  /// Some entry carries mark `m` (xa_marked); O(1), from the root.
  bool marked(XaMark m) const noexcept {
    return user_mark(m) && ((root_marks_.load(std::memory_order_relaxed) >> m) & 1);
  }
  /// The mode given at construction.
  XaFlags flags() const noexcept { return flags_; }
  XaStats stats() const noexcept {
    const std::size_t n = nodes_.load(std::memory_order_relaxed);
    return {n, n * sizeof(Node)};
  }

  // ---- Writers: take the array lock; may block (lock, node allocation). -

  /// Stores `entry` at `index` and returns the previous entry (empty for a
  /// reserved index). An empty `entry` erases — except in an allocating
  /// array, where it reserves the index so that the id stays allocated (as
  /// __xa_store does). Marks are kept unless the entry is erased. If a
  /// multi-index entry covers `index`, the store replaces it over its whole
  /// range. Errors: kInvalid (entry not valid), kNoMemory (array
  /// unchanged). (xa_store)
  XaResult store(unsigned long index, Entry entry) noexcept { return store_order(index, 0, entry); }
  /// Stores `entry` as one multi-index entry covering the 2^order indices
  /// [index, index + 2^order), index aligned to 2^order (xa_store_order).
  /// Whatever the range held goes (entries, reservations, their marks ORed
  /// onto the new entry, as xas_store does); a larger multi-index entry
  /// already covering `index` is updated instead, keeping its range. An
  /// empty `entry` erases every entry in the range (or the larger entry
  /// covering `index`, whole); it may need memory for a moment, so
  /// kNoMemory is possible. Returns the entry that was at
  /// `index`. Errors: kInvalid (entry not valid, order > 63, index not
  /// aligned), kNoMemory (array unchanged).
  XaResult store_order(unsigned long index, unsigned order, Entry entry) noexcept;
  /// Removes the entry (or reservation) at `index` and its marks — a whole
  /// multi-index entry if one covers `index`; returns the previous entry.
  /// Never allocates, never fails. (xa_erase)
  Entry erase(unsigned long index) noexcept;
  /// Stores `entry` only if `index` is empty and not reserved; otherwise
  /// kBusy. Inserting an empty entry reserves the index. (xa_insert)
  XaError insert(unsigned long index, Entry entry) noexcept;
  /// If the entry at `index` equals `expected`, replaces it with `desired`.
  /// Returns the entry found (success iff it equals `expected`). A reserved
  /// index compares equal to an empty `expected` (it reads as empty), and
  /// an empty `desired` erases it. (xa_cmpxchg)
  XaResult compare_exchange(unsigned long index, Entry expected, Entry desired) noexcept;
  /// Reserves an empty index: it reads as empty for load/find, but insert
  /// fails with kBusy and empty() is false; a later store needs no memory.
  /// No-op on an occupied index. Errors: kNoMemory. (xa_reserve)
  XaError reserve(unsigned long index) noexcept;
  /// Drops a reservation; no-op if the index holds an entry. (xa_release)
  void release(unsigned long index) noexcept;

  /// Sets / clears mark `m` on the entry at `index`; no-op on an empty or
  /// reserved index. kInvalid for m ≥ 3, and for m = 0 (kXaFreeMark) in an
  /// allocating array. Marks propagate to the root.
  XaError set_mark(unsigned long index, XaMark m) noexcept;
  XaError clear_mark(unsigned long index, XaMark m) noexcept;

  // ---- ID allocation (allocating arrays only; xarray_impl/alloc.h). ----

  /// Stores `entry` at the lowest free index in [limit.min, limit.max] and
  /// returns that id (xa_alloc). "Free" means empty and not reserved; an
  /// empty `entry` reserves the id (it stays allocated until erased). In a
  /// kAlloc1 array id 0 is never returned. O(log n): the search follows the
  /// free mark down the tree. Errors: see XaAllocResult (kBusy = no free
  /// id). Takes the array lock; may block.
  XaAllocResult alloc(Entry entry, XaLimit limit = {}) noexcept;
  /// As alloc(), searching from max(limit.min, next) and, if that part of
  /// the range is full, again from limit.min (wrapped() is then true, as it
  /// is for the first id after `next` itself wrapped past ULONG_MAX). On
  /// success next = id + 1. `next` is the caller's, read and written under
  /// the array lock. (xa_alloc_cyclic)
  XaAllocResult alloc_cyclic(Entry entry, XaLimit limit, unsigned long& next) noexcept;

  /// Removes every entry; nodes are freed after a grace period; concurrent
  /// readers restart and find the array empty. (xa_destroy)
  void clear() noexcept;

  /// Calls fn(const void* node) for every node of the tree, under the array
  /// lock (fn must not call into this array). For tests and diagnostics:
  /// node addresses change when the defragmenter moves nodes.
  template <class Fn>
  void for_each_node(Fn&& fn) const;

  // ---- Iteration (range-for). ------------------------------------------
  // Each step is one find_after() in its own read section (like
  // xa_for_each: O(log n) per step; the array may be modified meanwhile).
  // The iterator holds the current index and entry, not a node pointer.

  class Iterator {
   public:
    using value_type = std::pair<unsigned long, Entry>;
    using difference_type = std::ptrdiff_t;
    Iterator() noexcept = default;
    value_type operator*() const noexcept { return {index_, entry_}; }
    Iterator& operator++() noexcept {
      if (index_ == last_) {
        array_ = nullptr;
      } else {
        entry_ = array_->find_after(&index_, last_, filter_);
        if (entry_.empty()) array_ = nullptr;
      }
      return *this;
    }
    void operator++(int) noexcept { ++*this; }
    friend bool operator==(const Iterator& a, const Iterator& b) noexcept {
      return a.array_ == b.array_ && (a.array_ == nullptr || a.index_ == b.index_);
    }

   private:
    friend class BasicXArray;
    const BasicXArray* array_ = nullptr;  // nullptr = end
    unsigned long index_ = 0, last_ = 0;
    Entry entry_{};
    XaFilter filter_{};
  };

  class Range {
   public:
    Iterator begin() const noexcept {
      Iterator it;
      if (first_ > last_ || (filter_.is_mark() && !array_->user_mark(filter_.mark))) return it;
      it.index_ = first_;
      it.last_ = last_;
      it.filter_ = filter_;
      it.entry_ = array_->find(&it.index_, last_, filter_);
      if (!it.entry_.empty()) it.array_ = array_;
      return it;
    }
    Iterator end() const noexcept { return {}; }

   private:
    friend class BasicXArray;
    Range(const BasicXArray* a, unsigned long f, unsigned long l, XaFilter flt) noexcept
        : array_(a), first_(f), last_(l), filter_(flt) {}
    const BasicXArray* array_;
    unsigned long first_, last_;
    XaFilter filter_;
  };

  /// Present entries with indices in [first, last] (xa_for_each_range); an
  /// invalid range (first > last) is empty.
  Range range(unsigned long first = 0, unsigned long last = ~0UL) const noexcept {
    return Range(this, first, last, XaFilter::present());
  }
  /// Entries with mark `m` in [first, last] (xa_for_each_marked); empty for
  /// an invalid mark or range.
  Range marked_range(XaMark m, unsigned long first = 0, unsigned long last = ~0UL) const noexcept {
    return Range(this, first, last, XaFilter::marked(m));
  }
  Iterator begin() const noexcept { return range().begin(); }
  Iterator end() const noexcept { return {}; }

 private:
  using Raw = std::uintptr_t;
  static constexpr unsigned kMaxLevels = (64 + Shift - 1) / Shift + 1;

  // A writer's nodes, allocated before the tree is touched so that running
  // out of memory leaves the array unchanged.
  struct NodePool {
    Node* nodes[2 * kMaxLevels + 2];
    unsigned n = 0;
    Node* take() noexcept;
    bool fill(unsigned count) noexcept;
    void drain() noexcept;  // frees unused nodes (never published)
  };

  // A mark the caller may use: < 3, and not the free mark of an allocating
  // array.
  bool user_mark(XaMark m) const noexcept { return m < kXaMarks && !(track_free() && m == kXaFreeMark); }
  bool track_free() const noexcept { return flags_ != XaFlags::kNone; }

  // Tree shape (xarray_impl/tree.h) and writer internals (write.h); all
  // need lock_ held.
  static unsigned shift_for(unsigned long index) noexcept;
  static unsigned top_for(unsigned long last, unsigned target) noexcept;
  static unsigned extent(const Node* node, unsigned off) noexcept;
  unsigned nodes_needed(unsigned long index, unsigned target, unsigned long last) const noexcept;
  std::atomic<Raw>* create_slot(unsigned long index, unsigned target, unsigned long last, NodePool& pool,
                                Node** node, unsigned* offset) noexcept;
  std::atomic<Raw>* locate(unsigned long index, Node** node, unsigned* offset) noexcept;
  Node* new_node(NodePool& pool, unsigned shift, unsigned offset, Node* parent) noexcept;
  Node* add_level(NodePool& pool, Node* below, unsigned shift, Raw slot0) noexcept;
  void delete_empty(Node* node) noexcept;
  void shrink() noexcept;
  void retire(Node* node) noexcept;
  void free_subtree(Node* node) noexcept;
  XaError store_locked(unsigned long index, unsigned order, Raw raw, Raw* old) noexcept;
  void replace_slots(Node* node, unsigned off, unsigned n, Raw raw) noexcept;
  Raw erase_locked(unsigned long index) noexcept;
  Raw load_locked(unsigned long index) noexcept;
  void propagate_clear(Node* node, unsigned offset, XaMark m) noexcept;
  void propagate_set(Node* node, unsigned offset, XaMark m) noexcept;

  // ID allocation internals (xarray_impl/alloc.h); lock_ held.
  bool find_free_locked(unsigned long min, unsigned long max, unsigned long* out) const noexcept;
  XaError alloc_locked(Raw raw, unsigned long min, unsigned long max, unsigned long* id) noexcept;

  // Node migration, phase 2 for one node (xarray_impl/migrate.h); nullptr
  // when the nodes do not come from the movable caches.
  static xa_detail::ArrayAnchor::Migrated migrate_node(xa_detail::ArrayAnchor* anchor, void* node) noexcept;
  static constexpr xa_detail::ArrayAnchor::MigrateFn movable_nodes() noexcept {
    return std::is_same_v<NodeAlloc, SlabNodeAlloc> ? &migrate_node : nullptr;
  }

  // Reader internals (xarray_impl/read.h); call under a read section.
  Raw walk(unsigned long index, const Node** node = nullptr, unsigned* offset = nullptr) const noexcept;
  Raw find_raw(unsigned long* index, unsigned long max, XaFilter filter, bool after) const noexcept;

  mutable std::mutex lock_;
  // The head: empty, the entry at index 0 when it is the only one, or the
  // root node (encoded). Stored with release under lock_; readers load it
  // with acquire.
  std::atomic<Raw> head_{0};
  // Bit m: some entry has mark m (the kernel's XA_FLAGS_MARK). Kept equal
  // to "root node's marks[m] != 0" (or to the head entry's marks).
  std::atomic<unsigned> root_marks_{0};
  std::atomic<std::size_t> nodes_{0};
  const XaFlags flags_ = XaFlags::kNone;
  // alloc_cyclic's `next` wrapped past ULONG_MAX: the next id it hands out
  // is reported as wrapped (XA_FLAGS_ALLOC_WRAPPED). Under lock_.
  bool alloc_wrapped_ = false;
};

/// The XArray of this build: fan-out 2^MSLAB_XA_CHUNK_SHIFT, nodes from the
/// "xa_node" slab cache.
using XArray = BasicXArray<>;

}  // namespace mslab

#include "xarray/xarray_impl/read.h"
#include "xarray/xarray_impl/tree.h"
#include "xarray/xarray_impl/write.h"
#include "xarray/xarray_impl/alloc.h"
#include "xarray/xarray_impl/migrate.h"
