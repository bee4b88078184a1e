// mslab::new_delete: replaces every global operator new and delete with the
// general allocator. A program opts in by linking this library; all forms
// are in this one object, so one reference pulls in the whole set.
//
// As [new.delete.single] requires, a failed allocation calls the installed
// new_handler and retries, and throws std::bad_alloc when there is none;
// the nothrow forms return nullptr where the throwing form would throw.
// Sized deletes pass the size on as a hint only (a wrong size is safe).
#include <cstddef>
#include <new>

#include "malloc/malloc.h"

namespace {

void* allocate(std::size_t size, std::size_t alignment) {
  for (;;) {
    void* p = alignment <= __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? mslab::malloc(size)
                                                            : mslab::aligned_alloc(alignment, size);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* allocate_nothrow(std::size_t size, std::size_t alignment) noexcept {
  try {
    return allocate(size, alignment);
  } catch (...) {
    return nullptr;
  }
}

constexpr std::size_t kDefault = __STDCPP_DEFAULT_NEW_ALIGNMENT__;

}  // namespace

void* operator new(std::size_t size) { return allocate(size, kDefault); }
void* operator new[](std::size_t size) { return allocate(size, kDefault); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate_nothrow(size, kDefault); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate_nothrow(size, kDefault); }
void* operator new(std::size_t size, std::align_val_t al) { return allocate(size, static_cast<std::size_t>(al)); }
void* operator new[](std::size_t size, std::align_val_t al) { return allocate(size, static_cast<std::size_t>(al)); }
void* operator new(std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return allocate_nothrow(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return allocate_nothrow(size, static_cast<std::size_t>(al));
}

void operator delete(void* p) noexcept { mslab::free(p); }
void operator delete[](void* p) noexcept { mslab::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { mslab::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { mslab::free(p); }
void operator delete(void* p, std::size_t size) noexcept { mslab::free_sized(p, size); }
void operator delete[](void* p, std::size_t size) noexcept { mslab::free_sized(p, size); }
void operator delete(void* p, std::align_val_t) noexcept { mslab::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { mslab::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { mslab::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { mslab::free(p); }
void operator delete(void* p, std::size_t size, std::align_val_t) noexcept { mslab::free_sized(p, size); }
void operator delete[](void* p, std::size_t size, std::align_val_t) noexcept { mslab::free_sized(p, size); }
