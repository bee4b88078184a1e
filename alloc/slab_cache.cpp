// Slab caches (slab_cache.h): creation, the slow paths of alloc/free, list
// maintenance, statistics, validation and the isolation hooks.
//
// Lists (all under lock_): every slab is on exactly one of
//   active_     owned by a thread (Slab::owner != 0)
//   partial_[b] detached, some objects live; b = occupancy bucket
//   full_       detached, no free slot
//   empty_      detached, no live object (at most empty_reserve_ kept)
//   isolated_   detached and isolated by the defragmenter
// A detached slab's place is a function of its xfree word (relist_locked).
// Lock-free pushes change that word; a push that moves the slab from full to
// partial or to empty (a "crossing") takes the lock *before* pushing, which
// keeps the slab alive until it has been relisted: a slab is only freed when
// empty, and the freer still holds a live object until its push. Partial
// buckets are refiled lazily: frees only lower a detached slab's occupancy,
// so a slab's bucket is an upper bound, corrected when the slab is chosen.
#include "alloc/slab_cache.h"

#include <cstring>
#include <new>

#include "alloc/meta_pool.h"
#include "alloc/slab_geometry.h"

namespace mslab {

using detail::kAllocated;
using detail::kNil;
using detail::Slab;
using detail::ThreadHeap;
using detail::XFree;

namespace {

bool is_power_of_two(std::size_t n) noexcept { return n != 0 && (n & (n - 1)) == 0; }

CacheError validate_options(const CacheOptions& o, std::size_t* align) noexcept {
  if (o.name == nullptr) return {ErrorCode::kInvalidArgument, "cache name is null"};
  if (o.object_size == 0) return {ErrorCode::kInvalidArgument, "object size is zero"};
  if (o.object_size > kMaxObjectSize) return {ErrorCode::kInvalidArgument, "object size above 256 KiB"};
  std::size_t a = o.align;
  if (a == 0) a = o.object_size % 16 == 0 ? 16 : 8;
  if (!is_power_of_two(a)) return {ErrorCode::kInvalidArgument, "alignment is not a power of two"};
  if (a > kMaxObjectAlign) return {ErrorCode::kInvalidArgument, "alignment above 4096"};
  *align = a;
  return {ErrorCode::kInvalidArgument, nullptr};
}

}  // namespace

// ---------------------------------------------------------------------------
// Creation and destruction.

SlabCache* SlabCache::create(const CacheOptions& options, CacheError* error) noexcept {
  std::size_t align = 0;
  CacheError problem = validate_options(options, &align);
  auto fail = [&](CacheError e) -> SlabCache* {
    if (error != nullptr) *error = e;
    return nullptr;
  };
  if (problem.message != nullptr) return fail(problem);

  void* mem = detail::meta_alloc(sizeof(SlabCache));
  if (mem == nullptr) return fail({ErrorCode::kOutOfMemory, "no memory for the cache descriptor"});
  auto* cache = new (mem) SlabCache();
  std::strncpy(cache->name_, options.name, kMaxCacheName);
  cache->name_[kMaxCacheName] = '\0';
  const detail::SlabGeometry g = detail::compute_slab_geometry(options.object_size, align);
  cache->object_size_ = options.object_size;
  cache->stride_ = static_cast<std::uint32_t>(g.stride);
  cache->objects_offset_ = static_cast<std::uint32_t>(g.objects_offset);
  cache->recip_ = ((std::uint64_t{1} << kRecipShift) + g.stride - 1) / g.stride;
  cache->capacity_ = static_cast<std::uint16_t>(g.capacity);
  cache->order_ = static_cast<std::uint8_t>(g.order);
  cache->slab_mask_ = ~static_cast<std::uintptr_t>(order_bytes(g.order) - 1);
  cache->ctor_ = options.ctor;
  cache->ctor_arg_ = options.ctor_arg;
  cache->empty_reserve_ = options.empty_reserve;
  cache->pages_ = options.pages != nullptr ? options.pages : &PageAllocator::global();
  if (!detail::register_cache(cache, &cache->id_, &cache->serial_)) {
    cache->~SlabCache();
    detail::meta_free(cache, sizeof(SlabCache));
    return fail({ErrorCode::kOutOfMemory, "too many caches (MSLAB_MAX_CACHES)"});
  }
  return cache;
}

DestroyReport SlabCache::destroy() noexcept {
  // Unregister first: from now on no thread flush finds this cache, and
  // stale per-thread entries are recognised by their serial.
  detail::unregister_cache(id_);
  DestroyReport report{0, 0};
  {
    std::lock_guard guard(lock_);
    auto drain = [&](SlabList& list) {
      while (!list.empty()) {
        Slab* s = &list.front();
        report.live_objects += count_allocated(s);
        ++report.slabs;
        delete_slab_locked(s);
      }
    };
    drain(active_);
    for (SlabList& list : partial_) drain(list);
    drain(full_);
    drain(empty_);
    drain(isolated_);
  }
  // The calling thread's own entry may point at a freed slab: clear it now
  // (other threads' entries are ignored through the serial).
  if (ThreadHeap* heap = detail::tl_heap) heap->entries[id_] = ThreadHeap::Entry{};
  this->~SlabCache();
  detail::meta_free(this, sizeof(SlabCache));
  return report;
}

// ---------------------------------------------------------------------------
// Slabs.

Slab* SlabCache::new_slab() noexcept {
  void* block = pages_->alloc(order_, BlockKind::kSlab);
  if (block == nullptr) return nullptr;
  auto* s = new (block) Slab{};
  s->cache = this;
  s->objects = static_cast<char*>(block) + objects_offset_;
  s->stride = stride_;
  s->capacity = capacity_;
  s->order = order_;
  s->list = detail::SlabList::kNone;
  // All slots on the local list, in address order.
  for (std::uint16_t i = 0; i < capacity_; ++i)
    new (&s->links()[i]) std::atomic<std::uint16_t>(i + 1 < capacity_ ? static_cast<std::uint16_t>(i + 1) : kNil);
  s->local_head = 0;
  s->local_count.store(capacity_, std::memory_order_relaxed);
  s->xfree.store(XFree::make(kNil, 0, 0), std::memory_order_relaxed);
  if (ctor_ != nullptr)
    for (std::size_t i = 0; i < capacity_; ++i) ctor_(s->object(i), ctor_arg_);
  detail::poison_object(s->objects, std::size_t{capacity_} * stride_);
  return s;
}

void SlabCache::delete_slab_locked(Slab* s) noexcept {
  unlink_locked(s);
  ++slabs_freed_;
  detail::unpoison_object(s, order_bytes(s->order));
  pages_->free(s, s->order);
}

SlabCache::SlabList& SlabCache::list_for(detail::SlabList list, unsigned bucket) noexcept {
  switch (list) {
    case detail::SlabList::kActive: return active_;
    case detail::SlabList::kPartial: return partial_[bucket];
    case detail::SlabList::kFull: return full_;
    case detail::SlabList::kEmpty: return empty_;
    case detail::SlabList::kIsolated:
    case detail::SlabList::kNone: break;
  }
  return isolated_;
}

void SlabCache::unlink_locked(Slab* s) noexcept {
  if (s->list == detail::SlabList::kNone) return;
  SlabList& list = list_for(s->list, s->bucket);
  list.erase(list.iterator_to(*s));
  s->list = detail::SlabList::kNone;
}

void SlabCache::link_locked(Slab* s, detail::SlabList list, unsigned bucket) noexcept {
  unlink_locked(s);
  s->list = list;
  s->bucket = static_cast<std::uint8_t>(bucket);
  list_for(list, bucket).push_back(*s);
}

// Files a detached slab where its xfree word says it belongs; frees empty
// slabs beyond the reserve.
void SlabCache::relist_locked(Slab* s) noexcept {
  if (s->owner.load(std::memory_order_relaxed) != 0) return;  // active: stays put
  const std::uint64_t w = s->xfree.load(std::memory_order_acquire);
  const std::uint32_t free_count = XFree::count(w);
  detail::SlabList want;
  unsigned bucket = 0;
  if (w & XFree::kIsolated) {
    want = detail::SlabList::kIsolated;
  } else if (free_count == capacity_) {
    want = detail::SlabList::kEmpty;
  } else if (free_count == 0) {
    want = detail::SlabList::kFull;
  } else {
    want = detail::SlabList::kPartial;
    bucket = bucket_for(capacity_ - free_count);
  }
  if (s->list == want && s->bucket == bucket) return;
  link_locked(s, want, bucket);
  if (want == detail::SlabList::kEmpty) {
    while (empty_.size() > empty_reserve_) delete_slab_locked(&empty_.front());
  }
}

// Would pushing `n` frees onto a slab with word `w` move it from the full
// list or onto the empty list?
bool SlabCache::crossing(std::uint64_t w, std::uint32_t n) const noexcept {
  if (!(w & XFree::kDetached)) return false;
  const std::uint32_t c = XFree::count(w);
  return c == 0 || c + n == capacity_;
}

std::size_t SlabCache::count_allocated(const Slab* s) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s->capacity; ++i) n += s->link(i) == kAllocated;
  return n;
}

// Takes the fullest partial slab, else an empty one; nullptr if none. Slabs
// found below their bucket (frees since they were filed) are refiled.
Slab* SlabCache::take_partial_locked() noexcept {
  for (unsigned b = kPartialBuckets; b-- > 0;) {
    while (!partial_[b].empty()) {
      Slab* s = &partial_[b].front();
      const std::uint32_t free_count = XFree::count(s->xfree.load(std::memory_order_acquire));
      const unsigned actual = bucket_for(capacity_ - free_count);
      if (actual >= b) return s;
      link_locked(s, detail::SlabList::kPartial, actual);
    }
  }
  if (!empty_.empty()) return &empty_.front();
  return nullptr;
}

// Makes `s` (detached, not isolated) the active slab of the thread `token`:
// its whole xfree list becomes the thread's local list.
void SlabCache::activate_locked(Slab* s, std::uintptr_t token) noexcept {
  // acquire: pairs with the release CAS in free_remote(), so the links of
  // the pushed slots are visible.
  const std::uint64_t w = s->xfree.exchange(XFree::make(kNil, 0, 0), std::memory_order_acquire);
  s->local_head = XFree::head(w);
  s->local_count.store(static_cast<std::uint16_t>(XFree::count(w)), std::memory_order_relaxed);
  s->owner.store(token, std::memory_order_relaxed);
  link_locked(s, detail::SlabList::kActive, 0);
}

// Hands the calling thread's active slab `s` back: its local list is merged
// into xfree and it is filed as detached.
void SlabCache::detach_locked(Slab* s) noexcept {
  std::uint16_t head = s->local_head;
  const std::uint32_t local = s->local_count.load(std::memory_order_relaxed);
  std::uint16_t tail = head;
  if (head != kNil)
    while (s->link(tail) != kNil) tail = s->link(tail);
  std::uint64_t w = s->xfree.load(std::memory_order_relaxed);
  for (;;) {
    if (tail != kNil) s->set_link(tail, XFree::head(w));
    const std::uint16_t new_head = head != kNil ? head : XFree::head(w);
    const std::uint64_t nw = XFree::make(new_head, XFree::count(w) + local, XFree::flags(w) | XFree::kDetached);
    if (s->xfree.compare_exchange_weak(w, nw, std::memory_order_release, std::memory_order_relaxed)) break;
  }
  s->local_head = kNil;
  s->local_count.store(0, std::memory_order_relaxed);
  s->owner.store(0, std::memory_order_relaxed);
  relist_locked(s);
}

// ---------------------------------------------------------------------------
// Allocation.

void* SlabCache::alloc_slow() noexcept {
  ThreadHeap* heap = detail::tl_heap;
  if (heap == nullptr && (heap = detail::create_thread_heap()) == nullptr) return alloc_direct();
  ThreadHeap::Entry& e = entry_of(heap);
  if (e.pending != nullptr) flush_pending(e);  // its slots become reusable

  Slab* s = e.active;
  while (s != nullptr) {
    // Collect what other threads freed into our active slab.
    const std::uint64_t w = s->xfree.exchange(XFree::make(kNil, 0, 0), std::memory_order_acquire);
    if (XFree::count(w) != 0) {
      s->local_head = XFree::head(w);
      s->local_count.store(static_cast<std::uint16_t>(XFree::count(w)), std::memory_order_relaxed);
      return alloc();
    }
    // Full: detach it, unless a remote free slips in first.
    std::lock_guard guard(lock_);
    std::uint64_t expected = XFree::make(kNil, 0, 0);
    if (s->xfree.compare_exchange_strong(expected, XFree::make(kNil, 0, XFree::kDetached), std::memory_order_relaxed)) {
      s->owner.store(0, std::memory_order_relaxed);
      relist_locked(s);
      e.active = nullptr;
      s = nullptr;
    }
  }

  {
    std::lock_guard guard(lock_);
    if (Slab* p = take_partial_locked()) {
      activate_locked(p, heap->token());
      e.active = p;
      return alloc();
    }
  }
  // No partial slab: make one without holding the lock (constructors run).
  s = new_slab();
  if (s == nullptr) return nullptr;
  {
    std::lock_guard guard(lock_);
    ++slabs_created_;
    s->owner.store(heap->token(), std::memory_order_relaxed);
    link_locked(s, detail::SlabList::kActive, 0);
  }
  e.active = s;
  return alloc();
}

void* SlabCache::alloc_direct() noexcept {
  std::unique_lock guard(lock_);
  Slab* s = take_partial_locked();
  if (s == nullptr) {
    guard.unlock();
    s = new_slab();
    if (s == nullptr) return nullptr;
    // Hand all slots to xfree and file it as detached.
    s->xfree.store(XFree::make(s->local_head, s->local_count.load(std::memory_order_relaxed), XFree::kDetached),
                   std::memory_order_relaxed);
    s->local_head = kNil;
    s->local_count.store(0, std::memory_order_relaxed);
    guard.lock();
    ++slabs_created_;
  }
  // Pop one slot. Only lock holders pop, so the head cannot be popped and
  // pushed back under us (no ABA); concurrent pushes just make us retry.
  std::uint64_t w = s->xfree.load(std::memory_order_acquire);
  std::uint16_t i;
  for (;;) {
    i = XFree::head(w);
    const std::uint64_t nw = XFree::make(s->link(i), XFree::count(w) - 1, XFree::flags(w));
    if (s->xfree.compare_exchange_weak(w, nw, std::memory_order_acquire, std::memory_order_acquire)) break;
  }
  s->set_link(i, kAllocated);
  relist_locked(s);
  detail::unpoison_object(s->object(i), object_size_);
  return s->object(i);
}

// ---------------------------------------------------------------------------
// Frees.

// This thread's entry for this cache; resets an entry left by a destroyed
// cache that had the same id.
ThreadHeap::Entry& SlabCache::entry_of(ThreadHeap* heap) noexcept {
  ThreadHeap::Entry& e = heap->entries[id_];
  if (e.serial != serial_) e = ThreadHeap::Entry{nullptr, serial_, nullptr, 0, 0, 0, 0};
  if (heap->max_id_used <= id_) heap->max_id_used = id_ + 1;
  return e;
}

// A free into a slab this thread does not own. Consecutive frees into the
// same slab are chained privately (the slots are already free: their links
// are no longer kAllocated) and pushed together when the thread frees into
// another slab, allocates on its slow path, flushes or exits — or at once
// when the chain completes the slab's free set.
void SlabCache::free_other(Slab* s, std::uint16_t i) noexcept {
  // Claim the slot. At full checks the claim is a CAS, so that two threads
  // freeing one object cannot both succeed.
  std::uint16_t expected = kAllocated;
  const bool claimed = kFullChecks ? s->links()[i].compare_exchange_strong(expected, kNil, std::memory_order_relaxed)
                                   : (!kCheapChecks || s->link(i) == kAllocated);
  if (MSLAB_UNLIKELY(!claimed)) {
    report_error(ErrorCode::kDoubleFree, name_, s->object(i), "object is already free");
    return;
  }
  detail::poison_object(s->object(i), object_size_);
  ThreadHeap* heap = detail::tl_heap;
  if (MSLAB_UNLIKELY(heap == nullptr)) {  // exiting thread, or never allocated: push alone
    s->set_link(i, kNil);
    push_chain(s, i, i, 1);
    return;
  }
  ThreadHeap::Entry& e = entry_of(heap);
  if (e.pending == s) {
    s->set_link(i, e.pending_head);
    e.pending_head = i;
    ++e.pending_count;
  } else {
    if (e.pending != nullptr) flush_pending(e);
    s->set_link(i, kNil);
    e.pending = s;
    e.pending_head = e.pending_tail = i;
    e.pending_count = 1;
    e.pending_base = static_cast<std::uint16_t>(XFree::count(s->xfree.load(std::memory_order_relaxed)));
  }
  // Push at once when the chain completes the slab's free set as last seen,
  // so an emptied slab goes back without waiting (frees by other threads
  // since then are caught by the push's own empty check).
  if (e.pending_base + e.pending_count == capacity_) flush_pending(e);
}

void SlabCache::flush_pending(ThreadHeap::Entry& e) noexcept {
  push_chain(e.pending, e.pending_head, e.pending_tail, e.pending_count);
  e.pending = nullptr;
  e.pending_count = 0;
}

// Pushes the chain head … tail (n slots, linked through the slab's links)
// onto the slab's xfree stack.
void SlabCache::push_chain(Slab* s, std::uint16_t head, std::uint16_t tail, std::uint32_t n) noexcept {
  std::unique_lock<std::mutex> guard(lock_, std::defer_lock);
  std::uint64_t w = s->xfree.load(std::memory_order_relaxed);
  for (;;) {
    if (!guard.owns_lock() && crossing(w, n)) {
      guard.lock();
      w = s->xfree.load(std::memory_order_relaxed);
      continue;
    }
    s->set_link(tail, XFree::head(w));
    const std::uint64_t nw = XFree::make(head, XFree::count(w) + n, XFree::flags(w));
    // release: publishes the chain's links; pairs with the acquire exchange
    // in activate_locked()/alloc_slow() and the acquire in allocated_objects().
    if (s->xfree.compare_exchange_weak(w, nw, std::memory_order_release, std::memory_order_relaxed)) break;
  }
  if (guard.owns_lock()) relist_locked(s);
}

// Hands back everything the thread holds of this cache (flush, thread exit).
void SlabCache::flush_entry(ThreadHeap::Entry& e) noexcept {
  if (e.pending != nullptr) flush_pending(e);
  if (e.active != nullptr) {
    std::lock_guard guard(lock_);
    detach_locked(e.active);
    e.active = nullptr;
  }
}

void SlabCache::free_invalid(void* object, Slab* s) noexcept {
  if (object == nullptr) return;
  if (s == nullptr) {
    report_error(ErrorCode::kForeignPointer, name_, object, "pointer was not allocated from any slab cache");
    return;
  }
  if (s->cache != this) {
    report_error(ErrorCode::kForeignPointer, name_, object,
                 s->cache != nullptr ? "pointer belongs to another cache" : "pointer is not in a slab");
    return;
  }
  const std::size_t offset = static_cast<std::size_t>(static_cast<char*>(object) - s->objects);
  const std::size_t i = static_cast<std::size_t>((offset * recip_) >> kRecipShift);
  if (static_cast<char*>(object) < s->objects || i >= capacity_ || i * stride_ != offset) {
    report_error(ErrorCode::kInteriorPointer, name_, object, "pointer is not the start of an object");
    return;
  }
  report_error(ErrorCode::kDoubleFree, name_, object, "object is already free");
}

void SlabCache::flush_thread_cache() noexcept {
  if (ThreadHeap* heap = detail::tl_heap) flush_entry(entry_of(heap));
}

// ---------------------------------------------------------------------------
// Isolation (for the defragmenter).

SlabCache* SlabCache::cache_of(const void* p) noexcept {
  Slab* s = detail::slab_of(p);
  return s == nullptr ? nullptr : s->cache;
}

bool SlabCache::isolate(Slab* s) noexcept {
  std::lock_guard guard(lock_);
  if (s->cache != this || s->owner.load(std::memory_order_relaxed) != 0 || s->list == detail::SlabList::kIsolated)
    return false;
  s->xfree.fetch_or(XFree::kIsolated, std::memory_order_acq_rel);
  link_locked(s, detail::SlabList::kIsolated, 0);
  return true;
}

bool SlabCache::release_isolated(Slab* s) noexcept {
  std::lock_guard guard(lock_);
  if (s->list != detail::SlabList::kIsolated) return false;
  const std::uint64_t w = s->xfree.fetch_and(~XFree::kIsolated, std::memory_order_acq_rel);
  if (XFree::count(w) == capacity_) {  // empty: straight back to the page allocator
    delete_slab_locked(s);
    return true;
  }
  relist_locked(s);
  return false;
}

std::size_t SlabCache::allocated_objects(const Slab* s, std::span<void*> out) noexcept {
  // acquire: pairs with the release CAS of frees, so a slot seen free is
  // really free; a free racing in after this may still be listed.
  s->xfree.load(std::memory_order_acquire);
  std::size_t n = 0;
  for (std::size_t i = 0; i < s->capacity; ++i) {
    if (s->link(i) != kAllocated) continue;
    if (n < out.size()) out[n] = s->object(i);
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------
// Statistics and validation.

CacheStats SlabCache::stats() const noexcept {
  std::lock_guard guard(lock_);
  CacheStats st{};
  st.object_size = object_size_;
  st.stride = stride_;
  st.objects_per_slab = capacity_;
  st.slab_order = order_;
  st.slab_bytes = order_bytes(order_);
  auto count = [&](const SlabList& list, std::size_t& bucket_count) {
    for (const Slab& s : list) {
      const std::size_t live = count_allocated(&s);
      st.live_objects += live;
      ++st.occupancy[live == 0 ? 0 : 1 + (live * 10 - 1) / capacity_];
      ++bucket_count;
    }
  };
  count(active_, st.slabs_active);
  for (const SlabList& list : partial_) count(list, st.slabs_partial);
  count(full_, st.slabs_full);
  count(empty_, st.slabs_empty);
  count(isolated_, st.slabs_isolated);
  st.slabs = st.slabs_active + st.slabs_partial + st.slabs_full + st.slabs_empty + st.slabs_isolated;
  st.bytes_reserved = st.slabs * st.slab_bytes;
  st.slabs_created = slabs_created_;
  st.slabs_freed = slabs_freed_;
  return st;
}

bool SlabCache::validate() const noexcept {
  std::lock_guard guard(lock_);
  auto fail = [&](const void* where, const char* what) {
    report_error(ErrorCode::kCorruption, name_, where, what);
    return false;
  };
  auto check_detached = [&](const Slab& s, detail::SlabList want) {
    if (s.cache != this) return fail(&s, "slab on a list of another cache");
    if (s.list != want) return fail(&s, "slab list tag does not match its list");
    if (s.owner.load(std::memory_order_relaxed) != 0) return fail(&s, "detached slab has an owner");
    const std::uint64_t w = s.xfree.load(std::memory_order_acquire);
    if (!(w & XFree::kDetached)) return fail(&s, "detached slab lacks the detached flag");
    if (((w & XFree::kIsolated) != 0) != (want == detail::SlabList::kIsolated))
      return fail(&s, "isolated flag does not match the list");
    // Walk the free chain: every slot on it must be free, no cycles.
    std::size_t chain = 0;
    for (std::uint16_t i = XFree::head(w); i != kNil; i = s.link(i)) {
      if (i >= capacity_ || s.link(i) == kAllocated || ++chain > capacity_) return fail(&s, "broken free chain");
    }
    if (chain != XFree::count(w)) return fail(&s, "free count does not match the free chain");
    std::size_t allocated = 0;
    for (std::size_t i = 0; i < capacity_; ++i) allocated += s.link(i) == kAllocated;
    if (allocated + chain != capacity_) return fail(&s, "slots neither allocated nor on the free chain");
    const std::size_t free_count = XFree::count(w);
    if (want == detail::SlabList::kFull && free_count != 0) return fail(&s, "slab on the full list has free slots");
    if (want == detail::SlabList::kEmpty && free_count != capacity_) return fail(&s, "slab on the empty list has live objects");
    if (want == detail::SlabList::kPartial &&
        (free_count == 0 || free_count == capacity_ || bucket_for(capacity_ - free_count) > s.bucket))
      return fail(&s, "partial slab is filed below its occupancy bucket");
    return true;
  };
  for (const SlabList& list : partial_)
    for (const Slab& s : list)
      if (!check_detached(s, detail::SlabList::kPartial)) return false;
  for (const Slab& s : full_)
    if (!check_detached(s, detail::SlabList::kFull)) return false;
  for (const Slab& s : empty_)
    if (!check_detached(s, detail::SlabList::kEmpty)) return false;
  for (const Slab& s : isolated_)
    if (!check_detached(s, detail::SlabList::kIsolated)) return false;
  for (const Slab& s : active_)
    if (s.owner.load(std::memory_order_relaxed) == 0 || s.list != detail::SlabList::kActive)
      return fail(&s, "active slab without an owner");
  return true;
}

}  // namespace mslab
