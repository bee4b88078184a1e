// The small types of the XArray's ID allocation: the array's mode flags
// (XA_FLAGS_ALLOC / XA_FLAGS_ALLOC1), an id range (struct xa_limit) and the
// result of an allocation.
#pragma once

#include <climits>
#include <cstdint>

#include "xarray/entry.h"

namespace mslab {

/// How an array is set up (xa_init_flags). Fixed for the array's lifetime.
/// An allocating array tracks free indices with mark 0 (the kernel's
/// XA_FREE_MARK), so its users have marks 1 and 2 only.
enum class XaFlags : std::uint8_t {
  kNone = 0,
  kAlloc,   // XA_FLAGS_ALLOC: alloc() hands out ids from 0
  kAlloc1,  // XA_FLAGS_ALLOC1: index 0 is never handed out (ids from 1)
};

/// The mark an allocating array keeps for itself: set on free indices.
inline constexpr XaMark kXaFreeMark = 0;

/// An inclusive id range [min, max] (struct xa_limit, XA_LIMIT).
struct XaLimit {
  unsigned long min = 0;
  unsigned long max = ~0UL;
};
inline constexpr XaLimit kXaLimit32b{0, UINT_MAX};  // xa_limit_32b
inline constexpr XaLimit kXaLimit31b{0, INT_MAX};   // xa_limit_31b

/// The result of alloc()/alloc_cyclic(): the id, or an error.
///  - kBusy: no free index in the range;
///  - kNoMemory: a node could not be allocated (array unchanged);
///  - kInvalid: not an allocating array, an invalid entry, or min > max.
/// wrapped(): alloc_cyclic() started again from the range's minimum to find
/// this id (xa_alloc_cyclic returning 1).
class XaAllocResult {
 public:
  constexpr XaAllocResult(XaError e) noexcept : error_(e) {}  // NOLINT: implicit on purpose
  static constexpr XaAllocResult success(unsigned long id, bool wrapped) noexcept {
    XaAllocResult r(XaError::kOk);
    r.id_ = id;
    r.wrapped_ = wrapped;
    return r;
  }
  constexpr bool ok() const noexcept { return error_ == XaError::kOk; }
  constexpr explicit operator bool() const noexcept { return ok(); }
  constexpr XaError error() const noexcept { return error_; }
  /// The allocated id (0 when !ok()).
  constexpr unsigned long id() const noexcept { return id_; }
  constexpr bool wrapped() const noexcept { return wrapped_; }

 private:
  unsigned long id_ = 0;
  XaError error_;
  bool wrapped_ = false;
};

}  // namespace mslab
