// The store of the kv workload: keys (dense integers) to values of mixed
// sizes, indexed by an XArray. The XArray maps key / 64 to a block of 64
// owner slots (std::atomic<void*>), and each slot points to its value.
// The blocks never move and live until clear(), so a slot's address is
// stable: it is the owner slot through which defrag::OwnedCache moves a
// value (the XArray's own leaf slots are not stable — a shrink moves an
// entry to the head — and it exposes no slot address). Values come from a
// heap policy (kv_heap.h); every value starts with its key and size class,
// so readers can check what they load.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "rcu/rcu.h"
#include "xarray/xarray.h"

namespace mslab::bench {

/// The fixed value size distribution: nine classes, 16 B to 4 KiB, small
/// values most frequent (as in a cache of session records and strings),
/// weights in percent. Mean value size: 330 B.
inline constexpr unsigned kKvClasses = 9;
inline constexpr std::array<std::size_t, kKvClasses> kKvSizes{16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
inline constexpr std::array<unsigned, kKvClasses> kKvWeights{20, 20, 15, 15, 10, 8, 6, 4, 2};

/// The class of a uniform draw `u` in [0, 100).
inline unsigned kv_class_of(unsigned u) noexcept {
  unsigned c = 0;
  for (unsigned acc = kKvWeights[0]; u >= acc && c + 1 < kKvClasses; acc += kKvWeights[++c]) {
  }
  return c;
}

/// The head of every value; the rest is filled with a byte of the key.
struct KvValueHead {
  std::uint64_t key;
  std::uint32_t cls;
  std::uint32_t check;  // key's low bits xor a constant: a torn or wrong value fails the check
  static constexpr std::uint32_t kMagic = 0x6b765f31;
  bool matches(std::uint64_t k) const noexcept {
    return key == k && check == (static_cast<std::uint32_t>(k) ^ kMagic) && cls < kKvClasses;
  }
};
static_assert(sizeof(KvValueHead) <= kKvSizes[0]);

struct KvSlotBlock {
  static constexpr unsigned kShift = 6;
  std::atomic<void*> slot[1u << kShift];
};

/// Heap: see kv_heap.h (alloc(cls), publish(slot, p, cls), erase(slot, cls),
/// alloc_block(), free_block(p)).
template <class Heap>
class KvStore {
 public:
  explicit KvStore(Heap& heap) noexcept : heap_(heap) {}
  ~KvStore() { clear(); }
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  /// Creates the slot blocks of keys [0, keys) up front, as a table sized
  /// in advance: they never move, so allocating them together keeps them
  /// out of the 2 MiB chunks the values fill (a block slab in every chunk
  /// would keep the defragmenter from emptying any). False when out of memory.
  bool reserve(std::uint64_t keys) noexcept {
    for (std::uint64_t k = 0; k < keys; k += kMask + 1)
      if (slot_for(k, true) == nullptr) return false;
    return true;
  }

  /// Stores a new value of class `cls` at the empty key `key`. False when
  /// out of memory. One writer at a time.
  bool put(std::uint64_t key, unsigned cls) noexcept {
    std::atomic<void*>* slot = slot_for(key, true);
    if (slot == nullptr) return false;
    void* p = heap_.alloc(cls);
    if (p == nullptr) return false;
    auto* head = static_cast<KvValueHead*>(p);
    std::memset(p, static_cast<int>(key & 0xff), kKvSizes[cls]);
    *head = {key, cls, static_cast<std::uint32_t>(key) ^ KvValueHead::kMagic};
    heap_.publish(*slot, p, cls);
    value_bytes_ += kKvSizes[cls];
    return true;
  }

  /// Removes the value at `key` (no-op if none). One writer at a time.
  void erase(std::uint64_t key) noexcept {
    std::atomic<void*>* slot = slot_for(key, false);
    if (slot == nullptr) return;
    const auto* head = static_cast<const KvValueHead*>(slot->load(std::memory_order_acquire));
    if (head == nullptr) return;
    const unsigned cls = head->cls;
    value_bytes_ -= kKvSizes[cls];
    heap_.erase(*slot, cls);
  }

  /// The value at `key` or nullptr; valid until the caller's read section
  /// (rcu::ReadGuard) ends. Any thread, concurrently with the defragmenter.
  const KvValueHead* load(std::uint64_t key) const noexcept {
    const auto* block = index_.load(key >> KvSlotBlock::kShift).template to_pointer<KvSlotBlock>();
    if (block == nullptr) return nullptr;
    return static_cast<const KvValueHead*>(block->slot[key & kMask].load(std::memory_order_acquire));
  }

  /// Bytes of the live values plus the container's own (blocks, XArray nodes).
  std::size_t live_bytes() const noexcept {
    return value_bytes_ + blocks_ * sizeof(KvSlotBlock) + index_.stats().bytes;
  }

  /// Erases every value and frees the blocks.
  void clear() noexcept {
    for (auto [index, entry] : index_.range()) {
      auto* block = entry.template to_pointer<KvSlotBlock>();
      for (unsigned i = 0; i <= kMask; ++i) erase((index << KvSlotBlock::kShift) | i);
      index_.erase(index);
      heap_.free_block(block);
    }
    blocks_ = 0;
  }

 private:
  static constexpr std::uint64_t kMask = (1u << KvSlotBlock::kShift) - 1;

  std::atomic<void*>* slot_for(std::uint64_t key, bool create) noexcept {
    const unsigned long index = key >> KvSlotBlock::kShift;
    auto* block = index_.load(index).template to_pointer<KvSlotBlock>();
    if (block == nullptr && create) {
      block = static_cast<KvSlotBlock*>(heap_.alloc_block());
      if (block == nullptr) return nullptr;
      for (auto& s : block->slot) s.store(nullptr, std::memory_order_relaxed);
      if (!index_.store(index, Entry::pointer(block))) {
        heap_.free_block(block);
        return nullptr;
      }
      ++blocks_;
    }
    return block == nullptr ? nullptr : &block->slot[key & kMask];
  }

  Heap& heap_;
  XArray index_;
  std::size_t blocks_ = 0;
  std::size_t value_bytes_ = 0;
};

}  // namespace mslab::bench
