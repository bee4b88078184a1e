// mslab as a benchmark allocator: one SlabCache of the object size, its
// pages from the global page allocator. alloc()/free() are the library's
// inline fast paths, as a program linking mslab gets them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"

#ifndef MSLAB_VERSION_STRING
#define MSLAB_VERSION_STRING "unknown"
#endif

namespace mslab::bench {

class MslabAllocator {
 public:
  static constexpr std::string_view kName = "mslab";
  static constexpr std::string_view kSettle = "flush_thread_cache + PageAllocator::global().collect(true)";

  MslabAllocator() = default;
  ~MslabAllocator() {
    if (cache_ != nullptr) cache_->destroy();
  }
  MslabAllocator(const MslabAllocator&) = delete;
  MslabAllocator& operator=(const MslabAllocator&) = delete;

  /// `slab_waste`: CacheOptions::slab_waste (0: the library's default).
  bool open(std::size_t object_size, std::string* why, unsigned slab_waste = 0) {
    CacheError error{};
    cache_ = SlabCache::create({.name = "bench", .object_size = object_size, .slab_waste = slab_waste}, &error);
    if (cache_ == nullptr) *why = std::string("SlabCache::create failed: ") + error.message;
    return cache_ != nullptr;
  }
  // Inlined into the workloads, as the library's own fast paths are into a
  // program calling SlabCache::alloc/free directly.
  [[gnu::always_inline]] void* alloc() noexcept { return cache_->alloc(); }
  [[gnu::always_inline]] void free(void* p) noexcept { cache_->free(p); }
  // Hands this thread's pending frees and active slab back to the cache
  // (so empty slabs reach the page allocator), then purges free page blocks
  // at once instead of after the policy's delays.
  void settle() noexcept {
    cache_->flush_thread_cache();
    PageAllocator::global().collect(true);
  }

  bool verify(const void* sample, std::size_t live_objects, std::string* why) const {
    if (SlabCache::cache_of(sample) != cache_) {
      *why = "an object is not in the benchmark's slab cache";
      return false;
    }
    const std::size_t live = cache_->stats().live_objects;
    if (live != live_objects) {
      *why = "the cache counts " + std::to_string(live) + " live objects, expected " + std::to_string(live_objects);
      return false;
    }
    return true;
  }
  std::optional<std::uint64_t> free_2m_blocks() const { return PageAllocator::global().stats().free_2m_blocks(); }
  std::string version() const { return MSLAB_VERSION_STRING; }

 private:
  SlabCache* cache_ = nullptr;
};

}  // namespace mslab::bench
