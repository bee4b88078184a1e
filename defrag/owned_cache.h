// Movable application objects: a slab cache whose objects are each reached
// through exactly one owner slot (a std::atomic<void*> the application
// keeps: a table entry, a struct field, an XArray-like index), so that the
// defragmenter can move them without the application's help beyond an
// optional relocation hook.
//
// Protocol (RCU style, readers never block):
//   - alloc() returns an *unpublished* object; fill it, then publish it with
//     exchange(slot, p), which records the slot in the object's header and
//     stores p in the slot with release ordering;
//   - readers load the slot with acquire inside an rcu::ReadGuard and may
//     use the object until the guard ends;
//   - a published object is not modified in place (update = replace with
//     exchange); the object exchange() hands back is retire()d — freed after
//     a grace period;
//   - the slot itself must stay valid while it holds an object, and for a
//     grace period after the retire() of its last object.
// Moving an object (phase 2) is: allocate a copy with alloc_direct() (lands
// in a dense slab, never in the slab or chunk being evacuated), run the
// relocation hook (default memcpy) inside a read section after checking the
// slot still holds the object, record the slot in the copy, publish the copy
// with a compare-and-swap (release) — if the application replaced the object
// meanwhile the CAS fails and the copy is freed — then retire the old
// object. Phase 1 says "busy" for an object not yet published, and treats
// a retired object (waiting for its grace period) as nothing to move.
//
// Each object carries a one-word header before the payload: the owner
// slot's address, or a state (unpublished, retired) in values no slot can
// have (slots are pointer-aligned, so 0 and 1 are free). The header is 8
// bytes and payloads are 8-byte aligned; asking for 16-byte alignment makes
// it 16 (the payload starts a whole alignment unit after the object).
// Pointers handed to the application are payload pointers.
// Depends on: defrag/registry.h, rcu/, alloc/slab_cache.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/slab_cache.h"
#include "defrag/registry.h"

namespace mslab::defrag {

/// Copies a payload of `size` bytes from `src` to `dst` (fresh memory).
/// Runs in phase 2 inside a read section: it must not block or wait for a
/// grace period. nullptr means memcpy.
using RelocateFn = void (*)(void* dst, const void* src, std::size_t size, void* arg) noexcept;

struct OwnedOptions {
  const char* name = "";
  std::size_t payload_size = 0;     // bytes the application uses per object
  std::size_t align = 0;            // 0 or ≤ 8: 8-byte aligned payloads, 8-byte header;
                                    // 16: 16-byte aligned, 16-byte header; above 16 is refused
  RelocateFn relocate = nullptr;
  void* relocate_arg = nullptr;
  std::size_t empty_reserve = 1;
  unsigned slab_waste = 0;          // CacheOptions::slab_waste (0: the default, 1/8)
  PageAllocator* pages = nullptr;   // nullptr: PageAllocator::global()
  Registry* registry = nullptr;     // nullptr: Registry::global()
};

struct OwnedStats {
  std::uint64_t moved;   // objects relocated by the defragmenter
  std::uint64_t raced;   // relocations abandoned: the application replaced the object first
};

class OwnedCache {
 public:
  /// Creates the cache and registers it as movable. nullptr on bad options
  /// or no memory (reported through `error` when given). Thread-safe.
  static OwnedCache* create(const OwnedOptions& options, CacheError* error = nullptr) noexcept;

  /// Unregisters (waits for a defragmenter using it), waits for pending
  /// retires (rcu::barrier) and destroys the cache; objects still live are
  /// gone. No other thread may use the cache any more. Blocks; not inside a
  /// read section.
  void destroy() noexcept;

  /// An unpublished object (payload pointer), or nullptr when out of memory.
  /// Thread-safe; lock-free on the fast path.
  void* alloc() noexcept;

  /// Publishes `p` (unpublished, from alloc(), or nullptr to empty the slot)
  /// in `slot` and returns what the slot held before (retire() it). Release
  /// ordering: p's contents are visible to readers that load the slot with
  /// acquire. Lock-free. One writer per slot at a time.
  void* exchange(std::atomic<void*>& slot, void* p) noexcept;

  /// Frees an object taken out of its slot after a grace period. Lock-free
  /// in the common case (see rcu::defer_free); allowed in a read section.
  void retire(void* p) noexcept;

  /// Frees at once an object that was never published.
  void free_unpublished(void* p) noexcept;

  std::size_t payload_size() const noexcept { return payload_size_; }
  /// Bytes before each payload (8, or 16 when 16-byte alignment was asked).
  std::size_t header_size() const noexcept { return header_; }
  /// The underlying slab cache (for statistics and validation; objects must
  /// be allocated and freed through this class).
  SlabCache& slab_cache() const noexcept { return *cache_; }
  /// Relocation counters. Thread-safe, lock-free.
  OwnedStats stats() const noexcept;

  /// The payload pointer of this cache's object starting at `object` in
  /// the slab, and back.
  void* payload_of(void* object) const noexcept { return static_cast<char*>(object) + header_; }
  void* object_of(void* payload) const noexcept { return static_cast<char*>(payload) - header_; }

 private:
  OwnedCache() = default;
  static bool can_free(std::span<void*> objects, void* cookie) noexcept;
  static void reclaim(std::span<void*> objects, void* cookie) noexcept;
  void move_one(void* object) noexcept;

  SlabCache* cache_ = nullptr;
  Registry* registry_ = nullptr;
  MovableCache* entry_ = nullptr;
  std::size_t payload_size_ = 0;
  std::size_t header_ = 8;  // = the payloads' alignment (8 or 16)
  RelocateFn relocate_ = nullptr;
  void* relocate_arg_ = nullptr;
  std::atomic<std::uint64_t> moved_{0}, raced_{0};
};

}  // namespace mslab::defrag
