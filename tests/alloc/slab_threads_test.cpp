// Slab caches across threads: flush at thread exit and on demand,
// cross-thread frees under stress, concurrent allocation, isolation with
// concurrent frees, stale per-thread state after destroy, and a thread
// whose per-thread heap cannot be created.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "alloc/platform.h"
#include "alloc/slab_cache.h"
#include "test_util.h"

namespace mslab {
// Declared a friend by SlabCache for tests.
struct SlabCacheTestAccess {
  static std::uint32_t id(const SlabCache& cache) { return cache.id_; }
};
}  // namespace mslab

using namespace mslab;
using detail::Slab;
using mslab::test::CacheHandle;
using mslab::test::make_cache;
using mslab::test::TestPages;

namespace {

// A one-shot signal between two threads.
class Gate {
 public:
  void open() {
    std::lock_guard guard(lock_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock guard(lock_);
    cv_.wait(guard, [&] { return open_; });
  }

 private:
  std::mutex lock_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A multi-producer queue of object pointers.
class Channel {
 public:
  void push(std::vector<void*>& batch) {
    if (batch.empty()) return;
    {
      std::lock_guard guard(lock_);
      items_.insert(items_.end(), batch.begin(), batch.end());
    }
    batch.clear();
    cv_.notify_one();
  }
  // Moves everything queued into `out` (non-blocking).
  void drain(std::vector<void*>& out) {
    std::lock_guard guard(lock_);
    out.insert(out.end(), items_.begin(), items_.end());
    items_.clear();
  }
  // Waits a little for something to be queued, then drains.
  void wait_drain(std::vector<void*>& out) {
    std::unique_lock guard(lock_);
    cv_.wait_for(guard, std::chrono::milliseconds(5), [&] { return !items_.empty(); });
    out.insert(out.end(), items_.begin(), items_.end());
    items_.clear();
  }

 private:
  std::mutex lock_;
  std::condition_variable cv_;
  std::deque<void*> items_;
};

constexpr std::size_t kWords = 8;  // a 64-byte object

std::uint64_t pattern(const void* p, std::size_t word) {
  return (reinterpret_cast<std::uintptr_t>(p) * 0x9E3779B97F4A7C15ull) ^ (word * 0x2545F4914F6CDD1Dull) ^ 0xA5A5;
}

void fill(void* p) {
  auto* w = static_cast<std::uint64_t*>(p);
  for (std::size_t i = 0; i < kWords; ++i) w[i] = pattern(p, i);
}

bool intact(const void* p) {
  const auto* w = static_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i < kWords; ++i)
    if (w[i] != pattern(p, i)) return false;
  return true;
}

// Overwrites the pattern before a free, so that a second owner of the same
// object (a duplicate hand-out) would be caught by intact().
void scrub(void* p) {
  auto* w = static_cast<std::uint64_t*>(p);
  for (std::size_t i = 0; i < kWords; ++i) w[i] = 0;
}

}  // namespace

TEST_CASE("slab threads: a thread's active slab is detached when the thread exits") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("exit", 64, &pages);
  CacheHandle other = make_cache("exit-2", 64, &pages);
  void* obj = nullptr;
  void* obj2 = nullptr;
  std::thread t([&] {
    obj = cache->alloc();
    obj2 = other->alloc();
  });
  t.join();
  REQUIRE(obj != nullptr);
  REQUIRE(obj2 != nullptr);
  Slab* slab = detail::slab_of(obj);
  CHECK(slab->owner.load() == 0);
  for (SlabCache* c : {cache.get(), other.get()}) {
    const CacheStats st = c->stats();
    CHECK(st.slabs_active == 0);
    CHECK(st.slabs_partial == 1);
    CHECK(st.live_objects == 1);
  }
  CHECK_VALID(*cache);
  CHECK_VALID(*other);
  // Its free slots are available to everyone now.
  void* q = cache->alloc_direct();
  REQUIRE(q != nullptr);
  CHECK(detail::slab_of(q) == slab);
  void* r = cache->alloc();
  REQUIRE(r != nullptr);
  CHECK(detail::slab_of(r) == slab);
  for (void* p : {obj, q, r}) cache->free(p);
  other->free(obj2);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(*other);
}

TEST_CASE("slab threads: frees held by an exiting thread are handed back") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("exit-held", 64, &pages);
  const std::size_t cap = mslab::test::capacity_of(*cache);
  std::vector<void*> objs;
  for (std::size_t i = 0; i < 2 * cap; ++i) objs.push_back(cache->alloc());
  for (void* p : objs) REQUIRE(p != nullptr);
  cache->flush_thread_cache();
  Slab* first = detail::slab_of(objs[0]);
  std::thread t([&] {
    void* mine = cache->alloc();  // gives the thread its heap (and an active slab)
    cache->free(mine);
    for (int i = 0; i < 5; ++i) cache->free(objs[static_cast<std::size_t>(i)]);  // held in its buffer
  });  // exits with the frees still held
  t.join();
  std::vector<void*> buf(first->capacity);
  CHECK(SlabCache::allocated_objects(first, buf) == cap - 5);
  const CacheStats st = cache->stats();
  CHECK(st.live_objects == 2 * cap - 5);
  CHECK(st.slabs_partial == 1);  // the frees reached the slab: no longer full
  CHECK(st.slabs_full == 1);
  CHECK(st.slabs_empty == 1);  // the thread's own slab, detached at exit
  CHECK(st.slabs_active == 0);
  CHECK_VALID(*cache);
  for (std::size_t i = 5; i < objs.size(); ++i) cache->free(objs[i]);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("slab threads: flush_thread_cache in a running thread detaches its slab") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("flush-thread", 64, &pages);
  Gate allocated, flush, flushed, done;
  std::vector<void*> objs;
  std::thread t([&] {
    for (int i = 0; i < 10; ++i) objs.push_back(cache->alloc());
    allocated.open();
    flush.wait();
    cache->flush_thread_cache();
    flushed.open();
    done.wait();
  });
  allocated.wait();
  for (void* p : objs) REQUIRE(p != nullptr);
  Slab* slab = detail::slab_of(objs[0]);
  CHECK(cache->stats().slabs_active == 1);
  CHECK(slab->owner.load() != 0);
  // While the slab is active in `t`, alloc_direct() cannot use it.
  void* d = cache->alloc_direct();
  REQUIRE(d != nullptr);
  CHECK(detail::slab_of(d) != slab);
  flush.open();
  flushed.wait();
  CacheStats st = cache->stats();
  CHECK(st.slabs_active == 0);
  CHECK(slab->owner.load() == 0);
  CHECK(st.live_objects == 11);
  // The fullest partial slab is the one `t` flushed (10 live against 1).
  void* e = cache->alloc_direct();
  REQUIRE(e != nullptr);
  CHECK(detail::slab_of(e) == slab);
  done.open();
  t.join();
  // A thread that never allocated has nothing to flush.
  std::thread([&] { cache->flush_thread_cache(); }).join();
  CHECK(cache->stats().live_objects == 12);
  for (void* p : objs) cache->free(p);
  cache->free(d);
  cache->free(e);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("slab threads: two threads allocate and free each other's objects") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("ping-pong", kWords * 8, &pages);
  const std::size_t n = mslab::test::scaled(200000, 5000);
  Channel to_b, to_a;
  std::atomic<std::size_t> corrupt{0}, foreign{0}, null_allocs{0};

  auto worker = [&](Channel& out, Channel& in) {
    std::vector<void*> batch, incoming;
    std::size_t produced = 0, consumed = 0;
    auto consume = [&] {
      for (void* q : incoming) {
        if (!intact(q)) ++corrupt;
        if (SlabCache::cache_of(q) != cache.get()) ++foreign;
        scrub(q);
        cache->free(q);
      }
      consumed += incoming.size();
      incoming.clear();
    };
    while (produced < n) {
      for (int i = 0; i < 64 && produced < n; ++i, ++produced) {
        void* p = cache->alloc();
        if (p == nullptr) {
          ++null_allocs;
          continue;
        }
        fill(p);
        batch.push_back(p);
      }
      out.push(batch);
      in.drain(incoming);
      consume();
    }
    while (consumed + null_allocs.load() < n) {
      in.wait_drain(incoming);
      consume();
    }
  };
  std::thread a([&] { worker(to_b, to_a); });
  std::thread b([&] { worker(to_a, to_b); });
  a.join();
  b.join();
  CHECK(null_allocs.load() == 0);
  CHECK(corrupt.load() == 0);
  CHECK(foreign.load() == 0);
  const CacheStats st = cache->stats();
  CHECK(st.live_objects == 0);
  CHECK(st.slabs_active == 0);  // both threads exited
  CHECK(st.slabs_partial == 0);
  CHECK(st.slabs_full == 0);
  CHECK(st.slabs <= 1);  // only the empty reserve stays
  CHECK(pages.stats().bytes_in_use == st.slabs * st.slab_bytes);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("slab threads: several threads allocate and free concurrently from one cache") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("concurrent", kWords * 8, &pages);
  constexpr int kThreads = 4;

  SUBCASE("objects handed out at the same time are distinct") {
    const std::size_t per_thread = mslab::test::scaled(20000, 1000);
    std::vector<std::vector<void*>> got(kThreads);
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        ++ready;
        while (ready.load() < kThreads) std::this_thread::yield();
        for (std::size_t i = 0; i < per_thread; ++i) got[static_cast<std::size_t>(t)].push_back(cache->alloc());
      });
    for (std::thread& t : threads) t.join();
    std::set<void*> all;
    std::size_t nulls = 0;
    for (auto& v : got)
      for (void* p : v) {
        nulls += p == nullptr;
        all.insert(p);
      }
    CHECK(nulls == 0);
    CHECK(all.size() == kThreads * per_thread);
    CHECK(cache->stats().live_objects == kThreads * per_thread);
    // Free them from other threads than their allocators.
    threads.clear();
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (void* p : got[static_cast<std::size_t>((t + 1) % kThreads)]) cache->free(p);
      });
    for (std::thread& t : threads) t.join();
  }

  SUBCASE("random mix of local and cross-thread frees") {
    const std::size_t ops = mslab::test::scaled(100000, 4000);
    std::mutex shared_lock;
    std::vector<void*> shared;  // objects any thread may free
    std::atomic<std::size_t> corrupt{0}, nulls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t + 1));
        std::vector<void*> mine;
        for (std::size_t i = 0; i < ops; ++i) {
          const unsigned r = rng() % 100;
          if (mine.size() < 512 && (mine.empty() || r < 55)) {
            void* p = cache->alloc();
            if (p == nullptr) {
              ++nulls;
              continue;
            }
            fill(p);
            mine.push_back(p);
          } else if (r < 90) {
            const std::size_t k = rng() % mine.size();
            void* p = mine[k];
            mine[k] = mine.back();
            mine.pop_back();
            if (!intact(p)) ++corrupt;
            scrub(p);
            cache->free(p);
          } else {  // hand one over, and maybe free someone else's
            void* give = mine.back();
            mine.pop_back();
            void* take = nullptr;
            {
              std::lock_guard guard(shared_lock);
              shared.push_back(give);
              if (shared.size() > 8) {
                const std::size_t k = rng() % shared.size();
                take = shared[k];
                shared[k] = shared.back();
                shared.pop_back();
              }
            }
            if (take != nullptr) {
              if (!intact(take)) ++corrupt;
              scrub(take);
              cache->free(take);
            }
          }
        }
        for (void* p : mine) {
          if (!intact(p)) ++corrupt;
          cache->free(p);
        }
      });
    for (std::thread& t : threads) t.join();
    for (void* p : shared) {  // the main thread frees the rest
      if (!intact(p)) ++corrupt;
      cache->free(p);
    }
    cache->flush_thread_cache();
    CHECK(nulls.load() == 0);
    CHECK(corrupt.load() == 0);
  }

  const CacheStats st = cache->stats();
  CHECK(st.live_objects == 0);
  CHECK(st.slabs_active == 0);
  CHECK(st.slabs <= 1);
  CHECK(st.slabs_created - st.slabs_freed == st.slabs);
  CHECK(pages.stats().bytes_in_use == st.slabs * st.slab_bytes);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("slab threads: an isolated slab drains under concurrent frees and allocations") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("iso-threads", 64, &pages);
  const std::size_t cap = mslab::test::capacity_of(*cache);
  std::vector<void*> objs;
  for (std::size_t i = 0; i < 3 * cap; ++i) objs.push_back(cache->alloc());
  for (void* p : objs) REQUIRE(p != nullptr);
  cache->flush_thread_cache();
  Slab* victim = detail::slab_of(objs[cap]);
  std::vector<void*> victim_objs, others;
  for (void* p : objs) (detail::slab_of(p) == victim ? victim_objs : others).push_back(p);
  REQUIRE(victim_objs.size() == cap);
  // Make room in the victim so that it would be a candidate if it were not isolated.
  for (std::size_t i = 0; i < 20; ++i) cache->free(victim_objs[i]);
  victim_objs.erase(victim_objs.begin(), victim_objs.begin() + 20);
  cache->flush_thread_cache();
  REQUIRE(cache->isolate(victim));

  std::atomic<std::size_t> from_victim{0}, nulls{0};
  const std::size_t allocs = mslab::test::scaled(2000, 200);
  std::vector<void*> fresh_a, fresh_b;
  std::thread freer([&] {
    std::mt19937 rng(7);
    std::shuffle(victim_objs.begin(), victim_objs.end(), rng);
    for (void* p : victim_objs) {
      cache->free(p);
      std::this_thread::yield();
    }
  });
  std::thread allocator([&] {
    for (std::size_t i = 0; i < allocs; ++i) {
      void* p = cache->alloc();
      if (p == nullptr) ++nulls;
      else if (detail::slab_of(p) == victim) ++from_victim;
      fresh_a.push_back(p);
    }
  });
  std::thread direct([&] {
    for (std::size_t i = 0; i < allocs / 4; ++i) {
      void* p = cache->alloc_direct();
      if (p == nullptr) ++nulls;
      else if (detail::slab_of(p) == victim) ++from_victim;
      fresh_b.push_back(p);
    }
  });
  freer.join();
  allocator.join();
  direct.join();
  CHECK(nulls.load() == 0);
  CHECK(from_victim.load() == 0);
  CHECK(SlabCache::allocated_objects(victim, {}) == 0);
  CHECK(cache->stats().slabs_isolated == 1);
  CHECK_VALID(*cache);
  const std::size_t in_use = pages.stats().bytes_in_use;
  CHECK(cache->release_isolated(victim));
  CHECK(pages.stats().bytes_in_use == in_use - kPageSize);
  for (void* p : fresh_a) cache->free(p);
  for (void* p : fresh_b) cache->free(p);
  for (void* p : others) cache->free(p);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("slab threads: a thread's state for a destroyed cache is not reused by its successor") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  SlabCache* first = make_cache("gone", 64, &pages).release();
  const std::uint32_t first_id = SlabCacheTestAccess::id(*first);
  Gate allocated, replaced;
  SlabCache* second = nullptr;
  std::vector<void*> from_second;
  std::size_t wrong_cache = 0;
  std::thread t([&] {
    void* p = first->alloc();  // `first` becomes this thread's cache for the id
    (void)p;
    allocated.open();
    replaced.wait();
    for (int i = 0; i < 10; ++i) {
      void* q = second->alloc();
      if (q == nullptr || detail::slab_of(q) == nullptr || detail::slab_of(q)->cache != second) ++wrong_cache;
      from_second.push_back(q);
    }
    for (int i = 0; i < 5; ++i) second->free(from_second[static_cast<std::size_t>(i)]);
  });
  allocated.wait();
  const DestroyReport report = first->destroy();
  CHECK(report.live_objects == 1);
  CHECK(report.slabs == 1);
  second = make_cache("successor", 64, &pages).release();
  CHECK(SlabCacheTestAccess::id(*second) == first_id);  // the id is reused: the stale entry is in play
  replaced.open();
  t.join();
  CHECK(wrong_cache == 0);
  const CacheStats st = second->stats();
  CHECK(st.live_objects == 5);
  CHECK(st.slabs_active == 0);
  CHECK(st.slabs == 1);
  CHECK_VALID(*second);
  for (std::size_t i = 5; i < from_second.size(); ++i) second->free(from_second[i]);
  second->flush_thread_cache();
  CHECK_VALID(*second);
  CHECK(second->destroy().live_objects == 0);
  CHECK(pages.stats().bytes_in_use == 0);
}

TEST_CASE("slab threads: a thread whose heap cannot be created allocates directly") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("no-heap", 64, &pages);
  std::vector<void*> objs;
  for (int i = 0; i < 10; ++i) objs.push_back(cache->alloc());
  for (void* p : objs) REQUIRE(p != nullptr);
  cache->flush_thread_cache();  // one partial slab with 50 free slots
  Slab* slab = detail::slab_of(objs[0]);
  void* p = nullptr;
  void* q = nullptr;
  std::thread t([&] {
    os::inject_failure(0, /*sticky=*/true);  // the OS refuses everything
    p = cache->alloc();  // no heap can be made: served by alloc_direct()
    q = cache->alloc();
    if (p != nullptr) cache->free(p);  // freed without a heap
    os::inject_failure(-1);
  });
  t.join();
  os::inject_failure(-1);
  REQUIRE(p != nullptr);
  REQUIRE(q != nullptr);
  CHECK(p != q);
  CHECK(detail::slab_of(p) == slab);
  CHECK(detail::slab_of(q) == slab);
  const CacheStats st = cache->stats();
  CHECK(st.live_objects == 11);
  CHECK(st.slabs_active == 0);
  CHECK(st.slabs == 1);
  CHECK_VALID(*cache);
  for (void* o : objs) cache->free(o);
  cache->free(q);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}
