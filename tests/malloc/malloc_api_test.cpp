// The C++ malloc API: size classes, the three size paths, realloc, calloc,
// alignment, usable_size, bad pointers and out of memory via the limit.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "alloc/platform.h"
#include "malloc/malloc.h"
#include "malloc/options.h"
#include "malloc/stats.h"
#include "tests/malloc/malloc_test_util.h"

using namespace mslab;

namespace {

bool aligned(const void* p, std::size_t a) { return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0; }

void fill(void* p, std::size_t n, unsigned char seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(seed + i * 7);
}

bool check(const void* p, std::size_t n, unsigned char seed) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != static_cast<unsigned char>(seed + i * 7)) return false;
  return true;
}

}  // namespace

TEST_CASE("size classes: the table matches the formula, spacing and waste bounds hold") {
  using namespace detail;
  for (std::size_t n = 0; n <= kSmallMax; ++n) {
    const unsigned c = class_of(n);
    REQUIRE(c == class_by_formula(n));
    REQUIRE(kClassSize[c] >= n);
    if (c > 0) REQUIRE(kClassSize[c - 1] < n);  // the smallest class that fits
    if (n > 128) REQUIRE((kClassSize[c] - n) * 5 < kClassSize[c]);  // < 20 % of the block
  }
  for (unsigned c = 1; c < kClasses; ++c) CHECK(kClassSize[c] > kClassSize[c - 1]);
}

TEST_CASE("every size path returns usable, aligned, writable memory") {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 300; ++n) sizes.push_back(n);
  for (std::size_t n : {1000, 4095, 4096, 4097, 32767, 32768, 32769, 65536, 100000, 1 << 20, (1 << 20) + 1,
                        3 << 20})
    sizes.push_back(n);
  std::vector<void*> blocks;
  for (std::size_t n : sizes) {
    void* p = mslab::malloc(n);
    REQUIRE(p != nullptr);
    CHECK(aligned(p, n <= 8 ? 8 : 16));
    CHECK(mslab::usable_size(p) >= n);
    fill(p, n, static_cast<unsigned char>(n));
    blocks.push_back(p);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    CHECK(check(blocks[i], sizes[i], static_cast<unsigned char>(sizes[i])));
    mslab::free(blocks[i]);
  }
  mslab::free(nullptr);
}

TEST_CASE("each class's objects are aligned to the class size's lowest bit") {
  for (unsigned c = 0; c < detail::kClasses; ++c) {
    void* p = mslab::malloc(detail::kClassSize[c]);
    REQUIRE(p != nullptr);
    CHECK(aligned(p, detail::class_align(c)));
    CHECK(mslab::usable_size(p) == detail::kClassSize[c]);
    mslab::free(p);
  }
}

TEST_CASE("aligned_alloc honours every power of two up to 4 MiB") {
  for (std::size_t a = 1; a <= (std::size_t{4} << 20); a <<= 1) {
    for (std::size_t n : {std::size_t{1}, std::size_t{24}, a, a + 1, std::size_t{5000}, std::size_t{70000}}) {
      void* p = mslab::aligned_alloc(a, n);
      REQUIRE(p != nullptr);
      CHECK(aligned(p, a));
      CHECK(mslab::usable_size(p) >= n);
      std::memset(p, 0xAB, n);
      mslab::free(p);
    }
  }
  errno = 0;
  CHECK(mslab::aligned_alloc(24, 10) == nullptr);
  CHECK(errno == EINVAL);
}

TEST_CASE("calloc zeroes recycled memory and rejects overflow") {
  for (std::size_t n : {16, 200, 5000, 40000, 300000, 2 << 20}) {
    void* dirty = mslab::malloc(n);
    std::memset(dirty, 0xFF, n);
    mslab::free(dirty);
    auto* p = static_cast<unsigned char*>(mslab::calloc(1, n));
    REQUIRE(p != nullptr);
    bool zero = true;
    for (std::size_t i = 0; i < n; ++i) zero = zero && p[i] == 0;
    CHECK(zero);
    mslab::free(p);
  }
  errno = 0;
  CHECK(mslab::calloc(SIZE_MAX / 2, 3) == nullptr);
  CHECK(errno == ENOMEM);
}

TEST_CASE("realloc grows and shrinks across every path, keeping the contents") {
  void* p = mslab::realloc(nullptr, 10);
  REQUIRE(p != nullptr);
  fill(p, 10, 3);
  std::size_t size = 10;
  // Growth: small → medium → huge (mremap) → bigger huge.
  for (std::size_t next : {100, 3000, 30000, 200000, 900000, 2000000, 9000000}) {
    void* q = mslab::realloc(p, next);
    REQUIRE(q != nullptr);
    CHECK(check(q, size, 3));
    fill(q, next, 3);
    p = q;
    size = next;
  }
  // Shrink back down.
  for (std::size_t next : {3000000, 500000, 20000, 500, 40, 8}) {
    void* q = mslab::realloc(p, next);
    REQUIRE(q != nullptr);
    CHECK(check(q, next, 3));
    CHECK(mslab::usable_size(q) >= next);
    p = q;
  }
  // Small in place: same class.
  void* q = mslab::realloc(p, 7);
  CHECK(q == p);
  CHECK(mslab::realloc(q, 0) == nullptr);  // frees
}

TEST_CASE("bad pointers are reported and ignored") {
  test::ErrorCapture errors;
  alignas(16) static char local[64];  // not from mslab
  mslab::free(local);
  CHECK(errors.saw(ErrorCode::kForeignPointer));

  SUBCASE("small double free and interior pointer") {
    auto* p = static_cast<char*>(mslab::malloc(64));
    // free() finds a pointer 16 bytes in only with full checks; at the
    // cheap level it tests alignment (tcache.h, free_class()), which finds
    // one 8 bytes in. usable_size() and realloc() check exactly.
    char* inside = p + (mslab::kFullChecks ? 16 : 8);
    mslab::free(inside);
    CHECK(errors.saw(ErrorCode::kInteriorPointer));
    CHECK(mslab::usable_size(p + 16) == 0);
    CHECK(mslab::realloc(p + 16, 100) == nullptr);
    CHECK(errors.codes().size() == 4);
    mslab::free(p);
    mslab::free(p);
    mslab::detail::flush_thread_heap();  // a buffered double free is found at the flush
    CHECK(errors.saw(ErrorCode::kDoubleFree));
  }
  SUBCASE("medium double free and interior pointer") {
    auto* p = static_cast<char*>(mslab::malloc(100000));
    mslab::free(p + 4096);
    CHECK(errors.saw(ErrorCode::kInteriorPointer));
    CHECK(mslab::usable_size(p + 8) == 0);
    mslab::free(p);
    const std::size_t before = errors.codes().size();
    mslab::free(p);
    CHECK(errors.codes().size() == before + 1);
  }
  SUBCASE("huge double free and interior pointer") {
    auto* p = static_cast<char*>(mslab::malloc(5 << 20));
    mslab::free(p + 4096);
    CHECK(errors.codes().size() == 2);
    mslab::free(p);
    mslab::free(p);
    CHECK(errors.codes().size() == 3);
  }
  CHECK(mslab::realloc(local, 10) == nullptr);
}

// free() reads the class off the page's tag (tcache.h, class_of_tag()):
// each class's cache has its reserved id, and a slab of any other cache is
// refused before free() writes a byte of it.
TEST_CASE("small objects' pages carry their class's tag; another cache's object is refused, untouched") {
  for (const std::size_t n : {std::size_t{1}, std::size_t{48}, std::size_t{100}, std::size_t{1000}, detail::kSmallMax}) {
    CAPTURE(n);
    void* p = mslab::malloc(n);
    REQUIRE(p != nullptr);
    CHECK(detail::class_of_tag(detail::owner_tag_of(p)) == detail::class_of(n));
    mslab::free(p);
  }
  void* medium = mslab::malloc(100000);
  REQUIRE(medium != nullptr);
  CHECK(detail::class_of_tag(detail::owner_tag_of(medium)) >= detail::kClasses);
  mslab::free(medium);

  SlabCache* other = SlabCache::create({.name = "not-malloc", .object_size = 48});
  REQUIRE(other != nullptr);
  auto* q = static_cast<unsigned char*>(other->alloc());
  REQUIRE(q != nullptr);
  std::memset(q, 0x5A, 48);
  {
    test::ErrorCapture errors;
    mslab::free(q);
    CHECK(errors.saw(ErrorCode::kForeignPointer));
  }
  bool untouched = true;
  for (int i = 0; i < 48; ++i) untouched = untouched && q[i] == 0x5A;
  CHECK(untouched);
  other->free(q);
  CHECK(other->destroy().live_objects == 0);
}

TEST_CASE("out of memory through the memory limit: nullptr and ENOMEM, then recovery") {
  mslab::trim();
  set_memory_limit(os::reserved_bytes() + (std::size_t{8} << 20));
  errno = 0;
  CHECK(mslab::malloc(std::size_t{64} << 20) == nullptr);  // huge
  CHECK(errno == ENOMEM);
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) {  // medium blocks until the limit bites
    void* p = mslab::malloc(512 * 1024);
    if (p == nullptr) break;
    blocks.push_back(p);
  }
  CHECK(blocks.size() < 1000);
  std::vector<void*> small;
  for (int i = 0; i < 2000000; ++i) {  // and small ones
    void* p = mslab::malloc(4000);
    if (p == nullptr) break;
    small.push_back(p);
  }
  CHECK(small.size() < 2000000);
  void* grown = mslab::realloc(small.front(), std::size_t{32} << 20);
  CHECK(grown == nullptr);  // the old block stays valid
  for (void* p : blocks) mslab::free(p);
  for (void* p : small) mslab::free(p);
  set_memory_limit(0);
  void* p = mslab::malloc(std::size_t{64} << 20);
  CHECK(p != nullptr);
  mslab::free(p);
}

TEST_CASE("statistics count live objects and print without allocating") {
  const MallocStats before = malloc_stats();
  std::vector<void*> live;
  for (int i = 0; i < 1000; ++i) live.push_back(mslab::malloc(48));
  void* medium = mslab::malloc(200000);
  void* huge = mslab::malloc(3 << 20);
  mslab::detail::flush_thread_heap();
  const MallocStats during = malloc_stats();
  CHECK(during.small_live_objects >= before.small_live_objects + 1000);
  CHECK(during.medium_blocks == before.medium_blocks + 1);
  CHECK(during.huge_blocks == before.huge_blocks + 1);
  CHECK(during.huge_bytes >= before.huge_bytes + (3 << 20));
  print_stats();
  for (void* p : live) mslab::free(p);
  mslab::free(medium);
  mslab::free(huge);
  std::size_t bytes = 0;
  CHECK(detail::parse_size("64M", &bytes));
  CHECK(bytes == std::size_t{64} << 20);
  CHECK(detail::parse_size("123", &bytes));
  CHECK(bytes == 123);
  CHECK(detail::parse_size("2kb", &bytes));
  CHECK(bytes == 2048);
  CHECK_FALSE(detail::parse_size("12x", &bytes));
  CHECK_FALSE(detail::parse_size("", &bytes));
}

TEST_CASE("cooperative defrag: should_move, malloc_direct and free_direct pack a fragmented class") {
  // 20 000 objects of one class, 90 % freed at random: sparse slabs.
  constexpr std::size_t kObjects = 20000, kSize = 200;
  std::vector<unsigned char*> objects;
  for (std::size_t i = 0; i < kObjects; ++i) {
    auto* p = static_cast<unsigned char*>(mslab::malloc(kSize));
    REQUIRE(p != nullptr);
    std::memset(p, static_cast<int>(i & 0xff), kSize);
    objects.push_back(p);
  }
  std::vector<std::pair<std::size_t, unsigned char*>> live;
  for (std::size_t i = 0; i < kObjects; ++i) {
    if ((i * 7919) % 10 == 0) live.emplace_back(i, objects[i]);
    else mslab::free(objects[i]);
  }
  mslab::trim();  // the thread's stacks back to the slabs
  // The application's defrag walk: move what the hint names.
  std::size_t moved = 0;
  for (auto& [i, p] : live) {
    if (!mslab::should_move(p)) continue;
    auto* q = static_cast<unsigned char*>(mslab::malloc_direct(kSize));
    REQUIRE(q != nullptr);
    std::memcpy(q, p, kSize);
    mslab::free_direct(p);
    p = q;
    ++moved;
  }
  MESSAGE(moved << " of " << live.size() << " objects moved");
  CHECK(moved > 0);
  for (auto& [i, p] : live) {
    bool intact = true;
    for (std::size_t b = 0; b < kSize; ++b) intact = intact && p[b] == static_cast<unsigned char>(i & 0xff);
    CHECK(intact);
  }
  // The hint never says yes for other blocks, and never reports.
  void* medium = mslab::malloc(100000);
  int on_stack = 0;
  CHECK_FALSE(mslab::should_move(medium));
  CHECK_FALSE(mslab::should_move(&on_stack));
  CHECK_FALSE(mslab::should_move(nullptr));
  mslab::free(medium);
  for (auto& [i, p] : live) mslab::free(p);
}
