// glibc's malloc as a benchmark allocator. The process's `malloc` is not
// glibc's here: Debian's libmimalloc.so (linked for mi_malloc) exports
// malloc/free too and wins symbol lookup, and a sanitizer build interposes
// its own. So the adapter takes malloc, free and malloc_trim from libc.so.6
// itself (dlsym on its handle), which is glibc's ptmalloc for certain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mslab::bench {

class GlibcAllocator {
 public:
  static constexpr std::string_view kName = "glibc";
  static constexpr std::string_view kSettle = "malloc_trim(0)";

  bool open(std::size_t object_size, std::string* why);
  void* alloc() noexcept { return malloc_(size_); }
  void free(void* p) noexcept { free_(p); }
  // Returns free memory at the heap top and whole free pages inside it.
  void settle() noexcept { trim_(0); }

  bool verify(const void* sample, std::size_t live_objects, std::string* why) const;
  std::optional<std::uint64_t> free_2m_blocks() const { return std::nullopt; }
  std::string version() const;

 private:
  std::size_t size_ = 0;
  void* (*malloc_)(std::size_t) = nullptr;
  void (*free_)(void*) = nullptr;
  int (*trim_)(std::size_t) = nullptr;
  std::size_t (*usable_size_)(void*) = nullptr;
};

}  // namespace mslab::bench
