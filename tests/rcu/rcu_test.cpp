// The RCU layer: automatic registration, grace periods waiting for readers,
// misuse reported, grace-period cookies.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "alloc/error.h"
#include "rcu/rcu.h"

using namespace mslab;
using namespace std::chrono_literals;

namespace {

// Records reported errors instead of aborting, for the scope of one test.
struct ErrorRecorder {
  std::atomic<int> count{0};
  std::atomic<ErrorCode> last{ErrorCode::kCorruption};
  ErrorRecorder() {
    set_error_handler(
        [](const ErrorInfo& info, void* self) {
          auto* r = static_cast<ErrorRecorder*>(self);
          r->last = info.code;
          r->count.fetch_add(1);
        },
        this);
  }
  ~ErrorRecorder() { set_error_handler(nullptr); }
};

}  // namespace

TEST_CASE("rcu: a reader that never registered is registered by its first read section") {
  std::atomic<int> phase{0};
  std::thread reader([&] {
    rcu::ReadGuard guard;  // no explicit register_thread()
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    std::this_thread::sleep_for(50ms);
  });
  while (phase != 1) std::this_thread::yield();
  std::atomic<bool> synced{false};
  std::thread updater([&] {
    rcu::synchronize();
    synced = true;
  });
  phase = 2;
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(synced.load());  // the grace period waits for the reader
  reader.join();
  updater.join();
  CHECK(synced.load());
}

TEST_CASE("rcu: read sections nest") {
  CHECK_FALSE(rcu::in_read_section());
  {
    rcu::ReadGuard outer;
    {
      rcu::ReadGuard inner;
      CHECK(rcu::in_read_section());
    }
    CHECK(rcu::in_read_section());
  }
  CHECK_FALSE(rcu::in_read_section());
}

TEST_CASE("rcu: synchronize inside a read section is reported, not a deadlock") {
  ErrorRecorder errors;
  {
    rcu::ReadGuard guard;
    rcu::synchronize();
  }
  CHECK(errors.count == 1);
  CHECK(errors.last == ErrorCode::kInvalidArgument);
}

TEST_CASE("rcu: a cookie elapses after a full grace period, not before") {
  const std::uint64_t cookie = rcu::gp_cookie();
  CHECK_FALSE(rcu::gp_elapsed(cookie));
  rcu::synchronize();
  CHECK(rcu::gp_elapsed(cookie));
  const std::uint64_t next = rcu::gp_cookie();
  CHECK(next > cookie);
  CHECK_FALSE(rcu::gp_elapsed(next));
}

TEST_CASE("rcu: a cookie taken while a reader is inside elapses only after it leaves") {
  std::atomic<int> phase{0};
  std::thread reader([&] {
    rcu::ReadGuard guard;
    phase = 1;
    while (phase != 2) std::this_thread::yield();
  });
  while (phase != 1) std::this_thread::yield();
  const std::uint64_t cookie = rcu::gp_cookie();
  std::atomic<bool> synced{false};
  std::thread updater([&] {
    rcu::synchronize();
    synced = true;
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(rcu::gp_elapsed(cookie));
  CHECK_FALSE(synced.load());
  phase = 2;
  reader.join();
  updater.join();
  CHECK(rcu::gp_elapsed(cookie));
}
