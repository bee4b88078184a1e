// Statistics snapshot and printer (stats.h). Lines are formatted with
// snprintf into stack buffers (no allocation for these conversions) and
// written with one write(2) each.
#include "malloc/stats.h"

#include <cstdarg>
#include <cstdio>

#include "alloc/platform.h"
#include "malloc/huge.h"
#include "malloc/malloc.h"
#include "malloc/options.h"

namespace mslab {
namespace {

__attribute__((format(printf, 1, 2))) void line(const char* format, ...) noexcept {
  char text[256];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  os::write_error_line(text);
}

}  // namespace

MallocStats malloc_stats() noexcept {
  MallocStats s{};
  for (unsigned c = 0; c < detail::kClasses; ++c) {
    SlabCache* cache = detail::g_class_cache[c].load(std::memory_order_acquire);
    if (cache == nullptr) continue;
    const CacheStats cs = cache->stats();
    s.small_live_objects += cs.live_objects;
    s.small_live_bytes += cs.live_objects * detail::kClassSize[c];
    s.small_reserved_bytes += cs.bytes_reserved;
  }
  detail::medium_counts(&s.medium_blocks, &s.medium_bytes);
  const detail::HugeStats h = detail::huge_stats();
  s.huge_blocks = h.blocks;
  s.huge_bytes = h.bytes;
  s.os_reserved_bytes = os::reserved_bytes();
  const PageStats ps = PageAllocator::global().stats();
  s.page_free_bytes = ps.bytes_free;
  s.page_purged_bytes = ps.bytes_purged;
  s.rss_bytes = os::resident_bytes();
  return s;
}

void print_stats() noexcept {
  const MallocStats s = malloc_stats();
  line("mslab: statistics (KiB)");
  line("  small   %10zu live objects %10zu live %10zu in slabs", s.small_live_objects, s.small_live_bytes >> 10,
       s.small_reserved_bytes >> 10);
  line("  medium  %10zu blocks       %10zu", s.medium_blocks, s.medium_bytes >> 10);
  line("  huge    %10zu blocks       %10zu", s.huge_blocks, s.huge_bytes >> 10);
  line("  pages   %10zu mapped       %10zu free %10zu purged", s.os_reserved_bytes >> 10, s.page_free_bytes >> 10,
       s.page_purged_bytes >> 10);
  line("  rss     %10zu", s.rss_bytes >> 10);
  line("  class  size     live  slabs  KiB-in-slabs");
  for (unsigned c = 0; c < detail::kClasses; ++c) {
    SlabCache* cache = detail::g_class_cache[c].load(std::memory_order_acquire);
    if (cache == nullptr) continue;
    const CacheStats cs = cache->stats();
    line("  %5u %5u %8zu %6zu %13zu", c, static_cast<unsigned>(detail::kClassSize[c]), cs.live_objects, cs.slabs,
         cs.bytes_reserved >> 10);
  }
}

namespace detail {

void print_options() noexcept {
  const MallocOptions& o = malloc_options();
  line("mslab: malloc ready (show_stats=%d verbose=%d purge_delay=%ld limit=%zu)", o.show_stats ? 1 : 0,
       o.verbose ? 1 : 0, o.purge_delay_ms, o.limit);
}

}  // namespace detail
}  // namespace mslab
