// Workload `xarray`: index churn (xa_store.h). Fill ENTRIES entries spread
// round-robin over kXaArrays allocating XArrays, each at an id from ID
// allocation and pointing to a payload of 16 B to 4 KiB (kv's size
// distribution, seeded); erase a seeded random FREE-FRACTION of them; then
// the shared tail (churn_phases.h): RSS before, THREADS readers in a quiet
// window, for mslab-defrag one Defragmenter pass (payloads and XArray nodes
// both movable) with the readers loading, RSS after, every live entry
// verified. Payloads and nodes come from the allocator under test
// (xa_heap.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>
#include <string>

#include "bench/adapter_mslab_defrag.h"
#include "bench/churn_phases.h"
#include "bench/kv_readers.h"
#include "bench/options.h"
#include "bench/progress.h"
#include "bench/record.h"
#include "bench/scratch.h"
#include "bench/workload_util.h"
#include "bench/xa_heap.h"
#include "bench/xa_store.h"

namespace mslab::bench {

template <class A>
struct XaHeapOf {
  using type = XaPlainHeap<A>;
};
template <>
struct XaHeapOf<MslabDefragAllocator> {
  using type = XaMovableHeap;
};

struct XarrayWorkload {
  static constexpr std::string_view kName = "xarray";
  static constexpr bool kFixedSize = false;  // opens its own allocators, one per size class and one for nodes
  static constexpr bool kWarmUp = true;     // registry.cpp: a small run of its own before the measured one
  static constexpr int kQuietMs = 100;
  template <class A>
  static constexpr bool kSupports = true;

  static std::string describe(const Options& o) {
    char buf[240];
    std::snprintf(buf, sizeof buf,
                  "%zu entries over %u allocating XArrays, payloads of 16 B to 4 KiB (mean 330 B), %.4g %% erased "
                  "at random, %u reader thread(s) (seed %llu)",
                  o.entries, kXaArrays, o.free_fraction * 100.0, o.threads, static_cast<unsigned long long>(o.seed));
    return buf;
  }

  template <class A>
  static void run(const Options& o, RunRecord& r) {
    using Heap = typename XaHeapOf<A>::type;
    Heap heap;
    if (!open_churn_heap(heap, r)) return;

    const std::size_t n = o.entries;
    const std::size_t n_free = churn_free_count(n, o.free_fraction);
    ScratchArray<std::uint64_t> keys(n);
    if (!keys.ok()) return set_outcome(r, RunStatus::kFailed, "cannot map the key array");
    XaStore<Heap> store(heap);
    KvReaders<XaStore<Heap>> readers(store, o.threads, o.seed);
    std::mt19937_64 rng(o.seed);  // same payload sizes for every allocator
    const std::string label = std::string(kName) + "/" + std::string(A::kName);

    breakdown_smaps().prepare();
    const std::size_t baseline = os::resident_bytes();
    breakdown_at_baseline();
    const std::uint64_t t_start = now_ns();
    {
      Progress progress(label + " fill", n);
      for (std::size_t k = 0; k < n; ++k) {
        const std::optional<std::uint64_t> key =
            store.put(static_cast<unsigned>(k % kXaArrays), kv_class_of(static_cast<unsigned>(rng() % 100)));
        if (!key) return set_outcome(r, RunStatus::kFailed, "out of memory in the fill phase");
        keys[k] = *key;
        progress.update(k);
      }
    }
    const std::uint64_t t_filled = now_ns();
    r.rss_bytes_peak = rss_since(baseline);
    r.objects_allocated = n;

    erase_random(store, keys.data(), n, n_free, o.seed, label);
    r.ns_per_op = static_cast<double>(t_filled - t_start) / static_cast<double>(std::max<std::size_t>(n, 1));
    const ChurnTail tail{keys.data() + n_free, n - n_free, o.threads, kQuietMs, baseline};
    measure_churn_tail(heap, store, readers, tail, label, r);
  }
};

}  // namespace mslab::bench
