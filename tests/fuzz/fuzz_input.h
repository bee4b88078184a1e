// Reading a fuzzer's byte string as a sequence of small decisions, and the
// check that every fuzz target uses instead of a test framework (a failed
// check must crash, so that libFuzzer records the input).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace mslab::fuzz {

/// Consumes the input front to back; once it is used up every read is 0.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) noexcept : p_(data), end_(data + size) {}

  bool done() const noexcept { return p_ == end_; }
  std::uint8_t u8() noexcept { return p_ == end_ ? 0 : *p_++; }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  std::uint64_t u64() noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{u8()} << (8 * i);
    return v;
  }
  /// A number in [0, n), n ≥ 1.
  unsigned below(unsigned n) noexcept { return n <= 256 ? u8() % n : u16() % n; }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) noexcept {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
  std::abort();
}

}  // namespace mslab::fuzz

#define FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::mslab::fuzz::check_failed(#cond, __FILE__, __LINE__))
