// Statistics of the general allocator: a snapshot struct and a printer.
// Both only read counters and the slab caches' stats (which take each
// cache's lock briefly); neither allocates, so they may run at exit, in a
// signal-free context inside the preload library, or from a debugger.
// Depends on: malloc (the class caches), huge, alloc/page_allocator.
#pragma once

#include <cstddef>

namespace mslab {

struct MallocStats {
  std::size_t small_live_objects;    // over every class (exact when no thread allocates)
  std::size_t small_live_bytes;      // live objects × class size
  std::size_t small_reserved_bytes;  // slabs held by the class caches
  std::size_t medium_blocks, medium_bytes;  // buddy blocks handed out (block sizes)
  std::size_t huge_blocks, huge_bytes;      // OS mappings handed out
  std::size_t os_reserved_bytes;     // mapped for objects (what MSLAB_LIMIT caps)
  std::size_t page_free_bytes;       // free in the page allocator (resident or purged)
  std::size_t page_purged_bytes;     // of which given back to the OS
  std::size_t rss_bytes;             // resident set of the process
};

/// A snapshot. Thread-safe; takes each class cache's lock in turn.
MallocStats malloc_stats() noexcept;

/// Writes the statistics (totals, then one line per class in use) to
/// stderr with write(2). Thread-safe; never allocates.
void print_stats() noexcept;

namespace detail {

/// One line naming the options in force (MSLAB_VERBOSE).
void print_options() noexcept;

// Counters of the medium path (relaxed atomics, in malloc.cpp).
void medium_counts(std::size_t* blocks, std::size_t* bytes) noexcept;

}  // namespace detail
}  // namespace mslab
