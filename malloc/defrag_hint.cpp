// The cooperative defragmentation calls of malloc.h (should_move,
// malloc_direct, free_direct): the slab layer's hint and direct paths,
// reached from a malloc pointer through its page's owner tag.
#include "malloc/malloc.h"

#include <cstdint>

#include "alloc/slab_cache.h"

namespace mslab {
namespace {

// The class cache of a small object, or nullptr for anything else.
SlabCache* class_cache_of(const void* p) noexcept {
  return p == nullptr ? nullptr : detail::class_cache_of_tag(detail::owner_tag_of(p));
}

}  // namespace

bool should_move(const void* p) noexcept {
  SlabCache* cache = class_cache_of(p);
  return cache != nullptr && cache->should_move(p);
}

void* malloc_direct(std::size_t size) noexcept {
  if (size <= detail::kSmallMax) {
    if (SlabCache* cache = detail::g_class_cache[detail::class_of(size)].load(std::memory_order_acquire)) {
      if (void* p = cache->alloc_direct()) {
        // An object that once sat on a thread's stack may still carry the
        // stack's double-free key: clear it, as a pop from the stack does.
        if constexpr (kCheapChecks) *static_cast<std::uint64_t*>(p) = 0;
        return p;
      }
    }
  }
  return malloc(size);  // no class cache yet (it is made), or not small
}

void free_direct(void* p) noexcept {
  if (SlabCache* cache = class_cache_of(p)) return cache->free_direct(p);
  free(p);
}

}  // namespace mslab
