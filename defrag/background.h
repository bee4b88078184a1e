// Background compaction: a thread that keeps the fragmentation of the
// movable caches between a lower and an upper bound, spending at most a
// given share of one CPU, in bounded passes — the control loop of Alaska's
// Anchorage (ASPLOS'24 §4.3): wake periodically; when fragmentation rises
// above the upper bound, run bounded passes until it falls below the lower
// bound (hysteresis); after a pass that took T of CPU time, sleep
// T × (1/share − 1), so that passes use at most `cpu_share` of the thread's
// wall time. A pass that moves and frees nothing ends the activity until
// the next wake-up.
// Depends on: defrag/defragmenter.h.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "defrag/defragmenter.h"

namespace mslab::defrag {

struct BackgroundOptions {
  double lower = 1.15;                        // stop compacting below this fragmentation
  double upper = 1.5;                         // start above this
  double cpu_share = 0.05;                    // at most this share of one CPU in passes
  std::chrono::milliseconds interval{500};    // wake-up period while idle
  Budget pass_budget{std::chrono::milliseconds(2), 512};  // one bounded pass
};

struct BackgroundStats {
  std::uint64_t wakeups = 0;
  std::uint64_t passes = 0;
  Report total;                           // the passes' reports, summed
  double fragmentation = 0;               // at the last measurement
  std::chrono::nanoseconds cpu_time{0};   // spent in passes (thread CPU time)
  std::chrono::nanoseconds wall_time{0};  // since start()
  bool active = false;                    // between crossing upper and reaching lower
};

class BackgroundDefrag {
 public:
  BackgroundDefrag(Defragmenter& defragmenter, const BackgroundOptions& options = {}) noexcept
      : defrag_(defragmenter), options_(options) {}
  ~BackgroundDefrag() { stop(); }
  BackgroundDefrag(const BackgroundDefrag&) = delete;
  BackgroundDefrag& operator=(const BackgroundDefrag&) = delete;

  /// Starts the thread; false if it runs already or cannot be started.
  /// Thread-safe.
  bool start() noexcept;
  /// Stops and joins the thread; waits for a running pass to end. Blocks.
  /// Idempotent; thread-safe; never from the thread's own callbacks.
  void stop() noexcept;
  /// Wakes the thread for an immediate measurement (e.g. after a mass free).
  /// Thread-safe, never blocks on a pass.
  void poke() noexcept;

  /// A snapshot of the counters. Thread-safe, never waits for a pass.
  BackgroundStats stats() const noexcept;
  /// True between start() and stop(). Thread-safe.
  bool running() const noexcept;

 private:
  void loop() noexcept;
  // Sleeps up to `d` or until stopped or poked; false once stopped.
  bool sleep_for(std::chrono::nanoseconds d) noexcept;

  Defragmenter& defrag_;
  const BackgroundOptions options_;
  mutable std::mutex lock_;  // guards everything below
  std::condition_variable wake_;
  std::thread thread_;
  bool stop_ = false, poked_ = false, running_ = false;
  std::chrono::steady_clock::time_point started_;
  BackgroundStats stats_;
};

}  // namespace mslab::defrag
