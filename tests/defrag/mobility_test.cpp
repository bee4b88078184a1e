// The two phases of the mobility contract on one slab (evacuate_slab):
// refusal takes nothing, moving everything frees the slab at once, moving
// nothing returns it to the lists, buffered frees are never listed, and
// phase 2's allocations never come from an isolated slab.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "defrag_test_util.h"

namespace mslab::test {
namespace {

using defrag::evacuate_slab;
using defrag::SlabOutcome;

// A cache of TestObjects with `slabs` full slabs (filled by this thread,
// then detached), and the slab of object 0.
struct Fixture {
  TestPages owner{steady_policy()};
  CacheHandle cache;
  TestOwner objects;
  defrag::Registry registry;
  defrag::MovableCache* entry;
  std::vector<void*> scratch;

  explicit Fixture(std::size_t slabs)
      : cache(make_cache("mobility", sizeof(TestObject), &owner.get())), objects(cache.get()) {
    objects.fill(slabs * cache->objects_per_slab());
    cache->flush_thread_cache();  // the active slab becomes detached: isolatable
    entry = registry.add(cache.get(), objects.ops());
    REQUIRE(entry != nullptr);
    scratch.resize(cache->objects_per_slab());
  }
  ~Fixture() { registry.remove(entry); }

  detail::Slab* slab_of_id(std::size_t id) const { return detail::slab_of(objects.slots[id]); }
};

TEST_CASE("mobility: phase 1 refuses, nothing is taken and the slab goes back to the lists") {
  Fixture f(2);
  detail::Slab* s = f.slab_of_id(0);
  const std::size_t cap = f.cache->objects_per_slab();
  for (std::size_t id = 0; id < cap; id += 2) f.objects.erase(id);  // half empty
  f.cache->flush_thread_cache();  // our frees leave our buffer
  REQUIRE(f.cache->isolate(s));
  f.objects.phase1 = TestOwner::Phase1::kRefuse;

  const defrag::SlabResult r = evacuate_slab(*f.entry, s, f.scratch);
  CHECK(r.outcome == SlabOutcome::kRefused);
  CHECK(f.objects.can_free_calls == 1);
  CHECK(f.objects.reclaim_calls == 0);
  CHECK(f.objects.last_listed.size() == cap / 2);
  CHECK(f.objects.faults() == 0);  // no pins left, nothing moved
  CHECK(f.cache->stats().slabs_isolated == 0);
  CHECK(s->list == detail::SlabList::kPartial);
  CHECK(SlabCache::allocated_objects(s, {}) == cap / 2);
  CHECK_VALID(*f.cache);
}

TEST_CASE("mobility: phase 2 moves every object, the slab is freed at once") {
  Fixture f(3);
  const std::size_t cap = f.cache->objects_per_slab();
  // The victim (slab 0) keeps a quarter; slab 1 has room to receive them.
  for (std::size_t id = 0; id < cap; ++id)
    if (id % 4 != 0) f.objects.erase(id);
  for (std::size_t id = cap; id < 2 * cap; id += 2) f.objects.erase(id);
  detail::Slab* s = f.slab_of_id(0);
  const void* slab_addr = s;
  const std::uint64_t freed_before = f.cache->stats().slabs_freed;
  REQUIRE(f.cache->isolate(s));

  const defrag::SlabResult r = evacuate_slab(*f.entry, s, f.scratch);
  CHECK(r.outcome == SlabOutcome::kFreed);
  CHECK(r.listed == (cap + 3) / 4);
  CHECK(r.left == r.listed);
  CHECK(f.objects.moved == r.listed);
  CHECK(f.objects.bad_placements == 0);
  CHECK(f.objects.faults() == 0);
  CHECK(f.cache->stats().slabs_freed == freed_before + 1);
  // Its pages are back in the page allocator: no slab owns the address.
  CHECK(detail::slab_of(slab_addr) == nullptr);
  for (std::size_t id = 0; id < f.objects.slots.size(); ++id)
    if (f.objects.slots[id] != nullptr) CHECK(detail::slab_of(f.objects.slots[id]) != slab_addr);
  CHECK_VALID(*f.cache);
  CHECK_VALID(f.owner.get());
}

TEST_CASE("mobility: phase 2 moves nothing, the slab rejoins the lists intact") {
  Fixture f(2);
  const std::size_t cap = f.cache->objects_per_slab();
  for (std::size_t id = 1; id < cap; id += 3) f.objects.erase(id);
  detail::Slab* s = f.slab_of_id(0);
  const std::size_t live = SlabCache::allocated_objects(s, {});
  REQUIRE(f.cache->isolate(s));
  f.objects.phase2 = TestOwner::Phase2::kMoveNone;

  const defrag::SlabResult r = evacuate_slab(*f.entry, s, f.scratch);
  CHECK(r.outcome == SlabOutcome::kKept);
  CHECK(f.objects.reclaim_calls == 1);
  CHECK(r.listed == live);
  CHECK(r.left == 0);
  CHECK(f.objects.faults() == 0);
  CHECK(s->list == detail::SlabList::kPartial);
  CHECK(f.cache->stats().slabs_isolated == 0);
  // Usable again: it can be isolated once more.
  CHECK(f.cache->isolate(s));
  CHECK_FALSE(f.cache->release_isolated(s));
  CHECK_VALID(*f.cache);
}

TEST_CASE("mobility: objects freed into another thread's buffer are never listed") {
  Fixture f(2);
  const std::size_t cap = f.cache->objects_per_slab();
  detail::Slab* s = f.slab_of_id(0);
  // Another thread frees a third of slab 0: a free into a slab it does not
  // own goes to its free buffer (fewer than a buffer's worth: no flush), and
  // stays there while we evacuate.
  std::vector<std::size_t> buffered;
  for (std::size_t id = 0; id < cap; id += 3) buffered.push_back(id);
  REQUIRE(buffered.size() < detail::ThreadHeap::FreeBuffer::kCapacity);
  std::atomic<int> stage{0};
  std::thread other([&] {
    CHECK(detail::create_thread_heap() != nullptr);  // without a heap a free is pushed at once
    for (std::size_t id : buffered) f.cache->free(f.objects.slots[id]);
    stage.store(1);
    while (stage.load() != 2) std::this_thread::yield();
  });  // its buffer is flushed when it exits
  while (stage.load() != 1) std::this_thread::yield();
  for (std::size_t id : buffered) f.objects.slots[id] = nullptr;
  const std::uint32_t free_count = detail::XFree::count(s->xfree().load());
  CHECK(free_count == 0);  // the frees are still buffered, not pushed
  REQUIRE(f.cache->isolate(s));
  f.objects.phase2 = TestOwner::Phase2::kMoveNone;
  const defrag::SlabResult r = evacuate_slab(*f.entry, s, f.scratch);
  CHECK(r.outcome == SlabOutcome::kKept);
  CHECK(r.listed == cap - buffered.size());
  for (void* p : f.objects.last_listed) {
    const auto* o = static_cast<TestObject*>(p);
    CHECK(o->id % 3 != 0);  // none of the buffered ones
  }
  stage.store(2);
  other.join();
  CHECK(SlabCache::allocated_objects(s, {}) == cap - buffered.size());
  CHECK(detail::XFree::count(s->xfree().load()) == buffered.size());
  CHECK_VALID(*f.cache);
}

TEST_CASE("mobility: an active slab cannot be isolated; phase 2 allocations avoid isolated slabs") {
  TestPages owner(steady_policy());
  CacheHandle cache = make_cache("mobility-active", sizeof(TestObject), &owner.get());
  TestOwner objects(cache.get());
  objects.fill(3);
  detail::Slab* active = detail::slab_of(objects.slots[0]);
  CHECK_FALSE(cache->isolate(active));  // this thread allocates from it

  // Four detached slabs: the victim and two partial ones isolated as well;
  // the copies may only land in the remaining one (or a new slab).
  const std::size_t cap = cache->objects_per_slab();
  objects.fill(4 * cap);
  cache->flush_thread_cache();
  std::vector<detail::Slab*> slabs;
  for (std::size_t id = 3; id < objects.slots.size(); id += cap) slabs.push_back(detail::slab_of(objects.slots[id]));
  for (std::size_t id = 0; id < objects.slots.size(); ++id)
    if (id % 2 == 0) objects.erase(id);
  defrag::Registry registry;
  defrag::Registration reg(registry, cache.get(), objects.ops());
  std::vector<detail::Slab*> isolated;
  for (detail::Slab* s : slabs)
    if (s != slabs.back() && cache->isolate(s)) isolated.push_back(s);
  REQUIRE(isolated.size() >= 2);
  std::vector<void*> scratch(cap);
  const defrag::SlabResult r = evacuate_slab(*reg.entry(), isolated[0], scratch);
  CHECK(r.outcome == SlabOutcome::kFreed);
  CHECK(objects.moved == r.listed);
  CHECK(objects.bad_placements == 0);
  for (std::size_t k = 1; k < isolated.size(); ++k) cache->release_isolated(isolated[k]);
  CHECK(objects.faults() == 0);
  CHECK_VALID(*cache);
}

}  // namespace
}  // namespace mslab::test
