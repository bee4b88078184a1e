// libmslab_preload.so: the C allocation interface over the general
// allocator, for LD_PRELOAD (or for linking first). Every function here
// has glibc's contract: errno = ENOMEM on failure, EINVAL for a bad
// alignment where POSIX says so, realloc(p, 0) frees and returns NULL.
//
// Safety in a foreign process: the allocator initialises itself on the
// first call without calling malloc (metadata comes from mmap, options from
// getenv, no dlsym, no thread_local destructors); fork handlers are
// registered right after; per-thread state is flushed by a pthread key
// destructor; nothing is ever torn down, so exit handlers and late thread
// exits can still allocate and free.
#include <unistd.h>

#include <cerrno>
#include <cstddef>

#include "malloc/malloc.h"

#define MSLAB_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

std::size_t page() noexcept { return 4096; }

int is_power_of_two(std::size_t n) noexcept { return n != 0 && (n & (n - 1)) == 0; }

}  // namespace

MSLAB_EXPORT void* malloc(std::size_t size) noexcept { return mslab::malloc(size); }
MSLAB_EXPORT void free(void* p) noexcept { mslab::free(p); }
MSLAB_EXPORT void cfree(void* p) noexcept { mslab::free(p); }
MSLAB_EXPORT void* calloc(std::size_t n, std::size_t size) noexcept { return mslab::calloc(n, size); }
MSLAB_EXPORT void* realloc(void* p, std::size_t size) noexcept { return mslab::realloc(p, size); }

MSLAB_EXPORT void* reallocarray(void* p, std::size_t n, std::size_t size) noexcept {
  std::size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return mslab::realloc(p, total);
}

MSLAB_EXPORT int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (!is_power_of_two(alignment) || alignment % sizeof(void*) != 0) return EINVAL;
  const int saved = errno;
  void* p = mslab::aligned_alloc(alignment, size);
  errno = saved;  // POSIX: report through the return value only
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

MSLAB_EXPORT void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return mslab::aligned_alloc(alignment, size);
}

// glibc rounds a non-power-of-two alignment up rather than failing.
MSLAB_EXPORT void* memalign(std::size_t alignment, std::size_t size) noexcept {
  if (alignment > (std::size_t{1} << 62)) {
    errno = EINVAL;
    return nullptr;
  }
  std::size_t a = 1;
  while (a < alignment) a <<= 1;
  return mslab::aligned_alloc(a, size);
}

MSLAB_EXPORT void* valloc(std::size_t size) noexcept { return mslab::aligned_alloc(page(), size); }

MSLAB_EXPORT void* pvalloc(std::size_t size) noexcept {
  const std::size_t rounded = (size + page() - 1) & ~(page() - 1);
  if (rounded < size) {
    errno = ENOMEM;
    return nullptr;
  }
  return mslab::aligned_alloc(page(), rounded == 0 ? page() : rounded);
}

MSLAB_EXPORT std::size_t malloc_usable_size(void* p) noexcept { return mslab::usable_size(p); }

// Cooperative defragmentation for C programs under the preload (as Redis's
// je_get_defrag_hint with jemalloc; malloc.h has the contracts).
MSLAB_EXPORT int mslab_get_defrag_hint(void* p) noexcept { return mslab::should_move(p) ? 1 : 0; }
MSLAB_EXPORT void* mslab_malloc_direct(std::size_t size) noexcept { return mslab::malloc_direct(size); }
MSLAB_EXPORT void mslab_free_direct(void* p) noexcept { mslab::free_direct(p); }

MSLAB_EXPORT int malloc_trim(std::size_t) noexcept { return mslab::trim() != 0 ? 1 : 0; }

// glibc's internal entry points: a few programs and libraries call them
// directly, and their blocks must come from (and go back to) mslab too.
MSLAB_EXPORT void* __libc_malloc(std::size_t size) noexcept { return mslab::malloc(size); }
MSLAB_EXPORT void __libc_free(void* p) noexcept { mslab::free(p); }
MSLAB_EXPORT void* __libc_calloc(std::size_t n, std::size_t size) noexcept { return mslab::calloc(n, size); }
MSLAB_EXPORT void* __libc_realloc(void* p, std::size_t size) noexcept { return mslab::realloc(p, size); }
MSLAB_EXPORT void* __libc_memalign(std::size_t alignment, std::size_t size) noexcept {
  return memalign(alignment, size);
}
MSLAB_EXPORT void* __libc_valloc(std::size_t size) noexcept { return valloc(size); }
MSLAB_EXPORT void* __libc_pvalloc(std::size_t size) noexcept { return pvalloc(size); }
