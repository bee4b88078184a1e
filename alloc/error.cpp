// Default error handler and the dispatch to user handlers (error.h).
#include "alloc/error.h"

#include "alloc/platform.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace mslab {
namespace {

// The context is stored before the handler (release), and read after it
// (acquire), so a reader that sees a handler sees its context.
std::atomic<ErrorHandler> g_handler{nullptr};
std::atomic<void*> g_context{nullptr};

}  // namespace

const char* error_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kDoubleFree: return "double-free";
    case ErrorCode::kForeignPointer: return "foreign-pointer";
    case ErrorCode::kInteriorPointer: return "interior-pointer";
    case ErrorCode::kInvalidArgument: return "invalid-argument";
    case ErrorCode::kOutOfMemory: return "out-of-memory";
    case ErrorCode::kCorruption: return "corruption";
  }
  return "unknown";
}

void set_error_handler(ErrorHandler handler, void* context) noexcept {
  g_context.store(context, std::memory_order_relaxed);
  g_handler.store(handler, std::memory_order_release);  // pairs with the acquire in report_error
}

void report_error(ErrorCode code, const char* cache_name, const void* pointer,
                  const char* what) noexcept {
  char message[256];
  if (cache_name != nullptr)
    std::snprintf(message, sizeof message, "mslab: %s: %s (cache \"%s\", pointer %p)",
                  error_name(code), what, cache_name, pointer);
  else
    std::snprintf(message, sizeof message, "mslab: %s: %s (pointer %p)", error_name(code),
                  what, pointer);
  if (ErrorHandler handler = g_handler.load(std::memory_order_acquire)) {
    handler(ErrorInfo{code, cache_name, pointer, message}, g_context.load(std::memory_order_relaxed));
    return;
  }
  // Default: one line on stderr, then abort.
  os::write_error_line(message);
  std::abort();
}

}  // namespace mslab
