// What the churn workloads (kv, xarray) share: opening the heap, the
// random erase, and the second half: once the
// erase (and any refill) is done — settle and read RSS, open the readers'
// quiet window, run the defrag step (movable heaps only) with the readers
// loading, settle and read RSS again, fill the record's figures and check
// that every live entry survived intact.
//
// Heap: drain(), settle(), free_2m_blocks(), kMovable, defrag() → KvDefragResult
// (kv_heap.h, xa_heap.h). Store: load(key) → const head* with matches(key),
// valid inside an rcu::ReadGuard; live_bytes().
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

#include "bench/kv_heap.h"
#include "bench/kv_readers.h"
#include "bench/mslab_breakdown.h"
#include "bench/progress.h"
#include "bench/record.h"
#include "bench/workload_util.h"
#include "rcu/rcu.h"

namespace mslab::bench {

/// Opens the heap and names its allocator in the record; false (the run
/// skipped, with the reason) if it cannot be opened.
template <class Heap>
bool open_churn_heap(Heap& heap, RunRecord& r) {
  std::string why;
  if (!heap.open(&why)) {
    set_outcome(r, RunStatus::kSkipped, why);
    return false;
  }
  set_text(r.version, heap.version());
  r.object_size = 0;  // mixed sizes
  return true;
}

/// The number of `n` entries that FREE-FRACTION `fraction` erases.
inline std::size_t churn_free_count(std::size_t n, double fraction) noexcept {
  return std::min(n, static_cast<std::size_t>(std::llround(static_cast<double>(n) * fraction)));
}

/// Shuffles keys[0, n) with `seed` and erases the first `n_free` of them
/// from `store`: the survivors are keys[n_free, n).
template <class Store>
void erase_random(Store& store, std::uint64_t* keys, std::size_t n, std::size_t n_free, std::uint64_t seed,
                  const std::string& label) {
  seeded_shuffle(keys, n, seed);
  Progress progress(label + " erase", n_free);
  for (std::size_t i = 0; i < n_free; ++i) {
    store.erase(keys[i]);
    progress.update(i);
  }
}

/// What the churn workloads measure after their erase phase.
struct ChurnTail {
  const std::uint64_t* live_keys;  // the keys still present (readers load them; all are verified)
  std::size_t n_live;
  unsigned threads;                // reader threads (the readers object has as many)
  int quiet_ms;                    // length of the readers' window without defrag
  std::size_t baseline;            // RSS before the workload allocated anything
};

template <class Heap, class Store>
void measure_churn_tail(Heap& heap, const Store& store, KvReaders<Store>& readers, const ChurnTail& t,
                        const std::string& label, RunRecord& r) {
  using Readers = KvReaders<Store>;
  heap.drain();
  r.free_2m_blocks_before = heap.free_2m_blocks();
  heap.settle();
  r.rss_bytes_before = rss_since(t.baseline);
  r.objects_live = t.n_live;
  r.live_bytes = store.live_bytes();
  if constexpr (Heap::kMovable) print_mslab_breakdown("before defrag", *r.live_bytes, t.baseline);

  // Readers: a quiet window, then (movable heaps) the defrag pass.
  const bool reading = t.threads > 0 && t.n_live > 0;
  if (reading) readers.set_keys(t.live_keys, t.n_live);
  std::uint64_t quiet_ns = 0, defrag_ns = 0;
  if (reading) {
    // quiet_ms, longer if no reader has completed a batch of loads yet (a
    // busy machine may not schedule one for a while): up to kMaxQuietMs.
    constexpr int kMaxQuietMs = 2000;
    const std::uint64_t b0 = readers.batches();
    const std::uint64_t q0 = readers.open(Readers::kQuiet);
    std::this_thread::sleep_for(std::chrono::milliseconds(t.quiet_ms));
    for (int waited = t.quiet_ms; readers.batches() == b0 && waited < kMaxQuietMs; ++waited)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    quiet_ns = now_ns() - q0;
  }
  if constexpr (Heap::kMovable) {
    Progress::show(label + " defrag ...");
    const std::uint64_t d0 = reading ? readers.open(Readers::kDefrag) : now_ns();
    const KvDefragResult d = heap.defrag();
    defrag_ns = now_ns() - d0;
    Progress::show("");
    r.defrag_ms = d.ms;
    r.max_pause_ms = d.max_pause_ms;
    r.objects_moved = d.objects_moved;
    r.bytes_copied = d.bytes_copied;
    r.slabs_freed = d.slabs_freed;
    r.nodes_moved = d.nodes_moved;
  }
  readers.stop();
  heap.drain();
  r.free_2m_blocks_after = heap.free_2m_blocks();
  heap.settle();
  r.rss_bytes_after = rss_since(t.baseline);
  if constexpr (Heap::kMovable) print_mslab_breakdown("after defrag", *r.live_bytes, t.baseline);
  r.reader_threads = t.threads;
  if (reading) {
    const ReaderFigures quiet = readers.figures(Readers::kQuiet, quiet_ns);
    r.reader_ops_per_s_quiet = quiet.ops_per_s;
    r.reader_p99_us_quiet = quiet.p99_us;
    if (Heap::kMovable) {
      const ReaderFigures during = readers.figures(Readers::kDefrag, defrag_ns);
      r.reader_ops_per_s = during.ops_per_s;
      r.reader_p99_us = during.p99_us;
    }
  }
  if (*r.live_bytes > 0) {
    r.ratio_before = static_cast<double>(*r.rss_bytes_before) / static_cast<double>(*r.live_bytes);
    r.ratio_after = static_cast<double>(*r.rss_bytes_after) / static_cast<double>(*r.live_bytes);
  }
  if (readers.bad() != 0)
    return set_outcome(r, RunStatus::kFailed,
                       std::to_string(readers.bad()) + " reader loads found a missing or wrong value");
  // Every entry survived the erase, refill and any moves intact.
  for (std::size_t i = 0; i < t.n_live; ++i) {
    rcu::ReadGuard guard;
    const auto* v = store.load(t.live_keys[i]);
    if (v == nullptr || !v->matches(t.live_keys[i]))
      return set_outcome(r, RunStatus::kFailed, "key " + std::to_string(t.live_keys[i]) + " lost or corrupted");
  }
}

}  // namespace mslab::bench
