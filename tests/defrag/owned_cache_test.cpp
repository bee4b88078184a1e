// Applications' own objects: OwnedCache (one owner slot per object, RCU
// retire) survives defragmentation with every entry intact, refuses slabs
// holding unpublished objects, and runs the relocation hook; the cooperative
// form (should_move, alloc_direct, free_direct) packs a fragmented cache the
// way Redis's active defrag does.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <vector>

#include "defrag/owned_cache.h"
#include "defrag_test_util.h"
#include "rcu/deferred_free.h"

namespace mslab::test {
namespace {

struct Payload {
  std::uint64_t key;
  std::uint64_t checksum;
  char text[48];
};

Payload* make_payload(defrag::OwnedCache& cache, std::uint64_t key) {
  auto* p = static_cast<Payload*>(cache.alloc());
  REQUIRE(p != nullptr);
  p->key = key;
  std::snprintf(p->text, sizeof p->text, "entry %llu", static_cast<unsigned long long>(key));
  p->checksum = test_checksum(key, p->text[6]);
  return p;
}

bool intact(const Payload* p, std::uint64_t key) {
  char want[48];
  std::snprintf(want, sizeof want, "entry %llu", static_cast<unsigned long long>(key));
  return p->key == key && p->checksum == test_checksum(key, p->text[6]) && std::strcmp(p->text, want) == 0;
}

std::atomic<std::size_t> g_relocations{0};
void counting_relocate(void* dst, const void* src, std::size_t size, void* arg) noexcept {
  std::memcpy(dst, src, size);
  static_cast<std::atomic<std::size_t>*>(arg)->fetch_add(1);
}

struct OwnedFixture {
  TestPages owner{steady_policy()};
  defrag::Registry registry;
  defrag::OwnedCache* cache = nullptr;
  std::vector<std::atomic<void*>> slots;

  OwnedFixture(std::size_t n, defrag::RelocateFn relocate = nullptr, void* arg = nullptr) : slots(n) {
    defrag::OwnedOptions o;
    o.name = "owned";
    o.payload_size = sizeof(Payload);
    o.pages = &owner.get();
    o.registry = &registry;
    o.relocate = relocate;
    o.relocate_arg = arg;
    cache = defrag::OwnedCache::create(o);
    REQUIRE(cache != nullptr);
    for (std::size_t k = 0; k < n; ++k) CHECK(cache->exchange(slots[k], make_payload(*cache, k)) == nullptr);
  }
  ~OwnedFixture() {
    for (auto& slot : slots) cache->retire(cache->exchange(slot, nullptr));
    cache->destroy();
  }

  void erase_random(double fraction, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::bernoulli_distribution coin(fraction);
    for (auto& slot : slots)
      if (coin(rng)) cache->retire(cache->exchange(slot, nullptr));
    rcu::barrier();
    detail::flush_thread_heap();
  }

  std::size_t faults() const {
    std::size_t bad = 0;
    rcu::ReadGuard guard;
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const auto* p = static_cast<const Payload*>(slots[k].load(std::memory_order_acquire));
      if (p != nullptr && !intact(p, k)) ++bad;
    }
    return bad;
  }
};

TEST_CASE("owned: defragmentation moves published objects and every entry stays intact") {
  g_relocations = 0;
  OwnedFixture f(60000, &counting_relocate, &g_relocations);
  f.erase_random(0.9, 11);
  std::size_t present = 0;
  for (auto& slot : f.slots) present += slot.load() != nullptr;
  defrag::Defragmenter defrag(f.owner.get(), f.registry);
  const double frag = defrag.fragmentation();
  const defrag::Report r = defrag.run();
  MESSAGE("owned: moved " << r.objects_moved << ", free 2M " << r.free_2m_before << " -> " << r.free_2m_after
                          << ", fragmentation " << frag << " -> " << defrag.fragmentation());
  CHECK(r.objects_moved > 0);
  CHECK(f.cache->stats().moved == r.objects_moved);
  CHECK(g_relocations.load() == f.cache->stats().moved + f.cache->stats().raced);
  CHECK(r.free_2m_after > r.free_2m_before);
  CHECK(defrag.fragmentation() < 1.5);
  CHECK(f.faults() == 0);
  std::size_t after = 0;
  for (auto& slot : f.slots) after += slot.load() != nullptr;
  CHECK(after == present);
  CHECK(f.cache->slab_cache().stats().slabs_isolated == 0);
  CHECK_VALID(f.cache->slab_cache());
}

TEST_CASE("owned: a slab holding an unpublished object is refused, then emptied once it is published") {
  OwnedFixture f(2000);
  f.erase_random(0.8, 5);
  void* building = f.cache->alloc();  // allocated, not yet in any slot
  REQUIRE(building != nullptr);
  f.cache->slab_cache().flush_thread_cache();  // its slab is detached now: isolatable
  detail::Slab* slab = detail::slab_of(f.cache->object_of(building));
  std::vector<defrag::CacheRef> refs;
  f.registry.acquire_all(refs);
  REQUIRE(refs.size() == 1);
  std::vector<void*> scratch(f.cache->slab_cache().objects_per_slab());

  REQUIRE(f.cache->slab_cache().isolate(slab));
  CHECK(defrag::evacuate_slab(*refs[0].get(), slab, scratch).outcome == defrag::SlabOutcome::kRefused);
  CHECK(f.cache->stats().moved == 0);

  std::atomic<void*> slot{nullptr};
  auto* p = static_cast<Payload*>(building);
  p->key = 424242;
  std::snprintf(p->text, sizeof p->text, "entry %d", 424242);
  p->checksum = test_checksum(424242, p->text[6]);
  f.cache->exchange(slot, building);
  REQUIRE(f.cache->slab_cache().isolate(slab));
  const defrag::SlabResult r = defrag::evacuate_slab(*refs[0].get(), slab, scratch);
  // The old copies wait for their grace period: the slab stays isolated.
  CHECK(r.outcome == defrag::SlabOutcome::kPending);
  CHECK(f.cache->stats().moved == r.listed);
  const defrag::PendingSlab pending[] = {{slab, r.listed}};
  const defrag::PendingResult done = defrag::finish_pending(f.cache->slab_cache(), pending);
  CHECK(done.freed == 1);
  CHECK(done.left == r.listed);
  refs.clear();
  CHECK(f.faults() == 0);
  {
    rcu::ReadGuard guard;
    CHECK(slot.load() != building);
    CHECK(intact(static_cast<const Payload*>(slot.load()), 424242));
  }
  f.cache->retire(f.cache->exchange(slot, nullptr));
}

TEST_CASE("owned: the header is one word (8-byte payloads) unless 16-byte alignment is asked") {
  TestPages owner{steady_policy()};
  defrag::Registry registry;
  struct Case {
    std::size_t align, payload, header, stride;
  };
  // A 16-byte payload is a 24-byte object, not 32: the header costs one word.
  for (const Case c : {Case{0, 16, 8, 24}, Case{8, 40, 8, 48}, Case{16, 16, 16, 32}, Case{16, 24, 16, 48}}) {
    CAPTURE(c.align);
    CAPTURE(c.payload);
    defrag::OwnedOptions o;
    o.name = "owned-align";
    o.payload_size = c.payload;
    o.align = c.align;
    o.pages = &owner.get();
    o.registry = &registry;
    defrag::OwnedCache* cache = defrag::OwnedCache::create(o);
    REQUIRE(cache != nullptr);
    CHECK(cache->header_size() == c.header);
    CHECK(cache->slab_cache().stats().stride == c.stride);
    std::atomic<void*> slots[64];
    for (auto& slot : slots) {
      void* p = cache->alloc();
      REQUIRE(p != nullptr);
      CHECK(reinterpret_cast<std::uintptr_t>(p) % (c.align > 8 ? 16 : 8) == 0);
      CHECK(cache->payload_of(cache->object_of(p)) == p);
      std::memset(p, 0xab, c.payload);  // the whole payload is ours, the owner word intact
      slot.store(nullptr);
      CHECK(cache->exchange(slot, p) == nullptr);
    }
    for (auto& slot : slots) cache->retire(cache->exchange(slot, nullptr));
    cache->destroy();
  }
  CacheError error{};
  for (std::size_t bad : {std::size_t{3}, std::size_t{32}}) {
    defrag::OwnedOptions o;
    o.name = "owned-bad";
    o.payload_size = 16;
    o.align = bad;
    o.pages = &owner.get();
    o.registry = &registry;
    CHECK(defrag::OwnedCache::create(o, &error) == nullptr);
    CHECK(error.code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("cooperative: should_move, alloc_direct and free_direct pack a fragmented cache") {
  TestPages owner(steady_policy());
  CacheHandle cache = make_cache("coop", 64, &owner.get());
  const std::size_t cap = cache->objects_per_slab();
  std::vector<std::uint64_t*> objects;
  for (std::size_t k = 0; k < 40 * cap; ++k) {
    auto* p = static_cast<std::uint64_t*>(cache->alloc());
    p[0] = k;
    p[1] = ~k;
    objects.push_back(p);
  }
  // The calling thread's active slab is never a source (jemalloc's slabcur).
  CHECK_FALSE(cache->should_move(objects.back()));
  cache->flush_thread_cache();
  CHECK_FALSE(cache->should_move(objects.front()));  // full slab: nothing to gain
  std::mt19937_64 rng(3);
  std::bernoulli_distribution coin(0.85);
  for (auto*& p : objects)
    if (coin(rng)) {
      cache->free(p);
      p = nullptr;
    }
  // The first slab keeps everything but one object: dense, not worth moving.
  for (std::size_t k = 1; k < cap; ++k)
    if (objects[k] == nullptr) {
      objects[k] = static_cast<std::uint64_t*>(cache->alloc_direct());
      objects[k][0] = k;
      objects[k][1] = ~k;
    }
  cache->flush_thread_cache();
  CHECK_FALSE(cache->should_move(objects[1]));
  CHECK_FALSE(cache->should_move(&cap));  // not ours
  const std::size_t slabs_before = cache->stats().slabs;
  std::size_t moved = 0;
  for (int round = 0; round < 4; ++round) {
    for (auto*& p : objects) {
      if (p == nullptr || !cache->should_move(p)) continue;
      auto* q = static_cast<std::uint64_t*>(cache->alloc_direct());
      REQUIRE(q != nullptr);
      std::memcpy(q, p, 64);
      cache->free_direct(p);
      p = q;
      ++moved;
    }
  }
  const std::size_t slabs_after = cache->stats().slabs;
  MESSAGE("cooperative: moved " << moved << ", slabs " << slabs_before << " -> " << slabs_after);
  CHECK(moved > 0);
  CHECK(slabs_after < slabs_before / 2);
  for (std::size_t k = 0; k < objects.size(); ++k)
    if (objects[k] != nullptr) CHECK((objects[k][0] == k && objects[k][1] == ~k));
  CHECK_VALID(*cache);
  // free_direct reports bad input as free() does.
  ErrorRecorder recorder;
  std::uint64_t* victim = nullptr;
  for (auto*& p : objects)
    if (p != nullptr) {
      victim = p;
      p = nullptr;
      break;
    }
  cache->free_direct(victim);
  cache->free_direct(victim);
  CHECK(recorder.count() == 1);
  CHECK(recorder.last().code == ErrorCode::kDoubleFree);
  int local = 0;
  cache->free_direct(&local);
  CHECK(recorder.last().code == ErrorCode::kForeignPointer);
  for (auto* p : objects)
    if (p != nullptr) cache->free(p);
}

}  // namespace
}  // namespace mslab::test
