// mslab::allocator<T>: a standard allocator (for std::vector, std::map, …)
// over the general allocator. Stateless: all instances compare equal, so
// containers may swap and move freely. allocate() throws std::bad_alloc on
// failure (the Allocator requirements); over-aligned T goes through
// aligned_alloc. Thread-safe like malloc.
// Depends on: malloc.
#pragma once

#include <cstddef>
#include <limits>
#include <new>

#include "malloc/malloc.h"

namespace mslab {

template <class T>
class allocator {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_move_assignment = std::true_type;
  using is_always_equal = std::true_type;

  constexpr allocator() noexcept = default;
  template <class U>
  constexpr allocator(const allocator<U>&) noexcept {}

  /// Storage for `n` objects; throws std::bad_alloc when out of memory or
  /// when n * sizeof(T) overflows.
  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    void* p = alignof(T) <= 16 ? mslab::malloc(n * sizeof(T)) : mslab::aligned_alloc(alignof(T), n * sizeof(T));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }

  /// Frees storage from allocate(); `n` is only a hint.
  void deallocate(T* p, std::size_t n) noexcept { mslab::free_sized(p, n * sizeof(T)); }

  template <class U>
  friend constexpr bool operator==(const allocator&, const allocator<U>&) noexcept {
    return true;
  }
};

}  // namespace mslab
