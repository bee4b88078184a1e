// Small tools shared by the workloads: a monotonic clock in nanoseconds,
// the RSS relative to a baseline, and a seeded shuffle whose result depends
// only on the seed (std::shuffle's does not: its use of the engine is
// implementation-defined), so every allocator frees the same objects.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <utility>

#include "alloc/platform.h"

namespace mslab::bench {

inline std::uint64_t now_ns() noexcept {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count());
}

/// Resident bytes of this process above `baseline` (may be negative if the
/// allocator gave back memory that was resident before the baseline).
inline std::int64_t rss_since(std::size_t baseline) noexcept {
  return static_cast<std::int64_t>(os::resident_bytes()) - static_cast<std::int64_t>(baseline);
}

/// Fisher–Yates over `n` elements, driven by mt19937_64(seed). The bound is
/// taken with a 64×64→128-bit multiply (bias below 2^-30 for n < 2^34).
template <class T>
void seeded_shuffle(T* items, std::size_t n, std::uint64_t seed) noexcept {
  std::mt19937_64 rng(seed);
  for (std::size_t i = n; i > 1; --i) {
    const auto j = static_cast<std::size_t>((static_cast<unsigned __int128>(rng()) * i) >> 64);
    std::swap(items[i - 1], items[j]);
  }
}

}  // namespace mslab::bench
