// Helpers shared by the malloc tests: capture errors instead of aborting.
#pragma once

#include <vector>

#include "alloc/error.h"

namespace mslab::test {

/// Installs an error handler that records codes for its lifetime.
class ErrorCapture {
 public:
  ErrorCapture() { set_error_handler(&record, this); }
  ~ErrorCapture() { set_error_handler(nullptr); }
  ErrorCapture(const ErrorCapture&) = delete;
  ErrorCapture& operator=(const ErrorCapture&) = delete;

  const std::vector<ErrorCode>& codes() const { return codes_; }
  bool saw(ErrorCode code) const {
    for (ErrorCode c : codes_)
      if (c == code) return true;
    return false;
  }

 private:
  static void record(const ErrorInfo& info, void* self) { static_cast<ErrorCapture*>(self)->codes_.push_back(info.code); }
  std::vector<ErrorCode> codes_;
};

}  // namespace mslab::test
