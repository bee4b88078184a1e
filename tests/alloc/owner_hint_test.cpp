// Owner hints in the page tags (alloc/page_allocator.h): a slab owned by a
// thread carries that thread's number on every page, no number once
// detached, numbers differ between live threads and come back at thread
// exit, and a thread without a number still frees correctly (through the
// buffered path).
#include <doctest/doctest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"
#include "alloc/thread_heap.h"
#include "test_util.h"

using namespace mslab;
using mslab::test::make_cache;
using mslab::test::TestPages;

namespace {

std::uint32_t hint_of(const void* p) { return detail::owner_tag_of(p) & detail::kOwnerHintMask; }

}  // namespace

TEST_CASE("owner hints: an owned slab carries its thread's hint on every page, none once detached") {
  TestPages owner(test::steady_policy());
  // 3000-byte objects: an order-1 slab or larger, so more than one page.
  auto cache = make_cache("hint-big", 3000, &owner.get());
  void* p = cache->alloc();
  REQUIRE(p != nullptr);
  const std::uint32_t mine = detail::tl_heap->owner_hint;
  REQUIRE(mine != detail::kNoOwnerHint);
  CHECK(mine != 0);
  CHECK((mine & ~detail::kOwnerHintMask) == 0);
  const auto* slab = reinterpret_cast<const char*>(detail::slab_of(p));
  REQUIRE(slab != nullptr);
  const std::size_t pages = std::size_t{1} << cache->stats().slab_order;
  REQUIRE(pages > 1);
  for (std::size_t i = 0; i < pages; ++i) CHECK(hint_of(slab + i * kPageSize) == mine);

  cache->flush_thread_cache();  // detaches the slab
  for (std::size_t i = 0; i < pages; ++i) CHECK(hint_of(slab + i * kPageSize) == 0);
  // A free into the now detached slab still works and the record is exact.
  cache->free(p);
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("owner hints: live threads have different numbers, and an exited thread's comes back") {
  TestPages owner(test::steady_policy());
  auto cache = make_cache("hint-threads", 64, &owner.get());
  void* main_object = cache->alloc();
  REQUIRE(main_object != nullptr);
  const std::uint32_t main_hint = hint_of(main_object);

  void* left_behind = nullptr;
  std::uint32_t first_hint = 0;
  std::thread first([&] {
    left_behind = cache->alloc();
    first_hint = hint_of(left_behind);
  });
  first.join();
  REQUIRE(left_behind != nullptr);
  CHECK(first_hint != 0);
  CHECK(first_hint != main_hint);
  // Its exit detached the slab before the number went back.
  CHECK(hint_of(left_behind) == 0);

  std::uint32_t second_hint = 0;
  std::thread second([&] {
    void* q = cache->alloc();
    second_hint = hint_of(q);
    cache->free(q);
  });
  second.join();
  CHECK(second_hint == first_hint);  // the smallest free number: the one given back

  cache->free(left_behind);  // into a detached slab, from another thread
  cache->free(main_object);
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("owner hints: a thread without a number frees into its own slabs correctly") {
  TestPages owner(test::steady_policy());
  auto cache = make_cache("hint-none", 64, &owner.get());
  const std::size_t n = 3 * test::capacity_of(*cache);
  std::thread t([&] {
    // As if every number were taken: this heap's slabs carry hint 0 and no
    // tag matches the thread's own hint, so every free takes the buffered
    // path and meets the slab's owner word when the buffer is flushed.
    detail::ThreadHeap* heap = detail::create_thread_heap();
    REQUIRE(heap != nullptr);
    heap->owner_hint = detail::kNoOwnerHint;  // its number stays taken: harmless in a test
    for (int round = 0; round < 3; ++round) {
      std::vector<void*> objects;
      for (std::size_t i = 0; i < n; ++i) {
        void* p = cache->alloc();
        REQUIRE(p != nullptr);
        CHECK(hint_of(p) == 0);
        objects.push_back(p);
      }
      CHECK(cache->stats().live_objects == n);
      for (void* p : objects) cache->free(p);
      cache->flush_thread_cache();
      CHECK(cache->stats().live_objects == 0);
      CHECK_VALID(*cache);
    }
  });
  t.join();
}
