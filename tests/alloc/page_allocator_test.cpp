// Buddy allocator: split, coalesce, per-order counts, release to the OS.
#include <doctest/doctest.h>

#include "alloc/page_allocator.h"

using namespace mslab;

TEST_CASE("page allocator: one order-0 block splits a chunk into one free block per order") {
  PageAllocator pages(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  void* p = pages.alloc(0);
  REQUIRE(p != nullptr);
  PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 1);
  for (unsigned order = 0; order < kMaxOrder; ++order) CHECK(s.free_blocks[order] == 1);
  CHECK(s.free_blocks[kMaxOrder] == 0);
  CHECK(s.bytes_in_use == kPageSize);
  CHECK(pages.validate());
  pages.free(p, 0);
  s = pages.stats();
  CHECK(s.chunks_reserved == 0);
  CHECK(s.chunks_released_total == 1);
}
