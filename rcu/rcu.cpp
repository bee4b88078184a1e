// Thread registration, synchronize() and the TSan annotations (rcu.h).
#include "rcu/rcu.h"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <new>
#include <shared_mutex>

#include "alloc/error.h"

#include "alloc/config.h"  // MSLAB_TSAN

#ifdef MSLAB_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace mslab::rcu {
namespace detail {

constinit thread_local bool tl_registered = false;
constinit thread_local unsigned tl_read_depth = 0;

namespace {

// Readers "release" this token when they leave a section, and an updater
// "acquires" it after a grace period: for TSan, everything a reader did
// happens before what the updater does next (e.g. free the object).
char g_tsan_token;

pthread_key_t g_exit_key;

std::atomic<std::uint64_t> g_gp_started{0};
std::atomic<std::uint64_t> g_gp_completed{0};

// After fork(), in the child, only the forking thread runs, but liburcu's
// registry still lists the parent's other readers, and urcu-memb has no
// fork support for that registry (../shared/research/urcu.md §1.5): a
// reader that was inside a section at the fork would hold every later grace
// period for ever. Until another thread registers in the child no other
// reader can exist, so a grace period ends as soon as it begins.
std::atomic<bool> g_single_after_fork{false};
pthread_t g_fork_thread;

// liburcu's registry and grace-period locks, held by a thread inside
// urcu_memb_register_thread / _unregister_thread / _synchronize_rcu at the
// fork, would stay held in the child for ever (its next registration
// hangs). Every such call holds this lock shared; fork takes it exclusive,
// so no thread is inside liburcu at the fork. (Forking inside a read
// section would wait for ever on a synchronize that waits for it: don't.)
std::shared_mutex g_urcu_calls;

void before_fork() noexcept { g_urcu_calls.lock(); }
void after_fork_parent() noexcept { g_urcu_calls.unlock(); }
void after_fork_child() noexcept {
  // Not unlock(): the child's thread has a new id, and glibc's rwlock
  // checks the writer's id. Only this thread exists: start afresh.
  new (&g_urcu_calls) std::shared_mutex;
  g_fork_thread = pthread_self();
  g_single_after_fork.store(true, std::memory_order_relaxed);
}

void register_fork_handlers_once() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
}

void on_thread_exit(void*) noexcept {
  if (tl_registered) {
    std::shared_lock calls(g_urcu_calls);
    urcu_memb_unregister_thread();
    tl_registered = false;
  }
}

}  // namespace

void register_slow() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { pthread_key_create(&g_exit_key, on_thread_exit); });
  register_fork_handlers_once();
  // A second thread reading in a forked child: real grace periods again.
  // seq_cst, with synchronize()'s load: an updater that still saw "single"
  // finished its grace period before this reader could begin a section.
  if (g_single_after_fork.load(std::memory_order_relaxed) && !pthread_equal(pthread_self(), g_fork_thread))
    g_single_after_fork.store(false, std::memory_order_seq_cst);
  std::shared_lock calls(g_urcu_calls);
  urcu_memb_register_thread();
  tl_registered = true;
  // A non-null value makes the key's destructor run at thread exit.
  pthread_setspecific(g_exit_key, &g_tsan_token);
}

void tsan_reader_release() noexcept {
#ifdef MSLAB_TSAN
  __tsan_release(&g_tsan_token);
#endif
}

void tsan_updater_acquire() noexcept {
#ifdef MSLAB_TSAN
  __tsan_acquire(&g_tsan_token);
#endif
}

}  // namespace detail

void unregister_thread() noexcept {
  if (in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, nullptr, nullptr, "rcu::unregister_thread() inside a read section");
    return;
  }
  detail::on_thread_exit(nullptr);
}

void synchronize() noexcept {
  if (in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, nullptr, nullptr,
                 "rcu::synchronize() inside a read section would deadlock");
    return;
  }
  // seq_cst: pairs with the fence in gp_cookie(); a cookie reader that saw
  // the old value read it before this grace period began.
  const std::uint64_t mine = detail::g_gp_started.fetch_add(1, std::memory_order_seq_cst) + 1;
  detail::register_fork_handlers_once();
  if (!detail::g_single_after_fork.load(std::memory_order_seq_cst)) {
    std::shared_lock calls(detail::g_urcu_calls);
    urcu_memb_synchronize_rcu();
  }
  detail::tsan_updater_acquire();
  std::uint64_t done = detail::g_gp_completed.load(std::memory_order_relaxed);
  while (done < mine &&
         !detail::g_gp_completed.compare_exchange_weak(done, mine, std::memory_order_release, std::memory_order_relaxed)) {
  }
}

std::uint64_t gp_cookie() noexcept {
  // Orders the caller's unpublishing stores before the load (StoreLoad).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return detail::g_gp_started.load(std::memory_order_relaxed) + 1;
}

bool gp_elapsed(std::uint64_t cookie) noexcept {
  if (detail::g_gp_completed.load(std::memory_order_acquire) < cookie) return false;
  detail::tsan_updater_acquire();
  return true;
}

}  // namespace mslab::rcu
