// mimalloc as a benchmark allocator: mi_malloc/mi_free from the linked
// libmimalloc. Note that Debian's libmimalloc.so also exports malloc/free,
// so linking it makes mimalloc the process's malloc (see adapter_glibc.h).
#pragma once

#include <mimalloc.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mslab::bench {

class MimallocAllocator {
 public:
  static constexpr std::string_view kName = "mimalloc";
  static constexpr std::string_view kSettle = "mi_collect(true)";

  bool open(std::size_t object_size, std::string*) {
    size_ = object_size;
    return true;
  }
  void* alloc() noexcept { return mi_malloc(size_); }
  void free(void* p) noexcept { mi_free(p); }
  // Frees the thread's delayed frees and retired pages and returns what it can to the OS.
  void settle() noexcept { mi_collect(true); }

  // mi_check_owned walks this thread's heap, so it holds wherever the OS
  // placed mimalloc's segments (mi_is_in_heap_region misses segments mapped
  // above its address map, as happens under AddressSanitizer).
  bool verify(const void* sample, std::size_t, std::string* why) const {
    if (mi_check_owned(sample)) return true;
    *why = "mi_malloc returned memory outside mimalloc's default heap";
    return false;
  }
  std::optional<std::uint64_t> free_2m_blocks() const { return std::nullopt; }
  std::string version() const {
    const int v = mi_version();  // e.g. 209 for 2.0.9
    return std::to_string(v / 100) + "." + std::to_string(v % 100 / 10) + "." + std::to_string(v % 10);
  }

 private:
  std::size_t size_ = 0;
};

}  // namespace mslab::bench
