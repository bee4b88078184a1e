// glibc adapter (adapter_glibc.h): resolves ptmalloc's entry points in
// libc.so.6 and checks that they are not mimalloc's.
#include "bench/adapter_glibc.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <mimalloc.h>

namespace mslab::bench {

bool GlibcAllocator::open(std::size_t object_size, std::string* why) {
  size_ = object_size;
  // RTLD_NOLOAD: libc is loaded already; this only gets its handle, and
  // dlsym on a handle searches that library first, not the global scope.
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) {
    *why = std::string("dlopen(libc.so.6): ") + dlerror();
    return false;
  }
  malloc_ = reinterpret_cast<void* (*)(std::size_t)>(dlsym(libc, "malloc"));
  free_ = reinterpret_cast<void (*)(void*)>(dlsym(libc, "free"));
  trim_ = reinterpret_cast<int (*)(std::size_t)>(dlsym(libc, "malloc_trim"));
  usable_size_ = reinterpret_cast<std::size_t (*)(void*)>(dlsym(libc, "malloc_usable_size"));
  if (malloc_ == nullptr || free_ == nullptr || trim_ == nullptr || usable_size_ == nullptr) {
    *why = "libc.so.6 lacks malloc, free, malloc_trim or malloc_usable_size";
    return false;
  }
  return true;
}

bool GlibcAllocator::verify(const void* sample, std::size_t, std::string* why) const {
  if (mi_check_owned(sample)) {
    *why = "glibc's malloc returned memory of mimalloc's heap";
    return false;
  }
  if (usable_size_(const_cast<void*>(sample)) < size_) {
    *why = "malloc_usable_size is below the object size";
    return false;
  }
  return true;
}

std::string GlibcAllocator::version() const { return gnu_get_libc_version(); }

}  // namespace mslab::bench
