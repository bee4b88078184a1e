// The workloads of mslab-malloc-bench (malloc_bench_workloads.h).
//   churn     one thread; a working set of 4096 slots, each op frees a
//             random slot and refills it with 8–512 bytes (small-biased)
//   xthread   producer/consumer: one thread allocates 16–256 bytes, the
//             other frees them (every free is a cross-thread free)
//   larson    larson-style server: 2 threads each own 1000 slots and
//             replace random ones (16–1024 bytes); every round the threads
//             end and new threads inherit their slots, so the first frees
//             of a round hit objects of a thread that has exited
//   realloc   1000 buffers grown by realloc in 1.5× steps from 16 bytes to
//             64 KiB, written at each step, then shrunk back to 16
#include "bench/malloc_bench_workloads.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace mslab::bench {
namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// 8–512 bytes, three quarters of them ≤ 64.
std::size_t small_size(Rng& r) {
  const std::uint64_t x = r.next();
  return (x & 3) != 0 ? 8 + (x >> 8) % 57 : 8 + (x >> 8) % 505;
}

WorkloadResult churn(double scale) {
  const std::uint64_t ops = static_cast<std::uint64_t>(20e6 * scale);
  constexpr std::size_t kSlots = 4096;
  std::vector<void*> slots(kSlots);
  Rng r{88172645463325252ull};
  for (void*& s : slots) s = std::malloc(small_size(r));
  WorkloadResult res;
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < ops; ++i) {
    void*& s = slots[r.next() & (kSlots - 1)];
    std::free(s);
    s = std::malloc(small_size(r));
    *static_cast<char*>(s) = static_cast<char>(i);
  }
  res.ns = now_ns() - t0;
  res.ops = ops;
  for (void* s : slots) {
    res.checksum += static_cast<unsigned char>(*static_cast<char*>(s));
    std::free(s);
  }
  return res;
}

// A bounded single-producer single-consumer queue.
struct Queue {
  static constexpr std::size_t kSize = 4096;
  void* slots[kSize];
  alignas(64) std::atomic<std::uint64_t> head{0};
  alignas(64) std::atomic<std::uint64_t> tail{0};
};

WorkloadResult xthread(double scale) {
  const std::uint64_t ops = static_cast<std::uint64_t>(10e6 * scale);
  auto* q = new Queue;
  WorkloadResult res;
  std::atomic<std::uint64_t> sum{0};
  const std::uint64_t t0 = now_ns();
  std::thread consumer([&] {
    std::uint64_t local = 0;
    for (std::uint64_t got = 0; got < ops;) {
      const std::uint64_t h = q->head.load(std::memory_order_relaxed);
      const std::uint64_t t = q->tail.load(std::memory_order_acquire);
      if (h == t) {
        std::this_thread::yield();
        continue;
      }
      for (std::uint64_t i = h; i < t; ++i) {
        void* p = q->slots[i % Queue::kSize];
        local += static_cast<unsigned char>(*static_cast<char*>(p));
        std::free(p);
      }
      q->head.store(t, std::memory_order_release);
      got += t - h;
    }
    sum.store(local);
  });
  Rng r{0x9E3779B97F4A7C15ull};
  for (std::uint64_t i = 0; i < ops; ++i) {
    void* p = std::malloc(16 + r.next() % 241);
    *static_cast<char*>(p) = static_cast<char>(i);
    const std::uint64_t t = q->tail.load(std::memory_order_relaxed);
    while (t - q->head.load(std::memory_order_acquire) == Queue::kSize) std::this_thread::yield();
    q->slots[t % Queue::kSize] = p;
    q->tail.store(t + 1, std::memory_order_release);
  }
  consumer.join();
  res.ns = now_ns() - t0;
  res.ops = ops;
  res.checksum = sum.load();
  delete q;
  return res;
}

WorkloadResult larson(double scale) {
  constexpr int kThreads = 2, kRounds = 20;
  constexpr std::size_t kSlots = 1000;
  const std::uint64_t per_round = static_cast<std::uint64_t>(500e3 * scale);
  std::vector<std::vector<void*>> sets(kThreads, std::vector<void*>(kSlots));
  Rng seed{12345};
  for (auto& set : sets)
    for (void*& p : set) p = std::malloc(16 + seed.next() % 1009);
  std::atomic<std::uint64_t> sum{0};
  const std::uint64_t t0 = now_ns();
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t, round] {
        // Each round's threads take the other half's slots: frees cross threads.
        std::vector<void*>& set = sets[(t + round) % kThreads];
        Rng r{static_cast<std::uint64_t>(round * 131 + t + 1) * 0x2545F4914F6CDD1Dull};
        std::uint64_t local = 0;
        for (std::uint64_t i = 0; i < per_round; ++i) {
          void*& p = set[r.next() % kSlots];
          local += static_cast<unsigned char>(*static_cast<char*>(p));
          std::free(p);
          p = std::malloc(16 + r.next() % 1009);
          *static_cast<char*>(p) = static_cast<char>(i);
        }
        sum.fetch_add(local);
      });
    }
    for (auto& th : threads) th.join();
  }
  WorkloadResult res;
  res.ns = now_ns() - t0;
  res.ops = per_round * kThreads * kRounds;
  res.checksum = sum.load();
  for (auto& set : sets)
    for (void* p : set) std::free(p);
  return res;
}

WorkloadResult realloc_heavy(double scale) {
  constexpr std::size_t kBuffers = 1000, kMax = 64 * 1024;
  const std::uint64_t ops = static_cast<std::uint64_t>(4e6 * scale);
  std::vector<void*> bufs(kBuffers, nullptr);
  std::vector<std::size_t> sizes(kBuffers, 0);
  Rng r{777};
  WorkloadResult res;
  const std::uint64_t t0 = now_ns();
  for (std::uint64_t i = 0; i < ops; ++i) {
    const std::size_t b = r.next() % kBuffers;
    std::size_t n = sizes[b] == 0 ? 16 : sizes[b] + sizes[b] / 2;
    if (n > kMax) n = 16;  // shrink back
    void* p = std::realloc(bufs[b], n);
    static_cast<char*>(p)[n - 1] = static_cast<char>(i);
    res.checksum += static_cast<unsigned char>(static_cast<char*>(p)[0]);
    bufs[b] = p;
    sizes[b] = n;
  }
  res.ns = now_ns() - t0;
  res.ops = ops;
  for (void* p : bufs) std::free(p);
  return res;
}

constexpr MallocWorkload kWorkloads[] = {
    {"churn", "1 thread, 4096-slot working set, free+malloc of 8-512 B per op", churn},
    {"xthread", "producer mallocs 16-256 B, consumer frees: ns per object", xthread},
    {"larson", "2 threads x 1000 slots, 16-1024 B, slots inherited by new threads each round", larson},
    {"realloc", "1000 buffers grown 1.5x per realloc from 16 B to 64 KiB, then reset", realloc_heavy},
};

}  // namespace

const MallocWorkload* malloc_workloads(std::size_t* count) noexcept {
  *count = sizeof kWorkloads / sizeof kWorkloads[0];
  return kWorkloads;
}

}  // namespace mslab::bench
