// Deferred free: nothing is freed while a reader that saw it is inside its
// read section; everything is freed within bounded time after; barrier;
// flood control; the emergency path when no batch can be allocated.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "alloc/error.h"
#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"

using namespace mslab;
using namespace std::chrono_literals;

namespace {

std::atomic<long> g_freed{0};
void count_free(void* p) noexcept {
  g_freed.fetch_add(1);
  std::free(p);
}

// Waits up to `limit` for `done()`; true if it happened.
template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = 2000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A reader thread held inside a read section until release().
class HeldReader {
 public:
  HeldReader()
      : thread_([this] {
          rcu::ReadGuard guard;
          inside_ = true;
          while (!release_) std::this_thread::yield();
        }) {
    while (!inside_) std::this_thread::yield();
  }
  void release() {
    release_ = true;
    thread_.join();
  }
  ~HeldReader() {
    if (thread_.joinable()) release();
  }

 private:
  std::atomic<bool> inside_{false}, release_{false};
  std::thread thread_;
};

struct Tracked {
  static inline std::atomic<int> destroyed{0};
  int payload = 7;
  ~Tracked() { destroyed.fetch_add(1); }
};

}  // namespace

TEST_CASE("deferred free: an object is not freed while a reader is inside, and is freed soon after") {
  SlabCache* cache = SlabCache::create({.name = "df-reader", .object_size = 64});
  REQUIRE(cache != nullptr);
  void* object = cache->alloc();
  REQUIRE(object != nullptr);
  cache->flush_thread_cache();
  {
    HeldReader reader;
    rcu::defer_free(object);  // unpublished "now": the reader may still hold it
    std::this_thread::sleep_for(30ms);  // far beyond the worker's flush interval
    CHECK(cache->stats().live_objects == 1);
    reader.release();
  }
  // Bounded time after the reader left: one flush interval plus a grace period.
  CHECK(eventually([&] { return cache->stats().live_objects == 0; }));
  CHECK(cache->destroy().live_objects == 0);
}

TEST_CASE("deferred free: barrier returns once everything queued before it is freed") {
  g_freed = 0;
  constexpr int kObjects = 5000;  // several batches plus a partial one
  for (int i = 0; i < kObjects; ++i) rcu::defer_free(std::malloc(32), count_free);
  rcu::barrier();
  CHECK(g_freed == kObjects);
}

TEST_CASE("deferred free: bare pointers go back to their owner") {
  SlabCache* cache = SlabCache::create({.name = "df-owner", .object_size = 48});
  REQUIRE(cache != nullptr);
  std::vector<void*> objects;
  for (int i = 0; i < 1000; ++i) objects.push_back(cache->alloc());
  void* block = PageAllocator::global().alloc(2);
  REQUIRE(block != nullptr);
  const std::size_t in_use = PageAllocator::global().stats().bytes_in_use;
  for (void* p : objects) rcu::defer_free(p);
  rcu::defer_free(block);
  rcu::defer_free(std::malloc(100));  // not ours: std::free
  rcu::barrier();
  CHECK(cache->stats().live_objects == 0);
  CHECK(PageAllocator::global().stats().bytes_in_use <= in_use - order_bytes(2));
  CHECK(cache->validate());
  CHECK(cache->destroy().live_objects == 0);
}

TEST_CASE("deferred free: memory mslab does not own counts its given size, else its entry") {
  rcu::barrier();
  const std::size_t base = rcu::deferred_stats().pending_bytes;
  HeldReader reader;  // nothing can be freed while it is inside
  // A thread's partial batch is counted once it is submitted: here at the
  // thread's exit, with both entries in it.
  std::thread producer([] {
    rcu::defer_free(std::malloc(32), count_free, 1000);
    rcu::defer_free(std::malloc(32), count_free);
  });
  producer.join();
  CHECK(rcu::deferred_stats().pending_bytes == base + 1000 + 2 * 16);
  reader.release();
  rcu::barrier();
  CHECK(rcu::deferred_stats().pending_bytes == base);
}

// Regression: the worker announced "idle" and then checked for work while a
// producer published work and then checked "idle"; without a fence on each
// side both could miss the other, and the worker slept with a batch
// pending. Each round leaves exactly one partial batch, which must be freed
// with no barrier to wake the worker.
TEST_CASE("deferred free: a lone partial batch is freed without a barrier, round after round") {
  g_freed = 0;
  rcu::barrier();
  for (long round = 1; round <= 300; ++round) {
    rcu::defer_free(std::malloc(16), count_free);  // stays in this thread's partial batch
    REQUIRE(eventually([&] { return g_freed.load() == round; }, 2000ms));
  }
}

TEST_CASE("deferred free: mslab memory that is no live block is reported, never passed to std::free") {
  // A private page allocator that keeps its free chunk mapped and hands
  // nothing else out: the stale page stays mslab memory that is no block
  // (with the global one, a deferred-free batch could reuse the page).
  PagePolicy policy;
  policy.retain_free_chunks = 1;
  PageAllocator pages(policy);
  SlabCache* cache = SlabCache::create({.name = "df-stale", .object_size = 64, .pages = &pages});
  REQUIRE(cache != nullptr);
  void* stale = cache->alloc();
  REQUIRE(stale != nullptr);
  CHECK(cache->destroy().live_objects == 1);
  REQUIRE(SlabCache::cache_of(stale) == nullptr);  // its slab is gone

  struct Seen {
    std::atomic<int> reports{0};
    std::atomic<ErrorCode> code{ErrorCode::kDoubleFree};
  } seen;
  set_error_handler(
      [](const ErrorInfo& info, void* ctx) {
        auto* s = static_cast<Seen*>(ctx);
        s->code = info.code;
        s->reports.fetch_add(1);
      },
      &seen);
  rcu::defer_free(stale);  // the worker finds no owner: a report, not a crash in std::free
  rcu::barrier();
  set_error_handler(nullptr);
  CHECK(seen.reports.load() == 1);
  CHECK(seen.code.load() == ErrorCode::kForeignPointer);
}

TEST_CASE("deferred free: the typed form runs the destructor first") {
  Tracked::destroyed = 0;
  for (int i = 0; i < 10; ++i) rcu::defer_delete(new Tracked);
  rcu::barrier();
  CHECK(Tracked::destroyed == 10);
}

// Appends are plain stores; the worker steals a partial batch by exchanging
// the slot to null, forcing a barrier on the owners (membarrier) and waiting
// for the owner's `busy` flag. With a flush interval of 20 µs the worker
// steals from producers in mid-append all the time: every pointer must be
// freed exactly once, and a barrier must cover everything queued before it.
// (A worker that read a stolen batch without waiting for `busy` is caught
// reliably only under ThreadSanitizer: the window is a few instructions.)
namespace steal_race {
constexpr long kPerThread = 150000;
std::atomic<unsigned char> freed_count[2 * kPerThread];
void mark(void* p) noexcept { static_cast<std::atomic<unsigned char>*>(p)->fetch_add(1); }
}  // namespace steal_race

TEST_CASE("deferred free: the worker steals partial batches from producers mid-append; each pointer freed once") {
  using namespace steal_race;
  const rcu::DeferredOptions saved = rcu::deferred_options();
  // A low limit: pending peaks cannot be reset, and later tests bound them.
  rcu::set_deferred_options({.pending_limit_bytes = 256u << 10, .flush_interval_us = 20, .help_above_bytes = SIZE_MAX});
  rcu::barrier();
  for (auto& c : freed_count) c.store(0);
  const rcu::DeferredStats before = rcu::deferred_stats();
  std::atomic<long> queued[2] = {0, 0};
  auto produce = [&](int t) {
    for (long i = 0; i < kPerThread; ++i) {
      rcu::defer_free(&freed_count[t * kPerThread + i], mark, 0);
      queued[t].store(i + 1, std::memory_order_release);
      if (i % 64 == 0) std::this_thread::yield();  // let the worker and the barriers run (2 cores)
    }
  };
  std::thread a(produce, 0), b(produce, 1);
  int barriers = 0, missed = 0;
  while ((queued[0].load() < kPerThread || queued[1].load() < kPerThread) && barriers < 5000) {
    const long q0 = queued[0].load(std::memory_order_acquire), q1 = queued[1].load(std::memory_order_acquire);
    rcu::barrier();
    ++barriers;
    for (long i = 0; i < q0; i += 97) missed += freed_count[i].load() == 0;
    for (long i = 0; i < q1; i += 97) missed += freed_count[kPerThread + i].load() == 0;
  }
  a.join();
  b.join();
  rcu::barrier();
  const rcu::DeferredStats after = rcu::deferred_stats();
  long never = 0, twice = 0;
  for (auto& c : freed_count) {
    never += c.load() == 0;
    twice += c.load() > 1;
  }
  CHECK(missed == 0);
  CHECK(never == 0);
  CHECK(twice == 0);
  CHECK(after.freed - before.freed == 2u * kPerThread);
  // Steals happened: far more batches than full ones (254 pointers each).
  CHECK(after.batches - before.batches > 2u * kPerThread / 254 + 10);
  rcu::set_deferred_options(saved);
}

TEST_CASE("deferred free: a flood from two threads stays under the pending limit") {
  const rcu::DeferredOptions saved = rcu::deferred_options();
  // Below the next test's bound on the peak (peaks cannot be reset).
  constexpr std::size_t kLimit = 512u << 10;
  // Without helping (which keeps pending far below any limit), so that
  // the limit itself is what holds the producers back.
  rcu::set_deferred_options({.pending_limit_bytes = kLimit, .flush_interval_us = 1000, .help_above_bytes = SIZE_MAX});
  rcu::barrier();
  SlabCache* cache = SlabCache::create({.name = "df-flood", .object_size = 64});
  REQUIRE(cache != nullptr);
  const rcu::DeferredStats before = rcu::deferred_stats();
  constexpr int kPerThread = 200000;
  auto flood = [&] {
    for (int i = 0; i < kPerThread; ++i) rcu::defer_free(cache->alloc());
    cache->flush_thread_cache();
  };
  std::thread a(flood), b(flood);
  a.join();
  b.join();
  rcu::barrier();
  const rcu::DeferredStats after = rcu::deferred_stats();
  CHECK(after.freed - before.freed == 2u * kPerThread);
  // Producers check the limit once per submitted batch (4 KiB of pointers,
  // 254 objects of 64 B = 16 KiB), and the worker may add each producer's
  // stolen partial batch: the documented bound is two batches per producer,
  // each pointer counting its 64-byte object and its 16-byte entry.
  CHECK(after.peak_pending_bytes <= kLimit + 2 * 2 * 254 * (64 + 16));
  CHECK(after.producer_waits > before.producer_waits);
  CHECK(after.pending_bytes == 0);
  CHECK(cache->stats().live_objects == 0);
  CHECK(cache->destroy().live_objects == 0);
  rcu::set_deferred_options(saved);
}

TEST_CASE("deferred free: in a flood producers free their own batches, and barrier still covers them") {
  const rcu::DeferredOptions saved = rcu::deferred_options();
  rcu::set_deferred_options({.pending_limit_bytes = 64u << 20, .flush_interval_us = 1000, .help_above_bytes = 16u << 10});
  rcu::barrier();
  SlabCache* cache = SlabCache::create({.name = "df-help", .object_size = 64});
  REQUIRE(cache != nullptr);
  static std::atomic<long> freed_a{0};
  freed_a = 0;
  std::atomic<long> queued_a{0};
  const rcu::DeferredStats before = rcu::deferred_stats();
  constexpr long kPerThread = 300000;
  std::thread a([&] {
    for (long i = 0; i < kPerThread; ++i) {
      rcu::defer_free(std::malloc(64), [](void* p) noexcept { freed_a.fetch_add(1); std::free(p); }, 64);
      queued_a.store(i + 1, std::memory_order_release);
    }
  });
  std::thread b([&] {
    for (long i = 0; i < kPerThread; ++i) rcu::defer_free(cache->alloc());
    cache->flush_thread_cache();
  });
  // While both flood: everything A queued before a barrier is freed when it returns.
  int barriers = 0, missed = 0;
  while (queued_a.load() < kPerThread && barriers < 50) {
    const long queued = queued_a.load(std::memory_order_acquire);
    rcu::barrier();
    ++barriers;
    if (freed_a.load() < queued) ++missed;
  }
  a.join();
  b.join();
  rcu::barrier();
  const rcu::DeferredStats after = rcu::deferred_stats();
  CHECK(missed == 0);
  CHECK(freed_a.load() == kPerThread);
  CHECK(after.freed - before.freed == 2u * kPerThread);
  CHECK(after.helped > before.helped);  // the producers freed batches themselves
  CHECK(after.pending_bytes == 0);
  // Helping keeps a few batches per producer pending, not a backlog.
  CHECK(after.peak_pending_bytes <= (1u << 20));
  CHECK(cache->stats().live_objects == 0);
  CHECK(cache->destroy().live_objects == 0);
  rcu::set_deferred_options(saved);
}

// In a flood a producer runs the grace periods for its own batches (the
// worker would have to be scheduled on CPUs the producers keep busy) and
// frees them itself; once the flood stops, helping ends by itself and a
// lone pointer is freed by the worker again, without a barrier.
TEST_CASE("deferred free: a flooding producer runs its own grace periods; helping ends with the flood") {
  const rcu::DeferredOptions saved = rcu::deferred_options();
  rcu::set_deferred_options({.pending_limit_bytes = 64u << 20, .flush_interval_us = 1000, .help_above_bytes = 16u << 10});
  rcu::barrier();
  g_freed = 0;
  const rcu::DeferredStats before = rcu::deferred_stats();
  constexpr long kObjects = 200000;  // ~790 batches, ~98 full rings
  std::thread([] {
    for (long i = 0; i < kObjects; ++i) rcu::defer_free(std::malloc(64), count_free, 64);
  }).join();
  const rcu::DeferredStats flood = rcu::deferred_stats();
  CHECK(flood.producer_grace_periods > before.producer_grace_periods);
  CHECK(flood.helped - before.helped >= static_cast<std::uint64_t>(kObjects) / 2);
  // No ring fills any more: the worker's next calm flush interval ends helping.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (rcu::deferred_stats().helping && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK_FALSE(rcu::deferred_stats().helping);
  // The exited producer's ring went to the worker: all freed, no barrier.
  while (g_freed.load() < kObjects && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(g_freed.load() == kObjects);
  rcu::barrier();
  rcu::set_deferred_options(saved);
}

TEST_CASE("deferred free: a helping producer inside a read section never waits on its own grace period") {
  const rcu::DeferredOptions saved = rcu::deferred_options();
  rcu::set_deferred_options({.pending_limit_bytes = 64u << 20, .flush_interval_us = 1000, .help_above_bytes = 4u << 10});
  rcu::barrier();
  g_freed = 0;
  constexpr long kObjects = 20000;  // many full rings' worth
  {
    rcu::ReadGuard guard;  // no grace period can end while we are inside
    for (long i = 0; i < kObjects; ++i) rcu::defer_free(std::malloc(32), count_free);
    CHECK(g_freed.load() < kObjects);
  }
  rcu::barrier();
  CHECK(g_freed.load() == kObjects);
  rcu::set_deferred_options(saved);
}

// A free function that itself defers a free runs on the worker or on a
// helping producer; that nested call must never wait (for the worker's
// grace period, or below the pending limit), or it would wait on itself.
TEST_CASE("deferred free: free functions that defer more frees never deadlock") {
  const rcu::DeferredOptions saved = rcu::deferred_options();
  rcu::set_deferred_options({.pending_limit_bytes = 64u << 10, .flush_interval_us = 1000, .help_above_bytes = 8u << 10});
  rcu::barrier();
  g_freed = 0;
  constexpr long kPerThread = 50000;
  auto parent_free = [](void* p) noexcept {
    rcu::defer_free(std::malloc(16), count_free);  // the child, queued from inside a free function
    count_free(p);
  };
  auto flood = [&] {
    for (long i = 0; i < kPerThread; ++i) rcu::defer_free(std::malloc(48), parent_free, 48);
  };
  std::thread a(flood), b(flood);
  a.join();
  b.join();
  rcu::barrier();  // frees the parents; their children are queued meanwhile
  rcu::barrier();  // and freed by the second
  CHECK(g_freed.load() == 4 * kPerThread);
  rcu::set_deferred_options(saved);
}

TEST_CASE("deferred free: with no memory for a batch, the caller waits for a grace period and frees") {
  g_freed = 0;
  const rcu::DeferredStats before = rcu::deferred_stats();
  HeldReader reader;
  std::atomic<bool> returned{false};
  // A fresh thread has no batch yet, so it must allocate one — and cannot.
  std::thread producer([&] {
    void* object = std::malloc(16);
    PageAllocator::global().inject_failure(0, /*sticky=*/true);
    rcu::defer_free(object, count_free);
    PageAllocator::global().inject_failure(-1);
    returned = true;
  });
  std::this_thread::sleep_for(30ms);
  CHECK_FALSE(returned.load());  // waiting for the reader's grace period
  CHECK(g_freed == 0);
  reader.release();
  producer.join();
  CHECK(g_freed == 1);  // freed by the caller itself, no worker involved
  CHECK(rcu::deferred_stats().emergency_frees == before.emergency_frees + 1);
}

TEST_CASE("deferred free: with no memory inside a read section, the static reserve is used") {
  g_freed = 0;
  const rcu::DeferredStats before = rcu::deferred_stats();
  std::thread producer([&] {
    void* object = std::malloc(16);
    rcu::ReadGuard guard;
    PageAllocator::global().inject_failure(0, /*sticky=*/true);
    rcu::defer_free(object, count_free);  // must not block here
    PageAllocator::global().inject_failure(-1);
  });
  producer.join();
  rcu::barrier();
  CHECK(g_freed == 1);
  CHECK(rcu::deferred_stats().reserve_batches == before.reserve_batches + 1);
}

TEST_CASE("deferred free: barrier inside a read section is reported, not a deadlock") {
  int errors = 0;
  set_error_handler([](const ErrorInfo&, void* n) { ++*static_cast<int*>(n); }, &errors);
  {
    rcu::ReadGuard guard;
    rcu::barrier();
  }
  set_error_handler(nullptr);
  CHECK(errors == 1);
}
