// The registry of movable caches: visits only registered entries, remove()
// waits for in-flight users and blocks new ones, and caches destroyed while
// the defragmenter runs are never touched afterwards.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <thread>

#include "defrag_test_util.h"

namespace mslab::test {
namespace {

using namespace std::chrono_literals;

bool never(std::span<void*>, void*) noexcept { return false; }
void nothing(std::span<void*>, void*) noexcept {}

defrag::MobilityOps dummy_ops() {
  defrag::MobilityOps ops;
  ops.can_free = &never;
  ops.reclaim = &nothing;
  return ops;
}

std::size_t count_entries(defrag::Registry& registry) {
  std::size_t n = 0;
  registry.for_each([&](defrag::MovableCache&) { ++n; });
  return n;
}

TEST_CASE("registry: entries are visited while registered and never after remove") {
  TestPages owner(steady_policy());
  CacheHandle a = make_cache("reg-a", 64, &owner.get());
  CacheHandle b = make_cache("reg-b", 64, &owner.get());
  defrag::Registry registry;
  defrag::MovableCache* ea = registry.add(a.get(), dummy_ops());
  defrag::MovableCache* eb = registry.add(b.get(), dummy_ops());
  REQUIRE(ea != nullptr);
  REQUIRE(eb != nullptr);
  CHECK(registry.size() == 2);
  CHECK(count_entries(registry) == 2);
  registry.remove(ea);
  CHECK(registry.size() == 1);
  std::size_t seen_b = 0, seen_other = 0;
  registry.for_each([&](defrag::MovableCache& e) { (&e.cache() == b.get() ? seen_b : seen_other)++; });
  CHECK(seen_b == 1);
  CHECK(seen_other == 0);
  std::vector<defrag::CacheRef> refs;
  registry.acquire_all(refs);
  CHECK(refs.size() == 1);
  refs.clear();
  registry.remove(eb);
  CHECK(count_entries(registry) == 0);
}

TEST_CASE("registry: bad registrations are refused") {
  ErrorRecorder recorder;
  defrag::Registry registry;
  CHECK(registry.add(nullptr, dummy_ops()) == nullptr);
  TestPages owner(steady_policy());
  CacheHandle a = make_cache("reg-bad", 64, &owner.get());
  defrag::MobilityOps half;
  half.can_free = &never;
  CHECK(registry.add(a.get(), half) == nullptr);
  CHECK(recorder.count() == 2);
  CHECK(registry.size() == 0);
}

TEST_CASE("registry: remove waits for an in-flight user and blocks new ones") {
  TestPages owner(steady_policy());
  CacheHandle a = make_cache("reg-wait", 64, &owner.get());
  defrag::Registry registry;
  defrag::MovableCache* e = registry.add(a.get(), dummy_ops());
  REQUIRE(e != nullptr);
  std::atomic<int> stage{0};
  std::atomic<bool> removed{false};
  std::thread user([&] {
    registry.for_each([&](defrag::MovableCache&) {
      stage.store(1);
      while (stage.load() != 2) std::this_thread::yield();
    });
  });
  while (stage.load() != 1) std::this_thread::yield();
  std::thread remover([&] {
    registry.remove(e);
    removed.store(true);
  });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(removed.load());         // the user still holds its reference
  CHECK(count_entries(registry) == 0);  // … and nobody new gets one
  stage.store(2);
  user.join();
  remover.join();
  CHECK(removed.load());
  CHECK(registry.size() == 0);
}

TEST_CASE("registry: remove inside a read section is refused") {
  TestPages owner(steady_policy());
  CacheHandle a = make_cache("reg-rs", 64, &owner.get());
  defrag::Registry registry;
  defrag::MovableCache* e = registry.add(a.get(), dummy_ops());
  {
    ErrorRecorder recorder;
    rcu::ReadGuard guard;
    registry.remove(e);
    CHECK(recorder.count() == 1);
  }
  CHECK(registry.size() == 1);
  registry.remove(e);
  CHECK(registry.size() == 0);
}

// An owner whose callbacks record whether they ran after its cache was
// unregistered (they must not).
struct WatchedOwner : TestOwner {
  std::atomic<bool> registered{true};
  std::atomic<std::size_t>* late_calls;
  WatchedOwner(SlabCache* c, std::atomic<std::size_t>* late) : TestOwner(c), late_calls(late) {}

  static bool can_free(std::span<void*> objects, void* cookie) noexcept {
    auto* self = static_cast<WatchedOwner*>(cookie);
    if (!self->registered.load()) self->late_calls->fetch_add(1);
    return TestOwner::can_free(objects, cookie);
  }
  static void reclaim(std::span<void*> objects, void* cookie) noexcept {
    auto* self = static_cast<WatchedOwner*>(cookie);
    if (!self->registered.load()) self->late_calls->fetch_add(1);
    TestOwner::reclaim(objects, cookie);
  }
  defrag::MobilityOps watched_ops() {
    defrag::MobilityOps o = ops();
    o.can_free = &WatchedOwner::can_free;
    o.reclaim = &WatchedOwner::reclaim;
    return o;
  }
};

TEST_CASE("registry: caches destroyed while the defragmenter runs are never touched again") {
  TestPages owner(steady_policy());
  defrag::Registry registry;
  defrag::Defragmenter defrag(owner.get(), registry);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> passes{0}, moved{0}, late{0};
  std::thread defragmenter([&] {
    while (!stop.load()) {
      const defrag::Report r = defrag.run();
      moved.fetch_add(r.objects_moved);
      passes.fetch_add(1);
    }
  });
  std::deque<std::unique_ptr<WatchedOwner>> owners;  // outlive the test: late calls stay observable
  const auto deadline = std::chrono::steady_clock::now() + (kSanitized ? 700ms : 1500ms);
  std::size_t rounds = 0;
  while (std::chrono::steady_clock::now() < deadline || rounds < 4) {
    CacheHandle cache = make_cache("reg-churn", sizeof(TestObject), &owner.get());
    owners.push_back(std::make_unique<WatchedOwner>(cache.get(), &late));
    WatchedOwner& o = *owners.back();
    o.fill(4 * cache->objects_per_slab() + rounds % 7);
    o.erase_random(0.7, static_cast<unsigned>(rounds));
    detail::flush_thread_heap();
    defrag::MovableCache* e = registry.add(cache.get(), o.watched_ops());
    REQUIRE(e != nullptr);
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (rounds % 5)));
    registry.remove(e);  // from here on the defragmenter must leave it alone
    o.registered.store(false);
    CHECK(o.faults() == 0);
    cache.reset();  // destroyed while the defragmenter keeps running
    ++rounds;
  }
  stop.store(true);
  defragmenter.join();
  MESSAGE(rounds << " caches destroyed during " << passes.load() << " passes, " << moved.load() << " objects moved");
  CHECK(late.load() == 0);
  CHECK(passes.load() > 0);
  CHECK_VALID(owner.get());
}

}  // namespace
}  // namespace mslab::test
