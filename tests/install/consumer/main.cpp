// Uses an installed mslab: one cache, one object, a clean destroy.
#include <alloc/slab_cache.h>

#include <cstdio>

int main() {
  mslab::SlabCache* cache = mslab::SlabCache::create({.name = "consumer", .object_size = 40});
  if (cache == nullptr) return 1;
  void* p = cache->alloc();
  if (p == nullptr) return 1;
  cache->free(p);
  const mslab::DestroyReport left = cache->destroy();
  std::printf("consumer ok, %zu live\n", left.live_objects);
  return left.live_objects == 0 ? 0 : 1;
}
