// Where the xarray workload's payloads and XArray nodes come from: one heap
// policy per allocator family, each fixing the XArray type.
//   XaPlainHeap<A>  mslab, glibc, mimalloc, jemalloc: one adapter A per
//                   payload size class plus one for the nodes, which the
//                   arrays reach through AdapterNodeAlloc<A> (a node policy
//                   calling the allocator under test). Payloads are freed at
//                   once when erased; nodes after a grace period (the
//                   XArray's rule).
//   XaMovableHeap   mslab-defrag: payloads in movable slab caches whose owner
//                   slot is an XArray index (XaPayloadCache below), nodes in
//                   the library's movable "xa_node" caches (SlabNodeAlloc,
//                   the default): one global Defragmenter pass moves both.
// drain() makes every free reach the allocator's lists; settle() also gives
// free memory back to the OS.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"
#include "bench/adapter_mslab.h"
#include "bench/allocators.h"
#include "bench/kv_heap.h"
#include "bench/xa_store.h"
#include "defrag/mobility.h"
#include "defrag/registry.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"
#include "xarray/node_alloc.h"
#include "xarray/xarray.h"

namespace mslab::bench {

/// An XArray node policy that takes nodes from adapter A (opened for the
/// node size by XaPlainHeap). One run per child process, so one adapter per
/// A at a time.
template <FixedAllocator A>
struct AdapterNodeAlloc {
  static inline A* adapter = nullptr;
  static inline std::size_t node_bytes = 0;
  static void* allocate(std::size_t bytes) noexcept { return bytes <= node_bytes ? adapter->alloc() : nullptr; }
  static void free_now(void* p) noexcept { adapter->free(p); }
  static void free_deferred(void* p) noexcept { rcu::defer_free(p, &free_now); }
};

template <FixedAllocator A>
class XaPlainHeap {
 public:
  static constexpr bool kMovable = false;
  using Array = BasicXArray<MSLAB_XA_CHUNK_SHIFT, AdapterNodeAlloc<A>>;

  XaPlainHeap() = default;
  ~XaPlainHeap() {
    rcu::barrier();  // nodes freed through RCU reach nodes_ before it closes
    AdapterNodeAlloc<A>::adapter = nullptr;
  }
  XaPlainHeap(const XaPlainHeap&) = delete;
  XaPlainHeap& operator=(const XaPlainHeap&) = delete;

  bool open(std::string* why) {
    for (unsigned c = 0; c < kKvClasses; ++c)
      if (!classes_[c].open(kKvSizes[c], why)) return false;
    if (!nodes_.open(sizeof(typename Array::Node), why)) return false;
    AdapterNodeAlloc<A>::adapter = &nodes_;
    AdapterNodeAlloc<A>::node_bytes = sizeof(typename Array::Node);
    return true;
  }
  void bind(Array* const*) noexcept {}
  void unbind() noexcept {}
  void* alloc(unsigned cls) noexcept { return classes_[cls].alloc(); }
  void retire(void* p, unsigned cls) noexcept { classes_[cls].free(p); }
  void drain() noexcept { rcu::barrier(); }  // erased nodes wait for a grace period
  void settle() noexcept {
    drain();
    for (A& a : classes_) a.settle();
    nodes_.settle();
  }
  std::optional<std::uint64_t> free_2m_blocks() const { return nodes_.free_2m_blocks(); }
  std::string version() const { return nodes_.version(); }
  KvDefragResult defrag() noexcept { return {}; }

 private:
  A classes_[kKvClasses];
  A nodes_;
};

/// A movable slab cache of payloads whose one owner slot is an XArray index:
/// the payload's head names it (XaPayloadHead::owner = key + 1). No header
/// beyond the payload. Phase 1 takes nothing (a payload cannot be reused
/// while its slab is isolated); phase 2, per payload: read the owner word,
/// alloc_direct() a copy, and in a read section check that the array still
/// holds the payload at that index and copy it; then, outside the read
/// section, compare_exchange the entry to the copy under the array's lock.
/// A payload that is unpublished, erased or replaced meanwhile fails a check
/// and stays; the copy goes back at once. The old payload is freed after a
/// grace period (readers inside it keep reading identical bytes). The array
/// lock is never taken inside a read section: a writer may wait for a
/// grace period while holding it (rcu::defer_free's back-pressure).
class XaPayloadCache {
 public:
  using Array = XArray;

  bool open(std::size_t size, std::string* why) {
    CacheError error{};
    cache_ = SlabCache::create(
        {.name = "xa-payload", .object_size = size, .align = 16, .slab_waste = kMovableSlabWaste}, &error);
    if (cache_ == nullptr) {
      *why = std::string("SlabCache::create failed: ") + error.message;
      return false;
    }
    defrag::MobilityOps ops;
    ops.can_free = [](std::span<void*>, void*) noexcept { return true; };
    ops.reclaim = &XaPayloadCache::reclaim;
    ops.cookie = this;
    ops.defers_free = true;
    entry_ = defrag::Registry::global().add(cache_, ops);
    if (entry_ == nullptr) *why = "no memory to register the payload cache";
    return entry_ != nullptr;
  }
  ~XaPayloadCache() {
    if (entry_ != nullptr) defrag::Registry::global().remove(entry_);
    if (cache_ == nullptr) return;
    rcu::barrier();  // retired payloads are freed into this cache
    cache_->destroy();
  }
  XaPayloadCache() = default;
  XaPayloadCache(const XaPayloadCache&) = delete;
  XaPayloadCache& operator=(const XaPayloadCache&) = delete;

  void bind(Array* const* arrays) noexcept {
    for (unsigned i = 0; i < kXaArrays; ++i) arrays_[i].store(arrays == nullptr ? nullptr : arrays[i]);
  }
  void* alloc() noexcept { return cache_->alloc(); }
  void retire(void* p) noexcept { rcu::defer_free(p, &free_payload_direct); }
  SlabCache& slab_cache() const noexcept { return *cache_; }

 private:
  // Frees through free_direct(), so that a slab's record is exact as soon as
  // the grace period ends (no thread buffer holds the free).
  static void free_payload_direct(void* p) noexcept { SlabCache::cache_of(p)->free_direct(p); }

  // The owner word of a payload that may have been freed since phase 1:
  // mapped (its slab is isolated) but poisoned under ASan.
  __attribute__((no_sanitize("address"))) static std::uint64_t load_owner(const void* p) noexcept {
    return __atomic_load_n(&static_cast<const XaPayloadHead*>(p)->owner, __ATOMIC_ACQUIRE);
  }

  static void reclaim(std::span<void*> objects, void* cookie) noexcept {
    auto* self = static_cast<XaPayloadCache*>(cookie);
    for (void* p : objects) self->move_one(p);
  }

  void move_one(void* p) noexcept {
    const std::uint64_t owner = load_owner(p);
    if (owner == 0) return;  // never published
    const std::uint64_t key = owner - 1;
    Array* xa = (key >> kXaIdBits) < kXaArrays ? arrays_[key >> kXaIdBits].load() : nullptr;
    if (xa == nullptr) return;
    const unsigned long id = key & kXaIdMask;
    void* copy = cache_->alloc_direct();
    if (copy == nullptr) return;  // out of memory: leave it where it is
    bool present;
    {
      // While the array holds p, an erase cannot free it before this read
      // section ends; a published payload is never written in place.
      rcu::ReadGuard guard;
      present = xa->load(id) == Entry::pointer(p);
      if (present) std::memcpy(copy, p, cache_->object_size());
    }
    if (present) {
      const XaResult r = xa->compare_exchange(id, Entry::pointer(p), Entry::pointer(copy));
      present = r.ok() && r.entry() == Entry::pointer(p);
    }
    if (!present) {
      cache_->free_direct(copy);
      return;
    }
    rcu::defer_free(p, &free_payload_direct);
  }

  SlabCache* cache_ = nullptr;
  defrag::MovableCache* entry_ = nullptr;
  std::atomic<Array*> arrays_[kXaArrays] = {};
};

class XaMovableHeap {
 public:
  static constexpr bool kMovable = true;
  using Array = XArray;  // nodes from the movable "xa_node" cache

  bool open(std::string* why) {
    for (unsigned c = 0; c < kKvClasses; ++c)
      if (!classes_[c].open(kKvSizes[c], why)) return false;
    return true;
  }
  void bind(Array* const* arrays) noexcept {
    for (XaPayloadCache& c : classes_) c.bind(arrays);
  }
  void unbind() noexcept { bind(nullptr); }
  void* alloc(unsigned cls) noexcept { return classes_[cls].alloc(); }
  void retire(void* p, unsigned cls) noexcept { classes_[cls].retire(p); }
  // Retired payloads and erased nodes land in their slabs only after a grace
  // period: wait for them, and hand this thread's buffers and active slabs
  // back, so that empty slabs reach the page allocator and no slab is held
  // back from the defragmenter as a thread's own.
  void drain() noexcept {
    rcu::barrier();
    for (XaPayloadCache& c : classes_) c.slab_cache().flush_thread_cache();
    if (SlabCache* nodes = xa_detail::node_cache(sizeof(Array::Node))) nodes->flush_thread_cache();
  }
  void settle() noexcept {
    drain();
    PageAllocator::global().collect(true);
  }
  std::optional<std::uint64_t> free_2m_blocks() const { return PageAllocator::global().stats().free_2m_blocks(); }
  std::string version() const { return MSLAB_VERSION_STRING; }
  KvDefragResult defrag() noexcept { return defrag_pass(); }

 private:
  XaPayloadCache classes_[kKvClasses];
};

}  // namespace mslab::bench
