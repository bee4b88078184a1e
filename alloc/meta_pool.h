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

}  // namespace mslab::detail
