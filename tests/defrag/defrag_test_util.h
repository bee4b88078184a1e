// Helpers shared by the defrag tests: a scripted owner of movable objects
// (a table of slots indexed by id, with phase-1 and phase-2 behaviour chosen
// by the test), and chunk/slab queries.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "../alloc/test_util.h"
#include "alloc/slab_cache.h"
#include "defrag/defragmenter.h"
#include "defrag/evacuate.h"
#include "defrag/mobility.h"
#include "defrag/registry.h"

namespace mslab::test {

inline std::uintptr_t chunk_of_ptr(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) & ~static_cast<std::uintptr_t>(kChunkSize - 1);
}

inline bool slab_is_isolated(const detail::Slab* s) {
  return (s->xfree().load(std::memory_order_relaxed) & detail::XFree::kIsolated) != 0;
}

/// The checksum a TestObject carries for its id and value.
constexpr std::uint64_t test_checksum(std::uint64_t id, std::uint64_t value) {
  return (id * 0x9E3779B97F4A7C15ull) ^ (value + 0x632BE59BD9B4E019ull);
}

struct TestObject {
  std::uint64_t id;
  std::uint64_t value;
  std::uint64_t checksum;
  std::atomic<int> pins;  // phase 1's stable reference
};

/// Owns objects of one cache through a table of slots (slot i holds object
/// id i, or nullptr). Single-threaded users: the defragmenter thread is the
/// only other party, and it only runs inside the test's calls.
struct TestOwner {
  enum class Phase1 { kAccept, kRefuse };
  enum class Phase2 { kMoveAll, kMoveNone };

  SlabCache* cache;
  std::vector<TestObject*> slots;
  Phase1 phase1 = Phase1::kAccept;
  Phase2 phase2 = Phase2::kMoveAll;
  std::size_t can_free_calls = 0, reclaim_calls = 0, moved = 0;
  std::vector<void*> last_listed;
  // Phase 2 placements that broke the rule "never in an isolated slab or in
  // the chunk being evacuated".
  std::size_t bad_placements = 0;
  bool check_chunk = false;  // also count copies that land in an excluded chunk (one being evacuated)

  explicit TestOwner(SlabCache* c) : cache(c) {}

  defrag::MobilityOps ops() {
    defrag::MobilityOps o;
    o.can_free = &TestOwner::can_free;
    o.reclaim = &TestOwner::reclaim;
    o.cookie = this;
    return o;
  }

  /// Allocates `n` objects into new slots (through the thread cache).
  void fill(std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      auto* o = static_cast<TestObject*>(cache->alloc());
      REQUIRE(o != nullptr);
      const std::uint64_t id = slots.size();
      o->id = id;
      o->value = id * 7 + 1;
      o->checksum = test_checksum(id, o->value);
      o->pins.store(0, std::memory_order_relaxed);
      slots.push_back(o);
    }
  }

  void erase(std::size_t id) {
    cache->free(slots[id]);
    slots[id] = nullptr;
  }

  /// Frees a random `fraction` of the live objects (seeded).
  void erase_random(double fraction, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::bernoulli_distribution coin(fraction);
    for (std::size_t id = 0; id < slots.size(); ++id)
      if (slots[id] != nullptr && coin(rng)) erase(id);
  }

  std::size_t live() const {
    std::size_t n = 0;
    for (TestObject* o : slots) n += o != nullptr;
    return n;
  }

  /// Every live object is intact and unpinned; returns the number of faults.
  std::size_t faults() const {
    std::size_t bad = 0;
    for (std::size_t id = 0; id < slots.size(); ++id) {
      const TestObject* o = slots[id];
      if (o == nullptr) continue;
      bad += o->id != id || o->checksum != test_checksum(o->id, o->value) ||
             o->pins.load(std::memory_order_relaxed) != 0 || SlabCache::cache_of(o) != cache;
    }
    return bad;
  }

  static bool can_free(std::span<void*> objects, void* cookie) noexcept {
    auto* self = static_cast<TestOwner*>(cookie);
    ++self->can_free_calls;
    self->last_listed.assign(objects.begin(), objects.end());
    if (self->phase1 == Phase1::kRefuse) return false;
    for (void* p : objects) static_cast<TestObject*>(p)->pins.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  static void reclaim(std::span<void*> objects, void* cookie) noexcept {
    auto* self = static_cast<TestOwner*>(cookie);
    ++self->reclaim_calls;
    for (void* p : objects) {
      auto* old = static_cast<TestObject*>(p);
      if (self->phase2 == Phase2::kMoveNone) {
        old->pins.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      auto* copy = static_cast<TestObject*>(self->cache->alloc_direct());
      if (copy == nullptr) {
        old->pins.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      if (slab_is_isolated(detail::slab_of(copy)) || (self->check_chunk && detail::chunk_of(copy)->excluded != 0))
        ++self->bad_placements;
      copy->id = old->id;
      copy->value = old->value;
      copy->checksum = old->checksum;
      copy->pins.store(0, std::memory_order_relaxed);
      self->slots[old->id] = copy;
      old->pins.fetch_sub(1, std::memory_order_relaxed);
      self->cache->free_direct(old);
      ++self->moved;
    }
  }
};

/// Page-allocator figures the tests compare.
inline std::size_t free_2m(const PageAllocator& pages) { return pages.stats().free_2m_blocks(); }

}  // namespace mslab::test
