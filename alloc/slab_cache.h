// Slab caches: fixed-size objects carved out of page-allocator blocks.
//
// A cache is created with a name, an object size, an alignment and an
// optional constructor. alloc() and free() run on a per-thread fast path
// (no locks, no atomics) while the calling thread allocates from its active
// slab and frees into a slab it owns (the active one or a few earlier
// ones, see thread_heap.h); the slow paths take the cache's lock. Any thread may free any
// object (cross-thread frees go through a lock-free stack in the slab).
//
// Slab order rule: the smallest order (0–9) whose slab holds at least 8
// objects while wasting at most 1/8 of its bytes (header, padding and the
// unusable tail; each object also costs 4 bytes of slot metadata); if no order does,
// the order with the least waste. Allocation prefers the fullest partial slab, so sparse slabs drain;
// empty slabs beyond `empty_reserve` go back to the page allocator at once.
//
// Constructor semantics (as kmem_cache): the constructor runs once per
// object when its slab is created; objects must be freed in a constructed
// state. The allocator never writes an object's memory.
//
// Depends on: error, page_allocator, slab, thread_heap.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

#include "alloc/adaptive_mutex.h"
#include "alloc/error.h"
#include "alloc/exact_divisor.h"
#include "alloc/page_allocator.h"
#include "alloc/sanitizer.h"
#include "alloc/slab.h"
#include "alloc/thread_heap.h"

namespace mslab {

using Constructor = void (*)(void* object, void* arg);

inline constexpr std::size_t kMaxObjectSize = 256 * 1024;
inline constexpr std::size_t kMaxObjectAlign = kPageSize;
inline constexpr std::size_t kMaxCacheName = 31;
inline constexpr unsigned kPartialBuckets = 8;     // occupancy classes of partial slabs
inline constexpr unsigned kOccupancyBins = 11;     // stats histogram: 0 %, (0,10] … (90,100] %

/// Cache ids below this are given only on request (CacheOptions::reserved_id).
inline constexpr std::uint32_t kReservedCacheIds = 64;
inline constexpr std::uint32_t kAnyCacheId = ~std::uint32_t{0};
static_assert(kReservedCacheIds < MSLAB_MAX_CACHES);

struct CacheOptions {
  const char* name = "";          // copied, at most kMaxCacheName characters kept
  std::size_t object_size = 0;    // 1 … kMaxObjectSize
  std::size_t align = 0;          // power of two ≤ 4096; 0 = 16 for multiples of 16, else 8
  Constructor ctor = nullptr;     // optional, see above
  void* ctor_arg = nullptr;
  std::size_t empty_reserve = 1;  // empty slabs kept for reuse
  unsigned slab_waste = 0;        // slab waste at most 1/slab_waste (slab_geometry.h); 0 = 8
  PageAllocator* pages = nullptr; // nullptr: PageAllocator::global()
  // For mslab's own layers: the cache takes this id, one of the first
  // kReservedCacheIds that other caches never get, so that its pages' tag
  // (id + 1) is known in advance (the general allocator's size classes:
  // its free learns the class from the tag with no table). kAnyCacheId:
  // the lowest free id above the reserved ones.
  std::uint32_t reserved_id = kAnyCacheId;
};

struct CacheError {
  ErrorCode code;
  const char* message;  // static string
};

struct CacheStats {
  std::size_t object_size, stride, objects_per_slab, slab_bytes;
  unsigned slab_order;
  std::size_t live_objects;  // allocated and not freed (exact when no thread allocates)
  std::size_t slabs, slabs_active, slabs_partial, slabs_full, slabs_empty, slabs_isolated;
  std::size_t occupancy[kOccupancyBins];  // slabs by live/capacity
  std::size_t bytes_reserved;             // slabs × slab_bytes
  std::uint64_t slabs_created, slabs_freed;
};

struct DestroyReport {
  std::size_t live_objects;  // objects never freed; their memory is gone now
  std::size_t slabs;         // slabs given back
};

class SlabCache {
 public:
  /// Creates a cache. Invalid options (size 0 or above kMaxObjectSize, an
  /// alignment that is not a power of two or above 4096, a null name) and
  /// running out of memory or cache ids return nullptr and fill `*error`
  /// — never a crash. Thread-safe.
  static SlabCache* create(const CacheOptions& options, CacheError* error = nullptr) noexcept;

  /// Frees every slab and the cache itself, and returns the objects still
  /// live (their memory is gone: pointers to them must not be used). The
  /// caller guarantees that no thread uses the cache any more; other
  /// threads' per-thread state for it is dropped. Thread-safe otherwise.
  DestroyReport destroy() noexcept;

  /// Returns an object, or nullptr when out of memory. Thread-safe; lock-free
  /// while the thread's active slab has free slots, else takes the cache lock
  /// and may block in the page allocator.
  void* alloc() noexcept;

  /// Frees an object of this cache; any thread, lock-free except when the
  /// slab changes list. A null pointer is ignored. A foreign pointer (not
  /// from this cache), an interior pointer or a double free is reported
  /// (error.h) and the call has no effect.
  void free(void* object) noexcept;

  /// Allocation that bypasses the per-thread cache: takes one object from
  /// the fullest partial slab under the cache lock. For relocation targets
  /// (the moved copy lands in a dense slab) and for exiting threads.
  void* alloc_direct() noexcept;

  /// Frees like free(), but bypasses the per-thread free buffer: under the
  /// cache lock the slot goes straight back onto its slab's free list, so
  /// the slab's record is exact when the call returns (a slab emptied this
  /// way can be released at once). For the old copy of a moved object and
  /// for deferred-free callbacks (the counterpart of jemalloc's
  /// MALLOCX_TCACHE_NONE free). Any thread; takes the cache lock; bad input
  /// is reported as by free().
  void free_direct(void* object) noexcept;

  /// The cooperative defrag hint (Redis/Valkey with jemalloc): true when
  /// moving the live `object` — alloc_direct(), copy, repoint, free_direct()
  /// — would lower fragmentation. False for an object whose slab is owned
  /// by a thread, full or isolated, or when the cache has fewer than two
  /// partial slabs; otherwise true iff the slab's occupancy is at most
  /// 1.125 × the average occupancy of the cache's partial slabs. Lock-free;
  /// at most once per millisecond a call refreshes the cached average under
  /// the cache lock (O(partial slabs)). A hint: it may be stale at once.
  /// Returns false for a pointer that is not an object of this cache.
  bool should_move(const void* object) noexcept;

  /// The page allocator this cache's slabs come from.
  PageAllocator& page_allocator() const noexcept { return *pages_; }
  std::size_t objects_per_slab() const noexcept { return capacity_; }

  /// Detaches the calling thread's owned slabs of this cache (the active
  /// one and the ones it keeps) and flushes its free buffer, so that their
  /// free slots are visible to other threads and to the defragmenter.
  void flush_thread_cache() noexcept;

  CacheStats stats() const noexcept;
  const char* name() const noexcept { return name_; }
  std::size_t object_size() const noexcept { return object_size_; }

  /// Full consistency walk of the detached slabs: links, free counts, list
  /// placement. Reports kCorruption and returns false on the first fault.
  bool validate() const noexcept;

  /// The cache that owns `p` (any address inside a slab), or nullptr. O(1).
  static SlabCache* cache_of(const void* p) noexcept;

  // --- Slab-level operations for the defragmenter (design §3) -----------

  /// Isolates a detached slab: nothing is allocated from it until
  /// release_isolated(); frees into it still work. Returns false for a
  /// slab owned by a thread or already isolated. Takes the cache lock.
  bool isolate(detail::Slab* slab) noexcept;

  /// Ends isolation. An empty slab goes back to the page allocator at once
  /// (returns true); otherwise it rejoins the lists. Takes the cache lock.
  bool release_isolated(detail::Slab* slab) noexcept;

  /// Writes the allocated objects of `slab` to `out` (at most out.size())
  /// and returns how many there are. Reads only slab metadata, never object
  /// memory; lock-free. Exact for an isolated slab up to frees racing in.
  static std::size_t allocated_objects(const detail::Slab* slab, std::span<void*> out) noexcept;

  /// Calls `fn(slab)` for every detached, non-isolated slab holding objects
  /// (partial or full; with `include_empty` the kept empty slabs too) under
  /// the cache lock (fn must not call back into this cache).
  template <class Fn>
  void for_each_detached_slab(Fn&& fn, bool include_empty = false) const noexcept;

  /// The defragmenter's survey: calls `fn(slab, live)` for every slab of
  /// this cache that no thread owns and that is not isolated (partial, full
  /// or empty), with its live objects (frees still in thread buffers count
  /// as live). Reads only dense metadata — the page tags and the slabs'
  /// xfree words, never a slab header — chunk by chunk under the page
  /// allocator's lock and without the cache lock, so it costs O(chunks)
  /// where a walk of the slab lists costs a cache miss a slab; in exchange
  /// the answer is a snapshot that may be stale at once (a slab seen may be
  /// gone, or owned, when it is looked for again under the cache lock).
  /// `fn` must be short and must not call into the cache or the page
  /// allocator.
  template <class Fn>
  void survey_detached(Fn&& fn) const noexcept;

  /// Isolates, in one hold of the cache lock, those of the slabs at
  /// `slabs` (addresses from survey_detached(), any order) that are still
  /// detached slabs of this cache — partial, full or empty, not isolated —
  /// and writes them to `out` (it stops when `out` is full). Returns how
  /// many were isolated. O(slabs listed), not O(slabs of the cache): an
  /// address is checked against the page tag before its header is read.
  std::size_t isolate_listed(std::span<const std::uintptr_t> slabs, std::span<detail::Slab*> out) noexcept;

  /// Pages in one slab of this cache.
  std::size_t slab_pages() const noexcept { return std::size_t{1} << order_; }


  /// Mobility phase 1 hook (design §3): under the cache lock, lists the live
  /// objects of `slab` — isolated by this cache — into `buffer` and returns
  /// `fn(ctx, objects)`. Frees flushed from thread buffers wait for the lock,
  /// so the slab's free lists do not change while `fn` runs; a free racing
  /// in through a blind state store may still mark a listed object free
  /// (the owner's protocol covers that). Objects freed into thread buffers
  /// are never listed. Returns false without calling `fn` (and `*nr` = 0)
  /// if the slab is not isolated here or `buffer` holds fewer than
  /// objects_per_slab() pointers. `fn` must not block or call into this
  /// cache.
  using PinFn = bool (*)(void* ctx, std::span<void*> objects) noexcept;
  bool pin_isolated(detail::Slab* slab, std::span<void*> buffer, PinFn fn, void* ctx, std::size_t* nr) noexcept;

 private:
  SlabCache() = default;
  using SlabList = boost::intrusive::list<
      detail::Slab,
      boost::intrusive::member_hook<detail::Slab, detail::ListHook, &detail::Slab::hook>,
      boost::intrusive::constant_time_size<true>>;

  void* alloc_slow() noexcept;
  void free_other(void* object, detail::Slab* slab, std::uint16_t index) noexcept;
  [[gnu::noinline]] void buffer_slow(void* object, detail::Slab* slab, std::uint16_t index) noexcept;
  [[gnu::noinline]] void push_owned_locked(detail::Slab* slab, std::uint16_t head, std::uint16_t tail, std::uint32_t n,
                                          std::uintptr_t token, std::uint64_t xfree) noexcept;
  void push_locked(detail::Slab* slab, std::uint16_t head, std::uint16_t tail, std::uint32_t n,
                   std::uintptr_t token) noexcept;
  void flush_buffer_locked(detail::ThreadHeap::Entry& e, std::uintptr_t token) noexcept;
  void flush_entry(detail::ThreadHeap::Entry& e, std::uintptr_t token) noexcept;
  void flush_buffer(detail::ThreadHeap::Entry& e, std::uintptr_t token) noexcept;  // lock + flush_buffer_locked
  detail::ThreadHeap::Entry& entry_of(detail::ThreadHeap* heap) noexcept;
  // heap->entries[id_] from a byte offset computed once: one add on the
  // allocation fast path instead of a multiply by the entry size.
  MSLAB_ALWAYS_INLINE detail::ThreadHeap::Entry& entry_in(detail::ThreadHeap* heap) const noexcept {
    return *reinterpret_cast<detail::ThreadHeap::Entry*>(reinterpret_cast<char*>(heap) + entry_offset_);
  }
  bool activate_owned(detail::ThreadHeap::Entry& e, bool remote) noexcept;
  void keep_owned_locked(detail::ThreadHeap::Entry& e, detail::Slab* s) noexcept;
  std::size_t index_of(const detail::Slab* slab, const void* object) const noexcept;
  // The slab and slot of `object` when it is the start of an object of this
  // cache (checked against the page's owner tag, so any pointer is safe);
  // false for anything else. No read of the slab header. `hint` is the
  // slab's owner hint (page_allocator.h): 0, or its owner thread's.
  bool locate(const void* object, detail::Slab*& s, std::size_t& i, std::uint32_t& hint) const noexcept;
  void free_invalid(void* object, detail::Slab* slab) noexcept;
  void isolate_locked(detail::Slab* slab) noexcept;
  void refresh_occupancy() noexcept;
  detail::Slab* new_slab() noexcept;
  void delete_slab_locked(detail::Slab* slab) noexcept;
  detail::Slab* take_partial_locked() noexcept;
  void activate_locked(detail::Slab* slab, std::uintptr_t token) noexcept;
  void detach_locked(detail::Slab* slab) noexcept;
  void relist_locked(detail::Slab* slab) noexcept;
  void link_locked(detail::Slab* slab, detail::SlabList list, unsigned bucket) noexcept;
  void unlink_locked(detail::Slab* slab) noexcept;
  SlabList& list_for(detail::SlabList list, unsigned bucket) noexcept;
  unsigned bucket_for(std::size_t live) const noexcept { return static_cast<unsigned>(live * kPartialBuckets / capacity_); }
  static std::size_t count_allocated(const detail::Slab* slab) noexcept;

  friend void detail::flush_heap(detail::ThreadHeap* heap, bool release) noexcept;
  friend void detail::flush_free_buffers() noexcept;
  friend void detail::lock_caches_for_fork(bool lock) noexcept;
  friend struct SlabCacheTestAccess;

  // --- immutable after create()
  char name_[kMaxCacheName + 1];
  std::size_t object_size_;
  std::uint32_t stride_;
  std::uint32_t objects_offset_;  // from the slab start
  std::uintptr_t slab_mask_;       // ~(slab bytes - 1): slabs are aligned to their size
  detail::ExactDivisor divisor_;   // index = divisor_.index(offset from slot 0), exact or ≥ capacity_
  std::uint16_t capacity_;
  std::uint8_t order_;
  std::uint32_t id_;
  std::uint32_t entry_offset_;  // of entries[id_] in a ThreadHeap
  std::uint32_t tag_;  // id_ + 1, recorded on every page of our slabs
  std::uint32_t slab_tag_;  // owner_tag(kSlab, tag_): what free() expects on the page
  // What locate() needs besides slab_mask_ and divisor_.inverse, in one
  // word: objects_offset_ (bits 0-19), divisor_.shift (20-25), slab_tag_
  // (32-63). One load instead of three: the pair loop is bound by its loads
  // (docs/benchmarks.md, "The chunk arena"), and this took 0.3 ns off it.
  std::uint64_t free_word_;
  static constexpr std::uint64_t kFreeWordOffsetMask = (std::uint64_t{1} << 20) - 1;
  static constexpr unsigned kFreeWordShiftShift = 20;
  static constexpr unsigned kFreeWordTagShift = 32;
  std::uint64_t serial_;
  Constructor ctor_;
  void* ctor_arg_;
  std::size_t empty_reserve_;
  PageAllocator* pages_;

  // --- guarded by lock_
  mutable detail::AdaptiveMutex lock_;
  SlabList active_, full_, empty_, isolated_;
  SlabList partial_[kPartialBuckets];
  std::uint64_t slabs_created_ = 0, slabs_freed_ = 0;

  // --- should_move()'s cached view of the partial slabs (refreshed ≤ 1/ms)
  std::atomic<std::uint32_t> avg_occupancy_ = 0;   // average live/capacity × 2^16
  std::atomic<std::uint32_t> partial_count_ = 0;   // partial slabs at the refresh
  std::atomic<std::int64_t> occupancy_stamp_ns_ = -1;
};

// ---------------------------------------------------------------------------
// Fast paths.

MSLAB_ALWAYS_INLINE void* SlabCache::alloc() noexcept {
  // tl_heap is never null (thread_heap.h): a thread without a heap finds
  // an empty entry and takes the slow path.
  detail::ThreadHeap::Entry& e = entry_in(detail::tl_heap);
  // An entry never points at a slab of a destroyed cache that had our id
  // (unregister_cache() clears them in every heap), so no serial test.
  detail::Slab* s = e.active;
  if (MSLAB_LIKELY(s != nullptr)) {
    const std::uint16_t i = s->local_head;
    if (MSLAB_LIKELY(i != detail::kNil)) {
      s->local_head = s->link(i);
      s->set_link(i, detail::kAllocated);
      char* object = reinterpret_cast<char*>(s) + objects_offset_ + std::size_t{i} * stride_;
      detail::unpoison_object(object, object_size_);
      return object;
    }
  }
  return alloc_slow();
}

MSLAB_ALWAYS_INLINE bool SlabCache::locate(const void* object, detail::Slab*& s, std::size_t& i,
                                           std::uint32_t& hint) const noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(object);
  s = reinterpret_cast<detail::Slab*>(addr & slab_mask_);
  const std::uint64_t w = free_word_;
  // Our tag, give or take the owner hint: anything else is not ours.
  hint = detail::owner_tag_of(object) ^ static_cast<std::uint32_t>(w >> kFreeWordTagShift);
  if (MSLAB_UNLIKELY((hint & ~detail::kOwnerHintMask) != 0)) return false;
  // One compare covers "below slot 0", "past the last slot" and "not at
  // the start of a slot" (exact_divisor.h, here with its shift unpacked).
  const std::uint64_t offset = addr - reinterpret_cast<std::uintptr_t>(s) - (w & kFreeWordOffsetMask);
  i = static_cast<std::size_t>(std::rotr(offset * divisor_.inverse, static_cast<int>((w >> kFreeWordShiftShift) & 63)));
  return i < capacity_;
}

MSLAB_ALWAYS_INLINE void SlabCache::free(void* object) noexcept {
  // Slabs are aligned to their size, so the slab (if `object` is ours) is
  // found by masking; the page's owner tag — dense, out-of-line metadata —
  // confirms it and names the cache, so no slab header is read to validate.
  // All our slabs have one order and are aligned to it, so a page tagged
  // with our cache lies in the slab found by masking.
  // A null `object` lies in no chunk: it fails locate() and free_invalid()
  // ignores it, with no test of its own. Only a null known at compile time
  // returns here, so that the compiler does not warn about the slab at 0.
  if (__builtin_constant_p(object == nullptr) && object == nullptr) return;
  detail::Slab* s;
  std::size_t i;
  std::uint32_t hint;
  if (MSLAB_UNLIKELY(!locate(object, s, i, hint))) return free_invalid(object, detail::slab_of(object));
  // Owned by this thread (its active slab or one it keeps)? The page tag's
  // owner hint says so without a read of the slab header; only this thread
  // puts its own hint on a slab or takes it off. A thread without a heap
  // (g_no_heap) or without a number has a hint that no tag carries.
  if (MSLAB_LIKELY(hint == detail::tl_owner_hint)) {
    // A slab this thread owns: only this thread touches its local lists.
    // Two loads, not one of the slot's whole word: the allocation that
    // handed this object out may have stored its link a moment ago (LIFO
    // use), and a wider load than that store cannot be forwarded from it.
    if (kCheapChecks && MSLAB_UNLIKELY(s->link(i) != detail::kAllocated || s->state(i) == detail::kFreed))
      return free_invalid(object, s);
    if constexpr (kFullChecks) {
      // Claim the link, so that a racing free of the same object by
      // another thread cannot also succeed (see free_other()).
      std::uint16_t expected = detail::kAllocated;
      if (!s->slots()[i].link.compare_exchange_strong(expected, s->local_free, std::memory_order_relaxed))
        return free_invalid(object, s);
    }
    detail::poison_object(object, object_size_);
    s->set_link(i, s->local_free);
    s->local_free = static_cast<std::uint16_t>(i);
    return;
  }
  free_other(object, s, static_cast<std::uint16_t>(i));
}

template <class Fn>
void SlabCache::for_each_detached_slab(Fn&& fn, bool include_empty) const noexcept {
  std::lock_guard guard(lock_);
  for (const SlabList& list : partial_)
    for (const detail::Slab& s : list) fn(const_cast<detail::Slab*>(&s));
  for (const detail::Slab& s : full_) fn(const_cast<detail::Slab*>(&s));
  if (include_empty)
    for (const detail::Slab& s : empty_) fn(const_cast<detail::Slab*>(&s));
}

template <class Fn>
void SlabCache::survey_detached(Fn&& fn) const noexcept {
  struct Ctx {
    Fn* fn;
    std::uint32_t capacity;
  };
  Ctx ctx{&fn, capacity_};
  // Owner tag with hint 0: slabs no thread owns (an isolated slab has none
  // either; its xfree flag tells).
  pages_->for_each_block(
      slab_tag_, 0, order_,
      [](void* c, void* block) noexcept {
        const Ctx& x = *static_cast<const Ctx*>(c);
        // 0 until the slab is made (the page allocator zeroes it): skipped.
        const std::uint64_t w = detail::block_word(block).load(std::memory_order_acquire);
        if (!(w & detail::XFree::kDetached) || (w & detail::XFree::kIsolated)) return;
        const std::uint32_t free_count = detail::XFree::count(w);
        if (free_count > x.capacity) return;
        (*x.fn)(static_cast<detail::Slab*>(block), std::size_t{x.capacity - free_count});
      },
      &ctx);
}


}  // namespace mslab
