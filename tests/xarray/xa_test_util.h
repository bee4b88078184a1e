// Helpers shared by the XArray tests: sanitizer-aware sizes, entry makers,
// and a node allocator whose failures a test can schedule.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ostream>

#include "alloc/config.h"
#include "xarray/xarray.h"


namespace mslab {
// doctest prints entries that fail a comparison.
inline std::ostream& operator<<(std::ostream& os, Entry e) {
  if (e.empty()) return os << "empty";
  if (e.is_value()) return os << "value(" << e.to_value() << ")";
  return os << "ptr(0x" << std::hex << e.raw() << std::dec << ")";
}
}  // namespace mslab

namespace mslab::xatest {

#if defined(MSLAB_TSAN) || defined(MSLAB_ASAN)  // alloc/config.h
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

/// `n` in a plain build, n / 10 under a sanitizer.
constexpr std::size_t scaled(std::size_t n) { return kSanitized ? n / 10 : n; }

/// A value entry derived from an index (xa_mk_index).
inline Entry index_entry(unsigned long i) { return Entry::value(i & Entry::kMaxValue); }

/// A pointer entry that is never dereferenced: 4-byte aligned, non-null.
inline Entry fake_pointer(unsigned long i) {
  return Entry::pointer(reinterpret_cast<void*>((static_cast<std::uintptr_t>(i) + 1) << 2));
}

/// malloc-backed nodes; allocation number `fail_at` from arming (0 = the
/// next) and, if sticky, all later ones return nullptr.
struct FailingNodeAlloc {
  static inline std::atomic<long> countdown{-1};
  static inline std::atomic<bool> sticky{false};
  static inline std::atomic<long> live{0};
  static void arm(long fail_at, bool stick = false) {
    sticky = stick;
    countdown = fail_at;
  }
  static void disarm() { countdown = -1; }
  static void* allocate(std::size_t bytes) noexcept {
    long c = countdown.load();
    if (c == 0) {
      if (!sticky) countdown = -1;
      return nullptr;
    }
    if (c > 0) countdown = c - 1;
    live.fetch_add(1);
    return std::malloc(bytes);
  }
  static void free_now(void* p) noexcept {
    live.fetch_sub(1);
    std::free(p);
  }
  static void free_deferred(void* p) noexcept { rcu::defer_free(p, &free_now); }
};

using FailingArray = BasicXArray<MSLAB_XA_CHUNK_SHIFT, FailingNodeAlloc>;

}  // namespace mslab::xatest
