// Run-time options of the general allocator, read once from the
// environment at initialisation, in the style of mimalloc's MIMALLOC_*:
//
//   MSLAB_SHOW_STATS=1     print the statistics (stats.h) to stderr at exit
//   MSLAB_VERBOSE=1        one line at initialisation naming the options in
//                          force, and one per allocation that fails
//   MSLAB_PURGE_DELAY=ms   free pages go back to the OS (MADV_DONTNEED) once
//                          free this long; 0 at once, -1 never (default 10,
//                          the page allocator's PagePolicy::purge_delay_ms)
//   MSLAB_LIMIT=size       cap on the memory mapped for objects (bytes, or
//                          with a k/m/g suffix); allocations beyond it fail
//                          as out of memory (tests use it for OOM paths)
//
// An unparsable value is ignored with a warning line. Reading the
// environment never allocates, so this works inside malloc.
// Depends on: alloc/platform, alloc/page_allocator.
#pragma once

#include <cstddef>

namespace mslab {

struct MallocOptions {
  bool show_stats = false;
  bool verbose = false;
  long purge_delay_ms = -2;  // -2: not set (the page allocator's default)
  std::size_t limit = 0;     // 0: none
};

/// The options in force (valid once the allocator has initialised).
const MallocOptions& malloc_options() noexcept;

/// Changes the memory limit at run time (0 removes it). Thread-safe.
void set_memory_limit(std::size_t bytes) noexcept;

namespace detail {

/// Reads the MSLAB_* variables and applies them (limit, purge policy).
/// Called once, by the initialising thread.
void load_options() noexcept;

/// Parses "123", "64k", "16M", "1g" into bytes; false if malformed.
bool parse_size(const char* text, std::size_t* bytes) noexcept;

}  // namespace detail
}  // namespace mslab
