// Where the kv workload's values and slot blocks come from: one heap
// policy per allocator family.
//   PlainHeap<A>  one adapter A (allocators.h) per value size class plus
//                 one for the slot blocks; a value is published with a
//                 release store and freed at once when erased.
//   OwnedHeap     mslab-defrag: one defrag::OwnedCache per size class (the
//                 values are movable; the block slot is the owner slot),
//                 the blocks from a plain SlabCache; erased values are
//                 retired (freed after a grace period). defrag() runs one
//                 Defragmenter pass.
// drain() makes every free reach the allocator's lists; settle() also gives
// free memory back to the OS (the adapters' settle()), so free 2 MiB blocks
// are read between the two: settle's collect(true) unmaps free chunks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bench/adapter_mslab.h"
#include "bench/allocators.h"
#include "bench/kv_store.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "rcu/deferred_free.h"
#include "xarray/node_mobility.h"

namespace mslab::bench {

/// Slab waste of mslab-defrag's payload caches: at most 1/32 of a slab (the
/// default is 1/8). A heap that is kept dense by moving objects is worth
/// bigger slabs: with 1/8, power-of-two payloads of 256 B … 4 KiB fit 15 to
/// a slab, not 16 (the header takes one slot); with 1/32, 31 of 32.
inline constexpr unsigned kMovableSlabWaste = 32;

/// What one defragmentation pass did, for the report.
struct KvDefragResult {
  double ms = 0, max_pause_ms = 0;
  std::uint64_t objects_moved = 0, bytes_copied = 0, slabs_freed = 0;
  std::uint64_t nodes_moved = 0;  // XArray nodes among objects_moved (xa_migration_stats)
};

/// One unlimited pass of a global Defragmenter (every registered movable
/// cache: the heap's own and the XArray's node caches).
inline KvDefragResult defrag_pass() noexcept {
  const std::uint64_t nodes0 = xa_migration_stats().moved;
  const defrag::Report r = defrag::Defragmenter().run();
  KvDefragResult out;
  out.nodes_moved = xa_migration_stats().moved - nodes0;
  out.ms = std::chrono::duration<double, std::milli>(r.elapsed).count();
  out.max_pause_ms = std::chrono::duration<double, std::milli>(r.max_pause).count();
  out.objects_moved = r.objects_moved;
  out.bytes_copied = r.bytes_copied;
  out.slabs_freed = r.slabs_freed;
  return out;
}

template <FixedAllocator A>
class PlainHeap {
 public:
  static constexpr bool kMovable = false;

  bool open(std::string* why) {
    for (unsigned c = 0; c < kKvClasses; ++c)
      if (!classes_[c].open(kKvSizes[c], why)) return false;
    return blocks_.open(sizeof(KvSlotBlock), why);
  }
  void* alloc(unsigned cls) noexcept { return classes_[cls].alloc(); }
  void publish(std::atomic<void*>& slot, void* p, unsigned) noexcept { slot.store(p, std::memory_order_release); }
  void erase(std::atomic<void*>& slot, unsigned cls) noexcept {
    classes_[cls].free(slot.exchange(nullptr, std::memory_order_acq_rel));
  }
  void* alloc_block() noexcept { return blocks_.alloc(); }
  void free_block(void* p) noexcept { blocks_.free(p); }
  void drain() noexcept {}  // frees take effect at once
  void settle() noexcept {
    for (A& a : classes_) a.settle();
    blocks_.settle();
  }
  std::optional<std::uint64_t> free_2m_blocks() const { return blocks_.free_2m_blocks(); }
  std::string version() const { return blocks_.version(); }
  KvDefragResult defrag() noexcept { return {}; }

 private:
  A classes_[kKvClasses];
  A blocks_;
};

class OwnedHeap {
 public:
  static constexpr bool kMovable = true;

  OwnedHeap() = default;
  ~OwnedHeap() {
    for (defrag::OwnedCache* c : classes_)
      if (c != nullptr) c->destroy();
  }
  OwnedHeap(const OwnedHeap&) = delete;
  OwnedHeap& operator=(const OwnedHeap&) = delete;

  bool open(std::string* why) {
    for (unsigned c = 0; c < kKvClasses; ++c) {
      defrag::OwnedOptions o;
      o.name = "kv-value";
      o.payload_size = kKvSizes[c];
      o.slab_waste = kMovableSlabWaste;
      CacheError error{};
      classes_[c] = defrag::OwnedCache::create(o, &error);
      if (classes_[c] == nullptr) {
        *why = std::string("OwnedCache::create failed: ") + error.message;
        return false;
      }
    }
    // The blocks are all allocated up front (KvStore::reserve) and stay
    // until the end, so their slabs are full: bigger slabs with less waste
    // cost nothing (512-byte blocks: 31 per 16 KiB instead of 15 per 8 KiB).
    return blocks_.open(sizeof(KvSlotBlock), why, kMovableSlabWaste);
  }
  void* alloc(unsigned cls) noexcept { return classes_[cls]->alloc(); }
  void publish(std::atomic<void*>& slot, void* p, unsigned cls) noexcept {
    classes_[cls]->retire(classes_[cls]->exchange(slot, p));  // retire(nullptr) is a no-op
  }
  void erase(std::atomic<void*>& slot, unsigned cls) noexcept {
    classes_[cls]->retire(classes_[cls]->exchange(slot, nullptr));
  }
  void* alloc_block() noexcept { return blocks_.alloc(); }
  void free_block(void* p) noexcept { blocks_.free(p); }
  // Retired values land in their slabs only after a grace period: wait for
  // them and hand this thread's buffers back, so empty slabs reach the page
  // allocator.
  void drain() noexcept {
    rcu::barrier();
    for (defrag::OwnedCache* c : classes_) c->slab_cache().flush_thread_cache();
  }
  // Then purge free page blocks (and unmap free chunks beyond the reserve).
  void settle() noexcept {
    drain();
    blocks_.settle();
  }
  std::optional<std::uint64_t> free_2m_blocks() const { return blocks_.free_2m_blocks(); }
  std::string version() const { return blocks_.version(); }

  /// One unlimited Defragmenter pass over the value caches.
  KvDefragResult defrag() noexcept { return defrag_pass(); }

 private:
  defrag::OwnedCache* classes_[kKvClasses] = {};
  MslabAllocator blocks_;  // slot blocks never move: a plain slab cache
};

}  // namespace mslab::bench
