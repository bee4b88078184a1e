// The library's own metadata allocator: cache objects, per-thread tables,
// chunk descriptors. It never calls malloc (mslab may *be* malloc), takes its
// memory from the platform layer, and recycles freed records by exact size.
// Depends on: platform.
#pragma once

#include <cstddef>
#include <new>

namespace mslab::detail {

inline constexpr std::size_t kMetaAlign = 64;

/// Returns `size` zeroed bytes aligned to kMetaAlign, or nullptr when the OS
/// refuses. Thread-safe (one internal lock); may block in mmap.
void* meta_alloc(std::size_t size) noexcept;

/// Returns a record from meta_alloc() with the same `size`. The whole pages
/// inside it go back to the OS (one madvise; the record stays mapped for
/// reuse). Thread-safe.
void meta_free(void* p, std::size_t size) noexcept;

/// Fork support (alloc/fork.h): takes (`lock`) or releases the pool lock.
void meta_lock_for_fork(bool lock) noexcept;

/// Bytes of metadata currently mapped from the OS.
std::size_t meta_mapped_bytes() noexcept;

/// Placement helpers: construct/destroy a T in metadata memory.
template <class T, class... Args>
T* meta_new(Args&&... args) noexcept {
  void* p = meta_alloc(sizeof(T));
  return p == nullptr ? nullptr : new (p) T(static_cast<Args&&>(args)...);
}

template <class T>
void meta_delete(T* p) noexcept {
  if (p == nullptr) return;
  p->~T();
  meta_free(p, sizeof(T));
}

/// A standard allocator over meta_alloc(), for the library's own working
/// arrays (the defragmenter's survey): memory the library takes from the OS
/// goes back to it when the array is freed (a record above 16 KiB is
/// unmapped, a smaller one purged), instead of staying in the application's
/// malloc. Throws std::bad_alloc when the OS refuses, as std::allocator.
template <class T>
struct MetaAllocator {
  using value_type = T;
  MetaAllocator() noexcept = default;
  template <class U>
  MetaAllocator(const MetaAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    void* p = meta_alloc(n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept { meta_free(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const MetaAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace mslab::detail
