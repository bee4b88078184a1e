// The store of the xarray workload: kArrays allocating XArrays
// (XaFlags::kAlloc), each entry a pointer to a payload of a mixed size (the
// kv workload's distribution, 16 B to 4 KiB) whose id comes from ID
// allocation. A key names an entry as (array << kIdBits) | id. Every
// payload starts with its owner word (key + 1: which array and index hold
// it — the movable heap's relocation reads it), its size class and a check,
// so readers can check what they load. Nodes and payloads come from a heap
// policy (xa_heap.h), which also fixes the XArray type (its node policy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "bench/kv_store.h"
#include "rcu/rcu.h"
#include "xarray/xarray.h"

namespace mslab::bench {

inline constexpr unsigned kXaArrays = 8;
inline constexpr unsigned kXaIdBits = 40;
inline constexpr std::uint64_t kXaIdMask = (std::uint64_t{1} << kXaIdBits) - 1;

/// The head of every payload; the rest is filled with a byte of the key.
/// `owner` is written with an atomic store before the payload is published
/// (a relocation may read it concurrently) and never changes afterwards.
struct XaPayloadHead {
  std::uint64_t owner;  // key + 1; 0: never written
  std::uint32_t cls;
  std::uint32_t check;  // key's low bits xor a constant
  static constexpr std::uint32_t kMagic = 0x78615f31;
  bool matches(std::uint64_t key) const noexcept {
    return owner == key + 1 && check == (static_cast<std::uint32_t>(key) ^ kMagic) && cls < kKvClasses;
  }
};
static_assert(sizeof(XaPayloadHead) <= kKvSizes[0]);

/// Heap: see xa_heap.h (Array, alloc(cls), retire(p, cls), bind(arrays, n)).
template <class Heap>
class XaStore {
 public:
  using Array = typename Heap::Array;

  explicit XaStore(Heap& heap) : heap_(heap) {
    for (auto& a : arrays_) a = std::make_unique<Array>(XaFlags::kAlloc);
    Array* raw[kXaArrays];
    for (unsigned i = 0; i < kXaArrays; ++i) raw[i] = arrays_[i].get();
    heap_.bind(raw);
  }
  ~XaStore() {
    clear();
    heap_.unbind();
  }
  XaStore(const XaStore&) = delete;
  XaStore& operator=(const XaStore&) = delete;

  /// Stores a new payload of class `cls` in array `a` at an id from ID
  /// allocation; returns its key, or nothing when out of memory. The id is
  /// reserved first and the payload published once its head names it, so a
  /// reader never sees a payload without its key. One writer at a time.
  std::optional<std::uint64_t> put(unsigned a, unsigned cls) noexcept {
    Array& xa = *arrays_[a];
    const XaAllocResult id = xa.alloc(Entry{}, {0, kXaIdMask});
    if (!id) return std::nullopt;
    void* p = heap_.alloc(cls);
    if (p == nullptr) {
      xa.erase(id.id());
      return std::nullopt;
    }
    const std::uint64_t key = (std::uint64_t{a} << kXaIdBits) | id.id();
    // The owner word is only ever written atomically: a relocation may read
    // it at any time (a recycled payload still names its old owner).
    std::memset(static_cast<char*>(p) + sizeof(XaPayloadHead), static_cast<int>(key & 0xff),
                kKvSizes[cls] - sizeof(XaPayloadHead));
    auto* head = static_cast<XaPayloadHead*>(p);
    head->cls = cls;
    head->check = static_cast<std::uint32_t>(key) ^ XaPayloadHead::kMagic;
    __atomic_store_n(&head->owner, key + 1, __ATOMIC_RELAXED);
    if (!xa.store(id.id(), Entry::pointer(p))) {  // release: the payload before the entry
      heap_.retire(p, cls);
      xa.erase(id.id());
      return std::nullopt;
    }
    value_bytes_ += kKvSizes[cls];
    return key;
  }

  /// Removes the entry `key` and frees (retires) its payload. One writer at a time.
  void erase(std::uint64_t key) noexcept {
    const Entry e = arrays_[key >> kXaIdBits]->erase(key & kXaIdMask);
    auto* head = e.to_pointer<XaPayloadHead>();
    if (head == nullptr) return;
    const unsigned cls = head->cls;
    value_bytes_ -= kKvSizes[cls];
    heap_.retire(head, cls);
  }

  /// The payload of `key` or nullptr; valid until the caller's read section
  /// (rcu::ReadGuard) ends. Any thread, concurrently with the defragmenter.
  const XaPayloadHead* load(std::uint64_t key) const noexcept {
    return arrays_[key >> kXaIdBits]->load(key & kXaIdMask).template to_pointer<const XaPayloadHead>();
  }

  /// Bytes of the live payloads plus the arrays' nodes.
  std::size_t live_bytes() const noexcept {
    std::size_t bytes = value_bytes_;
    for (const auto& a : arrays_) bytes += a->stats().bytes;
    return bytes;
  }

  /// Erases every entry.
  void clear() noexcept {
    for (unsigned a = 0; a < kXaArrays; ++a)
      for (auto [id, entry] : arrays_[a]->range()) erase((std::uint64_t{a} << kXaIdBits) | id);
  }

 private:
  Heap& heap_;
  std::unique_ptr<Array> arrays_[kXaArrays];
  std::size_t value_bytes_ = 0;
};

}  // namespace mslab::bench
