// Size classes of the general allocator: which slab cache serves a request.
//
// Spacing: 8, then 16-byte steps to 128 (16, 32, … 128), then four classes
// per power of two up to kSmallMax = 32 KiB (160, 192, 224, 256, 320, …,
// 28672, 32768): 41 classes, as jemalloc's and mimalloc's spacing. Worst
// internal waste: a request one byte above a class boundary gets a class
// 1/4 of a power of two larger, so at most 20 % of the block (25 % of the
// request) is unused above 128 bytes; below, at most 15 bytes.
//
// Each class's objects are aligned to the class size's lowest set bit
// (capped at 4096): 320 = 64·5 is 64-aligned, 4096 and 8192 are 4096-aligned.
// An aligned request walks up to the first class that is a multiple of the
// alignment (at most four steps: every power of two is a class).
//
// The lookup is one table load for sizes up to 1024 and a bit scan above.
// Depends on nothing.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace mslab::detail {

inline constexpr std::size_t kSmallMax = 32 * 1024;
inline constexpr unsigned kClasses = 41;
inline constexpr std::size_t kTableMax = 1024;  // sizes served by the table

/// Class of a size in (128, kSmallMax]: four classes per power of two.
constexpr unsigned class_above_128(std::size_t n) noexcept {
  const unsigned k = static_cast<unsigned>(std::bit_width(n - 1)) - 1;  // 2^k < n <= 2^(k+1)
  return 4 * k - 23 + static_cast<unsigned>((n - 1) >> (k - 2));
}

/// Class of a size in [0, kSmallMax] by arithmetic (the table's source).
constexpr unsigned class_by_formula(std::size_t n) noexcept {
  if (n <= 8) return 0;
  if (n <= 128) return static_cast<unsigned>((n + 15) >> 4);
  return class_above_128(n);
}

constexpr std::size_t class_size_by_index(unsigned c) noexcept {
  if (c == 0) return 8;
  if (c <= 8) return std::size_t{16} * c;
  const unsigned k = (c - 9) / 4 + 7;  // 2^k < size <= 2^(k+1)
  const unsigned step = (c - 9) % 4 + 1;
  return (std::size_t{1} << k) + step * (std::size_t{1} << (k - 2));
}

inline constexpr std::array<std::uint32_t, kClasses> kClassSize = [] {
  std::array<std::uint32_t, kClasses> sizes{};
  for (unsigned c = 0; c < kClasses; ++c) sizes[c] = static_cast<std::uint32_t>(class_size_by_index(c));
  return sizes;
}();

// Indexed by (n + 7) / 8 for n <= kTableMax.
inline constexpr std::array<std::uint8_t, kTableMax / 8 + 1> kClassTable = [] {
  std::array<std::uint8_t, kTableMax / 8 + 1> table{};
  for (std::size_t i = 0; i < table.size(); ++i) table[i] = static_cast<std::uint8_t>(class_by_formula(i * 8));
  return table;
}();

static_assert(kClassSize[kClasses - 1] == kSmallMax);
static_assert(class_by_formula(kSmallMax) == kClasses - 1);

/// The class serving `n` bytes (n <= kSmallMax).
constexpr unsigned class_of(std::size_t n) noexcept {
  return n <= kTableMax ? kClassTable[(n + 7) >> 3] : class_above_128(n);
}

/// Alignment of every object of class `c`.
constexpr std::size_t class_align(unsigned c) noexcept {
  const std::size_t size = kClassSize[c];
  const std::size_t low = size & (~size + 1);
  return low < 4096 ? low : 4096;
}

}  // namespace mslab::detail
