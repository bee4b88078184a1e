// Error reporting for bad input (double free, foreign or interior pointers,
// invalid sizes). Every layer reports through report_error(); the default
// handler prints one line naming the cache and the pointer and aborts. A
// program or a test may install its own handler: if it returns, the faulty
// operation is abandoned and has no effect. Depends on nothing.
#pragma once

#include <cstddef>

namespace mslab {

enum class ErrorCode {
  kDoubleFree,       // the slot is already free
  kForeignPointer,   // the pointer was not handed out by this allocator/cache
  kInteriorPointer,  // points inside an object, not at its start
  kInvalidArgument,  // invalid size, alignment, order or name
  kOutOfMemory,      // the OS refused memory (reported only where asked)
  kCorruption,       // a validate() walk found a broken invariant
};

/// A short stable name for `code`, e.g. "double-free".
const char* error_name(ErrorCode code) noexcept;

/// What a handler receives. `message` is a complete sentence naming the
/// cache (if any) and the pointer; it lives only during the call.
struct ErrorInfo {
  ErrorCode code;
  const char* cache_name;  // nullptr when no cache is involved
  const void* pointer;     // the offending pointer, may be nullptr
  const char* message;
};

using ErrorHandler = void (*)(const ErrorInfo& info, void* context);

/// Installs `handler` (nullptr restores the default: print and abort) and
/// returns nothing; the previous handler is replaced. Thread-safe; the handler
/// may be called from any thread, concurrently, and must not allocate from
/// the cache that reported the error.
void set_error_handler(ErrorHandler handler, void* context = nullptr) noexcept;

/// Reports an error through the installed handler. Returns if the handler
/// returns (the caller then abandons the operation). Never allocates.
void report_error(ErrorCode code, const char* cache_name, const void* pointer,
                  const char* what) noexcept;

}  // namespace mslab
