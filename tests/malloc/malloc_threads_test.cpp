// Cross-thread frees (producer/consumer), memory going back after the
// frees, and fork() while other threads allocate.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/platform.h"
#include "malloc/malloc.h"
#include "malloc/stats.h"
#include "tests/malloc/malloc_test_util.h"

using namespace mslab;

namespace {

// A bounded single-producer single-consumer ring of pointers.
struct Ring {
  static constexpr std::size_t kSize = 1024;
  void* slots[kSize];
  std::atomic<std::size_t> head{0}, tail{0};
  bool push(void* p) {
    const std::size_t t = tail.load(std::memory_order_relaxed);
    if (t - head.load(std::memory_order_acquire) == kSize) return false;
    slots[t % kSize] = p;
    tail.store(t + 1, std::memory_order_release);
    return true;
  }
  void* pop() {
    const std::size_t h = head.load(std::memory_order_relaxed);
    if (h == tail.load(std::memory_order_acquire)) return nullptr;
    void* p = slots[h % kSize];
    head.store(h + 1, std::memory_order_release);
    return p;
  }
};

}  // namespace

TEST_CASE("objects allocated in one thread are freed in another") {
  constexpr int kObjects = 200000;
  Ring ring;
  std::atomic<int> bad{0};
  std::thread consumer([&] {
    for (int got = 0; got < kObjects;) {
      auto* p = static_cast<unsigned char*>(ring.pop());
      if (p == nullptr) {
        std::this_thread::yield();
        continue;
      }
      const std::size_t n = mslab::usable_size(p);
      if (p[0] != static_cast<unsigned char>(n)) bad.fetch_add(1);
      mslab::free(p);
      ++got;
    }
  });
  for (int i = 0; i < kObjects; ++i) {
    const std::size_t n = (i % 13 == 0) ? 40000 + i % 7 * 1000 : 8 + (i * 37) % 2000;
    auto* p = static_cast<unsigned char*>(mslab::malloc(n));
    REQUIRE(p != nullptr);
    p[0] = static_cast<unsigned char>(mslab::usable_size(p));
    while (!ring.push(p)) std::this_thread::yield();
  }
  consumer.join();
  CHECK(bad.load() == 0);
}

TEST_CASE("objects parked in a transfer pool: reused by another thread, double frees still caught") {
  if (!detail::kTCacheEnabled) return;  // AddressSanitizer builds: no stacks, no pools
  std::vector<void*> objects;
  for (int i = 0; i < 300; ++i) objects.push_back(mslab::malloc(48));
  std::thread freer([&] {
    for (void* p : objects) mslab::free(p);  // the stack overflows into the pool
  });
  freer.join();
  CHECK(detail::g_transfer_batches[detail::class_of(48)].load() > 0);
  {
    test::ErrorCapture errors;
    mslab::free(objects[0]);  // the oldest: parked in a batch
    CHECK(errors.saw(ErrorCode::kDoubleFree));
  }
  // This thread's empty stack takes batches back; the objects are reused.
  std::vector<void*> again;
  for (int i = 0; i < 300; ++i) again.push_back(mslab::malloc(48));
  std::size_t reused = 0;
  for (void* p : again)
    for (void* q : objects) reused += p == q;
  CHECK(reused >= 32);
  for (void* p : again) mslab::free(p);
  mslab::trim();
  CHECK(detail::g_transfer_batches[detail::class_of(48)].load() == 0);
}

TEST_CASE("threads exchange objects in both directions and exit holding caches") {
  constexpr int kThreads = 4, kRounds = 20000;
  std::vector<std::atomic<void*>> mailbox(kThreads);
  for (auto& m : mailbox) m.store(nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        void* mine = mslab::malloc(16 + (i * 13 + t) % 500);
        std::memset(mine, t, 16);
        void* theirs = mailbox[(t + 1) % kThreads].exchange(mine, std::memory_order_acq_rel);
        mslab::free(theirs);  // most often allocated by the neighbour
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& m : mailbox) mslab::free(m.exchange(nullptr));
}

// Returned = unmapped or purged (MADV_DONTNEED): a chunk may stay mapped
// while a class's one reserve slab sits in it.
static std::size_t held_bytes() {
  const MallocStats s = malloc_stats();
  return s.os_reserved_bytes - s.page_purged_bytes;
}

TEST_CASE("memory goes back to the OS after mass frees") {
  mslab::trim();
  const std::size_t base = held_bytes();
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; ++i) blocks.push_back(mslab::malloc(1000 + i % 3000));
  for (int i = 0; i < 20; ++i) blocks.push_back(mslab::malloc(300000));
  for (void* p : blocks) std::memset(p, 1, 64);
  CHECK(held_bytes() > base + (16 << 20));
  for (void* p : blocks) mslab::free(p);
  mslab::trim();
  CHECK(held_bytes() <= base + (4 << 20));
}

TEST_CASE("fork while other threads allocate: the child can allocate") {
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (int t = 0; t < 2; ++t) {
    workers.emplace_back([&, t] {
      std::vector<void*> live(64, nullptr);
      for (unsigned i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        void*& slot = live[(i * 7 + t) % live.size()];
        mslab::free(slot);
        slot = mslab::malloc(i % 5 == 0 ? 50000 + i % 100000 : 8 + i % 3000);
      }
      for (void* p : live) mslab::free(p);
    });
  }
  int failures = 0;
  for (int f = 0; f < 20; ++f) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(10);  // a deadlock would hang here: fail instead
      std::vector<void*> v;
      for (int i = 0; i < 5000; ++i) v.push_back(mslab::malloc(8 + i % 40000));
      void* huge = mslab::malloc(3 << 20);
      for (void* p : v) mslab::free(p);
      mslab::free(huge);
      _exit(huge != nullptr ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  stop.store(true);
  for (auto& w : workers) w.join();
  CHECK(failures == 0);
}
