// Transfer pools between threads' free stacks (as tcmalloc's transfer
// cache): when a thread's stack of a class overflows, its older half goes
// here as one batch instead of back to the slab layer; a thread whose stack
// is empty takes a whole batch back. Objects freed by a consumer thread
// thus reach the producer thread 16–32 at a time, for one lock each way.
//
// Batched objects keep the double-free key of tcache.h (a free of one is
// still reported) and count as live in the slab statistics. A pool holds at
// most 64 KiB of objects per class; beyond, overflows go to the slab layer
// as before. trim() drains the pools.
// Depends on: size_class, alloc/meta_pool.
#pragma once

#include <atomic>
#include <cstdint>

#include "alloc/config.h"
#include "malloc/size_class.h"

namespace mslab::detail {

// Batches waiting in the pool of each class (read without the lock as a hint).
extern constinit std::atomic<std::uint32_t> g_transfer_batches[kClasses];

/// Parks `n` objects of class `c` as one batch. False when the pool is full
/// or no batch record can be had: the caller frees them itself. Takes the
/// pools' lock.
bool transfer_put(unsigned c, void* const* objects, unsigned n) noexcept;

/// Moves one batch of class `c` into `out` and returns its size (0: none).
unsigned transfer_take(unsigned c, void** out) noexcept;

/// Frees every parked object to its class cache (trim). Clears the keys.
void transfer_drain() noexcept;

/// Fork support: takes or releases the pools' lock.
void transfer_lock_for_fork(bool lock) noexcept;

}  // namespace mslab::detail
