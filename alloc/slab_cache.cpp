// Slab caches (slab_cache.h): creation, the slow paths of alloc/free, list
// maintenance, statistics, validation and the isolation hooks.
//
// Lists (all under lock_): every slab is on exactly one of
//   active_     owned by a thread (Slab::owner != 0)
//   partial_[b] detached, some objects live; b = occupancy bucket
//   full_       detached, no free slot
//   empty_      detached, no live object (at most empty_reserve_ kept)
//   isolated_   detached and isolated by the defragmenter
// A detached slab's place is a function of its xfree word (relist_locked),
// and that word only changes under lock_: frees into slabs a thread does not
// own are buffered per thread and pushed under the lock (free_other). Only
// an *active* slab's xfree changes without the lock: its owner collects it
// with an exchange. Partial buckets are refiled lazily: frees only lower a
// detached slab's occupancy, so a slab's bucket is an upper bound, corrected
// when the slab is chosen.
#include "alloc/slab_cache.h"

#include <chrono>
#include <cstring>
#include <new>

#include "alloc/meta_pool.h"
#include "alloc/slab_geometry.h"

namespace mslab {

using detail::kAllocated;
using detail::kNil;
using detail::kFreed;
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
  if (o.reserved_id != kAnyCacheId && o.reserved_id >= kReservedCacheIds)
    return {ErrorCode::kInvalidArgument, "reserved cache id out of range"};
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
  const detail::SlabGeometry g = detail::compute_slab_geometry(
      options.object_size, align, options.slab_waste == 0 ? detail::kMaxWasteFraction : options.slab_waste);
  cache->object_size_ = options.object_size;
  cache->stride_ = static_cast<std::uint32_t>(g.stride);
  cache->objects_offset_ = static_cast<std::uint32_t>(g.objects_offset);
  cache->divisor_ = detail::ExactDivisor(g.stride);
  cache->capacity_ = static_cast<std::uint16_t>(g.capacity);
  cache->order_ = static_cast<std::uint8_t>(g.order);
  cache->slab_mask_ = ~static_cast<std::uintptr_t>(order_bytes(g.order) - 1);
  cache->ctor_ = options.ctor;
  cache->ctor_arg_ = options.ctor_arg;
  cache->empty_reserve_ = options.empty_reserve;
  cache->pages_ = options.pages != nullptr ? options.pages : &PageAllocator::global();
  if (!detail::register_cache(cache, options.reserved_id, &cache->id_, &cache->serial_)) {
    cache->~SlabCache();
    detail::meta_free(cache, sizeof(SlabCache));
    if (options.reserved_id != kAnyCacheId) return fail({ErrorCode::kInvalidArgument, "reserved cache id in use"});
    return fail({ErrorCode::kOutOfMemory, "too many caches (MSLAB_MAX_CACHES)"});
  }
  cache->tag_ = cache->id_ + 1;
  cache->entry_offset_ =
      static_cast<std::uint32_t>(offsetof(ThreadHeap, entries) + cache->id_ * sizeof(ThreadHeap::Entry));
  cache->slab_tag_ = detail::owner_tag(BlockKind::kSlab, cache->tag_);
  // objects_offset fits its 20 bits: a header, the slot metadata of at most
  // kMaxSlabObjects slots and alignment padding below kMaxObjectAlign.
  static_assert(sizeof(detail::Slab) + detail::kSlotMetadata * detail::kMaxSlabObjects + kMaxObjectAlign <=
                kFreeWordOffsetMask);
  cache->free_word_ = std::uint64_t{cache->slab_tag_} << kFreeWordTagShift |
                      std::uint64_t{cache->divisor_.shift} << kFreeWordShiftShift | cache->objects_offset_;
  return cache;
}

DestroyReport SlabCache::destroy() noexcept {
  // Unregister first: from now on no thread flush finds this cache, no
  // heap's entry points at its slabs, and the rest of a stale entry (its
  // buffered frees) is recognised by its serial.
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
  // The calling thread's own entry: drop its buffered frees now (other
  // threads drop theirs when they next see the entry's serial).
  if (ThreadHeap* heap = detail::current_heap()) {
    ThreadHeap::Entry& e = entry_in(heap);
    e.clear();
    e.serial = 0;
    if (e.buffer != nullptr) e.buffer->count = 0;
  }
  this->~SlabCache();
  detail::meta_free(this, sizeof(SlabCache));
  return report;
}

// ---------------------------------------------------------------------------
// Slabs.

Slab* SlabCache::new_slab() noexcept {
  void* block = pages_->alloc(order_, BlockKind::kSlab, tag_);
  if (block == nullptr) return nullptr;
  auto* s = new (block) Slab{};
  s->cache = this;
  s->objects = static_cast<char*>(block) + objects_offset_;
  s->stride = stride_;
  s->capacity = capacity_;
  s->order = order_;
  s->list = detail::SlabList::kNone;
  // All slots on the local list, in address order.
  for (std::uint16_t i = 0; i < capacity_; ++i) {
    new (&s->slots()[i]) detail::SlotMeta{{i + 1 < capacity_ ? static_cast<std::uint16_t>(i + 1) : kNil}, {0}, 0};
  }
  s->local_head = 0;
  s->local_free = kNil;
  s->xfree().store(XFree::make(kNil, 0, 0), std::memory_order_relaxed);
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
  const std::uint64_t w = s->xfree().load(std::memory_order_acquire);
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

std::size_t SlabCache::count_allocated(const Slab* s) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s->capacity; ++i) n += s->is_live(i);
  return n;
}

// Takes the fullest partial slab, else an empty one; nullptr if none. Slabs
// found below their bucket (frees since they were filed) are refiled.
Slab* SlabCache::take_partial_locked() noexcept {
  for (unsigned b = kPartialBuckets; b-- > 0;) {
    while (!partial_[b].empty()) {
      Slab* s = &partial_[b].front();
      const std::uint32_t free_count = XFree::count(s->xfree().load(std::memory_order_acquire));
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
  // A detached slab's xfree only changes under the lock we hold: a plain
  // load and store, no locked instruction (which would wait for every
  // store the thread has in flight).
  std::atomic<std::uint64_t>& xfree = s->xfree();
  const std::uint64_t w = xfree.load(std::memory_order_relaxed);
  xfree.store(XFree::make(kNil, 0, 0), std::memory_order_relaxed);
  s->local_head = XFree::head(w);
  s->local_free = kNil;
  s->owner.store(token, std::memory_order_relaxed);
  detail::set_owner_hint(s, order_, reinterpret_cast<const ThreadHeap*>(token)->tag_hint());
  link_locked(s, detail::SlabList::kActive, 0);
}

// Hands the calling thread's owned slab `s` back (called by its owner
// only: keep_owned_locked, flush_entry): its local list is merged into
// xfree and it is filed as detached.
void SlabCache::detach_locked(Slab* s) noexcept {
  // Splice the owner's freed list onto the allocation list, then hand the
  // whole local list to xfree. It is not counted on the fast paths: walk it.
  if (s->local_free != kNil) {
    std::uint16_t last = s->local_free;
    while (s->link(last) != kNil) last = s->link(last);
    s->set_link(last, s->local_head);
    s->local_head = s->local_free;
    s->local_free = kNil;
  }
  std::uint16_t head = s->local_head;
  std::uint32_t local = 0;
  std::uint16_t tail = head;
  if (head != kNil) {
    local = 1;
    while (s->link(tail) != kNil) {
      tail = s->link(tail);
      ++local;
    }
  }
  // Only the owner — this thread — touches xfree without the cache lock,
  // and every other writer holds the lock we hold: a plain load and store.
  std::atomic<std::uint64_t>& xfree = s->xfree();
  const std::uint64_t w = xfree.load(std::memory_order_relaxed);
  if (tail != kNil) s->set_link(tail, XFree::head(w));
  const std::uint16_t new_head = head != kNil ? head : XFree::head(w);
  // release: publishes the links for lock-free readers (allocated_objects).
  xfree.store(XFree::make(new_head, XFree::count(w) + local, XFree::flags(w) | XFree::kDetached),
              std::memory_order_release);
  s->local_head = kNil;
  s->owner.store(0, std::memory_order_relaxed);
  detail::set_owner_hint(s, order_, 0);
  relist_locked(s);
}

// ---------------------------------------------------------------------------
// Allocation.

void* SlabCache::alloc_slow() noexcept {
  ThreadHeap* heap = detail::current_heap();
  if (heap == nullptr && (heap = detail::create_thread_heap()) == nullptr) return alloc_direct();
  ThreadHeap::Entry& e = entry_of(heap);
  for (;;) {
    if (Slab* s = e.active) {
      // Our own frees first (no atomics), then what other threads freed.
      if (s->local_free != kNil) {
        s->local_head = s->local_free;
        s->local_free = kNil;
        return alloc();
      }
    }
    // Another owned slab with slots this thread freed becomes the active
    // one; the exhausted active slab stays owned in its place. Only then
    // what other threads freed: the xfree words are a chunk lookup away.
    if (activate_owned(e, /*remote=*/false)) continue;
    if (Slab* s = e.active) {
      // A plain load first: the exchange (a locked instruction) only when
      // there is something to take.
      std::atomic<std::uint64_t>& xfree = s->xfree();
      if (XFree::count(xfree.load(std::memory_order_relaxed)) != 0) {
        // acquire: pairs with the release CAS in push_locked().
        const std::uint64_t w = xfree.exchange(XFree::make(kNil, 0, 0), std::memory_order_acquire);
        s->local_head = XFree::head(w);
        return alloc();
      }
    }
    if (activate_owned(e, /*remote=*/true)) continue;
    std::unique_lock guard(lock_);
    // Our buffered frees first: they may refill the active slab or a
    // partial one we are about to take.
    if (e.buffer != nullptr && e.buffer->count != 0) flush_buffer_locked(e, heap->token());
    if (Slab* s = e.active) {
      if (s->local_head != kNil || s->local_free != kNil) {  // the flush freed into it
        guard.unlock();
        continue;
      }
      // Full: it stays owned (our frees into it stay local), making room
      // among the owned slabs by giving the oldest back.
      keep_owned_locked(e, s);
      e.active = nullptr;
    }
    if (Slab* p = take_partial_locked()) {
      activate_locked(p, heap->token());
      e.active = p;
      return guard.unlock(), alloc();
    }
    break;
  }
  // No partial slab: make one without holding the lock (constructors run).
  Slab* s = new_slab();
  if (s == nullptr) return nullptr;
  {
    std::lock_guard guard(lock_);
    ++slabs_created_;
    s->owner.store(heap->token(), std::memory_order_relaxed);
    detail::set_owner_hint(s, order_, heap->tag_hint());
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
    s->xfree().store(XFree::make(s->local_head, capacity_, XFree::kDetached), std::memory_order_relaxed);
    s->local_head = kNil;
    guard.lock();
    ++slabs_created_;
  }
  // A detached slab's xfree only changes under the lock: plain updates.
  const std::uint64_t w = s->xfree().load(std::memory_order_relaxed);
  const std::uint16_t i = XFree::head(w);
  s->xfree().store(XFree::make(s->link(i), XFree::count(w) - 1, XFree::flags(w)), std::memory_order_relaxed);
  s->set_link(i, kAllocated);
  relist_locked(s);
  detail::unpoison_object(s->object(i), object_size_);
  return s->object(i);
}

// Makes an owned slab with free slots the active one, swapping the active
// slab into its place: slots on its local lists, or with `remote` also
// slots other threads freed into it. Reads the owned slabs' headers: the
// slow path only.
bool SlabCache::activate_owned(ThreadHeap::Entry& e, bool remote) noexcept {
  for (Slab*& o : e.owned) {
    if (o == nullptr) continue;
    if (o->local_free == kNil && o->local_head == kNil &&
        (!remote || XFree::count(o->xfree().load(std::memory_order_relaxed)) == 0))
      continue;
    std::swap(o, e.active);
    return true;
  }
  return false;
}

// Files the exhausted active slab `s` among the owned ones; when all places
// are taken, the oldest owned slab is detached (handed back to the cache).
void SlabCache::keep_owned_locked(ThreadHeap::Entry& e, Slab* s) noexcept {
  for (Slab*& o : e.owned) {
    if (o == nullptr) {
      o = s;
      return;
    }
  }
  Slab*& victim = e.owned[e.next_victim];
  e.next_victim = (e.next_victim + 1) % ThreadHeap::kOwnedSlabs;
  detach_locked(victim);
  victim = s;
}

// ---------------------------------------------------------------------------
// Frees into slabs the thread does not own.

// This thread's entry for this cache; resets an entry left by a destroyed
// cache that had the same id (its slabs are gone: buffered frees are dropped).
ThreadHeap::Entry& SlabCache::entry_of(ThreadHeap* heap) noexcept {
  ThreadHeap::Entry& e = entry_in(heap);
  if (e.serial != serial_) {
    e.clear();
    e.serial = serial_;
    if (e.buffer != nullptr) e.buffer->count = 0;
  }
  if (heap->max_id_used <= id_) heap->max_id_used = id_ + 1;
  return e;
}

MSLAB_ALWAYS_INLINE std::size_t SlabCache::index_of(const Slab* s, const void* object) const noexcept {
  // From our own constants, not s->objects: no read of the slab header.
  const std::size_t offset = static_cast<std::size_t>(static_cast<const char*>(object) -
                                                      reinterpret_cast<const char*>(s) - objects_offset_);
  return static_cast<std::size_t>(divisor_.index(offset));
}

// The slot is marked kFreed with a blind store — it is free from now on for
// anyone listing the slab — and the object joins this thread's buffer; the
// buffer is flushed under the cache lock when full, on the allocation slow
// path, on flush_thread_cache() and at thread exit. No load from the slab
// and no atomic read-modify-write: the cache misses of many random frees
// overlap instead of serialising. The double-free check happens at the
// flush (immediately at full checks, with an atomic claim).
void SlabCache::free_other(void* object, Slab* s, std::uint16_t i) noexcept {
  // The slot's place needs nothing from the (cold) slab header: reading it
  // here would stall on its cache miss.
  std::atomic<std::uint8_t>& state = s->slots()[i].state;
  if constexpr (kFullChecks) {
    // Exact between threads: only one free can turn the state to kFreed,
    // and a slot already back on a list has a link other than kAllocated.
    if (s->link(i) != kAllocated || state.exchange(kFreed, std::memory_order_relaxed) == kFreed) {
      report_error(ErrorCode::kDoubleFree, name_, object, "object is already free");
      return;
    }
  } else {
    state.store(kFreed, std::memory_order_relaxed);
  }
  detail::poison_object(object, object_size_);
  // The common case, kept small (no locks, no calls, few saved registers):
  // this thread's buffer for the cache exists and has room to spare.
  // g_no_heap's entries never match a serial.
  ThreadHeap::Entry& e = entry_in(detail::tl_heap);
  if (MSLAB_LIKELY(e.serial == serial_ && e.buffer != nullptr &&
                   e.buffer->count + 1 < ThreadHeap::FreeBuffer::kCapacity)) {
    e.buffer->objects[e.buffer->count++] = object;
    return;
  }
  buffer_slow(object, s, i);
}

// free_other() past its state store: a missing heap, entry or buffer, or a
// buffer that this free fills (flushed at once).
void SlabCache::buffer_slow(void* object, Slab* s, std::uint16_t i) noexcept {
  ThreadHeap* heap = detail::current_heap();
  if (MSLAB_LIKELY(heap != nullptr)) {
    ThreadHeap::Entry& e = entry_of(heap);
    if (MSLAB_UNLIKELY(e.buffer == nullptr))
      e.buffer = static_cast<ThreadHeap::FreeBuffer*>(detail::meta_alloc(sizeof(ThreadHeap::FreeBuffer)));
    if (ThreadHeap::FreeBuffer* buffer = e.buffer) {
      buffer->objects[buffer->count++] = object;
      if (buffer->count == ThreadHeap::FreeBuffer::kCapacity) {
        std::lock_guard guard(lock_);
        flush_buffer_locked(e, heap->token());
      }
      return;
    }
  }
  // No thread heap (an exiting thread) or no memory for a buffer: push now,
  // claiming the link so that a racing owner-path free of it fails.
  std::unique_lock guard(lock_);
  std::uint16_t expected = kAllocated;
  if (!s->slots()[i].link.compare_exchange_strong(expected, kNil, std::memory_order_relaxed)) {
    s->set_state(i, 0);  // the slot is on a free list: its state is clean
    guard.unlock();
    report_error(ErrorCode::kDoubleFree, name_, object, "object is already free");
    return;
  }
  s->set_link(i, kNil);
  s->set_state(i, 0);
  push_locked(s, i, i, 1, heap != nullptr ? heap->token() : 0);
}

// Puts the chain head … tail of `n` free slots of one slab (linked through
// links[], states already clean) back on the slab's lists. `token` is the
// calling thread's heap token (0 if none).
// Inline: the flush of a buffer of random frees calls it once per entry.
MSLAB_ALWAYS_INLINE void SlabCache::push_locked(Slab* s, std::uint16_t head, std::uint16_t tail, std::uint32_t n,
                                                std::uintptr_t token) noexcept {
  // The xfree word says whether the slab is detached (its flag changes only
  // under the lock we hold), so the owner word — on the header's first line,
  // a second cache miss per random free — is read only for owned slabs.
  std::atomic<std::uint64_t>& xfree = s->xfree();
  const std::uint64_t w = xfree.load(std::memory_order_relaxed);
  if (MSLAB_UNLIKELY(!(w & XFree::kDetached))) return push_owned_locked(s, head, tail, n, token, w);
  // Detached: its xfree only changes under the lock we hold.
  s->set_link(tail, XFree::head(w));
  const std::uint32_t before = XFree::count(w);
  xfree.store(XFree::make(head, before + n, XFree::flags(w)), std::memory_order_release);
  // Full → partial and partial → empty move the slab (bucket changes are
  // refiled lazily by take_partial_locked()).
  if (before == 0 || before + n == capacity_) relist_locked(s);
}

// push_locked() into a slab owned by a thread (xfree word `w`, just read).
void SlabCache::push_owned_locked(Slab* s, std::uint16_t head, std::uint16_t tail, std::uint32_t n,
                                  std::uintptr_t token, std::uint64_t w) noexcept {
  if (s->owner.load(std::memory_order_relaxed) == token && token != 0) {  // it became ours since
    s->set_link(tail, s->local_free);
    s->local_free = head;
    return;
  }
  // Active in another thread, which collects xfree without the lock.
  do {
    s->set_link(tail, XFree::head(w));
    // release: publishes the chain's links; pairs with the owner's acquire exchange.
  } while (!s->xfree().compare_exchange_weak(w, XFree::make(head, XFree::count(w) + n, XFree::flags(w)),
                                           std::memory_order_release, std::memory_order_relaxed));
}

void SlabCache::flush_buffer_locked(ThreadHeap::Entry& e, std::uintptr_t token) noexcept {
  ThreadHeap::FreeBuffer* buffer = e.buffer;
  // First touch every slot line we will write (slot lines, like headers,
  // crowd into few cache sets and may have been evicted since the free),
  // so that the misses of the whole batch overlap, then do the work on
  // warm lines. The xfree words are dense (slab.h): no prefetch needed.
  std::uint16_t index[ThreadHeap::FreeBuffer::kCapacity];
  for (std::uint32_t k = 0; k < buffer->count; ++k) {
    auto* s = reinterpret_cast<Slab*>(reinterpret_cast<std::uintptr_t>(buffer->objects[k]) & slab_mask_);
    index[k] = static_cast<std::uint16_t>(index_of(s, buffer->objects[k]));
    __builtin_prefetch(&s->slots()[index[k]], 1);
  }
  // Consecutive frees into one slab (common: objects freed in the order
  // they were allocated) are chained and pushed with one update.
  Slab* chain_slab = nullptr;
  std::uint16_t head = kNil, tail = kNil;
  std::uint32_t n = 0;
  for (std::uint32_t k = 0; k < buffer->count; ++k) {
    void* object = buffer->objects[k];
    auto* s = reinterpret_cast<Slab*>(reinterpret_cast<std::uintptr_t>(object) & slab_mask_);
    const std::uint16_t i = index[k];
    if (MSLAB_UNLIKELY(s->link(i) != kAllocated)) {  // freed twice: already back on a list
      s->set_state(i, 0);  // undo our mark: a listed slot's state is clean
      report_error(ErrorCode::kDoubleFree, name_, object, "object is already free");
      continue;
    }
    if (s != chain_slab) {
      if (n != 0) push_locked(chain_slab, head, tail, n, token);
      chain_slab = s;
      head = tail = kNil;
      n = 0;
    }
    s->set_link(i, head);
    s->set_state(i, 0);
    head = i;
    if (tail == kNil) tail = i;
    ++n;
  }
  if (n != 0) push_locked(chain_slab, head, tail, n, token);
  buffer->count = 0;
}

void SlabCache::flush_buffer(ThreadHeap::Entry& e, std::uintptr_t token) noexcept {
  std::lock_guard guard(lock_);
  if (e.buffer != nullptr && e.buffer->count != 0) flush_buffer_locked(e, token);
}

// Hands back everything the thread holds of this cache (flush, thread exit).
void SlabCache::flush_entry(ThreadHeap::Entry& e, std::uintptr_t token) noexcept {
  std::lock_guard guard(lock_);
  if (e.buffer != nullptr && e.buffer->count != 0) flush_buffer_locked(e, token);
  if (e.active != nullptr) detach_locked(e.active);
  for (Slab* s : e.owned)
    if (s != nullptr) detach_locked(s);
  e.clear();
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
  const auto offset = reinterpret_cast<std::uintptr_t>(object) - reinterpret_cast<std::uintptr_t>(s->objects);
  if (divisor_.index(offset) >= capacity_) {
    report_error(ErrorCode::kInteriorPointer, name_, object, "pointer is not the start of an object");
    return;
  }
  report_error(ErrorCode::kDoubleFree, name_, object, "object is already free");
}

void SlabCache::flush_thread_cache() noexcept {
  if (ThreadHeap* heap = detail::current_heap()) flush_entry(entry_of(heap), heap->token());
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
  isolate_locked(s);
  return true;
}

std::size_t SlabCache::isolate_listed(std::span<const std::uintptr_t> slabs, std::span<Slab*> out) noexcept {
  std::lock_guard guard(lock_);
  std::size_t n = 0;
  for (const std::uintptr_t a : slabs) {
    if (n == out.size()) break;
    // Our tag with no owner hint on the page at a slab-aligned address:
    // the start of a slab of ours that no thread owns (tags and hints of
    // our slabs change only under the lock we hold). Only then is the
    // header read — the block may have gone back to the page allocator.
    if ((a & ~slab_mask_) != 0 || detail::owner_tag_of(reinterpret_cast<const void*>(a)) != slab_tag_) continue;
    Slab* s = reinterpret_cast<Slab*>(a);
    if (s->list != detail::SlabList::kPartial && s->list != detail::SlabList::kFull &&
        s->list != detail::SlabList::kEmpty)
      continue;  // being made (not yet listed), or isolated
    isolate_locked(s);
    out[n++] = s;
  }
  return n;
}

void SlabCache::isolate_locked(Slab* s) noexcept {
  s->xfree().fetch_or(XFree::kIsolated, std::memory_order_acq_rel);
  link_locked(s, detail::SlabList::kIsolated, 0);
}

bool SlabCache::pin_isolated(Slab* s, std::span<void*> buffer, PinFn fn, void* ctx, std::size_t* nr) noexcept {
  std::lock_guard guard(lock_);
  *nr = 0;
  if (s->cache != this || s->list != detail::SlabList::kIsolated || buffer.size() < capacity_) return false;
  *nr = allocated_objects(s, buffer);
  return fn(ctx, buffer.first(*nr));
}

// ---------------------------------------------------------------------------
// Cooperative defragmentation: free_direct() and should_move().

void SlabCache::free_direct(void* object) noexcept {
  Slab* s;
  std::size_t i;
  std::uint32_t hint;
  if (!locate(object, s, i, hint)) return free_invalid(object, detail::slab_of(object));
  std::unique_lock guard(lock_);
  // Claim the link: a slot freed before (listed, or buffered with kFreed)
  // is a double free.
  std::uint16_t expected = kAllocated;
  if (s->state(i) == kFreed || !s->slots()[i].link.compare_exchange_strong(expected, kNil, std::memory_order_relaxed)) {
    guard.unlock();
    report_error(ErrorCode::kDoubleFree, name_, object, "object is already free");
    return;
  }
  // Poison before the push: once listed, another thread may take the slot.
  detail::poison_object(object, object_size_);
  ThreadHeap* heap = detail::current_heap();
  push_locked(s, static_cast<std::uint16_t>(i), static_cast<std::uint16_t>(i), 1, heap != nullptr ? heap->token() : 0);
}

bool SlabCache::should_move(const void* object) noexcept {
  if (((detail::owner_tag_of(object) ^ slab_tag_) & ~detail::kOwnerHintMask) != 0) return false;
  const auto* s = reinterpret_cast<const Slab*>(reinterpret_cast<std::uintptr_t>(object) & slab_mask_);
  // Never from a slab a thread allocates from (jemalloc's slabcur), nor from
  // a full or an isolated one.
  if (s->owner.load(std::memory_order_relaxed) != 0) return false;
  const std::uint64_t w = s->xfree().load(std::memory_order_relaxed);
  if (!(w & XFree::kDetached) || (w & XFree::kIsolated) || XFree::count(w) == 0) return false;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  const std::int64_t stamp = occupancy_stamp_ns_.load(std::memory_order_acquire);
  if (stamp < 0 || now - stamp > 1'000'000) refresh_occupancy();
  if (partial_count_.load(std::memory_order_relaxed) < 2) return false;
  const std::uint64_t live = capacity_ - XFree::count(w);
  const std::uint64_t occupancy = (live << 16) / capacity_;
  // occupancy <= 1.125 × average, in integers: 8 × occupancy <= 9 × average.
  return 8 * occupancy <= 9 * std::uint64_t{avg_occupancy_.load(std::memory_order_relaxed)};
}

void SlabCache::refresh_occupancy() noexcept {
  std::lock_guard guard(lock_);
  std::uint64_t sum = 0, slabs = 0;
  for (const SlabList& list : partial_) {
    for (const Slab& s : list) {
      const std::uint64_t live = capacity_ - XFree::count(s.xfree().load(std::memory_order_relaxed));
      sum += (live << 16) / capacity_;
      ++slabs;
    }
  }
  avg_occupancy_.store(slabs == 0 ? 0 : static_cast<std::uint32_t>(sum / slabs), std::memory_order_relaxed);
  partial_count_.store(static_cast<std::uint32_t>(slabs), std::memory_order_relaxed);
  occupancy_stamp_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now().time_since_epoch()).count(),
                            std::memory_order_release);
}

bool SlabCache::release_isolated(Slab* s) noexcept {
  std::lock_guard guard(lock_);
  if (s->list != detail::SlabList::kIsolated) return false;
  const std::uint64_t w = s->xfree().fetch_and(~XFree::kIsolated, std::memory_order_acq_rel);
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
  s->xfree().load(std::memory_order_acquire);
  std::size_t n = 0;
  for (std::size_t i = 0; i < s->capacity; ++i) {
    if (!s->is_live(i)) continue;
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
    const std::uint64_t w = s.xfree().load(std::memory_order_acquire);
    if (!(w & XFree::kDetached)) return fail(&s, "detached slab lacks the detached flag");
    if (((w & XFree::kIsolated) != 0) != (want == detail::SlabList::kIsolated))
      return fail(&s, "isolated flag does not match the list");
    // Walk the free chain: every slot on it must be free, no cycles.
    std::size_t chain = 0;
    for (std::uint16_t i = XFree::head(w); i != kNil; i = s.link(i)) {
      if (i >= capacity_ || s.link(i) == kAllocated || s.state(i) == kFreed || ++chain > capacity_)
        return fail(&s, "broken free chain");
    }
    if (chain != XFree::count(w)) return fail(&s, "free count does not match the free chain");
    // Slots freed into some thread's buffer are allocated-and-kFreed until
    // its flush.
    std::size_t allocated = 0;
    for (std::size_t i = 0; i < capacity_; ++i) allocated += s.link(i) == kAllocated;
    if (allocated + chain != capacity_) return fail(&s, "slots neither allocated, buffered nor on the free chain");
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
