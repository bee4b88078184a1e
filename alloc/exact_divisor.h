// Exact division by a slab's stride, with the "is it exact?" test folded in:
// the free paths' check that a pointer is the start of an object.
//
// For a stride d = 2^k · m (m odd) and m⁻¹ the inverse of m modulo 2^64,
// rotr(x · m⁻¹, k) equals x / d when d divides x, and exceeds
// (2^64 − 1) / d when it does not (Granlund and Montgomery, "Division by
// invariant integers using multiplication", §9; Lemire et al., "Faster
// remainder by direct computation", 2019). So, with `capacity` far below
// 2^64 / d, `index(x) < capacity` holds exactly when x is a multiple of d
// below capacity · d — one multiply, one rotate and one compare, where a
// reciprocal needs a second multiply to confirm exactness. An offset below
// slot 0, computed modulo 2^64, is huge and fails the same compare.
// Depends on nothing.
#pragma once

#include <bit>
#include <cstdint>

namespace mslab::detail {

struct ExactDivisor {
  std::uint64_t inverse = 0;  // of the stride's odd part, modulo 2^64
  std::uint32_t shift = 0;    // trailing zero bits of the stride

  constexpr ExactDivisor() = default;
  /// `stride` must be nonzero.
  explicit constexpr ExactDivisor(std::uint64_t stride) noexcept
      : inverse(odd_inverse(stride >> std::countr_zero(stride))),
        shift(static_cast<std::uint32_t>(std::countr_zero(stride))) {}

  /// x / stride if stride divides x; otherwise a value above 2^64 / stride.
  [[gnu::always_inline]] constexpr std::uint64_t index(std::uint64_t x) const noexcept {
    return std::rotr(x * inverse, static_cast<int>(shift));
  }

 private:
  // Newton's iteration doubles the correct low bits each step: m·m ≡ 1
  // (mod 8) for odd m gives 3 bits, five steps give 96 ≥ 64.
  static constexpr std::uint64_t odd_inverse(std::uint64_t m) noexcept {
    std::uint64_t y = m;
    for (int i = 0; i < 5; ++i) y *= 2 - m * y;
    return y;
  }
};

}  // namespace mslab::detail
