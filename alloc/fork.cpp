// Fork handlers (fork.h): lock order as in thread_heap.cpp and
// slab_cache.cpp — registry, caches, page allocator, arena, metadata pool.
#include "alloc/fork.h"

#include <pthread.h>

#include <atomic>

#include "alloc/meta_pool.h"
#include "alloc/page_allocator.h"
#include "alloc/thread_heap.h"

namespace mslab {
namespace {

void unlock_all() noexcept {
  detail::meta_lock_for_fork(false);
  detail::arena_lock_for_fork(false);
  PageAllocator::global().lock_for_fork(false);
  detail::lock_caches_for_fork(false);
}

}  // namespace

void fork_prepare() noexcept {
  detail::lock_caches_for_fork(true);
  PageAllocator::global().lock_for_fork(true);
  detail::arena_lock_for_fork(true);
  detail::meta_lock_for_fork(true);
}

void fork_parent() noexcept { unlock_all(); }

void fork_child() noexcept { unlock_all(); }

void register_fork_handlers() noexcept {
  static std::atomic<bool> registered{false};
  bool expected = false;
  if (registered.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

}  // namespace mslab
