// The XArray workload shared by xa_defrag_stress and mslab-soak: checksummed
// value entries in XArrays whose nodes the defragmenter migrates. A value
// entry carries its sequence number and a checksum of (index, sequence), so
// an entry found at the wrong index fails its check too. Writer i of W owns
// four arrays (and now and then destroys one and starts it afresh, so that
// arrays die while migrations may hold them) and writes the keys k with
// k % W == i of the shared arrays, which anyone may read and iterate. The
// writer's shadow says what every key must hold, and every store/erase must
// return exactly what was there.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "stress_common.h"
#include "xarray/xarray.h"

namespace mslab::stress::xa {

inline constexpr unsigned kOwnArrays = 4;
inline constexpr unsigned kSharedArrays = 2;
inline constexpr unsigned long kSpread = 13;  // index = key * kSpread: sparse leaves, many nodes

inline std::uint64_t check32(unsigned long index, std::uint64_t seq) {
  std::uint64_t x = index * 0x9E3779B97F4A7C15ull + seq * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 29;
  return (x * 0x94D049BB133111EBull) >> 32;
}

inline Entry make_entry(unsigned long index, std::uint64_t seq) {
  return Entry::value((seq << 32) | check32(index, seq));
}

inline bool intact(Entry e, unsigned long index) {
  if (!e.is_value()) return false;
  const std::uint64_t v = e.to_value();
  return (v & 0xffffffffu) == check32(index, v >> 32);
}

/// The arrays every writer writes a share of and every reader reads.
struct Shared {
  std::unique_ptr<XArray> arrays[kSharedArrays];
  std::size_t keys;  // per array
  std::atomic<std::uint64_t> iterations{0}, recreated{0};

  explicit Shared(std::size_t n) : keys(n) {
    for (auto& a : arrays) a = std::make_unique<XArray>();
  }
  /// Counts the entries of the shared arrays; adds every corrupt one to
  /// `corrupted`. Quiet arrays only.
  std::uint64_t check_all(std::atomic<std::uint64_t>& corrupted) const {
    std::uint64_t present = 0;
    for (const auto& a : arrays) {
      for (auto [index, e] : *a) {
        ++present;
        if (!intact(e, index)) corrupted.fetch_add(1);
      }
    }
    return present;
  }
};

// What one writer put into one array: the sequence number of each key, 0 = empty.
struct Shadow {
  std::vector<std::uint32_t> seq;
  explicit Shadow(std::size_t n) : seq(n, 0) {}
};

/// Every entry of `xa` is intact and in increasing index order (one
/// iteration: its own read section); with a shadow, exactly the shadow's
/// entries (keys first, first + stride, …) are present. Readers pass no
/// shadow.
inline void check_array(Tally& tally, const XArray& xa, const Shadow* shadow, std::size_t first, std::size_t stride) {
  unsigned long last = 0;
  bool any = false;
  for (auto [index, e] : xa) {
    if (!intact(e, index) || index % kSpread != 0 || (any && index <= last)) tally.corrupted.fetch_add(1);
    any = true;
    last = index;
  }
  if (shadow == nullptr) return;
  for (std::size_t k = first; k < shadow->seq.size(); k += stride) {
    const unsigned long index = k * kSpread;
    const Entry e = xa.load(index);
    if (shadow->seq[k] == 0 ? !e.empty() : e != make_entry(index, shadow->seq[k]))
      (e.empty() ? tally.lost : tally.corrupted).fetch_add(1);
  }
}

/// A checked load of one key of `xa` (any writer's).
inline void check_key(Tally& tally, const XArray& xa, std::size_t k) {
  const unsigned long index = k * kSpread;
  const Entry e = xa.load(index);
  if (!e.empty() && !intact(e, index)) tally.corrupted.fetch_add(1);
}

/// One writer's side: its own arrays, its keys of the shared ones, the shadows.
class Writer {
 public:
  Writer(Shared& shared, Tally& tally, unsigned id, unsigned writers, std::uint64_t seed)
      : sh_(shared), tally_(tally), id_(id), writers_(writers), rng_(seed),
        own_shadow_(kOwnArrays, Shadow(shared.keys)), shared_shadow_(kSharedArrays, Shadow(shared.keys)) {
    for (auto& a : own_) a = std::make_unique<XArray>();
  }

  /// One operation: 30 % a checked load, 0.2 % a full checked iteration of
  /// an own array, else a store or erase (erasing dominates in
  /// `erase_phase`, so that nodes keep emptying); every 200 ms an own array
  /// is checked, destroyed and replaced by an empty one.
  void step(bool erase_phase) {
    const std::size_t n = sh_.keys;
    const unsigned roll = static_cast<unsigned>(rng_() % 1000);
    if (roll < 300) {
      const bool shared = rng_() % 2;
      check_key(tally_, shared ? *sh_.arrays[rng_() % kSharedArrays] : *own_[rng_() % kOwnArrays], rng_() % n);
      return;
    }
    if (roll < 302) {
      const unsigned a = static_cast<unsigned>(rng_() % kOwnArrays);
      check_array(tally_, *own_[a], &own_shadow_[a], 0, 1);
      sh_.iterations.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const bool erase = erase_phase ? roll < 850 : roll < 550;
    if (roll % 3 == 0) {
      const unsigned a = static_cast<unsigned>(rng_() % kSharedArrays);
      write_key(*sh_.arrays[a], shared_shadow_[a], (rng_() % (n / writers_)) * writers_ + id_, erase);
    } else {
      const unsigned a = static_cast<unsigned>(rng_() % kOwnArrays);
      write_key(*own_[a], own_shadow_[a], rng_() % n, erase);
    }
    if (Clock::now() - last_recreate_ > std::chrono::milliseconds(200)) {
      const unsigned a = static_cast<unsigned>(rng_() % kOwnArrays);
      check_array(tally_, *own_[a], &own_shadow_[a], 0, 1);
      own_[a] = std::make_unique<XArray>();
      own_shadow_[a] = Shadow(n);
      sh_.recreated.fetch_add(1, std::memory_order_relaxed);
      last_recreate_ = Clock::now();
    }
  }

  /// Compares every array of ours and our keys of the shared ones with the
  /// shadows (missing = lost; extra, corrupt or stale = corrupted).
  void check_all() {
    for (unsigned a = 0; a < kOwnArrays; ++a) check_array(tally_, *own_[a], &own_shadow_[a], 0, 1);
    for (unsigned a = 0; a < kSharedArrays; ++a) check_array(tally_, *sh_.arrays[a], &shared_shadow_[a], id_, writers_);
  }

  /// Destroys our own arrays (their nodes go to deferred free).
  void destroy_own() {
    for (auto& a : own_) a.reset();
  }

 private:
  using Clock = std::chrono::steady_clock;

  // Stores or erases key k of `xa` and checks the old entry against the shadow.
  void write_key(XArray& xa, Shadow& shadow, std::size_t k, bool erase) {
    const unsigned long index = k * kSpread;
    const std::uint32_t had = shadow.seq[k];
    const std::uint32_t next = erase ? 0 : had + 1;
    XaResult r = erase ? XaResult(xa.erase(index)) : xa.store(index, make_entry(index, next));
    if (!r.ok()) {
      tally_.oom.fetch_add(1);
      return;
    }
    const Entry old = r.entry();
    if (had == 0 && !old.empty()) tally_.corrupted.fetch_add(1);
    if (had != 0 && old.empty()) tally_.lost.fetch_add(1);
    if (had != 0 && !old.empty() && old != make_entry(index, had)) tally_.corrupted.fetch_add(1);
    shadow.seq[k] = next;
  }

  Shared& sh_;
  Tally& tally_;
  const unsigned id_, writers_;
  std::mt19937_64 rng_;
  std::unique_ptr<XArray> own_[kOwnArrays];
  std::vector<Shadow> own_shadow_, shared_shadow_;
  Clock::time_point last_recreate_ = Clock::now();
};

}  // namespace mslab::stress::xa
