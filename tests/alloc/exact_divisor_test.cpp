// The start-of-object test of the free paths (alloc/exact_divisor.h),
// against plain division: every stride a slab can have, offsets around each
// slot start, offsets below slot 0 (negative, modulo 2^64), and past the
// last slot.
#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>

#include "alloc/exact_divisor.h"
#include "alloc/slab_geometry.h"

using mslab::detail::ExactDivisor;

namespace {

// What the free paths conclude from index(x) < capacity, done the slow way.
bool is_slot_start(std::uint64_t x, std::uint64_t stride, std::uint64_t capacity) {
  return x % stride == 0 && x / stride < capacity;
}

}  // namespace

TEST_CASE("exact divisor: index is x / stride exactly when stride divides x") {
  for (std::uint64_t stride : {1ull, 2ull, 3ull, 8ull, 12ull, 16ull, 24ull, 48ull, 80ull, 96ull, 576ull, 4096ull,
                               7168ull, 12288ull, 262144ull, 262152ull}) {
    const ExactDivisor d(stride);
    for (std::uint64_t q = 0; q < 2000; ++q) {
      CHECK(d.index(q * stride) == q);
      if (stride > 1) {
        CHECK(d.index(q * stride + 1) > (~std::uint64_t{0}) / stride);
        CHECK(d.index(q * stride + stride - 1) > (~std::uint64_t{0}) / stride);
      }
    }
  }
}

TEST_CASE("exact divisor: the free paths' one compare, for every slab geometry") {
  for (std::size_t size = 1; size <= 4096; size += (size < 512 ? 1 : 61)) {
    for (std::size_t align : {8u, 16u, 64u}) {
      const auto g = mslab::detail::compute_slab_geometry(size, align);
      const ExactDivisor d(g.stride);
      const std::uint64_t end = g.capacity * g.stride;
      auto agrees = [&](std::uint64_t x) { return (d.index(x) < g.capacity) == is_slot_start(x, g.stride, g.capacity); };
      // Every offset in the slab's object area and a stride beyond.
      bool all = true;
      for (std::uint64_t x = 0; x < end + g.stride; ++x) all = all && agrees(x);
      CHECK_MESSAGE(all, "size " << size << " align " << align);
      // Below slot 0 (the header), as the free paths compute it.
      for (std::uint64_t below = 1; below <= g.objects_offset; ++below) CHECK(d.index(0 - below) >= g.capacity);
    }
  }
}
