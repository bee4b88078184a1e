// Fork support: the three pthread_atfork handlers that make fork() safe
// while other threads allocate. prepare takes every lock of the slab layer
// in the documented order (cache registry → each cache → the global page
// allocator → the chunk arena → the metadata pool); parent and child
// release them, so the
// child never inherits a lock held by a thread that does not exist there.
// The malloc layer registers them; a program using slab caches directly
// may register them itself. Depends on: thread_heap, page_allocator,
// arena, meta_pool (the .cpp; this header on nothing).
#pragma once

namespace mslab {

/// Call right before fork() (pthread_atfork "prepare"). Blocks until every
/// lock is free; the calling thread must hold none of them.
void fork_prepare() noexcept;

/// Call in the parent right after fork(). Releases what fork_prepare took.
void fork_parent() noexcept;

/// Registers the three handlers above with pthread_atfork, once per
/// process (later calls do nothing). The layers above — the general
/// allocator, the RCU layer, the defrag registry — call it before they
/// register their own handlers, so that their "prepare", whose locks may
/// lead to ours, runs first (pthread_atfork runs prepare handlers in reverse
/// order of registration). A program that uses slab caches only calls it
/// itself. Call it outside every mslab lock: pthread_atfork may allocate.
void register_fork_handlers() noexcept;

/// Call in the child right after fork(). Releases what fork_prepare took.
/// Other threads' per-thread slabs stay theirs: their free slots are lost
/// to the child, which is correct but not reclaimed.
void fork_child() noexcept;

namespace detail {

/// The body of each layer's lock-for-fork hook: takes `m` (prepare) or
/// releases it (parent, child).
template <class Mutex>
void set_fork_lock(Mutex& m, bool lock) noexcept {
  if (lock)
    m.lock();
  else
    m.unlock();
}

}  // namespace detail
}  // namespace mslab
