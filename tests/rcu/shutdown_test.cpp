// Shutdown with items pending: its own executable, because shutdown stops
// the deferred-free worker for the rest of the process.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "rcu/deferred_free.h"
#include "rcu/rcu.h"

using namespace mslab;

namespace {
std::atomic<long> g_freed{0};
void count_free(void* p) noexcept {
  g_freed.fetch_add(1);
  std::free(p);
}
}  // namespace

TEST_CASE("deferred free: shutdown frees everything pending, later frees are direct") {
  constexpr int kObjects = 3000;
  // From two threads, one of which has exited with a partial batch.
  std::thread other([] {
    for (int i = 0; i < kObjects / 2; ++i) rcu::defer_free(std::malloc(24), count_free);
  });
  other.join();
  for (int i = 0; i < kObjects / 2; ++i) rcu::defer_free(std::malloc(24), count_free);
  rcu::shutdown();
  CHECK(g_freed == kObjects);
  CHECK(rcu::deferred_stats().pending_bytes == 0);
  rcu::defer_free(std::malloc(24), count_free);  // no worker: a grace period, then free
  CHECK(g_freed == kObjects + 1);
}
