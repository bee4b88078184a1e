// Fuzz target: slab alloc/free sequences with payload checks and defrag
// passes interleaved. Three movable caches (defrag::OwnedCache) of
// different sizes over a private page allocator and registry; each object
// lives in one owner slot and carries a pattern derived from its slot and
// a generation. Ops (a few bytes each): put a new object in a slot
// (retiring the old one), empty a slot, verify a slot under a read guard,
// flush the thread cache, run a defrag pass, ask for an order-9 block. At
// the end every slot is emptied, and the caches must hold nothing live and
// validate, and every page must be back in the page allocator.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "alloc/page_allocator.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "defrag/registry.h"
#include "fuzz_input.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"

namespace {

using mslab::fuzz::Input;
namespace defrag = mslab::defrag;

constexpr std::size_t kCaches = 3;
constexpr std::size_t kSlots = 96;
constexpr std::size_t kPayload[kCaches] = {24, 200, 1000};

// Every byte of an object is a function of its slot and generation, so a
// torn copy, a stale object or a reuse shows.
unsigned char pattern(std::size_t slot, std::uint32_t gen, std::size_t byte) {
  return static_cast<unsigned char>(slot * 131 + gen * 7 + byte);
}

struct Header {
  std::uint32_t slot;
  std::uint32_t gen;
};

void fill(void* p, std::size_t size, std::size_t slot, std::uint32_t gen) {
  auto* bytes = static_cast<unsigned char*>(p);
  const Header h{static_cast<std::uint32_t>(slot), gen};
  std::memcpy(bytes, &h, sizeof h);
  for (std::size_t b = sizeof h; b < size; ++b) bytes[b] = pattern(slot, gen, b);
}

bool intact(const void* p, std::size_t size, std::size_t slot, std::uint32_t gen) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  Header h;
  std::memcpy(&h, bytes, sizeof h);
  if (h.slot != slot || h.gen != gen) return false;
  for (std::size_t b = sizeof h; b < size; ++b)
    if (bytes[b] != pattern(slot, gen, b)) return false;
  return true;
}

struct Store {
  defrag::OwnedCache* cache = nullptr;
  std::atomic<void*> slots[kSlots] = {};
  std::uint32_t gens[kSlots] = {};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mslab::PagePolicy policy;
  policy.retain_free_chunks = 0;  // an emptied chunk goes back at once: the end check sees it
  mslab::PageAllocator pages(policy);
  defrag::Registry registry;
  Store stores[kCaches];
  for (std::size_t c = 0; c < kCaches; ++c) {
    defrag::OwnedOptions o;
    o.name = "fuzz";
    o.payload_size = kPayload[c];
    o.pages = &pages;
    o.registry = &registry;
    stores[c].cache = defrag::OwnedCache::create(o);
    FUZZ_CHECK(stores[c].cache != nullptr);
  }
  defrag::Defragmenter defragmenter(pages, registry);

  Input in(data, size);
  while (!in.done()) {
    Store& st = stores[in.below(kCaches)];
    const std::size_t payload = st.cache->payload_size();
    const std::size_t k = in.below(kSlots);
    switch (in.below(8)) {
      case 0: case 1: case 2: {  // a new object in slot k
        void* p = st.cache->alloc();
        FUZZ_CHECK(p != nullptr);
        fill(p, payload, k, ++st.gens[k]);
        st.cache->retire(st.cache->exchange(st.slots[k], p));
        break;
      }
      case 3: {  // empty slot k
        st.cache->retire(st.cache->exchange(st.slots[k], nullptr));
        break;
      }
      case 4: {  // verify slot k as a reader
        mslab::rcu::ReadGuard guard;
        const void* p = st.slots[k].load(std::memory_order_acquire);
        if (p != nullptr) FUZZ_CHECK(intact(p, payload, k, st.gens[k]));
        break;
      }
      case 5: {
        st.cache->slab_cache().flush_thread_cache();
        break;
      }
      case 6: {
        const defrag::Report r = defragmenter.run();
        FUZZ_CHECK(r.slabs_freed <= r.slabs_isolated);
        break;
      }
      default: {
        defragmenter.make_available(in.below(10));
        break;
      }
    }
  }

  // Everything still stored is intact; then empty every slot and check that
  // nothing is left behind.
  for (Store& st : stores) {
    for (std::size_t k = 0; k < kSlots; ++k) {
      if (const void* p = st.slots[k].load()) FUZZ_CHECK(intact(p, st.cache->payload_size(), k, st.gens[k]));
      st.cache->retire(st.cache->exchange(st.slots[k], nullptr));
    }
  }
  mslab::rcu::barrier();
  for (Store& st : stores) {
    st.cache->slab_cache().flush_thread_cache();
    FUZZ_CHECK(st.cache->slab_cache().stats().live_objects == 0);
    FUZZ_CHECK(st.cache->slab_cache().validate());
    st.cache->destroy();
  }
  FUZZ_CHECK(pages.validate());
  FUZZ_CHECK(pages.stats().bytes_in_use == 0);
  return 0;
}
