// A per-class allocation mixin: class-specific operator new/delete from a
// slab cache dedicated to the class, so its objects are packed together
// (and the cache can be given to the defragmenter as any other).
//
//   struct Session : mslab::CacheAllocated<Session> { … };
//   auto* s = new Session;   // from the cache "Session" (see below)
//
// The cache is created on the first allocation, named by
// `static constexpr const char* kCacheName` in the class if it has one
// (else "mslab-mixin"), sized and aligned for the class. Objects of a
// derived class larger than T (or arrays) go to the global operator new.
// operator new throws std::bad_alloc after the new_handler loop, as the
// global one; operator delete is noexcept. Thread-safe.
// Depends on: alloc/slab_cache.
#pragma once

#include <cstddef>
#include <new>

#include "alloc/slab_cache.h"

namespace mslab {

template <class T>
class CacheAllocated {
 public:
  /// The class's cache (created on first use; never destroyed, since
  /// objects may outlive any scope). nullptr only when out of memory.
  static SlabCache* cache() noexcept {
    static SlabCache* const instance = [] {
      CacheOptions options;
      if constexpr (requires { T::kCacheName; })
        options.name = T::kCacheName;
      else
        options.name = "mslab-mixin";
      options.object_size = sizeof(T);
      options.align = alignof(T) < 8 ? 8 : alignof(T);
      return SlabCache::create(options);
    }();
    return instance;
  }

  static void* operator new(std::size_t size) {
    if (size != sizeof(T)) return ::operator new(size);
    for (;;) {
      if (SlabCache* c = cache())
        if (void* p = c->alloc()) return p;
      std::new_handler handler = std::get_new_handler();
      if (handler == nullptr) throw std::bad_alloc();
      handler();
    }
  }

  static void operator delete(void* p, std::size_t size) noexcept {
    if (p == nullptr) return;
    if (size != sizeof(T)) return ::operator delete(p);
    cache()->free(p);
  }
};

}  // namespace mslab
