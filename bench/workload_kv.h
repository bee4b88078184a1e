// Workload `kv`: a Redis-like store (kv_store.h). Fill KEYS entries (keys
// 0 … KEYS-1, value sizes drawn from the fixed distribution with the seed),
// erase a seeded random FREE-FRACTION of them, optionally insert REFILL ×
// KEYS new keys, then — for mslab-defrag — run one defragmentation pass.
// RSS is read after the fill (peak), before the defrag step (after the
// erase and refill, allocator settled) and after it. THREADS readers load
// random live keys during a quiet window (kQuietMs) and during the defrag
// pass; their throughput and p99 are reported for both.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "bench/adapter_mslab_defrag.h"
#include "bench/churn_phases.h"
#include "bench/kv_heap.h"
#include "bench/kv_readers.h"
#include "bench/kv_store.h"
#include "bench/options.h"
#include "bench/progress.h"
#include "bench/record.h"
#include "bench/scratch.h"
#include "bench/workload_util.h"

namespace mslab::bench {

template <class A>
struct KvHeapOf {
  using type = PlainHeap<A>;
};
template <>
struct KvHeapOf<MslabDefragAllocator> {
  using type = OwnedHeap;
};

struct KvWorkload {
  static constexpr std::string_view kName = "kv";
  static constexpr bool kFixedSize = false;  // opens its own allocators, one per size class
  static constexpr bool kWarmUp = true;     // registry.cpp: a small run of its own before the measured one
  static constexpr int kQuietMs = 100;
  template <class A>
  static constexpr bool kSupports = true;

  static std::string describe(const Options& o) {
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "%zu keys, values of 16 B to 4 KiB (mean 330 B), %.4g %% erased at random, refill %.4g %%, "
                  "%u reader thread(s) (seed %llu)",
                  o.keys, o.free_fraction * 100.0, o.refill * 100.0, o.threads,
                  static_cast<unsigned long long>(o.seed));
    return buf;
  }

  template <class A>
  static void run(const Options& o, RunRecord& r) {
    using Heap = typename KvHeapOf<A>::type;
    Heap heap;
    if (!open_churn_heap(heap, r)) return;

    const std::size_t n = o.keys;
    const std::size_t n_free = churn_free_count(n, o.free_fraction);
    const auto n_refill = static_cast<std::size_t>(std::llround(static_cast<double>(n) * o.refill));
    ScratchArray<std::uint64_t> keys(n + n_refill);
    if (!keys.ok()) return set_outcome(r, RunStatus::kFailed, "cannot map the key array");
    KvStore<Heap> store(heap);
    KvReaders<KvStore<Heap>> readers(store, o.threads, o.seed);
    std::mt19937_64 rng(o.seed);  // same value sizes for every allocator
    const std::string label = std::string(kName) + "/" + std::string(A::kName);

    breakdown_smaps().prepare();
    const std::size_t baseline = os::resident_bytes();
    breakdown_at_baseline();
    if (!store.reserve(n + n_refill)) return set_outcome(r, RunStatus::kFailed, "out of memory for the slot blocks");
    const std::uint64_t t_start = now_ns();
    {
      Progress progress(label + " fill", n);
      for (std::size_t k = 0; k < n; ++k) {
        if (!store.put(k, kv_class_of(static_cast<unsigned>(rng() % 100))))
          return set_outcome(r, RunStatus::kFailed, "out of memory in the fill phase");
        keys[k] = k;
        progress.update(k);
      }
    }
    const std::uint64_t t_filled = now_ns();
    r.rss_bytes_peak = rss_since(baseline);
    r.objects_allocated = n + n_refill;

    erase_random(store, keys.data(), n, n_free, o.seed, label);
    if (n_refill > 0) {
      Progress progress(label + " refill", n_refill);
      for (std::size_t i = 0; i < n_refill; ++i) {
        if (!store.put(n + i, kv_class_of(static_cast<unsigned>(rng() % 100))))
          return set_outcome(r, RunStatus::kFailed, "out of memory in the refill phase");
        keys[n + i] = n + i;
        progress.update(i);
      }
    }
    r.ns_per_op = static_cast<double>(t_filled - t_start) / static_cast<double>(std::max<std::size_t>(n, 1));
    const ChurnTail tail{keys.data() + n_free, n - n_free + n_refill, o.threads, kQuietMs, baseline};
    measure_churn_tail(heap, store, readers, tail, label, r);
  }
};

}  // namespace mslab::bench
