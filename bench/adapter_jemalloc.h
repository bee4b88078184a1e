// jemalloc as a benchmark allocator, loaded at run time. Debian's jemalloc
// exports unprefixed malloc/free: linking it would replace malloc for the
// whole process. dlopen(RTLD_LOCAL) keeps it out of the global symbol
// scope, and the adapter calls its mallocx/dallocx through dlsym. If the
// library is missing the run is skipped with a note.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mslab::bench {

class JemallocAllocator {
 public:
  static constexpr std::string_view kName = "jemalloc";
  static constexpr std::string_view kSettle = "thread.tcache.flush + arena.<all>.purge";

  /// jemalloc's TLS is initial-exec (2.6 KiB): dlopen fails with "cannot
  /// allocate memory in static TLS block" unless glibc reserved more surplus
  /// static TLS at startup. So the parent re-executes itself once with
  /// GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192 added. If exec
  /// fails, nothing changes and open() reports dlopen's error.
  static void prepare_process(char** argv) noexcept;

  bool open(std::size_t object_size, std::string* why);
  void* alloc() noexcept { return mallocx_(size_, 0); }
  void free(void* p) noexcept { dallocx_(p, 0); }
  // Empties the thread cache, then purges every arena's dirty and muzzy pages.
  void settle() noexcept;

  /// Checks that jemalloc's own statistics account for the live objects.
  bool verify(const void* sample, std::size_t live_objects, std::string* why) const;
  std::optional<std::uint64_t> free_2m_blocks() const { return std::nullopt; }
  std::string version() const;

 private:
  using MallctlFn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  std::size_t size_ = 0;
  void* (*mallocx_)(std::size_t, int) = nullptr;
  void (*dallocx_)(void*, int) = nullptr;
  MallctlFn mallctl_ = nullptr;
};

}  // namespace mslab::bench
