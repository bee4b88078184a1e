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
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench/allocators.h"
#include "bench/options.h"
#include "bench/record.h"
#include "bench/scratch.h"
#include "bench/workload_util.h"

namespace mslab::bench {

struct SlabWorkload {
  static constexpr std::string_view kName = "slab";
  static constexpr bool kFixedSize = true;
  template <class A>
  static constexpr bool kSupports = FixedAllocator<A>;

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
    const std::int64_t rss = rss_since(baseline);
    const std::optional<std::uint64_t> free_2m = a.free_2m_blocks();

    r.objects_allocated = n;
    r.objects_live = n - n_free;
    r.live_bytes = r.objects_live * o.size;
    // No defrag step exists yet: "before" and "after" are the same moment.
    r.rss_bytes_before = r.rss_bytes_after = rss;
    if (*r.live_bytes > 0) r.ratio_before = r.ratio_after = static_cast<double>(rss) / static_cast<double>(*r.live_bytes);
    r.free_2m_blocks_before = r.free_2m_blocks_after = free_2m;
    r.alloc_ns = static_cast<double>(t1 - t0) / static_cast<double>(n);
    if (n_free > 0) {
      r.free_ns = static_cast<double>(t3 - t2) / static_cast<double>(n_free);
      r.ns_per_op = *r.alloc_ns + *r.free_ns;
    }
    for (std::size_t i = n_free; i < n; ++i) a.free(objects[i]);
  }
};

}  // namespace mslab::bench
