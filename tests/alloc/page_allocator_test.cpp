// Buddy allocator: split, coalesce, per-order counts, release to the OS,
// the PagePolicy variants and out-of-memory paths. Every test uses its own
// PageAllocator with an explicit policy, so counts are deterministic.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alloc/page_allocator.h"
#include "alloc/platform.h"
#include "test_util.h"

using namespace mslab;
using mslab::test::addr;

namespace {

using Counts = std::array<std::size_t, kMaxOrder + 1>;

Counts free_counts(const PageAllocator& pages) {
  const PageStats s = pages.stats();
  Counts c{};
  for (unsigned o = 0; o <= kMaxOrder; ++o) c[o] = s.free_blocks[o];
  return c;
}

bool aligned_to_size(const void* p, unsigned order) { return addr(p) % order_bytes(order) == 0; }

// An independent model of the buddy system: free blocks by address. It
// accepts any block the allocator picks, provided it is the start of a free
// block of the smallest order that can serve the request (or a new chunk
// when none can), and predicts the free-block counts after every step.
class BuddyModel {
 public:
  // Records an allocation; false (with a reason) if the allocator could not
  // legally have returned `p`.
  bool on_alloc(const void* p, unsigned order, std::string* why) {
    const std::uintptr_t a = addr(p);
    if (a % order_bytes(order) != 0) return fail(why, "block not aligned to its size");
    const unsigned smallest = smallest_free_order(order);
    const std::uintptr_t base = a & ~(kChunkSize - 1);
    unsigned expected_order = smallest;
    if (chunks_.count(base) == 0) {
      if (smallest <= kMaxOrder) return fail(why, "new chunk although a free block could serve");
      chunks_.insert(base);
      free_[base] = kMaxOrder;
      expected_order = kMaxOrder;
    } else if (smallest > kMaxOrder) {
      return fail(why, "block from a known chunk although no free block could serve");
    }
    auto it = free_.find(a);
    if (it == free_.end()) return fail(why, "block does not start a free block");
    const unsigned k = it->second;
    if (k != expected_order) return fail(why, "block split from a larger order than the smallest available");
    free_.erase(it);
    for (unsigned j = k; j-- > order;) free_[a + order_bytes(j)] = j;
    used_[a] = order;
    return true;
  }

  void on_free(const void* p) {
    std::uintptr_t a = addr(p);
    unsigned order = used_.at(a);
    used_.erase(a);
    while (order < kMaxOrder) {
      const std::uintptr_t base = a & ~(kChunkSize - 1);
      const std::uintptr_t buddy = base + ((a - base) ^ order_bytes(order));
      auto it = free_.find(buddy);
      if (it == free_.end() || it->second != order) break;
      free_.erase(it);
      a = std::min(a, buddy);
      ++order;
    }
    free_[a] = order;
  }

  Counts counts() const {
    Counts c{};
    for (const auto& [a, order] : free_) ++c[order];
    return c;
  }
  std::size_t bytes_in_use() const {
    std::size_t n = 0;
    for (const auto& [a, order] : used_) n += order_bytes(order);
    return n;
  }
  std::size_t chunks() const { return chunks_.size(); }

 private:
  unsigned smallest_free_order(unsigned order) const {
    Counts c = counts();
    for (unsigned k = order; k <= kMaxOrder; ++k)
      if (c[k] != 0) return k;
    return kMaxOrder + 1;
  }
  static bool fail(std::string* why, const char* what) {
    *why = what;
    return false;
  }

  std::map<std::uintptr_t, unsigned> free_;
  std::map<std::uintptr_t, unsigned> used_;
  std::set<std::uintptr_t> chunks_;
};

// Frees `blocks` (pointer, order) in the given order, checking the counts
// against the model after every free.
void free_and_compare(PageAllocator& pages, BuddyModel& model, const std::vector<std::pair<void*, unsigned>>& blocks) {
  for (const auto& [p, order] : blocks) {
    pages.free(p, order);
    model.on_free(p);
    REQUIRE(free_counts(pages) == model.counts());
    REQUIRE(pages.stats().bytes_in_use == model.bytes_in_use());
  }
}

void touch(void* p, std::size_t bytes) { std::memset(p, 0xA5, bytes); }

std::uint32_t ms_since(std::chrono::steady_clock::time_point t) {
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count());
}

}  // namespace

TEST_CASE("page allocator: one order-0 block splits a chunk into one free block per order") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  PageAllocator& pages = owner.get();
  void* p = pages.alloc(0);
  REQUIRE(p != nullptr);
  CHECK(aligned_to_size(p, 0));
  CHECK(pages.owns(p));
  PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 1);
  for (unsigned order = 0; order < kMaxOrder; ++order) CHECK(s.free_blocks[order] == 1);
  CHECK(s.free_blocks[kMaxOrder] == 0);
  CHECK(s.bytes_in_use == kPageSize);
  CHECK(s.bytes_free == kChunkSize - kPageSize);
  CHECK(s.chunks_mapped_total == 1);
  CHECK_VALID(pages);
  pages.free(p, 0);
  s = pages.stats();
  CHECK(s.chunks_reserved == 0);
  CHECK(s.chunks_released_total == 1);
  CHECK(s.bytes_in_use == 0);
  CHECK(s.bytes_free == 0);
  CHECK_FALSE(pages.owns(p));
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: scripted splits and coalescing give exact per-order counts") {
  mslab::test::TestPages owner(mslab::test::steady_policy(1));
  PageAllocator& pages = owner.get();
  char* a0 = static_cast<char*>(pages.alloc(0));
  REQUIRE(a0 != nullptr);
  CHECK(aligned_to_size(a0, kMaxOrder));  // the first block of a fresh chunk is its start
  CHECK(free_counts(pages) == Counts{1, 1, 1, 1, 1, 1, 1, 1, 1, 0});

  char* a1 = static_cast<char*>(pages.alloc(0));
  CHECK(a1 == a0 + kPageSize);  // the order-0 buddy left by the split
  CHECK(free_counts(pages) == Counts{0, 1, 1, 1, 1, 1, 1, 1, 1, 0});

  char* b = static_cast<char*>(pages.alloc(1));
  CHECK(b == a0 + 2 * kPageSize);
  CHECK(free_counts(pages) == Counts{0, 0, 1, 1, 1, 1, 1, 1, 1, 0});

  char* c = static_cast<char*>(pages.alloc(3));
  CHECK(c == a0 + 8 * kPageSize);
  CHECK(free_counts(pages) == Counts{0, 0, 1, 0, 1, 1, 1, 1, 1, 0});
  CHECK(pages.stats().bytes_in_use == (1 + 1 + 2 + 8) * kPageSize);
  CHECK_VALID(pages);

  pages.free(a0, 0);  // buddy a1 in use: stays order 0
  CHECK(free_counts(pages) == Counts{1, 0, 1, 0, 1, 1, 1, 1, 1, 0});
  pages.free(b, 1);  // buddy (pages 0-1) is not a free order-1 block
  CHECK(free_counts(pages) == Counts{1, 1, 1, 0, 1, 1, 1, 1, 1, 0});
  CHECK_VALID(pages);
  pages.free(a1, 0);  // merges 0+1, then with b, then with pages 4-7; c blocks more
  CHECK(free_counts(pages) == Counts{0, 0, 0, 1, 1, 1, 1, 1, 1, 0});
  pages.free(c, 3);  // all the way up: one free chunk
  CHECK(free_counts(pages) == Counts{0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  const PageStats s = pages.stats();
  CHECK(s.free_2m_blocks() == 1);
  CHECK(s.chunks_reserved == 1);  // retained by the policy
  CHECK(s.bytes_in_use == 0);
  CHECK(s.bytes_free == kChunkSize);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: every free order permutation coalesces back to a whole chunk") {
  // Blocks of mixed orders in one chunk, freed in every one of the 5! orders.
  const std::vector<unsigned> orders = {0, 0, 1, 2, 3};
  std::vector<std::size_t> perm(orders.size());
  for (std::size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  mslab::test::TestPages owner(mslab::test::steady_policy(1));
  PageAllocator& pages = owner.get();
  BuddyModel model;
  int rounds = 0;
  do {
    std::vector<std::pair<void*, unsigned>> blocks;
    for (unsigned order : orders) {
      void* p = pages.alloc(order);
      REQUIRE(p != nullptr);
      std::string why;
      REQUIRE_MESSAGE(model.on_alloc(p, order, &why), why);
      REQUIRE(free_counts(pages) == model.counts());
      blocks.emplace_back(p, order);
    }
    CHECK(pages.stats().chunks_reserved == 1);
    std::vector<std::pair<void*, unsigned>> in_perm;
    for (std::size_t i : perm) in_perm.push_back(blocks[i]);
    free_and_compare(pages, model, in_perm);
    CHECK(free_counts(pages) == Counts{0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
    ++rounds;
  } while (std::next_permutation(perm.begin(), perm.end()));
  CHECK(rounds == 120);
  CHECK(pages.stats().chunks_mapped_total == 1);  // the one chunk was reused every round
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: random alloc/free sequence matches a buddy model") {
  mslab::test::TestPages owner(mslab::test::steady_policy(64));
  PageAllocator& pages = owner.get();
  BuddyModel model;
  std::mt19937 rng(20240611);
  std::vector<std::pair<void*, unsigned>> live;
  const std::size_t steps = mslab::test::scaled(6000, 500);
  for (std::size_t step = 0; step < steps; ++step) {
    const bool do_alloc = live.empty() || (rng() % 100) < (live.size() < 300 ? 60u : 40u);
    if (do_alloc) {
      // Small orders are common, large ones rare (as for slabs).
      unsigned order = 0;
      while (order < kMaxOrder && rng() % 3 == 0) ++order;
      void* p = pages.alloc(order);
      REQUIRE(p != nullptr);
      std::string why;
      REQUIRE_MESSAGE(model.on_alloc(p, order, &why), why);
      std::memset(p, static_cast<int>(step & 0xFF), 64);  // the block is usable memory
      live.emplace_back(p, order);
    } else {
      const std::size_t i = rng() % live.size();
      const auto [p, order] = live[i];
      live[i] = live.back();
      live.pop_back();
      pages.free(p, order);
      model.on_free(p);
    }
    REQUIRE(free_counts(pages) == model.counts());
    REQUIRE(pages.stats().bytes_in_use == model.bytes_in_use());
    if (step % 500 == 0) REQUIRE(mslab::test::validate_report(pages) == std::string());
  }
  CHECK(pages.stats().chunks_reserved == model.chunks());
  CHECK_VALID(pages);
  std::shuffle(live.begin(), live.end(), rng);
  free_and_compare(pages, model, live);
  const PageStats s = pages.stats();
  CHECK(s.bytes_in_use == 0);
  CHECK(s.free_2m_blocks() == s.chunks_reserved);  // everything coalesced into whole chunks
  for (unsigned o = 0; o < kMaxOrder; ++o) CHECK(s.free_blocks[o] == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: blocks are aligned to their size and do not overlap") {
  mslab::test::TestPages owner(mslab::test::steady_policy(8));
  PageAllocator& pages = owner.get();
  std::vector<std::pair<char*, unsigned>> blocks;
  for (unsigned round = 0; round < 2; ++round)
    for (unsigned order = 0; order <= kMaxOrder; ++order) {
      auto* p = static_cast<char*>(pages.alloc(order));
      REQUIRE(p != nullptr);
      CHECK(aligned_to_size(p, order));
      CHECK(pages.owns(p));
      CHECK(pages.owns(p + order_bytes(order) - 1));
      blocks.emplace_back(p, order);
    }
  std::sort(blocks.begin(), blocks.end());
  for (std::size_t i = 1; i < blocks.size(); ++i)
    CHECK(blocks[i - 1].first + order_bytes(blocks[i - 1].second) <= blocks[i].first);
  CHECK_VALID(pages);
  for (auto [p, order] : blocks) pages.free(p, order);
  CHECK(pages.stats().bytes_in_use == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: order-9 blocks are whole chunks") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  PageAllocator& pages = owner.get();
  void* a = pages.alloc(kMaxOrder, BlockKind::kLarge);
  void* b = pages.alloc(kMaxOrder, BlockKind::kLarge);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a != b);
  CHECK(aligned_to_size(a, kMaxOrder));
  CHECK(aligned_to_size(b, kMaxOrder));
  PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 2);
  CHECK(s.bytes_in_use == 2 * kChunkSize);
  for (unsigned o = 0; o <= kMaxOrder; ++o) CHECK(s.free_blocks[o] == 0);
  // The block kind is recorded on every page of the block.
  CHECK(detail::page_desc_of(a)->kind == BlockKind::kLarge);
  CHECK(detail::page_desc_of(static_cast<char*>(a) + kChunkSize - 1)->kind == BlockKind::kLarge);
  CHECK(detail::page_desc_of(static_cast<char*>(a) + kChunkSize / 2)->block == a);
  CHECK_VALID(pages);
  pages.free(a, kMaxOrder);
  pages.free(b, kMaxOrder);
  s = pages.stats();
  CHECK(s.chunks_reserved == 0);
  CHECK(s.chunks_released_total == 2);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: an order above 9 is reported and refused") {
  mslab::test::TestPages owner(mslab::test::steady_policy(1));
  PageAllocator& pages = owner.get();
  mslab::test::ErrorRecorder errors;
  CHECK(pages.alloc(kMaxOrder + 1) == nullptr);
  REQUIRE(errors.count() == 1);
  CHECK(errors.last().code == ErrorCode::kInvalidArgument);
  CHECK_FALSE(errors.last().has_cache);
  CHECK(mslab::test::contains(errors.last().message, "invalid-argument"));
  CHECK(pages.alloc(~0u) == nullptr);
  CHECK(errors.count() == 2);
  // Nothing was reserved for the refused requests.
  CHECK(pages.stats().chunks_reserved == 0);
  void* p = pages.alloc(0);
  REQUIRE(p != nullptr);
  pages.free(p, kMaxOrder + 1);  // reported, ignored
  CHECK(errors.count() == 3);
  CHECK(errors.last().code == ErrorCode::kInvalidArgument);
  CHECK(errors.last().pointer == p);
  CHECK(pages.stats().bytes_in_use == kPageSize);
  CHECK_VALID(pages);
  pages.free(p, 0);
  CHECK(errors.count() == 3);
  CHECK(pages.stats().bytes_in_use == 0);
  CHECK_VALID(pages);
}

// ~PageAllocator() runs in a child process: if it crashes or hangs, this
// test fails instead of the whole suite. (It did crash before 896a0bf: the
// free lists were torn down after the chunk descriptors holding their nodes
// had been freed.)
TEST_CASE("page allocator: destroying an allocator that still holds free blocks") {
  auto scenario = [](bool keep_block) {
    return [keep_block] {
      const std::size_t before = os::reserved_bytes();
      void* p = nullptr;
      {
        PageAllocator pages(mslab::test::steady_policy(8));
        p = pages.alloc(0);
        void* q = pages.alloc(kMaxOrder);
        if (p == nullptr || q == nullptr) return false;
        if (os::reserved_bytes() != before + 2 * kChunkSize) return false;
        if (!keep_block) pages.free(p, 0);  // its chunk stays mapped, wholly free
        if (!pages.validate()) return false;
      }  // unmaps both chunks, allocated or not
      return os::reserved_bytes() == before && detail::chunk_of(p) == nullptr;
    };
  };
  SUBCASE("a retained wholly free chunk") {
    const auto r = mslab::test::run_in_child(scenario(false), 10000);
    CHECK_MESSAGE((r.exited && r.exit_code == 0), "child " << mslab::test::describe(r));
  }
  SUBCASE("a block still allocated") {
    const auto r = mslab::test::run_in_child(scenario(true), 10000);
    CHECK_MESSAGE((r.exited && r.exit_code == 0), "child " << mslab::test::describe(r));
  }
}

// ---------------------------------------------------------------------------
// Returning memory to the OS.

TEST_CASE("page allocator: freed chunks go back to the OS and RSS falls") {
  constexpr unsigned kChunks = 8;
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  PageAllocator& pages = owner.get();
  std::vector<void*> blocks;
  for (unsigned i = 0; i < kChunks; ++i) {
    void* p = pages.alloc(kMaxOrder);
    REQUIRE(p != nullptr);
    touch(p, kChunkSize);
    blocks.push_back(p);
  }
  const std::size_t rss_touched = os::resident_bytes();
  REQUIRE(rss_touched != 0);
  CHECK(pages.stats().chunks_reserved == kChunks);
  const std::size_t reserved = os::reserved_bytes();
  for (void* p : blocks) pages.free(p, kMaxOrder);
  const std::size_t rss_after = os::resident_bytes();
  const PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 0);
  CHECK(s.chunks_released_total == kChunks);
  CHECK(os::reserved_bytes() == reserved - kChunks * kChunkSize);
  // At least 3/4 of what was touched is no longer resident.
  INFO("RSS touched " << rss_touched << ", after free " << rss_after);
  CHECK(rss_after + kChunks * kChunkSize * 3 / 4 <= rss_touched);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: retain_free_chunks keeps that many free chunks mapped") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 2, .release_delay_ms = 0, .purge_order = kMaxOrder,
                                 .purge_delay_ms = 3'600'000});
  PageAllocator& pages = owner.get();
  std::vector<void*> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(pages.alloc(kMaxOrder));
  for (void* p : blocks) REQUIRE(p != nullptr);
  for (int i = 0; i < 5; ++i) {
    pages.free(blocks[i], kMaxOrder);
    const PageStats s = pages.stats();
    // Up to two free chunks are kept; beyond that each free unmaps one.
    CHECK(s.free_2m_blocks() == std::min<std::size_t>(i + 1, 2));
    CHECK(s.chunks_reserved == 5 - static_cast<std::size_t>(i + 1) + s.free_2m_blocks());
  }
  PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 2);
  CHECK(s.chunks_released_total == 3);
  // The retained chunks are reused without mapping new ones.
  void* a = pages.alloc(kMaxOrder);
  void* b = pages.alloc(3);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  s = pages.stats();
  CHECK(s.chunks_mapped_total == 5);
  CHECK(s.chunks_reserved == 2);
  CHECK(s.free_2m_blocks() == 0);
  CHECK_VALID(pages);
  pages.free(a, kMaxOrder);
  pages.free(b, 3);
  CHECK(pages.stats().free_2m_blocks() == 2);
  // Lowering the reserve applies at once.
  pages.set_policy(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  CHECK(pages.policy().retain_free_chunks == 0);
  CHECK(pages.stats().chunks_reserved == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: release_delay_ms defers the unmapping until collect() after the delay") {
  constexpr std::uint32_t kDelay = 30;
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = kDelay, .purge_order = kMaxOrder,
                                 .purge_delay_ms = 3'600'000});
  PageAllocator& pages = owner.get();
  void* p = pages.alloc(kMaxOrder);
  REQUIRE(p != nullptr);
  const auto freed = std::chrono::steady_clock::now();
  pages.free(p, kMaxOrder);
  PageStats s = pages.stats();
  const std::size_t early = pages.collect();
  if (ms_since(freed) + 2 < kDelay) {  // only meaningful while the delay has not run out
    CHECK(s.chunks_reserved == 1);
    CHECK(s.free_2m_blocks() == 1);
    CHECK(early == 0);
    CHECK(pages.stats().chunks_reserved == 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(kDelay + 15));
  CHECK(pages.stats().chunks_reserved == 1);  // nothing happens without a call
  CHECK(pages.collect() == kChunkSize);
  s = pages.stats();
  CHECK(s.chunks_reserved == 0);
  CHECK(s.chunks_released_total == 1);
  CHECK(pages.collect() == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: collect(true) releases and purges everything the policy would") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 1, .release_delay_ms = 3'600'000, .purge_order = 4,
                                 .purge_delay_ms = 3'600'000});
  PageAllocator& pages = owner.get();
  void* blocks[3];
  for (void*& p : blocks) {
    p = pages.alloc(kMaxOrder);
    REQUIRE(p != nullptr);
    touch(p, kChunkSize);
  }
  for (void* p : blocks) pages.free(p, kMaxOrder);
  PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 3);
  CHECK(s.bytes_purged == 0);
  CHECK(pages.collect() == 0);  // nothing is due yet
  CHECK(pages.stats().chunks_reserved == 3);
  const std::size_t rss_before = os::resident_bytes();
  // Forced: the two chunks beyond the reserve are unmapped, the kept one purged.
  CHECK(pages.collect(true) == 3 * kChunkSize);
  s = pages.stats();
  CHECK(s.chunks_reserved == 1);
  CHECK(s.chunks_released_total == 2);
  CHECK(s.bytes_purged == kChunkSize);
  CHECK(s.chunks_resident == 0);
  CHECK(s.free_2m_blocks() == 1);
  const std::size_t rss_after = os::resident_bytes();
  INFO("RSS before " << rss_before << ", after " << rss_after);
  CHECK(rss_after + 2 * kChunkSize <= rss_before);
  CHECK(pages.collect(true) == 0);  // nothing left to give back
  CHECK_VALID(pages);
  // A purged chunk is reused: its pages are no longer counted as purged.
  void* p = pages.alloc(kMaxOrder);
  REQUIRE(p != nullptr);
  s = pages.stats();
  CHECK(s.bytes_purged == 0);
  CHECK(s.chunks_resident == 1);
  CHECK(s.chunks_mapped_total == 3);
  CHECK(static_cast<unsigned char*>(p)[12345] == 0);  // purged memory reads as zero
  CHECK_VALID(pages);
  pages.free(p, kMaxOrder);
}

// The free pages left between live blocks (what a defragmented heap holds)
// are order-0 blocks: collect(true) must give them back too, once.
TEST_CASE("page allocator: collect(true) purges free order-0 blocks, and only once") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 1, .release_delay_ms = 3'600'000, .purge_order = 4,
                                 .purge_delay_ms = 3'600'000});
  PageAllocator& pages = owner.get();
  std::vector<void*> blocks(64);
  for (void*& p : blocks) {
    p = pages.alloc(0);
    REQUIRE(p != nullptr);
    touch(p, kPageSize);
  }
  for (std::size_t i = 0; i < blocks.size(); i += 2) pages.free(blocks[i], 0);  // no two free buddies
  CHECK(pages.stats().free_blocks[0] >= 32);
  // Only what this test touched is asked about (the chunk's untouched
  // pages may be resident too where transparent huge pages are "always").
  auto freed_resident = [&] {
    std::size_t n = 0;
    for (std::size_t i = 0; i < blocks.size(); i += 2) n += os::resident_in(blocks[i], kPageSize);
    return n;
  };
  CHECK(freed_resident() == 32 * kPageSize);
  const std::size_t free_before = pages.residency().free_bytes;
  CHECK(free_before >= 32 * kPageSize);
  CHECK(pages.collect() == 0);  // below purge_order and not due: the normal path waits
  CHECK(freed_resident() == 32 * kPageSize);
  CHECK(pages.collect(true) == 32 * kPageSize);
  CHECK(freed_resident() == 0);
  CHECK(free_before - pages.residency().free_bytes == 32 * kPageSize);
  CHECK(pages.collect(true) == 0);  // purged blocks are not purged again
  CHECK_VALID(pages);
  for (std::size_t i = 1; i < blocks.size(); i += 2) pages.free(blocks[i], 0);
}

TEST_CASE("page allocator: purge_order selects which free blocks are purged") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 1, .release_delay_ms = 0, .purge_order = 4,
                                 .purge_delay_ms = 0});
  PageAllocator& pages = owner.get();
  char* x = static_cast<char*>(pages.alloc(3));  // pages 0-7
  char* y = static_cast<char*>(pages.alloc(3));  // pages 8-15
  char* z = static_cast<char*>(pages.alloc(4));  // pages 16-31
  REQUIRE(x != nullptr);
  REQUIRE(y == x + 8 * kPageSize);
  REQUIRE(z == x + 16 * kPageSize);
  touch(x, 32 * kPageSize);
  pages.free(x, 3);  // order 3 < purge_order: stays resident
  PageStats s = pages.stats();
  CHECK(s.bytes_purged == 0);
  CHECK(s.chunks_resident == 1);
  pages.free(z, 4);  // order 4: purged at once (zero delay)
  s = pages.stats();
  CHECK(s.bytes_purged == 16 * kPageSize);
  CHECK(s.chunks_resident == 1);
  CHECK(s.free_blocks[3] == 1);
  CHECK(s.free_blocks[4] == 1);
  CHECK_VALID(pages);
  pages.free(y, 3);  // everything merges into one dirty chunk, purged whole
  s = pages.stats();
  CHECK(s.free_2m_blocks() == 1);
  CHECK(s.chunks_reserved == 1);
  CHECK(s.bytes_purged == kChunkSize);
  CHECK(s.chunks_resident == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: purge_delay_ms defers purging; RSS falls while the chunk stays mapped") {
  constexpr std::uint32_t kDelay = 30;
  constexpr unsigned kChunks = 4;
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = kChunks, .release_delay_ms = 0, .purge_order = 0,
                                 .purge_delay_ms = kDelay});
  PageAllocator& pages = owner.get();
  std::vector<void*> blocks;
  for (unsigned i = 0; i < kChunks; ++i) {
    void* p = pages.alloc(kMaxOrder);
    REQUIRE(p != nullptr);
    touch(p, kChunkSize);
    blocks.push_back(p);
  }
  const std::size_t rss_touched = os::resident_bytes();
  const auto freed = std::chrono::steady_clock::now();
  for (void* p : blocks) pages.free(p, kMaxOrder);
  PageStats s = pages.stats();
  if (ms_since(freed) + 2 < kDelay) {
    CHECK(s.bytes_purged == 0);
    CHECK(s.chunks_resident == kChunks);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(kDelay + 15));
  pages.collect();
  s = pages.stats();
  CHECK(s.chunks_reserved == kChunks);  // kept mapped …
  CHECK(s.bytes_purged == kChunks * kChunkSize);  // … but given back
  CHECK(s.chunks_resident == 0);
  const std::size_t rss_after = os::resident_bytes();
  INFO("RSS touched " << rss_touched << ", after purge " << rss_after);
  CHECK(rss_after + kChunks * kChunkSize * 3 / 4 <= rss_touched);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: changing purge_order with set_policy keeps purging every eligible block") {
  // Dirty free blocks below the old purge_order become eligible when it is
  // lowered; once their delay has passed, collect() must purge every
  // eligible dirty block.
  constexpr std::uint32_t kDelay = 40;
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 1, .release_delay_ms = 0, .purge_order = 4,
                                          .purge_delay_ms = kDelay});
  PageAllocator& pages = owner.get();
  char* a = static_cast<char*>(pages.alloc(2));  // pages 0-3
  char* b = static_cast<char*>(pages.alloc(2));  // pages 4-7
  char* c = static_cast<char*>(pages.alloc(5));  // pages 32-63
  REQUIRE(a != nullptr);
  REQUIRE(b == a + 4 * kPageSize);
  REQUIRE(c == a + 32 * kPageSize);
  const auto freed = std::chrono::steady_clock::now();
  pages.free(a, 2);  // dirty order-2 block (below purge_order 4)
  pages.free(c, 5);  // dirty order-5 block, due after the delay
  pages.set_policy(PagePolicy{.retain_free_chunks = 1, .release_delay_ms = 0, .purge_order = 2,
                              .purge_delay_ms = kDelay});
  void* d = pages.alloc(2);  // takes the dirty order-2 block back
  CHECK(d == a);
  const bool early = ms_since(freed) + 5 < kDelay;
  if (early) CHECK(pages.stats().bytes_purged == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(kDelay + 20));
  // The order-5 block has been free longer than the delay: it is due.
  pages.collect();
  CHECK(pages.stats().bytes_purged == 32 * kPageSize);
  CHECK_VALID(pages);
  pages.free(d, 2);
  pages.free(b, 2);
  CHECK_VALID(pages);
}

// ---------------------------------------------------------------------------
// Limits and failures.

TEST_CASE("page allocator: max_chunks caps the chunks held") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0, .max_chunks = 2});
  PageAllocator& pages = owner.get();
  void* a = pages.alloc(kMaxOrder);
  void* b = pages.alloc(kMaxOrder);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(pages.alloc(kMaxOrder) == nullptr);
  CHECK(pages.alloc(0) == nullptr);
  PageStats s = pages.stats();
  CHECK(s.chunks_reserved == 2);
  CHECK(s.chunks_mapped_total == 2);
  CHECK_VALID(pages);
  pages.free(b, kMaxOrder);
  void* c = pages.alloc(0);  // room again
  REQUIRE(c != nullptr);
  void* d = pages.alloc(8);  // from the same chunk as c
  REQUIRE(d != nullptr);
  CHECK(detail::chunk_of(c) == detail::chunk_of(d));
  CHECK(pages.alloc(kMaxOrder) == nullptr);
  CHECK_VALID(pages);
  pages.free(a, kMaxOrder);
  pages.free(c, 0);
  pages.free(d, 8);
  CHECK(pages.stats().chunks_reserved == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: an injected OS failure makes alloc return nullptr and it recovers") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  PageAllocator& pages = owner.get();
  // Each new chunk takes one step of the failure plan: its charge against
  // the reservation limit (the arena's range itself is reserved once; the
  // chunk's descriptor is a pooled metadata record). The warm-up also maps
  // the metadata pool's region, so that no pool mapping takes a step below.
  void* warm[3];
  for (void*& p : warm) REQUIRE((p = pages.alloc(kMaxOrder)) != nullptr);
  for (void* p : warm) pages.free(p, kMaxOrder);  // released at once: warm[2] is on top of the arena's stack
  const PageStats before = pages.stats();

  SUBCASE("one-shot failure of the next call") {
    os::inject_failure(0);
    CHECK(pages.alloc(0) == nullptr);
    const PageStats s = pages.stats();
    CHECK(s.chunks_reserved == 0);
    CHECK(s.chunks_mapped_total == before.chunks_mapped_total);
    void* p = pages.alloc(0);  // the plan was used up
    REQUIRE(p != nullptr);
    pages.free(p, 0);
  }
  SUBCASE("failure of a later call") {
    os::inject_failure(2);  // the third chunk's charge
    void* a = pages.alloc(kMaxOrder);
    void* b = pages.alloc(kMaxOrder);
    CHECK(a != nullptr);
    CHECK(b != nullptr);
    CHECK(pages.alloc(kMaxOrder) == nullptr);
    void* c = pages.alloc(kMaxOrder);
    CHECK(c != nullptr);
    CHECK(pages.stats().chunks_reserved == 3);
    CHECK_VALID(pages);
    for (void* p : {a, b, c})
      if (p != nullptr) pages.free(p, kMaxOrder);
  }
  SUBCASE("a failed charge gives the chunk's range back to the arena") {
    const std::size_t reserved = os::reserved_bytes();
    os::inject_failure(0);
    CHECK(pages.alloc(kMaxOrder) == nullptr);
    CHECK(pages.stats().chunks_reserved == 0);
    CHECK(os::reserved_bytes() == reserved);
    void* p = pages.alloc(kMaxOrder);
    CHECK(p == warm[2]);  // the range went back on top of the stack
    if (p != nullptr) pages.free(p, kMaxOrder);
  }
  SUBCASE("sticky failure until disarmed") {
    os::inject_failure(0, /*sticky=*/true);
    CHECK(pages.alloc(0) == nullptr);
    CHECK(pages.alloc(kMaxOrder) == nullptr);
    CHECK(pages.alloc(3) == nullptr);
    os::inject_failure(-1);
    void* p = pages.alloc(3);
    REQUIRE(p != nullptr);
    pages.free(p, 3);
  }
  os::inject_failure(-1);
  CHECK(pages.stats().bytes_in_use == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: its own failure injection counts alloc() calls") {
  mslab::test::TestPages owner(mslab::test::steady_policy(4));
  PageAllocator& pages = owner.get();
  void* first = pages.alloc(0);  // a chunk exists: the next calls need no OS memory
  REQUIRE(first != nullptr);
  pages.inject_failure(2);
  void* a = pages.alloc(0);
  void* b = pages.alloc(1);
  CHECK(a != nullptr);
  CHECK(b != nullptr);
  CHECK(pages.alloc(0) == nullptr);  // call number 2 fails although memory is free
  void* c = pages.alloc(0);          // one-shot
  CHECK(c != nullptr);
  pages.inject_failure(0, /*sticky=*/true);
  CHECK(pages.alloc(0) == nullptr);
  CHECK(pages.alloc(kMaxOrder) == nullptr);
  CHECK(pages.stats().bytes_in_use == 5 * kPageSize);  // first, a, b, c: nothing from the failed calls
  pages.inject_failure(-1);
  void* d = pages.alloc(kMaxOrder);
  CHECK(d != nullptr);
  CHECK_VALID(pages);
  for (auto [p, order] : {std::pair<void*, unsigned>{first, 0}, {a, 0}, {b, 1}, {c, 0}, {d, kMaxOrder}})
    if (p != nullptr) pages.free(p, order);
  CHECK(pages.stats().bytes_in_use == 0);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: free_block finds the owner and the order") {
  mslab::test::TestPages owner(mslab::test::steady_policy(4));
  mslab::test::TestPages owner2(mslab::test::steady_policy(4));
  PageAllocator& pages = owner.get();
  PageAllocator& other = owner2.get();
  char* a = static_cast<char*>(pages.alloc(3));
  char* b = static_cast<char*>(other.alloc(5));
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  int on_stack = 0;
  mslab::test::ErrorRecorder errors;  // free_block refuses quietly
  CHECK_FALSE(PageAllocator::free_block(a + kPageSize));  // not a block start
  CHECK_FALSE(PageAllocator::free_block(a + 8));
  CHECK_FALSE(PageAllocator::free_block(&on_stack));
  CHECK_FALSE(PageAllocator::free_block(nullptr));
  CHECK_FALSE(PageAllocator::free_block(a + 8 * kPageSize));  // a free block
  CHECK(pages.stats().bytes_in_use == 8 * kPageSize);
  CHECK(PageAllocator::free_block(a));  // order 3, from `pages`
  CHECK(PageAllocator::free_block(b));  // order 5, from `other`
  CHECK(pages.stats().bytes_in_use == 0);
  CHECK(other.stats().bytes_in_use == 0);
  CHECK(pages.stats().free_2m_blocks() == 1);  // coalesced: the order was right
  CHECK_FALSE(PageAllocator::free_block(a));  // already free
  // A slab belongs to its cache, not to whoever holds its address.
  mslab::test::CacheHandle cache = mslab::test::make_cache("free-block", 64, &pages);
  void* obj = cache->alloc();
  REQUIRE(obj != nullptr);
  CHECK_FALSE(PageAllocator::free_block(detail::slab_of(obj)));
  CHECK(cache->stats().slabs == 1);
  CHECK(errors.count() == 0);
  cache->free(obj);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);
  CHECK_VALID(pages);
  CHECK_VALID(other);
}

TEST_CASE("page allocator: the OS reservation limit is honoured") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0});
  PageAllocator& pages = owner.get();
  const std::size_t held = os::reserved_bytes();
  os::set_reserve_limit(held + kChunkSize);
  void* a = pages.alloc(kMaxOrder);
  void* b = pages.alloc(kMaxOrder);
  os::set_reserve_limit(0);
  CHECK(a != nullptr);
  CHECK(b == nullptr);
  CHECK(os::reserved_bytes() == held + kChunkSize);
  void* c = pages.alloc(kMaxOrder);
  CHECK(c != nullptr);
  CHECK_VALID(pages);
  for (void* p : {a, c})
    if (p != nullptr) pages.free(p, kMaxOrder);
  CHECK(os::reserved_bytes() == held);
}

TEST_CASE("page allocator: concurrent alloc/free from several threads") {
  mslab::test::TestPages owner(PagePolicy{.retain_free_chunks = 0, .release_delay_ms = 0, .purge_order = 4,
                                 .purge_delay_ms = 0});
  PageAllocator& pages = owner.get();
  constexpr int kThreads = 4;
  const std::size_t ops = mslab::test::scaled(20000, 500);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
      std::vector<std::pair<unsigned char*, unsigned>> mine;
      for (std::size_t i = 0; i < ops; ++i) {
        if (mine.empty() || (mine.size() < 64 && rng() % 2 == 0)) {
          const unsigned order = rng() % 5;
          auto* p = static_cast<unsigned char*>(pages.alloc(order));
          if (p == nullptr || addr(p) % order_bytes(order) != 0) {
            ++bad;
            continue;
          }
          p[0] = static_cast<unsigned char>(t);
          p[order_bytes(order) - 1] = static_cast<unsigned char>(t);
          mine.emplace_back(p, order);
        } else {
          const std::size_t k = rng() % mine.size();
          auto [p, order] = mine[k];
          if (p[0] != t || p[order_bytes(order) - 1] != t) ++bad;  // nobody else wrote it
          mine[k] = mine.back();
          mine.pop_back();
          pages.free(p, order);
        }
      }
      for (auto [p, order] : mine) pages.free(p, order);
    });
  for (std::thread& t : threads) t.join();
  CHECK(bad.load() == 0);
  const PageStats s = pages.stats();
  CHECK(s.bytes_in_use == 0);
  CHECK(s.chunks_reserved == 0);
  CHECK(s.chunks_released_total == s.chunks_mapped_total);
  CHECK_VALID(pages);
}

TEST_CASE("page allocator: for_each_block finds exactly the blocks of one owner and order") {
  PageAllocator pages(mslab::test::steady_policy(8));
  constexpr std::uint32_t kTag = 77, kOtherTag = 78;
  std::set<void*> wanted;
  std::vector<std::pair<void*, unsigned>> all;
  for (int i = 0; i < 40; ++i) {
    void* a = pages.alloc(1, BlockKind::kSlab, kTag);  // wanted
    void* b = pages.alloc(1, BlockKind::kSlab, kOtherTag);
    void* c = pages.alloc(0, BlockKind::kSlab, kTag);  // same owner, other order
    void* d = pages.alloc(1, BlockKind::kRaw, kTag);   // same tag, other kind
    REQUIRE((a && b && c && d));
    wanted.insert(a);
    all.insert(all.end(), {{a, 1}, {b, 1}, {c, 0}, {d, 1}});
  }
  // Free a few wanted ones: they must drop out.
  for (int i = 0; i < 5; ++i) {
    void* a = all[static_cast<std::size_t>(i) * 4].first;
    pages.free(a, 1);
    wanted.erase(a);
  }
  std::set<void*> seen;
  std::pair<std::set<void*>*, int> ctx{&seen, 0};
  pages.for_each_block(
      detail::owner_tag(BlockKind::kSlab, kTag), 0, 1,
      [](void* c, void* block) noexcept {
        auto* x = static_cast<std::pair<std::set<void*>*, int>*>(c);
        x->first->insert(block);
        ++x->second;
      },
      &ctx);
  CHECK(seen == wanted);
  CHECK(static_cast<std::size_t>(ctx.second) == seen.size());  // each once
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i % 4 == 0 && i < 5 * 4) continue;  // freed above
    pages.free(all[i].first, all[i].second);
  }
  CHECK(pages.validate());
}
