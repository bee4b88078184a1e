// The owned-object workload shared by defrag_stress and mslab-soak:
// checksummed objects of three sizes (three defrag::OwnedCache caches), one
// per key, held in an owner-slot table. Writer i of W writes the slots
// k with k % W == i and keeps a shadow of what each holds (its sequence
// number), so that every exchange can check it took out exactly what it
// last put in, moved by the defragmenter or not; anyone may read any slot
// under RCU and check its checksum.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "defrag/owned_cache.h"
#include "rcu/rcu.h"
#include "stress_common.h"

namespace mslab::stress::owned {

inline constexpr std::size_t kSizes[] = {40, 120, 232};  // payload bytes: three caches

struct Header {
  std::uint64_t key, seq, checksum;
};

inline std::uint64_t mix(std::uint64_t key, std::uint64_t seq) {
  std::uint64_t x = key * 0x9E3779B97F4A7C15ull + seq * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 31;
  return x * 0x94D049BB133111EBull;
}

inline std::size_t size_of_key(std::uint64_t key) { return kSizes[key % 3]; }

// The byte at offset i of a payload: derived from the checksum, so that a
// copy torn between two versions of an object is caught past the header too.
inline unsigned char pattern(std::uint64_t checksum, std::size_t i) {
  return static_cast<unsigned char>(checksum >> (i % 8 * 8)) ^ static_cast<unsigned char>(i);
}

inline void fill(void* p, std::uint64_t key, std::uint64_t seq) {
  auto* h = static_cast<Header*>(p);
  h->key = key;
  h->seq = seq;
  h->checksum = mix(key, seq);
  auto* bytes = static_cast<unsigned char*>(p);
  for (std::size_t i = sizeof(Header); i < size_of_key(key); ++i) bytes[i] = pattern(h->checksum, i);
}

/// True if `p` is a whole object of `key` (any sequence number).
inline bool intact(const void* p, std::uint64_t key) {
  const auto* h = static_cast<const Header*>(p);
  if (h->key != key || h->checksum != mix(key, h->seq)) return false;
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = sizeof(Header); i < size_of_key(key); ++i)
    if (bytes[i] != pattern(h->checksum, i)) return false;
  return true;
}

/// The slot table and its three caches.
struct Store {
  std::vector<std::atomic<void*>> slots;
  defrag::OwnedCache* caches[3] = {};

  explicit Store(std::size_t n) : slots(n) {}

  /// Creates the caches on `pages`/`registry` (nullptr: the global ones).
  bool create(PageAllocator* pages, defrag::Registry* registry) {
    for (int c = 0; c < 3; ++c) {
      defrag::OwnedOptions o;
      o.name = "stress";
      o.payload_size = kSizes[c];
      o.pages = pages;
      o.registry = registry;
      caches[c] = defrag::OwnedCache::create(o);
      if (caches[c] == nullptr) return false;
    }
    return true;
  }
  defrag::OwnedCache& cache_for(std::uint64_t key) { return *caches[key % 3]; }

  /// Objects relocated by the defragmenter so far, and relocations that lost
  /// the race to a writer.
  std::uint64_t moved() const {
    std::uint64_t n = 0;
    for (const defrag::OwnedCache* c : caches) n += c->stats().moved;
    return n;
  }
  std::uint64_t raced() const {
    std::uint64_t n = 0;
    for (const defrag::OwnedCache* c : caches) n += c->stats().raced;
    return n;
  }

  /// Counts the present slots; adds every corrupt one to `corrupted`.
  /// Quiet store only (no writer).
  std::uint64_t check_all(std::atomic<std::uint64_t>& corrupted) const {
    std::uint64_t present = 0;
    rcu::ReadGuard guard;
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const void* p = slots[k].load(std::memory_order_acquire);
      if (p == nullptr) continue;
      ++present;
      if (!intact(p, k)) corrupted.fetch_add(1);
    }
    return present;
  }

  /// Empties every slot (the objects are retired). Quiet store only.
  void empty() {
    for (std::size_t k = 0; k < slots.size(); ++k) cache_for(k).retire(cache_for(k).exchange(slots[k], nullptr));
  }
  void destroy() {
    for (defrag::OwnedCache*& c : caches) {
      if (c != nullptr) c->destroy();
      c = nullptr;
    }
  }
};

/// One writer's side: its slots (k % writers == id) and their shadow.
class Writer {
 public:
  Writer(Store& store, Tally& tally, unsigned id, unsigned writers, std::uint64_t seed)
      : store_(store), tally_(tally), id_(id), writers_(writers), rng_(seed),
        seq_(store.slots.size(), 0), present_(store.slots.size(), false) {}

  /// One operation: 40 % a checked read of any slot, else an insert, replace
  /// or erase of one of ours; `erase_phase` makes erasing dominate, so that
  /// slabs keep becoming sparse. Returns true for a write.
  bool step(bool erase_phase) {
    const std::size_t n = store_.slots.size();
    const unsigned roll = static_cast<unsigned>(rng_() % 100);
    if (roll < 40) {
      const std::size_t k = rng_() % n;
      rcu::ReadGuard guard;
      const void* p = store_.slots[k].load(std::memory_order_acquire);
      if (p != nullptr && !intact(p, k)) tally_.corrupted.fetch_add(1);
      return false;
    }
    const std::size_t k = (rng_() % (n / writers_)) * writers_ + id_;
    defrag::OwnedCache& cache = store_.cache_for(k);
    const bool erase = erase_phase ? roll < 85 : roll < 50;
    void* fresh = nullptr;
    if (!erase || roll >= 95) {  // insert or replace
      fresh = cache.alloc();
      if (fresh == nullptr) {
        tally_.oom.fetch_add(1);
        return false;
      }
      fill(fresh, k, seq_[k] + 1);
    }
    void* old = cache.exchange(store_.slots[k], fresh);
    // What we took out must be exactly what we last put in (moved or not).
    if (present_[k]) {
      if (old == nullptr) tally_.lost.fetch_add(1);
      else if (!intact(old, k) || static_cast<const Header*>(old)->seq != seq_[k]) tally_.corrupted.fetch_add(1);
    } else if (old != nullptr) {
      tally_.corrupted.fetch_add(1);
    }
    cache.retire(old);
    present_[k] = fresh != nullptr;
    if (fresh != nullptr) ++seq_[k];
    return true;
  }

  /// Compares every slot of ours with the shadow: missing = lost; present
  /// when it should not be, corrupt or stale = corrupted.
  void check_all() {
    rcu::ReadGuard guard;
    for (std::size_t k = id_; k < store_.slots.size(); k += writers_) {
      const void* p = store_.slots[k].load(std::memory_order_acquire);
      if (present_[k] && p == nullptr) tally_.lost.fetch_add(1);
      else if (!present_[k] && p != nullptr) tally_.corrupted.fetch_add(1);
      else if (p != nullptr && (!intact(p, k) || static_cast<const Header*>(p)->seq != seq_[k]))
        tally_.corrupted.fetch_add(1);
    }
  }

 private:
  Store& store_;
  Tally& tally_;
  const unsigned id_, writers_;
  std::mt19937_64 rng_;
  std::vector<std::uint64_t> seq_;
  std::vector<bool> present_;
};

}  // namespace mslab::stress::owned
