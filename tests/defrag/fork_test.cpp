// fork() while other threads allocate, defer frees and defragment: the
// child (one thread) must be able to allocate and free from the same
// caches, defer a free and see it done after rcu::barrier(), and run a
// defragmenter pass — none of it may hang on a lock or a grace period that
// a parent thread held at the fork. The parent checks each child's exit.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "alloc/config.h"
#include "alloc/fork.h"
#include "defrag/background.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"

using namespace mslab;

// ThreadSanitizer does not support a child of a multi-threaded process that
// starts threads (the deferred-free worker restarts in the child).
#ifndef MSLAB_TSAN  // alloc/config.h

namespace {

std::atomic<int> g_child_freed{0};

// The child's work; returns its exit code (0 = everything worked).
int child_body(defrag::OwnedCache& cache, std::vector<std::atomic<void*>>& slots) {
  // Allocate and free from the caches the parent's threads were using.
  std::vector<void*> mine;
  for (int i = 0; i < 2000; ++i) {
    void* p = cache.alloc();
    if (p == nullptr) return 2;
    mine.push_back(p);
  }
  for (void* p : mine) cache.free_unpublished(p);
  // Deferred free and a barrier: a grace period must end in the child.
  for (int i = 0; i < 600; ++i)
    rcu::defer_free(std::malloc(32), [](void* p) noexcept {
      g_child_freed.fetch_add(1);
      std::free(p);
    });
  rcu::barrier();
  if (g_child_freed.load() != 600) return 3;
  // Replace some published objects and defragment.
  for (std::size_t k = 0; k < slots.size(); k += 3) cache.retire(cache.exchange(slots[k], nullptr));
  defrag::Defragmenter defragmenter;
  defragmenter.run();
  rcu::barrier();
  return 0;
}

}  // namespace

TEST_CASE("fork: while threads allocate, defer frees and defragment, the child does all three") {
  register_fork_handlers();  // the slab layer's locks across fork (malloc and RCU register them too)
  defrag::OwnedOptions options;
  options.name = "fork-test";
  options.payload_size = 48;
  defrag::OwnedCache* cache = defrag::OwnedCache::create(options);
  REQUIRE(cache != nullptr);
  std::vector<std::atomic<void*>> slots(4000);
  std::atomic<bool> stop{false};

  auto writer = [&](unsigned seed) {
    std::mt19937 rng(seed);
    while (!stop.load(std::memory_order_relaxed)) {
      std::atomic<void*>& slot = slots[(rng() % (slots.size() / 2)) * 2 + seed % 2];
      void* fresh = rng() % 3 != 0 ? cache->alloc() : nullptr;
      cache->retire(cache->exchange(slot, fresh));
      if (rng() % 64 == 0) {
        rcu::ReadGuard guard;  // readers inside sections at fork time too
        std::this_thread::yield();
      }
    }
  };
  std::thread w0(writer, 10), w1(writer, 11);
  defrag::Defragmenter defragmenter;
  defrag::BackgroundOptions bg;
  bg.lower = 1.05;
  bg.upper = 1.1;
  bg.cpu_share = 0.5;
  bg.interval = std::chrono::milliseconds(2);
  defrag::BackgroundDefrag background(defragmenter, bg);
  REQUIRE(background.start());

  int failures = 0;
  for (int round = 0; round < 12; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(child_body(*cache, slots));
    // A child that hangs is killed after 20 s and counts as a failure.
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    pid_t done = 0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (done == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      MESSAGE("round " << round << ": the child hung");
      ++failures;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      MESSAGE("round " << round << ": the child ended with status " << status);
      ++failures;
    }
  }
  CHECK(failures == 0);

  stop = true;
  w0.join();
  w1.join();
  background.stop();
  for (auto& slot : slots) cache->retire(cache->exchange(slot, nullptr));
  cache->destroy();
}
#endif
