// The metadata pool: records come back zeroed, and a freed record's whole
// pages go back to the OS; a record above 16 KiB (a chunk descriptor) is
// unmapped.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>

#include "alloc/meta_pool.h"
#include "alloc/platform.h"

namespace mslab::detail {

TEST_CASE("meta pool: a freed record's whole pages are purged, and it comes back zeroed") {
  constexpr std::size_t kSize = 12 * 1024;  // pooled (up to 16 KiB), spans whole pages
  auto* p = static_cast<unsigned char*>(meta_alloc(kSize));
  REQUIRE(p != nullptr);
  std::memset(p, 0xA5, kSize);
  const std::size_t page = os::page_size();
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + page) & ~(page - 1);  // past the first page
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + kSize) & ~(page - 1);
  REQUIRE(end > begin);
  const auto* inner = reinterpret_cast<const void*>(begin);
  CHECK(os::resident_in(inner, end - begin) == end - begin);
  meta_free(p, kSize);
  CHECK(os::resident_in(inner, end - begin) == 0);
  // Reused by exact size (the last freed record of the size first): zeroed.
  auto* q = static_cast<unsigned char*>(meta_alloc(kSize));
  REQUIRE(q == p);
  bool zero = true;
  for (std::size_t i = 0; i < kSize; ++i) zero = zero && q[i] == 0;
  CHECK(zero);
  meta_free(q, kSize);
}

TEST_CASE("meta pool: a record above 16 KiB has its own mapping, gone when freed") {
  constexpr std::size_t kSize = 18 * 1024 + 64;  // a chunk descriptor's size
  const std::size_t before = meta_mapped_bytes();
  void* p = meta_alloc(kSize);
  REQUIRE(p != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % os::page_size() == 0);
  CHECK(meta_mapped_bytes() == before + 5 * os::page_size());
  std::memset(p, 0xA5, kSize);
  meta_free(p, kSize);
  CHECK(meta_mapped_bytes() == before);
}

}  // namespace mslab::detail
