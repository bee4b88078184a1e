// The chunk arena (alloc/arena.h): which pointers it claims, where its maps
// answer, and what a chunk given back looks like when it is taken again.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "alloc/page_allocator.h"
#include "alloc/platform.h"
#include "test_util.h"

using namespace mslab;
using mslab::test::addr;

TEST_CASE("arena: blocks lie in it and carry their tags; foreign pointers do not") {
  PageAllocator pages(mslab::test::steady_policy(8));
  void* small = pages.alloc(0, BlockKind::kRaw, 7);
  void* whole = pages.alloc(kMaxOrder, BlockKind::kRaw, 9);
  REQUIRE(small != nullptr);
  REQUIRE(whole != nullptr);
  for (void* p : {small, whole}) {
    CHECK(detail::in_arena(p));
    CHECK(detail::chunk_of(p) != nullptr);
    // Every page of a block, not only its first, carries the tag.
    CHECK(detail::owner_tag_of(static_cast<char*>(p) + kPageSize - 1) == detail::owner_tag_of(p));
  }
  CHECK(detail::owner_tag_of(small) == detail::owner_tag(BlockKind::kRaw, 7));
  CHECK(detail::owner_tag_of(static_cast<char*>(whole) + kChunkSize - 1) == detail::owner_tag(BlockKind::kRaw, 9));
  // The arena's size and alignment: one key for all of it.
  CHECK((addr(small) >> detail::kArenaShift) == (addr(whole) >> detail::kArenaShift));

  int local = 0;
  void* from_libc = std::malloc(64);
  for (const void* p : {static_cast<const void*>(&local), static_cast<const void*>(from_libc), static_cast<const void*>(nullptr)}) {
    CHECK_FALSE(detail::in_arena(p));
    CHECK(detail::chunk_of(p) == nullptr);
    CHECK(detail::owner_tag_of(p) == 0);
  }
  std::free(from_libc);
  // The arena's own maps lie in it but in no chunk: no descriptor, tag 0.
  const auto* arena_base = reinterpret_cast<const char*>(addr(small) & ~(detail::kArenaBytes - 1));
  CHECK(detail::in_arena(arena_base));
  CHECK(detail::chunk_of(arena_base) == nullptr);
  CHECK(detail::owner_tag_of(arena_base) == 0);

  pages.free(small, 0);
  CHECK(detail::owner_tag_of(small) == 0);  // a free page has no owner
  pages.free(whole, kMaxOrder);
}

TEST_CASE("arena: a block's word is zero when the block is handed out") {
  PageAllocator pages(mslab::test::steady_policy(8));
  void* p = pages.alloc(2);
  REQUIRE(p != nullptr);
  detail::block_word(p).store(0x1234, std::memory_order_relaxed);
  pages.free(p, 2);
  // Take order-2 blocks until p comes back (its chunk has 128).
  std::vector<void*> taken;
  bool all_zero = true;
  while (taken.size() < 128 && (taken.empty() || taken.back() != p)) {
    taken.push_back(pages.alloc(2));
    REQUIRE(taken.back() != nullptr);
    all_zero = all_zero && detail::block_word(taken.back()).load(std::memory_order_relaxed) == 0;
  }
  CHECK(taken.back() == p);
  CHECK(all_zero);
  for (void* q : taken) pages.free(q, 2);
}

TEST_CASE("arena: a chunk given back is taken again first, zero-filled, and its memory and maps leave RSS") {
  char* chunk = detail::arena_take_chunk();
  REQUIRE(chunk != nullptr);
  CHECK(detail::in_arena(chunk));
  CHECK(addr(chunk) % kChunkSize == 0);
  CHECK(detail::chunk_of(chunk) == nullptr);  // nobody published a descriptor
  std::memset(chunk, 0xA5, kChunkSize);
  CHECK(os::resident_in(chunk, kChunkSize) == kChunkSize);
  // Its share of the maps: a page of block words, 16 KiB of page descriptors.
  auto* words = &detail::block_word(chunk);
  auto* descs = static_cast<char*>(detail::chunk_pages_area(chunk));
  words[kPagesPerChunk - 1].store(1, std::memory_order_relaxed);
  std::memset(descs, 0x5A, detail::kChunkPagesBytes);
  CHECK(os::resident_in(words, kPageSize) == kPageSize);
  CHECK(os::resident_in(descs, detail::kChunkPagesBytes) == detail::kChunkPagesBytes);
  detail::arena_give_back_chunk(chunk);
  CHECK(os::resident_in(chunk, kChunkSize) == 0);
  CHECK(os::resident_in(words, kPageSize) == 0);
  CHECK(os::resident_in(descs, detail::kChunkPagesBytes) == 0);
  char* again = detail::arena_take_chunk();
  CHECK(again == chunk);
  bool zero = true;
  for (std::size_t i = 0; i < kChunkSize; i += 512) zero = zero && again[i] == 0;
  CHECK(zero);
  detail::arena_give_back_chunk(again);
}
