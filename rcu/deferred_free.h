// Deferred free: free memory once every RCU reader that might still see it
// has left its read section — kvfree_rcu for user space.
//
// Headless: defer_free(p) needs nothing inside the object (arrays, buffers,
// slab objects). Pointers are batched into pages of pointers; a batch
// carries a grace-period cookie, and one whose grace period already elapsed
// is freed without waiting for another. The freeing runs in one worker
// thread, never on the caller's path or under the caller's locks. See
// docs/rcu.md for the flow and the cookie scheme.
// Depends on: rcu.h, alloc/ (page allocator for the batches, slab lookup
// to find each pointer's owner).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mslab::rcu {

/// How a deferred pointer is finally freed; nullptr means "by its owner":
/// its slab cache, its page allocator, else std::free().
using FreeFn = void (*)(void* object);

/// Queues `p` to be freed after a grace period, by its owner (see FreeFn).
/// Lock-free for the caller in the common case, and allowed inside a read
/// section. Blocks only when (a) the pending bytes exceed the limit and the
/// caller is outside a read section (it waits for the worker), (b) in a
/// flood (more than DeferredOptions::help_above_bytes pending), once per
/// 8 full batches (2032 pointers): the caller runs one grace period itself
/// (like liburcu's defer_rcu), outside read sections and free functions
/// only, or (c) no memory is left for a batch: outside a read section the
/// caller then waits for a grace period and frees `p` itself; inside one it
/// uses a small static reserve, and only when that too is exhausted reports
/// kOutOfMemory and leaks `p`. A null `p` is ignored. Thread-safe.
///
/// Where frees run: on the worker thread — except in a flood, when the
/// calling thread frees its own earlier batches whose grace period has
/// elapsed, inside this call. So a free function (FreeFn, ~T() of
/// defer_delete) must not take a lock that callers of defer_free hold
/// around the call — the same rule that keeps the waiting in (a) from
/// deadlocking with the worker.
void defer_free(void* p) noexcept;

/// As defer_free(p), but freed by calling `fn(p)` (see "where frees run").
/// The pending-bytes limit counts `p`'s size when mslab owns it; memory
/// mslab does not own counts only its 16-byte queue entry, so pass its
/// size with the three-argument form for the limit to see it.
void defer_free(void* p, FreeFn fn) noexcept;

/// As defer_free(p, fn), with `bytes` counted against the pending limit.
void defer_free(void* p, FreeFn fn, std::size_t bytes) noexcept;

namespace detail {
// The typed form's free: slab cache, page allocator, else ::operator delete
// (memory from plain `new`); the untyped form falls back to std::free.
void free_by_owner(void* p) noexcept;
void defer_with_size(void* p, FreeFn fn, std::size_t bytes) noexcept;
template <class T>
void destroy_then_free(void* p) noexcept {
  static_cast<T*>(p)->~T();
  free_by_owner(p);
}
}  // namespace detail

/// Typed form: after a grace period, runs ~T() and then frees the memory by
/// its owner (a slab cache, the page allocator, or ::operator delete for
/// memory from plain `new`). Same context rules as defer_free().
template <class T>
void defer_delete(T* p) noexcept {
  if (p != nullptr) detail::defer_with_size(p, &detail::destroy_then_free<T>, sizeof(T));
}

/// Returns once everything queued (by any thread) before the call has been
/// freed. Blocks for at least one grace period when anything is pending.
/// Must not be called inside a read section (reported, returns at once).
void barrier() noexcept;

/// Frees everything pending and stops the worker (also done at normal
/// process exit). Later deferred frees wait for a grace period and free
/// directly. Must not be called inside a read section.
void shutdown() noexcept;

struct DeferredOptions {
  // Producers outside read sections wait while more than this is pending.
  // Each pointer counts its object's size (see defer_free) plus its 16-byte
  // entry in a batch.
  // Pending bytes stay below the limit plus two batches (254 objects) per
  // producing thread: each checks once per submitted batch, and the worker
  // may add its partial batch.
  std::size_t pending_limit_bytes = 64u << 20;
  std::uint32_t flush_interval_us = 1000;       // partial batches are taken after this
  // Past this many pending bytes (a flood), producers help: each keeps its
  // own full batches, runs a grace period itself when it holds 8, and frees
  // them (local frees, spread over the producing CPUs), until a whole flush
  // interval passes in which no producer filled its 8. Their free
  // functions then run on the producer, inside defer_free. SIZE_MAX: never.
  // 128 KiB: the backlog the worker still holds when helping starts is most
  // of a flood's pending peak (256 KiB: ~480 KiB sampled peak in the 10 M
  // flood; 128 KiB: ~340–390); at 64 KiB a steady 1 M frees/s started
  // helping too, and its rings held pointers for milliseconds.
  std::size_t help_above_bytes = 128u << 10;
};

/// Replaces the options. Thread-safe; takes effect at the next worker cycle.
void set_deferred_options(const DeferredOptions& options) noexcept;
DeferredOptions deferred_options() noexcept;

struct DeferredStats {
  std::uint64_t queued;              // pointers ever queued
  std::uint64_t freed;               // pointers ever freed
  std::uint64_t grace_periods;       // grace periods the worker waited for
  std::uint64_t batches;             // batches processed
  std::uint64_t batches_elapsed;     // batches freed without waiting (cookie had elapsed)
  std::uint64_t producer_waits;      // times a producer waited on the pending limit
  std::uint64_t producer_grace_periods;  // grace periods run by helping producers (8 batches held)
  std::uint64_t emergency_frees;     // pointers freed by the caller after its own grace period
  std::uint64_t reserve_batches;     // batches taken from the static reserve
  std::uint64_t leaked;              // pointers lost (no memory, inside a read section)
  std::uint64_t helped;              // pointers freed by the producer that queued them (helping)
  std::size_t pending_bytes;         // queued, not yet freed (in submitted batches)
  std::size_t peak_pending_bytes;    // the most pending_bytes has been
  bool helping;                      // producers help now (a flood)
};

DeferredStats deferred_stats() noexcept;

}  // namespace mslab::rcu
