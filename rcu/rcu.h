// The RCU layer: a thin RAII layer over liburcu's urcu-memb flavor.
//
// Why urcu-memb: its read side is a thread-local counter update (~1–2 ns,
// inlined), and its grace periods use membarrier(2), so application threads
// never have to report quiescent states (QSBR would make every thread of a
// program that merely *reads* an XArray call rcu_quiescent_state()), and no
// signals are stolen (urcu-signal). See docs/rcu.md.
//
// A thread that enters a read section is registered on first use and
// unregistered at thread exit: never silently unprotected (liburcu itself
// does not check). TSan does not understand liburcu's fences, so the read
// and update sides carry __tsan_release/__tsan_acquire annotations.
// Depends on: liburcu (urcu-memb), alloc/error.h.
#pragma once

// The read-side primitives are inlined from liburcu's static headers (they
// are small enough to be used this way from non-LGPL code, per their own
// comment); without this they are out-of-line calls (~10 ns a pair).
#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE 1
#endif
#include <urcu/urcu-memb.h>

#include <cstddef>
#include <cstdint>

namespace mslab::rcu {
namespace detail {

extern constinit thread_local bool tl_registered;
extern constinit thread_local unsigned tl_read_depth;

void register_slow() noexcept;
void tsan_reader_release() noexcept;   // no-op unless built with TSan
void tsan_updater_acquire() noexcept;  // no-op unless built with TSan

}  // namespace detail

/// Registers the calling thread as an RCU reader. Idempotent and cheap after
/// the first call; the registration is dropped automatically at thread exit.
/// Any thread, any time outside a read section.
inline void register_thread() noexcept {
  if (!detail::tl_registered) detail::register_slow();
}

/// Drops the calling thread's registration early (it is re-registered by its
/// next read section). Must not be called inside a read section.
void unregister_thread() noexcept;

/// True while the calling thread is inside a read-side section.
inline bool in_read_section() noexcept { return detail::tl_read_depth != 0; }

/// A read-side critical section for its lifetime. Pointers loaded (with
/// acquire) from RCU-protected structures stay valid until it ends. Nests.
/// Never blocks; registers the thread on first use.
class ReadGuard {
 public:
  ReadGuard() noexcept {
    register_thread();
    ++detail::tl_read_depth;
    urcu_memb_read_lock();
  }
  ~ReadGuard() {
    detail::tsan_reader_release();
    urcu_memb_read_unlock();
    --detail::tl_read_depth;
  }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;
};

/// Waits until every read section that began before the call has ended.
/// Blocks (typically 2–100 µs). Calling it inside a read section would
/// deadlock: that is reported (ErrorCode::kInvalidArgument) and the call
/// returns at once without waiting.
void synchronize() noexcept;

// Grace-period cookies: the polling API that liburcu 0.13 lacks
// (get_state_synchronize_rcu / poll_state_synchronize_rcu in the kernel).
// Every synchronize() — ours, the deferred-free worker's, any caller's —
// is numbered: `started` is incremented before it waits and `completed` is
// raised to that number after. A grace period numbered n began after every
// cookie read that saw started < n.

/// A cookie for "a grace period that starts after now". Read it after
/// unpublishing an object; the object may be freed once gp_elapsed(cookie).
/// Lock-free, any context (a full fence, then one load).
std::uint64_t gp_cookie() noexcept;

/// True once a full grace period has passed since gp_cookie() returned
/// `cookie`. Lock-free, any context.
bool gp_elapsed(std::uint64_t cookie) noexcept;

}  // namespace mslab::rcu
