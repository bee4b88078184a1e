// Helpers shared by the alloc/ tests: sanitizer-aware stress sizes, an error
// recorder (a handler for mslab::set_error_handler), a validate() wrapper
// that turns a kCorruption report into a test failure with its message
// instead of an abort, owners for caches and page allocators, and a runner
// for code that must abort or may crash (in a forked child).
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <new>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "alloc/error.h"
#include "alloc/slab_cache.h"


namespace mslab::test {

#ifdef MSLAB_TSAN
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif
#ifdef MSLAB_ASAN
inline constexpr bool kUnderAsan = true;
#else
inline constexpr bool kUnderAsan = false;
#endif
inline constexpr bool kSanitized = kUnderTsan || kUnderAsan;

/// A stress size: `n` in a plain build, a fraction of it under the
/// sanitizers (TSan is the slowest), never below `floor`.
constexpr std::size_t scaled(std::size_t n, std::size_t floor = 1) noexcept {
  const std::size_t s = kUnderTsan ? n / 4 : kUnderAsan ? n / 2 : n;
  return s < floor ? floor : s;
}

/// Installs itself as the mslab error handler for its lifetime and records
/// every report; the destructor restores the enclosing recorder, or the
/// default handler (nullptr) when there is none. Recorders nest (e.g. the
/// one of validate_report() inside a test's own); create and destroy them on
/// one thread. The handler itself may run on any thread.
class ErrorRecorder {
 public:
  struct Record {
    ErrorCode code;
    std::string cache_name;  // empty when the report named no cache
    bool has_cache;
    const void* pointer;
    std::string message;
  };

  ErrorRecorder() noexcept : outer_(innermost()) {
    innermost() = this;
    set_error_handler(&ErrorRecorder::handle, this);
  }
  ~ErrorRecorder() {
    innermost() = outer_;
    if (outer_ != nullptr) set_error_handler(&ErrorRecorder::handle, outer_);
    else set_error_handler(nullptr);
  }
  ErrorRecorder(const ErrorRecorder&) = delete;
  ErrorRecorder& operator=(const ErrorRecorder&) = delete;

  std::size_t count() const {
    std::lock_guard guard(lock_);
    return records_.size();
  }
  std::vector<Record> records() const {
    std::lock_guard guard(lock_);
    return records_;
  }
  /// The last report; requires at least one.
  Record last() const {
    std::lock_guard guard(lock_);
    REQUIRE(!records_.empty());
    return records_.back();
  }
  void clear() {
    std::lock_guard guard(lock_);
    records_.clear();
  }
  std::string messages() const {
    std::lock_guard guard(lock_);
    std::string out;
    for (const Record& r : records_) out += r.message + "\n";
    return out;
  }

 private:
  static void handle(const ErrorInfo& info, void* context) {
    auto* self = static_cast<ErrorRecorder*>(context);
    Record r{info.code, info.cache_name != nullptr ? info.cache_name : "", info.cache_name != nullptr,
             info.pointer, info.message != nullptr ? info.message : ""};
    std::lock_guard guard(self->lock_);
    self->records_.push_back(std::move(r));
  }

  static ErrorRecorder*& innermost() noexcept {
    static ErrorRecorder* current = nullptr;
    return current;
  }

  ErrorRecorder* outer_;
  mutable std::mutex lock_;
  std::vector<Record> records_;
};

/// Runs x.validate() with a recorder installed. Returns "" when it passes
/// cleanly, otherwise the reported messages (so CHECK shows them).
template <class T>
std::string validate_report(const T& x) {
  ErrorRecorder recorder;
  const bool ok = x.validate();
  std::string out = recorder.messages();
  if (!ok && out.empty()) out = "validate() returned false without reporting an error";
  if (ok && !out.empty()) out = "validate() returned true but reported: " + out;
  return out;
}

#define CHECK_VALID(x) CHECK(::mslab::test::validate_report(x) == std::string())

/// "%p" of a pointer, as mslab's messages print it.
inline std::string pointer_text(const void* p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", p);
  return buf;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Owns a cache; destroy()s it on scope exit unless release()d. Declare the
/// PageAllocator it uses before it, so that the cache goes first.
class CacheHandle {
 public:
  explicit CacheHandle(SlabCache* cache = nullptr) noexcept : cache_(cache) {}
  ~CacheHandle() { reset(); }
  CacheHandle(const CacheHandle&) = delete;
  CacheHandle& operator=(const CacheHandle&) = delete;
  CacheHandle(CacheHandle&& other) noexcept : cache_(other.cache_) { other.cache_ = nullptr; }

  SlabCache* get() const noexcept { return cache_; }
  SlabCache* operator->() const noexcept { return cache_; }
  SlabCache& operator*() const noexcept { return *cache_; }
  explicit operator bool() const noexcept { return cache_ != nullptr; }
  SlabCache* release() noexcept {
    SlabCache* c = cache_;
    cache_ = nullptr;
    return c;
  }
  void reset() noexcept {
    if (cache_ != nullptr) cache_->destroy();
    cache_ = nullptr;
  }

 private:
  SlabCache* cache_;
};

/// A cache of `size`-byte objects drawing from `pages`.
inline CacheHandle make_cache(const char* name, std::size_t size, PageAllocator* pages, std::size_t align = 0,
                              std::size_t empty_reserve = 1) {
  CacheError error{};
  CacheOptions options;
  options.name = name;
  options.object_size = size;
  options.align = align;
  options.empty_reserve = empty_reserve;
  options.pages = pages;
  SlabCache* cache = SlabCache::create(options, &error);
  REQUIRE_MESSAGE(cache != nullptr, (error.message != nullptr ? error.message : "create failed"));
  return CacheHandle(cache);
}

/// Objects per slab of `cache`.
inline std::size_t capacity_of(const SlabCache& cache) { return cache.stats().objects_per_slab; }

/// The CacheStats::occupancy bin of a slab with `live` of `capacity`
/// objects: 0 for empty, then (0,10 %] → 1 … (90,100 %] → 10.
constexpr std::size_t occupancy_bin(std::size_t live, std::size_t capacity) {
  return live == 0 ? 0 : (live * 10 + capacity - 1) / capacity;
}

/// A page policy with nothing time-dependent: wholly free chunks are kept
/// (up to `retain`), nothing is purged during a test.
inline PagePolicy steady_policy(std::size_t retain = 64) {
  PagePolicy p;
  p.retain_free_chunks = retain;
  p.release_delay_ms = 0;
  p.purge_order = kMaxOrder;
  p.purge_delay_ms = 3'600'000;
  return p;
}

/// Owns a PageAllocator for one test (declare it before the caches that use
/// it, so that they are destroyed first). Only a thin wrapper: tests write
/// `TestPages owner(policy); PageAllocator& pages = owner.get();`.
class TestPages {
 public:
  explicit TestPages(const PagePolicy& policy) noexcept : pages_(policy) {}
  TestPages(const TestPages&) = delete;
  TestPages& operator=(const TestPages&) = delete;

  PageAllocator& get() noexcept { return pages_; }

 private:
  PageAllocator pages_;
};

/// How a child process ended (run_in_child).
struct ChildResult {
  bool exited = false;     // exited normally …
  int exit_code = -1;      // … with this status
  bool signaled = false;   // killed by a signal …
  int signal = 0;          // … this one
  bool timed_out = false;  // still running at the deadline (then killed)
  std::string err;         // what it wrote to stderr
};

/// Forks; the child restores the default signal dispositions (doctest's
/// crash handlers would otherwise report it as a test of its own), sends
/// stdout to /dev/null and stderr to a pipe, runs `fn` and exits with 0 if
/// it returned true, else 1. The parent collects stderr and the status,
/// killing the child after `timeout_ms`. Call with no other thread running.
template <class Fn>
ChildResult run_in_child(Fn&& fn, int timeout_ms = 20000) {
  ChildResult result;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTERM}) ::signal(sig, SIG_DFL);
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, STDOUT_FILENO);
    const bool ok = fn();
    ::_exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  int status = 0;
  bool reaped = false, eof = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!(reaped && eof)) {
    if (!eof) {
      pollfd pfd{fds[0], POLLIN, 0};
      ::poll(&pfd, 1, 10);
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) {
          result.err.append(buf, static_cast<std::size_t>(n));
          continue;
        }
        if (n == 0) eof = true;
        break;
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!reaped && ::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    if (!reaped && std::chrono::steady_clock::now() > deadline) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      reaped = true;
      eof = true;
    }
  }
  ::close(fds[0]);
  if (!result.timed_out) {
    result.exited = WIFEXITED(status);
    result.exit_code = result.exited ? WEXITSTATUS(status) : -1;
    result.signaled = WIFSIGNALED(status);
    result.signal = result.signaled ? WTERMSIG(status) : 0;
  }
  return result;
}

/// "exited 0", "killed by signal 6", … for messages.
inline std::string describe(const ChildResult& r) {
  std::string out;
  if (r.timed_out) out = "timed out (killed)";
  else if (r.signaled) out = "killed by signal " + std::to_string(r.signal);
  else out = "exited with status " + std::to_string(r.exit_code);
  return out + "; stderr: [" + r.err + "]";
}

inline std::uintptr_t addr(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace mslab::test
