// Node allocation policies for the XArray: where nodes come from and how a
// removed node is freed after the RCU grace period.
//
// A policy is a class with three static functions (a template parameter of
// BasicXArray, so the choice costs nothing at run time):
//   static void* allocate(std::size_t bytes) noexcept;  // nullptr = no memory
//   static void free_now(void* p) noexcept;             // never published
//   static void free_deferred(void* p) noexcept;        // after a grace period
// SlabNodeAlloc (the default) takes nodes from one slab cache per node size,
// named "xa_node", created on first use: the cache the defragmenter will
// move nodes out of. MallocNodeAlloc uses malloc, the benchmark's baseline.
#pragma once

#include <cstddef>
#include <cstdlib>

#include "rcu/deferred_free.h"

namespace mslab {

class SlabCache;

namespace xa_detail {
/// The node cache for nodes of `bytes` bytes, created on first use ("xa_node";
/// one cache per distinct node size, i.e. per chunk shift in use). Returns
/// nullptr if the cache cannot be created (then a later call tries again).
/// Thread-safe.
SlabCache* node_cache(std::size_t bytes) noexcept;
void* node_cache_alloc(std::size_t bytes) noexcept;
void node_cache_free(void* p) noexcept;
}  // namespace xa_detail

struct SlabNodeAlloc {
  static void* allocate(std::size_t bytes) noexcept { return xa_detail::node_cache_alloc(bytes); }
  static void free_now(void* p) noexcept { xa_detail::node_cache_free(p); }
  // The deferred-free worker finds the owning cache from the pointer.
  static void free_deferred(void* p) noexcept { rcu::defer_free(p); }
};

struct MallocNodeAlloc {
  static void* allocate(std::size_t bytes) noexcept { return std::malloc(bytes); }
  static void free_now(void* p) noexcept { std::free(p); }
  static void free_deferred(void* p) noexcept { rcu::defer_free(p, &free_now); }
};

}  // namespace mslab
