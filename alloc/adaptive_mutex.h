// A mutex that spins briefly before it sleeps: the slab caches' lock.
//
// Its critical sections are short (a buffer flush of ≤ 128 frees, taking a
// partial slab) and its holder is usually running on another CPU, so a
// waiter that sleeps at once (std::mutex: a futex wait) pays two context
// switches for a wait of a few microseconds. In a deferred-free flood on
// two cores, with two producers allocating from and freeing into one
// cache, that sleep-at-once lock made thousands of context switches a run
// and halved throughput in some runs (docs/benchmarks.md, mslab-rcu-bench).
// Spinning a bounded number of times (with the CPU's pause hint) first,
// as glibc's adaptive mutexes and jemalloc's malloc_mutex do, waits those
// out; a holder that was preempted is then waited for in the kernel.
// Satisfies Lockable (std::lock_guard, std::unique_lock).
// Depends on nothing.
#pragma once

#include <mutex>

namespace mslab::detail {

class AdaptiveMutex {
 public:
  constexpr AdaptiveMutex() noexcept = default;
  AdaptiveMutex(const AdaptiveMutex&) = delete;
  AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;

  void lock() noexcept {
    for (int i = 0; i < kSpins; ++i) {
      if (mutex_.try_lock()) return;
      pause();
    }
    mutex_.lock();
  }
  bool try_lock() noexcept { return mutex_.try_lock(); }
  void unlock() noexcept { mutex_.unlock(); }

 private:
  // ~100 tries × a pause of tens of cycles: a few microseconds, about a
  // flush's length.
  static constexpr int kSpins = 100;

  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield" ::: "memory");
#endif
  }

  std::mutex mutex_;
};

}  // namespace mslab::detail
