// The page-allocator hooks the defragmenter relies on: an excluded chunk
// gives out no block (a new chunk is mapped rather) until the exclusion is
// lifted, exclusions nest, and chunk_free_pages() follows allocation.
#include <doctest/doctest.h>

#include "defrag_test_util.h"

namespace mslab::test {
namespace {

TEST_CASE("page hooks: an excluded chunk gives out no block until the exclusion is lifted") {
  TestPages owner(steady_policy());
  PageAllocator& pages = owner.get();
  void* first = pages.alloc(0);
  REQUIRE(first != nullptr);
  const std::uintptr_t chunk = chunk_of_ptr(first);
  CHECK(pages.chunk_free_pages(first) == static_cast<long>(kPagesPerChunk - 1));
  std::size_t by_order[kMaxOrder + 1];
  REQUIRE(pages.chunk_free_blocks(first, by_order));
  for (unsigned k = 0; k <= kMaxOrder; ++k) CHECK(by_order[k] == (k < kMaxOrder ? 1u : 0u));  // the split's halves
  int local = 0;
  CHECK(pages.chunk_free_pages(&local) == -1);
  CHECK_FALSE(pages.chunk_free_blocks(&local, by_order));
  CHECK_FALSE(pages.exclude_chunk(&local, true));
  CHECK_FALSE(pages.exclude_chunk(first, false));  // not excluded: nothing to lift

  REQUIRE(pages.exclude_chunk(first, true));
  REQUIRE(pages.exclude_chunk(first, true));  // nested
  std::vector<void*> elsewhere;
  for (unsigned order : {0u, 3u, 0u, 8u}) {
    void* p = pages.alloc(order);
    REQUIRE(p != nullptr);
    CHECK(chunk_of_ptr(p) != chunk);
    elsewhere.push_back(p);
  }
  CHECK(pages.chunk_free_pages(first) == static_cast<long>(kPagesPerChunk - 1));
  pages.free(first, 0);  // frees into an excluded chunk work: it is wholly free again
  CHECK(pages.chunk_free_pages(first) == static_cast<long>(kPagesPerChunk));
  CHECK(pages.exclude_chunk(first, false));
  void* p = pages.alloc(9);  // still excluded once: the free chunk is not handed out
  REQUIRE(p != nullptr);
  CHECK(chunk_of_ptr(p) != chunk);
  CHECK(pages.exclude_chunk(first, false));
  void* q = pages.alloc(9);  // lifted: now it is
  CHECK(chunk_of_ptr(q) == chunk);
  pages.free(p, 9);
  pages.free(q, 9);
  for (std::size_t k = 0; k < elsewhere.size(); ++k) pages.free(elsewhere[k], k == 1 ? 3 : k == 3 ? 8 : 0);
  CHECK_VALID(pages);
}

}  // namespace
}  // namespace mslab::test
