// The background compaction thread (background.h).
#include "defrag/background.h"

#include <time.h>

#include <system_error>

namespace mslab::defrag {

namespace {

std::chrono::nanoseconds thread_cpu_time() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

bool BackgroundDefrag::start() noexcept {
  std::lock_guard guard(lock_);
  if (running_) return false;
  stop_ = false;
  poked_ = false;
  started_ = std::chrono::steady_clock::now();
  try {
    thread_ = std::thread([this] { loop(); });
  } catch (const std::system_error&) {
    return false;
  }
  running_ = true;
  return true;
}

void BackgroundDefrag::stop() noexcept {
  std::thread t;
  {
    std::lock_guard guard(lock_);
    if (!running_) return;
    stop_ = true;
    running_ = false;
    t = std::move(thread_);
  }
  wake_.notify_all();
  t.join();
}

void BackgroundDefrag::poke() noexcept {
  {
    std::lock_guard guard(lock_);
    poked_ = true;
  }
  wake_.notify_all();
}

bool BackgroundDefrag::running() const noexcept {
  std::lock_guard guard(lock_);
  return running_;
}

BackgroundStats BackgroundDefrag::stats() const noexcept {
  std::lock_guard guard(lock_);
  BackgroundStats s = stats_;
  if (running_) s.wall_time = std::chrono::steady_clock::now() - started_;
  return s;
}

bool BackgroundDefrag::sleep_for(std::chrono::nanoseconds d) noexcept {
  std::unique_lock guard(lock_);
  wake_.wait_for(guard, d, [this] { return stop_ || poked_; });
  poked_ = false;
  return !stop_;
}

void BackgroundDefrag::loop() noexcept {
  bool active = false;
  while (sleep_for(options_.interval)) {
    double frag = defrag_.fragmentation();
    {
      std::lock_guard guard(lock_);
      ++stats_.wakeups;
      stats_.fragmentation = frag;
    }
    if (frag > options_.upper) active = true;
    while (active) {
      const std::chrono::nanoseconds cpu0 = thread_cpu_time();
      const Report r = defrag_.run(options_.pass_budget);
      const std::chrono::nanoseconds spent = thread_cpu_time() - cpu0;
      frag = defrag_.fragmentation();
      const bool progress = r.slabs_freed != 0 || r.objects_moved != 0;
      if (frag <= options_.lower || !progress) active = false;
      {
        std::lock_guard guard(lock_);
        ++stats_.passes;
        stats_.total += r;
        stats_.cpu_time += spent;
        stats_.fragmentation = frag;
        stats_.active = active;
      }
      if (!active) break;
      // Keep passes within the CPU share: after T of work, rest T(1/share − 1).
      const double share = options_.cpu_share > 0 && options_.cpu_share < 1 ? options_.cpu_share : 1.0;
      const auto rest = std::chrono::nanoseconds(static_cast<std::int64_t>(
          static_cast<double>(spent.count()) * (1.0 / share - 1.0)));
      if (!sleep_for(rest)) return;
    }
    std::lock_guard guard(lock_);
    stats_.active = false;
  }
}

}  // namespace mslab::defrag
