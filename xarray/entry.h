// XArray entries: what a slot holds, encoded in one machine word, plus the
// small error/result types of the XArray API.
//
// Encoding (low bits, as the kernel's xarray.h): ..00 a user pointer (must be
// 4-byte aligned), ..x1 a value entry (v << 1) | 1, ..10 internal (node
// pointers, retry, reserved). Because user pointers must be 4-byte aligned,
// no leaf entry can ever look like a node pointer (research kernel.md §3.5).
#pragma once

#include <climits>
#include <cstdint>

namespace mslab {

/// Why an XArray operation failed.
enum class XaError : std::uint8_t {
  kOk = 0,
  kBusy,      // insert: the index holds an entry or is reserved
  kNoMemory,  // a node could not be allocated; the array is unchanged
  kInvalid,   // misaligned pointer, value too large, bad mark or range
};

/// A short stable name for `e`, e.g. "busy".
constexpr const char* xa_error_name(XaError e) noexcept {
  switch (e) {
    case XaError::kOk: return "ok";
    case XaError::kBusy: return "busy";
    case XaError::kNoMemory: return "no-memory";
    case XaError::kInvalid: return "invalid";
  }
  return "?";
}

namespace xa_detail {
// Internal entries are (n << 2) | 2. Small n are sentinels; anything above
// kMaxInternalSentinel is a node pointer (a node is never in the first page).
constexpr std::uintptr_t make_internal(std::uintptr_t n) noexcept { return (n << 2) | 2; }
inline constexpr std::uintptr_t kRetry = make_internal(256);     // node being freed: restart
inline constexpr std::uintptr_t kZero = make_internal(257);      // reserved slot
inline constexpr std::uintptr_t kInvalidEntry = make_internal(258);  // rejected by every writer
constexpr bool is_internal(std::uintptr_t raw) noexcept { return (raw & 3) == 2; }
constexpr bool is_node(std::uintptr_t raw) noexcept { return is_internal(raw) && raw > 4096; }
constexpr bool is_value(std::uintptr_t raw) noexcept { return (raw & 1) != 0; }
// Multi-index entries (xa_mk_sibling): the first slot of the range holds the
// entry ("canonical" slot), each further slot of the range in the same node
// a sibling entry naming the canonical slot's offset (< 64).
constexpr std::uintptr_t make_sibling(unsigned offset) noexcept { return make_internal(offset); }
constexpr bool is_sibling(std::uintptr_t raw) noexcept { return is_internal(raw) && raw < make_internal(64); }
constexpr unsigned sibling_offset(std::uintptr_t raw) noexcept { return static_cast<unsigned>(raw >> 2); }
}  // namespace xa_detail

/// What one index of an XArray holds: nothing, a pointer, or a small
/// integer ("value entry", xa_mk_value). A value type of one word.
/// Constructing from a pointer that is not 4-byte aligned, or from a value
/// above kMaxValue, gives an *invalid* entry that every writer rejects with
/// XaError::kInvalid (the constructors never fail loudly: no exceptions).
class Entry {
 public:
  static constexpr unsigned long kMaxValue = LONG_MAX;

  constexpr Entry() noexcept = default;  // empty
  /// A pointer entry (nullptr gives the empty entry).
  static Entry pointer(const void* p) noexcept {
    const auto raw = reinterpret_cast<std::uintptr_t>(p);
    return Entry((raw & 3) == 0 ? raw : xa_detail::kInvalidEntry);
  }
  /// A value entry holding `v` (0 … kMaxValue).
  static constexpr Entry value(unsigned long v) noexcept {
    return Entry(v <= kMaxValue ? (std::uintptr_t{v} << 1) | 1 : xa_detail::kInvalidEntry);
  }

  constexpr bool empty() const noexcept { return raw_ == 0; }
  constexpr explicit operator bool() const noexcept { return raw_ != 0; }
  constexpr bool is_value() const noexcept { return xa_detail::is_value(raw_); }
  constexpr bool is_pointer() const noexcept { return raw_ != 0 && (raw_ & 3) == 0; }
  /// False for entries built from bad input (see the class comment).
  constexpr bool valid() const noexcept { return !xa_detail::is_internal(raw_); }

  /// The value of a value entry (unspecified for other entries).
  constexpr unsigned long to_value() const noexcept { return static_cast<unsigned long>(raw_ >> 1); }
  /// The pointer of a pointer entry; nullptr for empty or value entries.
  template <class T = void>
  T* to_pointer() const noexcept {
    return is_pointer() ? reinterpret_cast<T*>(raw_) : nullptr;
  }

  constexpr std::uintptr_t raw() const noexcept { return raw_; }
  static constexpr Entry from_raw(std::uintptr_t raw) noexcept { return Entry(raw); }
  friend constexpr bool operator==(Entry a, Entry b) noexcept = default;

 private:
  constexpr explicit Entry(std::uintptr_t raw) noexcept : raw_(raw) {}
  std::uintptr_t raw_ = 0;
};

/// The result of a writer: an Entry (the previous one, for store/erase/
/// compare_exchange) or an error. No exceptions.
class XaResult {
 public:
  constexpr XaResult(Entry e) noexcept : entry_(e) {}  // NOLINT: implicit on purpose
  constexpr XaResult(XaError e) noexcept : error_(e) {}  // NOLINT
  constexpr bool ok() const noexcept { return error_ == XaError::kOk; }
  constexpr explicit operator bool() const noexcept { return ok(); }
  constexpr XaError error() const noexcept { return error_; }
  /// The entry (empty when !ok()).
  constexpr Entry entry() const noexcept { return entry_; }

 private:
  Entry entry_{};
  XaError error_ = XaError::kOk;
};

/// The three marks (XA_MARK_0..2). A mark number ≥ 3 is rejected as invalid.
using XaMark = unsigned;
inline constexpr unsigned kXaMarks = 3;

}  // namespace mslab
