// Shared by the defrag stress programs (defrag_stress, xa_defrag_stress)
// and the soak (tests/soak): the sanitizer-scaled default size, the failure
// counters, the defragmenter's loop while the workers run, and the report
// lines they print.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>

#include "alloc/config.h"
#include "defrag/defragmenter.h"

namespace mslab::stress {

#if defined(MSLAB_TSAN) || defined(MSLAB_ASAN)  // alloc/config.h
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

/// What the workloads found: an entry missing or stale (lost), corrupt or at
/// the wrong index (corrupted, "torn"), an allocation refused (oom).
struct Tally {
  std::atomic<std::uint64_t> lost{0}, corrupted{0}, oom{0};
};

/// The defragmenter's side of a stress run: bounded 5 ms passes, every
/// `huge_every`-th round compaction on demand for an order-9 block instead,
/// with `pause` between rounds, until `stop`. The stress programs run it
/// flat out (every eighth round, 1 ms pauses); the soak, beside the
/// background control loop, runs it as an application asking now and then.
struct DefragLoop {
  unsigned huge_every = 8;
  std::chrono::milliseconds pause{1};
  defrag::Report total;
  std::uint64_t on_demand = 0, on_demand_ok = 0;

  void run(defrag::Defragmenter& defragmenter, const std::atomic<bool>& stop) {
    defrag::Budget budget;
    budget.time = std::chrono::milliseconds(5);
    const auto step = std::min(pause, std::chrono::milliseconds(10));  // stop is noticed within 10 ms
    for (unsigned round = 0; !stop.load(); ++round) {
      if (round % huge_every == huge_every - 1) {
        total += defragmenter.make_available(9, budget);
        ++on_demand;
        on_demand_ok += defragmenter.available(9);
      } else {
        total += defragmenter.run(budget);
      }
      for (auto slept = std::chrono::milliseconds(0); slept < pause && !stop.load(); slept += step)
        std::this_thread::sleep_for(step);
    }
  }

  /// The pass counts and the on-demand line.
  void print(const char* label = "defrag") const {
    std::printf("  %s: %zu passes, %zu slabs scanned, %zu isolated, %zu refused, %zu freed, %zu chunks emptied\n",
                label, total.passes, total.slabs_scanned, total.slabs_isolated, total.slabs_refused, total.slabs_freed,
                total.chunks_evacuated);
    std::printf("  make_available(9): %llu calls, %llu satisfied\n", static_cast<unsigned long long>(on_demand),
                static_cast<unsigned long long>(on_demand_ok));
  }
};

/// The final quiet pass: fragmentation and free 2 MiB blocks before/after.
inline void print_final_pass(double frag_before, double frag_after, const defrag::Report& last) {
  std::printf("  final pass: fragmentation %.2f -> %.2f, free 2 MiB blocks %zu -> %zu, %zu moved in %.1f ms\n",
              frag_before, frag_after, last.free_2m_before, last.free_2m_after, last.objects_moved,
              static_cast<double>(last.elapsed.count()) / 1e6);
}

}  // namespace mslab::stress
