// The kv workload's reader threads: each loads random live keys in its own
// read section and checks the value's head, timing every load. The
// threads are started before the workload's RSS baseline and wait; the
// workload then opens a measuring window without defrag and one during
// the defrag pass, and the readers keep one histogram per window.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "bench/latency.h"
#include "bench/scratch.h"
#include "bench/workload_util.h"
#include "rcu/rcu.h"

namespace mslab::bench {

struct ReaderFigures {
  std::optional<double> ops_per_s, p99_us;
};

template <class Store>
class KvReaders {
 public:
  enum Phase : int { kWait, kQuiet, kDefrag, kStop };

  /// `threads` readers over `store`; they start loading once set_keys()
  /// gave them keys and a window opened.
  KvReaders(const Store& store, unsigned threads, std::uint64_t seed) : store_(store), stats_(threads) {
    threads_.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) threads_.emplace_back([this, t, seed] { loop(t, seed + t); });
  }
  ~KvReaders() { stop(); }
  KvReaders(const KvReaders&) = delete;
  KvReaders& operator=(const KvReaders&) = delete;

  /// The live keys to read (not copied; must outlive the windows).
  void set_keys(const std::uint64_t* keys, std::size_t n) noexcept {
    keys_ = keys;
    n_keys_ = n;
  }
  /// Opens window `p` (kQuiet or kDefrag); returns its start time.
  std::uint64_t open(Phase p) noexcept {
    phase_.store(p, std::memory_order_release);
    phase_.notify_all();
    return now_ns();
  }
  void stop() noexcept {
    if (threads_.empty()) return;
    phase_.store(kStop, std::memory_order_release);
    phase_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }
  /// Batches of 64 loads completed so far, all readers and windows together.
  std::uint64_t batches() const noexcept { return batches_.load(std::memory_order_relaxed); }
  /// Loads that found a wrong value (must be 0).
  std::uint64_t bad() const noexcept { return bad_.load(std::memory_order_relaxed); }

  /// Throughput and p99 of window `p`, which lasted `ns`. Call after stop().
  ReaderFigures figures(Phase p, std::uint64_t ns) const noexcept {
    LatencyHistogram all;
    for (std::size_t t = 0; t < stats_.size(); ++t) all.merge(stats_[t].window[p == kDefrag]);
    if (all.count() == 0 || ns == 0) return {};
    return {static_cast<double>(all.count()) * 1e9 / static_cast<double>(ns),
            static_cast<double>(all.quantile(0.99)) / 1000.0};
  }

 private:
  struct alignas(64) PerThread {
    LatencyHistogram window[2];  // quiet, defrag
  };

  void loop(unsigned t, std::uint64_t seed) noexcept {
    { rcu::ReadGuard warm; }  // registers the thread before the baseline
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (;;) {
      phase_.wait(kWait, std::memory_order_acquire);
      const int p = phase_.load(std::memory_order_acquire);
      if (p == kStop) return;
      LatencyHistogram& h = stats_[t].window[p == kDefrag];
      for (int i = 0; i < 64; ++i) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
        const std::uint64_t key = keys_[static_cast<std::size_t>((static_cast<unsigned __int128>(x) * n_keys_) >> 64)];
        const std::uint64_t t0 = now_ns();
        bool good;
        {
          rcu::ReadGuard guard;
          const auto* v = store_.load(key);
          good = v != nullptr && v->matches(key);
        }
        h.add(now_ns() - t0);
        if (!good) bad_.fetch_add(1, std::memory_order_relaxed);
      }
      batches_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  const Store& store_;
  ScratchArray<PerThread> stats_;
  std::vector<std::thread> threads_;
  const std::uint64_t* keys_ = nullptr;
  std::size_t n_keys_ = 0;
  std::atomic<int> phase_{kWait};
  std::atomic<std::uint64_t> bad_{0};
  std::atomic<std::uint64_t> batches_{0};
};

}  // namespace mslab::bench
