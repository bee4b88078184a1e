// The defragmenter over whole chunks: a pass empties sparse chunks into
// free 2 MiB blocks without losing an object, relocation never lands in the
// chunk being evacuated, budgets bound a pass, compaction on demand makes an
// order-9 block, and the background loop brings fragmentation down.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "defrag/background.h"
#include "defrag_test_util.h"

namespace mslab::test {
namespace {

using namespace std::chrono_literals;

// A cache of TestObjects spread over several chunks, then a random 90 %
// freed: every slab is sparse and no chunk is free.
struct Fragmented {
  TestPages owner{steady_policy()};
  CacheHandle cache;
  TestOwner objects;
  defrag::Registry registry;
  defrag::Registration reg;

  explicit Fragmented(std::size_t chunks, double erase = 0.9, unsigned seed = 1)
      : cache(make_cache("defrag", sizeof(TestObject), &owner.get())), objects(cache.get()) {
    const std::size_t per_chunk = kPagesPerChunk * cache->objects_per_slab();  // order-0 slabs
    objects.fill(chunks * per_chunk - per_chunk / 8);
    objects.erase_random(erase, seed);
    detail::flush_thread_heap();
    reg = defrag::Registration(registry, cache.get(), objects.ops());
    REQUIRE(reg);
  }
};

TEST_CASE("defragmenter: a pass turns sparse chunks into free 2 MiB blocks, losing nothing") {
  Fragmented f(4);
  PageAllocator& pages = f.owner.get();
  REQUIRE(f.cache->stats().slab_order == 0);
  const std::size_t live = f.objects.live();
  const std::size_t before = free_2m(pages);
  f.objects.check_chunk = true;
  defrag::Defragmenter defrag(pages, f.registry);
  const double frag_before = defrag.fragmentation();

  const defrag::Report r = defrag.run();
  MESSAGE("moved " << r.objects_moved << ", slabs freed " << r.slabs_freed << ", free 2M " << r.free_2m_before
                   << " -> " << r.free_2m_after << ", fragmentation " << frag_before << " -> "
                   << defrag.fragmentation() << ", max pause " << r.max_pause.count() / 1000 << " us");
  CHECK(r.free_2m_before == before);
  CHECK(r.free_2m_after > before);
  CHECK(r.free_2m_after == free_2m(pages));
  CHECK(r.chunks_evacuated >= 2);
  CHECK(r.objects_moved == f.objects.moved);
  CHECK(r.bytes_copied == r.objects_moved * sizeof(TestObject));
  CHECK(r.slabs_scanned > 0);
  CHECK(r.slabs_freed > 0);
  CHECK(r.slabs_refused == 0);
  CHECK(f.objects.bad_placements == 0);  // never in an isolated slab or the evacuated chunk
  CHECK(f.objects.live() == live);
  CHECK(f.objects.faults() == 0);
  CHECK(defrag.fragmentation() < frag_before);
  CHECK(f.cache->stats().slabs_isolated == 0);
  CHECK_VALID(*f.cache);
  CHECK_VALID(pages);
}

// The layout an XArray's node cache ends in: every slab full, no free slot
// anywhere, but free pages in the chunks. A chunk holding a few full slabs
// has no room in free slots; new slabs from the free pages of the other
// partly used chunk take its objects, and it comes back as a 2 MiB block.
TEST_CASE("defragmenter: full slabs move into free pages of other chunks, freeing a 2 MiB block") {
  TestPages owner{steady_policy()};
  CacheHandle cache = make_cache("full", sizeof(TestObject), &owner.get());
  TestOwner objects(cache.get());
  const std::size_t per_slab = cache->objects_per_slab();
  objects.fill(2 * kPagesPerChunk * per_slab - per_slab);  // two chunks of order-0 slabs, all full
  detail::flush_thread_heap();
  REQUIRE(cache->stats().slab_order == 0);
  // Keep 8 full slabs of the first chunk and half of the second chunk's
  // slabs: whole slabs go, so no slab keeps a free slot.
  const std::uintptr_t first = chunk_of_ptr(objects.slots.front());
  std::vector<std::uintptr_t> kept_first;
  std::size_t second_seen = 0;
  std::uintptr_t last_slab = 0;
  bool keep = false;
  for (std::size_t id = 0; id < objects.slots.size(); ++id) {
    const auto slab = reinterpret_cast<std::uintptr_t>(detail::slab_of(objects.slots[id]));
    if (slab != last_slab) {
      last_slab = slab;
      if (chunk_of_ptr(objects.slots[id]) == first) {
        keep = kept_first.size() < 8 && slab % (8 * kPageSize) == 0;  // spread over the chunk
        if (keep) kept_first.push_back(slab);
      } else {
        keep = second_seen++ % 2 == 0;
      }
    }
    if (!keep) objects.erase(id);
  }
  detail::flush_thread_heap();
  PageAllocator& pages = owner.get();
  REQUIRE(kept_first.size() == 8);
  REQUIRE(free_2m(pages) == 0);
  const CacheStats st = cache->stats();
  REQUIRE(st.slabs_partial == 0);  // every slab with objects is full: no free slot to move into
  const std::size_t live = objects.live();
  objects.check_chunk = true;
  defrag::Registry registry;
  defrag::Registration reg(registry, cache.get(), objects.ops());
  REQUIRE(reg);
  const defrag::Report r = defrag::Defragmenter(pages, registry).run();
  MESSAGE("moved " << r.objects_moved << ", chunks evacuated " << r.chunks_evacuated << ", free 2M "
                   << r.free_2m_before << " -> " << r.free_2m_after);
  CHECK(r.chunks_evacuated == 1);
  CHECK(r.free_2m_after == 1);
  CHECK(r.objects_moved == 8 * per_slab);
  CHECK(pages.chunk_free_pages(reinterpret_cast<void*>(first)) == static_cast<long>(kPagesPerChunk));
  CHECK(objects.bad_placements == 0);
  CHECK(objects.live() == live);
  CHECK(objects.faults() == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
}

TEST_CASE("defragmenter: a refusing owner keeps everything in place") {
  Fragmented f(2);
  f.objects.phase1 = TestOwner::Phase1::kRefuse;
  defrag::Defragmenter defrag(f.owner.get(), f.registry);
  const defrag::Report r = defrag.run();
  CHECK(r.objects_moved == 0);
  CHECK(r.slabs_refused > 0);
  CHECK(f.objects.reclaim_calls == 0);
  CHECK(f.objects.faults() == 0);
  CHECK(f.cache->stats().slabs_isolated == 0);
  CHECK_VALID(*f.cache);
}

TEST_CASE("defragmenter: the page budget bounds a pass") {
  Fragmented f(3);
  defrag::Defragmenter defrag(f.owner.get(), f.registry);
  defrag::Budget budget;
  budget.pages = 16;
  const defrag::Report r = defrag.run(budget);
  CHECK(r.budget_exhausted);
  CHECK(f.objects.can_free_calls == 16);
  CHECK(f.objects.faults() == 0);
  CHECK(f.cache->stats().slabs_isolated == 0);
  CHECK_VALID(*f.cache);
}

TEST_CASE("defragmenter: make_available(9) evacuates until an order-9 block exists") {
  Fragmented f(3, 0.9, 7);
  PageAllocator& pages = f.owner.get();
  REQUIRE(free_2m(pages) == 0);
  defrag::Defragmenter defrag(pages, f.registry);
  CHECK_FALSE(defrag.available(9));
  const defrag::Report r = defrag.make_available(9);
  CHECK(defrag.available(9));
  CHECK(r.free_2m_after >= 1);
  CHECK(f.objects.faults() == 0);
  // Asked again, it has nothing to do.
  const defrag::Report again = defrag.make_available(9);
  CHECK(again.slabs_scanned == 0);
  CHECK(again.objects_moved == 0);
  CHECK_VALID(pages);
}

TEST_CASE("defragmenter: the background loop brings fragmentation between its bounds") {
  Fragmented f(3, 0.8, 3);
  defrag::Defragmenter defrag(f.owner.get(), f.registry);
  const double start = defrag.fragmentation();
  REQUIRE(start > 2.0);
  defrag::BackgroundOptions options;
  options.lower = 1.3;
  options.upper = 1.6;
  options.cpu_share = 0.5;
  options.interval = 5ms;
  options.pass_budget.pages = 64;
  options.pass_budget.time = 2ms;
  defrag::BackgroundDefrag background(defrag, options);
  REQUIRE(background.start());
  CHECK_FALSE(background.start());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    const defrag::BackgroundStats st = background.stats();
    if (st.passes > 0 && !st.active && st.fragmentation <= options.upper) break;
    std::this_thread::sleep_for(5ms);
  }
  background.stop();
  const defrag::BackgroundStats st = background.stats();
  MESSAGE("fragmentation " << start << " -> " << st.fragmentation << " in " << st.passes << " passes, cpu "
                           << st.cpu_time.count() / 1000000 << " ms");
  CHECK(st.passes > 1);  // bounded passes, not one big one
  CHECK(st.fragmentation <= options.upper);
  CHECK(defrag.fragmentation() <= options.upper);
  CHECK(st.total.objects_moved > 0);
  CHECK(f.objects.faults() == 0);
  CHECK_FALSE(background.running());
}

}  // namespace
}  // namespace mslab::test
