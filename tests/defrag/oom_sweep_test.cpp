// Out of memory at every allocation site in turn: a workload of movable
// objects — fill, free most of them, a defragmenter pass (whose relocations
// allocate), compaction on demand — runs once per page-allocator call, with
// exactly that call failing. Every run must end with nothing lost (each
// published object intact), nothing leaked (no live object after cleanup,
// every page back in the page allocator), no crash, and allocation working
// again afterwards.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "alloc/page_allocator.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "defrag/registry.h"
#include "rcu/deferred_free.h"

using namespace mslab;

namespace {

struct Outcome {
  std::size_t published = 0, refused = 0, damaged = 0, live_after = 0, bytes_after = 0;
  bool recovered = false;
};

Outcome run_with_failure(long fail_at) {
  Outcome out;
  PagePolicy policy;
  policy.retain_free_chunks = 0;
  PageAllocator pages(policy);
  defrag::Registry registry;
  defrag::OwnedOptions o;
  o.name = "oom-sweep";
  o.payload_size = 112;
  o.pages = &pages;
  o.registry = &registry;
  defrag::OwnedCache* cache = defrag::OwnedCache::create(o);
  REQUIRE(cache != nullptr);  // creating a cache takes no page
  pages.inject_failure(fail_at);

  constexpr std::size_t kSlots = 1200;
  std::vector<std::atomic<void*>> slots(kSlots);
  for (std::size_t k = 0; k < kSlots; ++k) {
    auto* p = static_cast<unsigned char*>(cache->alloc());
    if (p == nullptr) {
      ++out.refused;  // the injected failure: a clear nullptr, nothing else
      continue;
    }
    std::memset(p, static_cast<int>(k & 0xff), o.payload_size);
    cache->retire(cache->exchange(slots[k], p));
    ++out.published;
  }
  for (std::size_t k = 0; k < kSlots; ++k)
    if (k % 10 != 0) cache->retire(cache->exchange(slots[k], nullptr));
  defrag::Defragmenter defragmenter(pages, registry);
  defragmenter.run();
  defragmenter.make_available(9);
  for (std::size_t k = 0; k < kSlots; ++k) {
    const auto* p = static_cast<const unsigned char*>(slots[k].load());
    if (p == nullptr) continue;
    for (std::size_t b = 0; b < o.payload_size; ++b)
      if (p[b] != static_cast<unsigned char>(k & 0xff)) {
        ++out.damaged;
        break;
      }
  }
  pages.inject_failure(-1);
  void* again = cache->alloc();  // allocation works again
  out.recovered = again != nullptr;
  if (again != nullptr) cache->free_unpublished(again);

  for (auto& slot : slots) cache->retire(cache->exchange(slot, nullptr));
  rcu::barrier();
  cache->slab_cache().flush_thread_cache();
  out.live_after = cache->slab_cache().stats().live_objects;
  cache->destroy();
  out.bytes_after = pages.stats().bytes_in_use;
  return out;
}

}  // namespace

TEST_CASE("out of memory at every page-allocator call in turn: nothing lost, nothing leaked") {
  // The first run counts the workload's calls: without a failure nothing is refused.
  const Outcome clean = run_with_failure(-1);
  REQUIRE(clean.refused == 0);
  std::size_t runs = 0, with_refusal = 0;
  for (long n = 0; n < 90; ++n) {
    CAPTURE(n);
    const Outcome r = run_with_failure(n);
    ++runs;
    with_refusal += r.refused > 0;
    CHECK(r.published + r.refused == 1200);
    CHECK(r.refused <= 1);  // one call fails: at most one allocation is refused
    CHECK(r.damaged == 0);
    CHECK(r.recovered);
    CHECK(r.live_after == 0);
    CHECK(r.bytes_after == 0);
  }
  MESSAGE(runs << " runs, " << with_refusal << " with the failure landing in the fill phase, "
                << runs - with_refusal << " later (defragmenter relocation, compaction, the recovery)");
  CHECK(with_refusal > 0);
  CHECK(with_refusal < runs);  // the sweep reaches past the fill, into the defragmenter
}
