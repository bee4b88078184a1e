// Slab caches: allocation patterns, policy, isolation, lookup, threads.
#include <doctest/doctest.h>

#include "alloc/slab_cache.h"

using namespace mslab;

TEST_CASE("slab cache: alloc and free round trip") {
  SlabCache* cache = SlabCache::create({.name = "t64", .object_size = 64});
  REQUIRE(cache != nullptr);
  void* p = cache->alloc();
  REQUIRE(p != nullptr);
  CHECK(SlabCache::cache_of(p) == cache);
  cache->free(p);
  CHECK(cache->destroy().live_objects == 0);
}
