// Bad input: double frees (same thread, into detached slabs, across
// threads), foreign and interior pointers, page-allocator misuse, cache-id
// exhaustion — each reported through the error handler with the cache and
// the pointer named, and without effect. And the default handler (print one
// line, abort) in a forked child.
#include <doctest/doctest.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "alloc/error.h"
#include "alloc/slab_cache.h"
#include "test_util.h"

using namespace mslab;
using mslab::test::CacheHandle;
using mslab::test::contains;
using mslab::test::ErrorRecorder;
using mslab::test::make_cache;
using mslab::test::pointer_text;
using mslab::test::TestPages;

namespace {

int g_global_object = 0;

// The report names the code, the cache and the pointer.
void check_report(const ErrorRecorder::Record& r, ErrorCode code, const char* cache_name, const void* p) {
  CHECK(r.code == code);
  CHECK(r.pointer == p);
  CHECK(contains(r.message, error_name(code)));
  CHECK(contains(r.message, pointer_text(p)));
  if (cache_name != nullptr) {
    CHECK(r.has_cache);
    CHECK(r.cache_name == cache_name);
    CHECK(contains(r.message, cache_name));
  } else {
    CHECK_FALSE(r.has_cache);
  }
}

}  // namespace

TEST_CASE("bad input: error names are stable") {
  CHECK(std::string(error_name(ErrorCode::kDoubleFree)) == "double-free");
  CHECK(std::string(error_name(ErrorCode::kForeignPointer)) == "foreign-pointer");
  CHECK(std::string(error_name(ErrorCode::kInteriorPointer)) == "interior-pointer");
  CHECK(std::string(error_name(ErrorCode::kInvalidArgument)) == "invalid-argument");
  CHECK(std::string(error_name(ErrorCode::kOutOfMemory)) == "out-of-memory");
  CHECK(std::string(error_name(ErrorCode::kCorruption)) == "corruption");
}

TEST_CASE("bad input: double free by the owning thread is reported and ignored") {
  if (!kCheapChecks) return;  // MSLAB_CHECK_LEVEL 0 does not check the owner path
  TestPages owner(mslab::test::steady_policy());
  CacheHandle cache = make_cache("df-owner", 64, &owner.get());
  void* a = cache->alloc();
  void* keep = cache->alloc();  // keeps the slab alive
  REQUIRE(a != nullptr);
  REQUIRE(keep != nullptr);
  ErrorRecorder errors;
  cache->free(a);
  CHECK(errors.count() == 0);
  cache->free(a);
  REQUIRE(errors.count() == 1);
  check_report(errors.last(), ErrorCode::kDoubleFree, "df-owner", a);
  CHECK(cache->stats().live_objects == 1);
  // The slot is on a free list once: over a slab's worth of allocations
  // (the owner's frees are reused once the allocation list runs dry) it
  // comes back exactly once, and never as a live object.
  std::vector<void*> again;
  const std::size_t per_slab = cache->stats().objects_per_slab;
  for (std::size_t k = 0; k < 2 * per_slab; ++k) again.push_back(cache->alloc());
  CHECK(std::count(again.begin(), again.end(), a) == 1);
  CHECK(std::count(again.begin(), again.end(), keep) == 0);
  for (void* p : again) cache->free(p);
  cache->free(keep);
  CHECK(errors.count() == 1);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("bad input: double free into a detached slab is reported and ignored") {
  if (!kCheapChecks) return;
  TestPages owner(mslab::test::steady_policy());
  CacheHandle cache = make_cache("df-detached", 64, &owner.get());
  const std::size_t cap = mslab::test::capacity_of(*cache);
  std::vector<void*> objs;
  for (std::size_t i = 0; i < 2 * cap; ++i) objs.push_back(cache->alloc());
  for (void* p : objs) REQUIRE(p != nullptr);
  cache->flush_thread_cache();  // both slabs detached and full
  void* a = objs[3];
  ErrorRecorder errors;
  cache->free(a);  // held by this thread until it flushes
  cache->free(a);  // a double free while the first is still held
  cache->flush_thread_cache();  // reported at the latest when the thread hands its frees over
  REQUIRE(errors.count() == 1);
  check_report(errors.last(), ErrorCode::kDoubleFree, "df-detached", a);
  cache->free(a);  // and once the first free has reached the slab
  cache->flush_thread_cache();
  REQUIRE(errors.count() == 2);
  check_report(errors.last(), ErrorCode::kDoubleFree, "df-detached", a);
  CHECK(cache->stats().live_objects == 2 * cap - 1);
  CHECK_VALID(*cache);
  // Exactly one slot is free in the first slab: alloc_direct takes it, then a new slab.
  void* x = cache->alloc_direct();
  CHECK(x == a);
  // The rejected frees left no trace: the object is live again and listed.
  CHECK(cache->stats().live_objects == 2 * cap);
  {
    std::vector<void*> listed(cap);
    const std::size_t n = SlabCache::allocated_objects(detail::slab_of(a), listed);
    CHECK(n == cap);
    listed.resize(std::min(n, cap));
    CHECK(std::count(listed.begin(), listed.end(), a) == 1);
  }
  void* y = cache->alloc_direct();
  REQUIRE(y != nullptr);
  CHECK(detail::slab_of(y) != detail::slab_of(a));
  objs.push_back(y);
  for (void* p : objs) cache->free(p);
  CHECK(errors.count() == 2);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("bad input: double free after a cross-thread free") {
  if (!kCheapChecks) return;
  TestPages owner(mslab::test::steady_policy());
  CacheHandle cache = make_cache("df-cross", 64, &owner.get());
  ErrorRecorder errors;

  SUBCASE("freed by another thread, then again by the owner") {
    void* a = cache->alloc();
    void* keep = cache->alloc();
    REQUIRE(a != nullptr);
    REQUIRE(keep != nullptr);
    std::thread([&] { cache->free(a); }).join();  // a thread without a heap
    CHECK(errors.count() == 0);
    cache->free(a);
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), ErrorCode::kDoubleFree, "df-cross", a);
    cache->free(keep);
  }
  SUBCASE("freed by another thread that still holds it in its buffer") {
    void* a = cache->alloc();
    void* keep = cache->alloc();
    REQUIRE(a != nullptr);
    REQUIRE(keep != nullptr);
    std::mutex m;
    std::condition_variable cv;
    int stage = 0;
    std::thread t([&] {
      void* mine = cache->alloc();  // the thread has a heap: its frees are buffered
      cache->free(mine);
      cache->free(a);
      {
        std::lock_guard g(m);
        stage = 1;
      }
      cv.notify_all();
      std::unique_lock g(m);
      cv.wait(g, [&] { return stage == 2; });
    });
    {
      std::unique_lock g(m);
      cv.wait(g, [&] { return stage == 1; });
    }
    cache->free(a);  // the owner frees it again while the thread still holds the first free
    {
      std::lock_guard g(m);
      stage = 2;
    }
    cv.notify_all();
    t.join();  // the thread's frees are handed over at exit, at the latest
    cache->flush_thread_cache();
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), ErrorCode::kDoubleFree, "df-cross", a);
    cache->free(keep);
  }
  SUBCASE("freed by the owner, then again by another thread") {
    void* a = cache->alloc();
    void* keep = cache->alloc();
    REQUIRE(a != nullptr);
    REQUIRE(keep != nullptr);
    cache->free(a);
    std::thread([&] { cache->free(a); }).join();  // reported on that thread
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), ErrorCode::kDoubleFree, "df-cross", a);
    cache->free(keep);
  }
  SUBCASE("two threads free the same object of a detached slab") {
    const std::size_t cap = mslab::test::capacity_of(*cache);
    std::vector<void*> objs;
    for (std::size_t i = 0; i < cap; ++i) objs.push_back(cache->alloc());
    cache->flush_thread_cache();
    void* a = objs[10];
    std::thread([&] { cache->free(a); }).join();
    std::thread([&] { cache->free(a); }).join();
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), ErrorCode::kDoubleFree, "df-cross", a);
    CHECK(cache->stats().live_objects == cap - 1);
    for (void* p : objs)
      if (p != a) cache->free(p);
  }
  CHECK(errors.count() == 1);
  cache->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK_VALID(*cache);
}

TEST_CASE("bad input: foreign pointers are reported and ignored") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle cache = make_cache("victim-cache", 64, &pages);
  CacheHandle other = make_cache("other-cache", 2048, &pages);  // larger slabs: another mask
  void* mine = cache->alloc();
  void* theirs = other->alloc();
  REQUIRE(mine != nullptr);
  REQUIRE(theirs != nullptr);
  int on_stack = 0;
  void* heap = std::malloc(64);
  REQUIRE(heap != nullptr);
  void* raw = pages.alloc(0);  // page-allocator memory, not a slab
  REQUIRE(raw != nullptr);
  void* other_page = static_cast<char*>(theirs) + 3 * kPageSize + 64;  // inside the other slab, a later page

  ErrorRecorder errors;
  for (void* p : {static_cast<void*>(&on_stack), heap, static_cast<void*>(&g_global_object), theirs, raw,
                  other_page}) {
    CAPTURE(pointer_text(p));
    errors.clear();
    cache->free(p);
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), ErrorCode::kForeignPointer, "victim-cache", p);
  }
  // The other direction: an object of the 64-byte cache freed into the 2 KiB one.
  errors.clear();
  other->free(mine);
  REQUIRE(errors.count() == 1);
  check_report(errors.last(), ErrorCode::kForeignPointer, "other-cache", mine);

  // Nothing changed: both objects are still live and free normally.
  CHECK(cache->stats().live_objects == 1);
  CHECK(other->stats().live_objects == 1);
  CHECK(pages.stats().bytes_in_use >= kPageSize);
  errors.clear();
  cache->free(mine);
  other->free(theirs);
  cache->free(nullptr);  // null is ignored, not reported
  CHECK(errors.count() == 0);
  std::free(heap);
  pages.free(raw, 0);
  cache->flush_thread_cache();
  other->flush_thread_cache();
  CHECK(cache->stats().live_objects == 0);
  CHECK(other->stats().live_objects == 0);
  CHECK_VALID(*cache);
  CHECK_VALID(*other);
  CHECK_VALID(pages);
}

TEST_CASE("bad input: a pointer kept past its cache's destroy is reported, not freed") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  CacheHandle first = make_cache("destroyed-cache", 64, &pages);
  void* stale = first->alloc();
  REQUIRE(stale != nullptr);
  CHECK(first->destroy().live_objects == 1);  // the report names the object left behind
  first.release();
  // Its slab went back to the page allocator: the pointer belongs to no cache.
  CHECK(SlabCache::cache_of(stale) == nullptr);
  CHECK_FALSE(PageAllocator::free_block(stale));

  // A new cache of the same size (it may take the same id and pages) that
  // has handed nothing out refuses the stale pointer.
  CacheHandle second = make_cache("second-cache", 64, &pages);
  ErrorRecorder errors;
  second->free(stale);
  REQUIRE(errors.count() == 1);
  check_report(errors.last(), ErrorCode::kForeignPointer, "second-cache", stale);
  CHECK(second->stats().live_objects == 0);
  CHECK_VALID(*second);
}

TEST_CASE("bad input: interior pointers are reported and ignored") {
  TestPages owner(mslab::test::steady_policy());
  CacheHandle cache = make_cache("interior", 100, &owner.get());  // stride 104, a tail after the last object
  void* a = cache->alloc();
  REQUIRE(a != nullptr);
  detail::Slab* s = detail::slab_of(a);
  REQUIRE(s != nullptr);
  char* base = reinterpret_cast<char*>(s);
  char* tail = s->objects + std::size_t{s->capacity} * s->stride;
  REQUIRE(tail < base + order_bytes(s->order));  // this geometry leaves a tail
  char* obj = static_cast<char*>(a);
  std::vector<void*> bad = {obj + 1, obj + 8, obj + 52, obj + 99, base, base + 64,
                            s->objects - 8, tail, base + order_bytes(s->order) - 8};
  ErrorRecorder errors;
  for (void* p : bad) {
    CAPTURE(pointer_text(p));
    errors.clear();
    cache->free(p);
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), ErrorCode::kInteriorPointer, "interior", p);
  }
  CHECK(cache->stats().live_objects == 1);
  errors.clear();
  cache->free(a);
  CHECK(errors.count() == 0);
  CHECK(cache->stats().live_objects == 0);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);
}

TEST_CASE("bad input: every object of a slab is found exactly for many strides") {
  // free() finds the slot index with a reciprocal multiply; every valid free
  // of every slot must be accepted, and a pointer just past a slot start or
  // just before the next one must be refused as interior.
  TestPages owner(mslab::test::steady_policy());
  const std::size_t sizes[] = {8, 24, 40, 56, 72, 100, 136, 200, 344, 1000, 4104, 12345, 70000, 100008, 262144};
  for (std::size_t size : sizes) {
    CAPTURE(size);
    CacheHandle cache = make_cache("strides", size, &owner.get());
    const std::size_t cap = mslab::test::capacity_of(*cache);
    std::vector<void*> objs;
    for (std::size_t i = 0; i < cap; ++i) objs.push_back(cache->alloc());
    for (void* p : objs) REQUIRE(p != nullptr);
    const std::size_t stride = cache->stats().stride;
    ErrorRecorder errors;
    std::size_t wrong = 0;
    for (void* p : objs) {
      for (std::size_t off : {std::size_t{1}, std::size_t{8}, stride / 2, stride - 1}) {
        if (off % stride == 0) continue;  // that would be the next object's start
        char* bad = static_cast<char*>(p) + off;
        errors.clear();
        cache->free(bad);
        if (errors.count() != 1 || errors.last().code != ErrorCode::kInteriorPointer || errors.last().pointer != bad)
          ++wrong;
      }
    }
    CHECK(wrong == 0);
    errors.clear();
    for (void* p : objs) cache->free(p);  // every slot, in address order
    CHECK(errors.count() == 0);
    cache->flush_thread_cache();
    CHECK(cache->stats().live_objects == 0);
    CHECK_VALID(*cache);
  }
}

TEST_CASE("bad input: page-allocator misuse is reported and ignored") {
  TestPages owner(mslab::test::steady_policy());
  PageAllocator& pages = owner.get();
  TestPages owner2(mslab::test::steady_policy());
  PageAllocator& elsewhere = owner2.get();
  char* p = static_cast<char*>(pages.alloc(2));
  char* q = static_cast<char*>(elsewhere.alloc(2));
  REQUIRE(p != nullptr);
  REQUIRE(q != nullptr);
  int on_stack = 0;
  CHECK(pages.owns(p));
  CHECK_FALSE(pages.owns(q));
  CHECK_FALSE(elsewhere.owns(p));
  CHECK_FALSE(pages.owns(&on_stack));
  const PageStats before = pages.stats();
  ErrorRecorder errors;
  struct Case {
    void* block;
    unsigned order;
    ErrorCode code;
  };
  const Case cases[] = {
      {p + kPageSize, 2, ErrorCode::kInteriorPointer},  // a later page of the block
      {p + 100, 2, ErrorCode::kInteriorPointer},         // inside the first page
      {p, 1, ErrorCode::kInvalidArgument},               // wrong order
      {p, 3, ErrorCode::kInvalidArgument},
      {&on_stack, 0, ErrorCode::kForeignPointer},
      {q, 2, ErrorCode::kForeignPointer},  // a block of another page allocator
      {p + 8 * kPageSize, 3, ErrorCode::kDoubleFree},  // a free block (left by the split)
  };
  for (const Case& c : cases) {
    CAPTURE(pointer_text(c.block));
    CAPTURE(c.order);
    errors.clear();
    pages.free(c.block, c.order);
    REQUIRE(errors.count() == 1);
    check_report(errors.last(), c.code, nullptr, c.block);
    const PageStats s = pages.stats();
    CHECK(s.bytes_in_use == before.bytes_in_use);
    for (unsigned o = 0; o <= kMaxOrder; ++o) CHECK(s.free_blocks[o] == before.free_blocks[o]);
  }
  CHECK_VALID(pages);
  errors.clear();
  pages.free(p, 2);
  CHECK(errors.count() == 0);
  pages.free(p, 2);  // second free
  REQUIRE(errors.count() == 1);
  check_report(errors.last(), ErrorCode::kDoubleFree, nullptr, p);
  CHECK(pages.stats().bytes_in_use == 0);
  CHECK(pages.stats().free_2m_blocks() == 1);
  pages.free(nullptr, 0);  // ignored
  CHECK(errors.count() == 1);
  elsewhere.free(q, 2);
  CHECK_VALID(pages);
  CHECK_VALID(elsewhere);
}

TEST_CASE("bad input: running out of cache ids is an error and not a crash") {
  TestPages owner(mslab::test::steady_policy());
  std::vector<SlabCache*> caches;
  CacheError error{ErrorCode::kCorruption, nullptr};
  ErrorRecorder errors;
  for (std::size_t i = 0; i <= MSLAB_MAX_CACHES; ++i) {
    SlabCache* c = SlabCache::create({.name = "id", .object_size = 32, .pages = &owner.get()}, &error);
    if (c == nullptr) break;
    caches.push_back(c);
  }
  CHECK(caches.size() >= 1);
  CHECK(caches.size() <= MSLAB_MAX_CACHES);
  CHECK(error.code == ErrorCode::kOutOfMemory);
  REQUIRE(error.message != nullptr);
  CHECK(contains(error.message, "too many caches"));
  CHECK(errors.count() == 0);
  // Every cache works; after one is destroyed, a new one can be created.
  void* p = caches.back()->alloc();
  REQUIRE(p != nullptr);
  caches.back()->free(p);
  caches.back()->flush_thread_cache();
  CHECK_VALID(*caches.back());
  CHECK_VALID(owner.get());
  CHECK(caches.front()->destroy().live_objects == 0);
  caches.erase(caches.begin());
  SlabCache* again = SlabCache::create({.name = "again", .object_size = 32, .pages = &owner.get()});
  REQUIRE(again != nullptr);
  CHECK(SlabCache::create({.name = "over", .object_size = 32, .pages = &owner.get()}) == nullptr);
  caches.push_back(again);
  for (SlabCache* c : caches) CHECK(c->destroy().live_objects == 0);
  CHECK(errors.count() == 0);
}

TEST_CASE("bad input: the default handler prints one line and aborts") {
  TestPages owner(mslab::test::steady_policy());
  CacheHandle cache = make_cache("fork-cache", 64, &owner.get());
  void* a = cache->alloc();
  void* keep = cache->alloc();
  REQUIRE(a != nullptr);
  REQUIRE(keep != nullptr);
  set_error_handler(nullptr);  // the default (no test handler is installed here)

  SUBCASE("double free") {
    if (!kCheapChecks) return;
    const auto r = mslab::test::run_in_child([&] {
      cache->free(a);
      cache->free(a);  // aborts (at the latest when the thread's frees are handed over)
      cache->flush_thread_cache();
      return true;
    });
    INFO("child " << mslab::test::describe(r));
    CHECK(r.signaled);
    CHECK(r.signal == SIGABRT);
    CHECK(contains(r.err, "double-free"));
    CHECK(contains(r.err, "fork-cache"));
    CHECK(contains(r.err, pointer_text(a)));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') >= 1);
    // One line from mslab, not one per …
    std::size_t lines = 0;
    for (std::size_t at = r.err.find("mslab: "); at != std::string::npos; at = r.err.find("mslab: ", at + 1)) ++lines;
    CHECK(lines == 1);
  }
  SUBCASE("foreign pointer") {
    int on_stack = 0;
    const auto r = mslab::test::run_in_child([&] {
      cache->free(&on_stack);  // aborts
      return true;
    });
    INFO("child " << mslab::test::describe(r));
    CHECK(r.signaled);
    CHECK(r.signal == SIGABRT);
    CHECK(contains(r.err, "foreign-pointer"));
    CHECK(contains(r.err, "fork-cache"));
    CHECK(contains(r.err, pointer_text(&on_stack)));
  }
  // The parent's cache is untouched by what the child did.
  CHECK(cache->stats().live_objects == 2);
  cache->free(a);
  cache->free(keep);
  cache->flush_thread_cache();
  CHECK_VALID(*cache);
}
