// Workload `slab`: the fragmentation scenario of design §1 with one object
// size. Allocate `count` objects (each filled, as a program initializes
// what it allocates), free a seeded random `free_fraction` of them, let the
// allocator give back what it can (settle()), then read the RSS.
//
// Objects are written right after allocation inside the timed loop: mslab
// never writes object memory itself, so without this its page faults would
// fall outside the timing and its untouched pages outside the RSS.
#pragma once

#include <algorithm>
#include <concepts>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench/allocators.h"
#include "bench/workload_slab_defrag.h"
#include "bench/workload_slab_figures.h"
#include "bench/options.h"
#include "bench/record.h"
#include "bench/scratch.h"
#include "bench/workload_util.h"

namespace mslab::bench {

struct SlabWorkload {
  static constexpr std::string_view kName = "slab";
  static constexpr bool kFixedSize = true;
  static constexpr bool kWarmUp = false;
  template <class A>
  static constexpr bool kSupports = FixedAllocator<A> || std::same_as<A, MslabDefragAllocator>;

  static std::string describe(const Options& o) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%zu objects of %zu B, %.4g %% of them freed at random (seed %llu)", o.count, o.size,
                  o.free_fraction * 100.0, static_cast<unsigned long long>(o.seed));
    return buf;
  }

  template <FixedAllocator A>
  static void run(A& a, const Options& o, RunRecord& r) {
    const std::size_t n = o.count;
    const std::size_t n_free =
        std::min(n, static_cast<std::size_t>(std::llround(static_cast<double>(n) * o.free_fraction)));
    ScratchArray<void*> objects(n);
    if (!objects.ok()) return set_outcome(r, RunStatus::kFailed, "cannot map the pointer array");

    const std::size_t baseline = os::resident_bytes();
    const std::uint64_t t0 = now_ns();
    for (std::size_t i = 0; i < n; ++i) {
      void* p = a.alloc();
      if (p == nullptr) return set_outcome(r, RunStatus::kFailed, "out of memory in the allocation phase");
      std::memset(p, 0xA5, o.size);
      objects[i] = p;
    }
    const std::uint64_t t1 = now_ns();
    r.rss_bytes_peak = rss_since(baseline);

    std::string why;
    if (!a.verify(objects[0], n, &why)) return set_outcome(r, RunStatus::kFailed, why);
    // The freed objects are the first n_free after a seeded shuffle: the same
    // allocation indices for every allocator. Shuffled outside the timing.
    seeded_shuffle(objects.data(), n, o.seed);

    const std::uint64_t t2 = now_ns();
    for (std::size_t i = 0; i < n_free; ++i) a.free(objects[i]);
    const std::uint64_t t3 = now_ns();

    a.settle();
    // No defrag step: "before" and "after" are the same moment.
    const std::int64_t rss = rss_since(baseline);
    const std::optional<std::uint64_t> free_2m = a.free_2m_blocks();
    set_slab_figures(r, {.n = n, .n_free = n_free, .size = o.size, .t_alloc0 = t0, .t_alloc1 = t1, .t_free0 = t2,
                         .t_free1 = t3, .rss_before = rss, .rss_after = rss, .free_2m_before = free_2m,
                         .free_2m_after = free_2m});
    for (std::size_t i = n_free; i < n; ++i) a.free(objects[i]);
  }

  /// mslab-defrag: movable objects and a defrag step (workload_slab_defrag.h).
  template <class A>
    requires std::same_as<A, MslabDefragAllocator>
  static void run(const Options& o, RunRecord& r) {
    run_slab_movable(o, r);
  }
};

}  // namespace mslab::bench
