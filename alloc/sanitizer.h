// Hooks into AddressSanitizer: free slab objects are poisoned, so that a
// use after free of a slab object is reported by ASan like one of malloc's.
// No-ops in other builds. Depends on: config.
#pragma once

#include <cstddef>

#include "alloc/config.h"

#ifdef MSLAB_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace mslab::detail {

inline void poison_object(const void* p, std::size_t size) noexcept {
#ifdef MSLAB_ASAN
  ASAN_POISON_MEMORY_REGION(p, size);
#else
  (void)p;
  (void)size;
#endif
}

inline void unpoison_object(const void* p, std::size_t size) noexcept {
#ifdef MSLAB_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, size);
#else
  (void)p;
  (void)size;
#endif
}

}  // namespace mslab::detail
