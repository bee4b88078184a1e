// The registry of movable caches (design §6): which slab caches the
// defragmenter may evacuate, and with which MobilityOps.
//
// Readers (the defragmenter) walk the list without a global lock: an RCU
// list plus a reference count taken with try_get() (increment unless zero).
// The first reference is set only once an entry is fully set up and linked,
// so a reader never sees a half-built entry as usable. remove() first
// refuses new references (a user could otherwise keep it waiting for ever),
// drops that first reference and waits — a completion — until every in-flight user has
// put its reference back; only then is the entry unlinked, and it is freed
// after a grace period (a reader may still be stepping past it). So a
// cache may be unregistered and destroyed while the defragmenter runs: once
// remove() has returned nothing touches the cache, and nothing ever touches
// a freed entry. (The shrinker rework of Qi Zheng, with Dave Chinner's
// completion, is the model.)
// Depends on: defrag/mobility.h, rcu/rcu.h, alloc/slab_cache.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <vector>

#include "alloc/slab_cache.h"
#include "defrag/mobility.h"
#include "rcu/rcu.h"

namespace mslab::defrag {

class Registry;

/// One registered cache. Owned by its Registry; valid while the caller holds
/// a reference (try_get) or has not yet called Registry::remove().
class MovableCache {
 public:
  SlabCache& cache() const noexcept { return *cache_; }
  const MobilityOps& ops() const noexcept { return ops_; }

  /// Takes a reference unless the entry is being removed (removal started or
  /// count zero). Lock-free; call it inside a read section (or with a
  /// reference held).
  bool try_get() noexcept;
  /// Drops a reference; the last one completes a waiting remove().
  /// Lock-free, never blocks.
  void put() noexcept;

 private:
  friend class Registry;
  MovableCache(SlabCache* cache, const MobilityOps& ops) noexcept : cache_(cache), ops_(ops) {}

  SlabCache* cache_;
  MobilityOps ops_;
  std::atomic<long> refs_{0};             // 0 until fully set up, and again once removed
  std::atomic<bool> dying_{false};        // remove() began: no new references
  std::atomic<bool> done_{false};         // the completion: set by the last put()
  std::atomic<MovableCache*> next_{nullptr};  // RCU list link (writers under Registry::lock_)
};

/// A reference to an entry for the lifetime of this object (move-only; one
/// owner thread, like std::unique_ptr).
class CacheRef {
 public:
  CacheRef() noexcept = default;
  explicit CacheRef(MovableCache* held) noexcept : entry_(held) {}  // adopts a taken reference
  CacheRef(CacheRef&& other) noexcept : entry_(other.entry_) { other.entry_ = nullptr; }
  CacheRef& operator=(CacheRef&& other) noexcept {
    if (this != &other) {
      reset();
      entry_ = other.entry_;
      other.entry_ = nullptr;
    }
    return *this;
  }
  ~CacheRef() { reset(); }
  void reset() noexcept {
    if (entry_ != nullptr) entry_->put();
    entry_ = nullptr;
  }
  MovableCache* get() const noexcept { return entry_; }
  MovableCache* operator->() const noexcept { return entry_; }
  explicit operator bool() const noexcept { return entry_ != nullptr; }

 private:
  MovableCache* entry_ = nullptr;
};

class Registry {
 public:
  Registry() noexcept = default;
  /// Entries still registered are unlinked and freed (no grace period: the
  /// caller guarantees no reader runs any more).
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// The process-wide registry the default Defragmenter walks. Never destroyed.
  static Registry& global() noexcept;

  /// Makes `cache` movable with `ops` (both callbacks required). Returns the
  /// entry, or nullptr when out of memory or `ops` lacks a callback.
  /// Thread-safe; takes the registry's writer lock. The cache must stay
  /// alive until remove() has returned.
  MovableCache* add(SlabCache* cache, const MobilityOps& ops) noexcept;

  /// Unregisters: refuses new references, drops the first one, waits until
  /// every user has put its reference back, unlinks the entry and frees it
  /// after a grace period. Blocks — at most until a running defragmenter
  /// pass ends (a pass holds its references throughout). Afterwards the
  /// defragmenter never touches the cache again, so it may be destroyed.
  /// Must not be called inside a read section (reported as
  /// kInvalidArgument; the call then does nothing) nor by a thread holding
  /// a reference to this entry (it would wait for itself).
  void remove(MovableCache* entry) noexcept;

  /// Calls fn(MovableCache&) for each entry it can take a reference on, with
  /// the reference held and outside any read section (fn may block, but must
  /// not remove the entry it is given). Thread-safe; no lock is held.
  template <class Fn>
  void for_each(Fn&& fn);

  /// Appends a reference to every live entry to `out` (the caller owns them).
  /// Thread-safe; lock-free apart from the vector's allocation.
  void acquire_all(std::vector<CacheRef>& out);

  /// Entries linked now (including ones being removed). Lock-free.
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }

 private:
  std::mutex lock_;  // writers: add, remove
  std::atomic<MovableCache*> head_{nullptr};
  std::atomic<std::size_t> size_{0};
};

template <class Fn>
void Registry::for_each(Fn&& fn) {
  std::optional<rcu::ReadGuard> guard(std::in_place);
  for (MovableCache* e = head_.load(std::memory_order_acquire); e != nullptr;) {
    if (!e->try_get()) {
      e = e->next_.load(std::memory_order_acquire);
      continue;
    }
    guard.reset();
    fn(*e);
    guard.emplace();
    // Our reference kept `e` linked, so its successor is live or still
    // within the grace period of this read section; only then drop it.
    MovableCache* next = e->next_.load(std::memory_order_acquire);
    e->put();
    e = next;
  }
}

/// Registers on construction, removes on destruction (move-only).
class Registration {
 public:
  Registration() noexcept = default;
  Registration(Registry& registry, SlabCache* cache, const MobilityOps& ops) noexcept
      : registry_(&registry), entry_(registry.add(cache, ops)) {}
  Registration(Registration&& other) noexcept : registry_(other.registry_), entry_(other.entry_) {
    other.entry_ = nullptr;
  }
  Registration& operator=(Registration&& other) noexcept {
    if (this != &other) {
      reset();
      registry_ = other.registry_;
      entry_ = other.entry_;
      other.entry_ = nullptr;
    }
    return *this;
  }
  ~Registration() { reset(); }
  /// Unregisters now (blocks as Registry::remove).
  void reset() noexcept {
    if (entry_ != nullptr) registry_->remove(entry_);
    entry_ = nullptr;
  }
  MovableCache* entry() const noexcept { return entry_; }
  explicit operator bool() const noexcept { return entry_ != nullptr; }

 private:
  Registry* registry_ = nullptr;
  MovableCache* entry_ = nullptr;
};

}  // namespace mslab::defrag
