// Metadata allocator (meta_pool.h): bump allocation from 1 MiB regions,
// free lists by exact rounded size, large records mapped on their own.
// The whole pages of a freed pooled record go back to the OS.
#include "alloc/meta_pool.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "alloc/fork.h"
#include "alloc/platform.h"

namespace mslab::detail {
namespace {

constexpr std::size_t kRegionSize = std::size_t{1} << 20;
// Larger records get their own mapping, unmapped when freed (a thread's
// heap, the huge-block registry, the defragmenter's scratch arrays), so
// that nothing of theirs stays resident (a pooled record keeps its first and last pages
// when freed).
constexpr std::size_t kMaxPooled = 16 * 1024;
constexpr std::size_t kClasses = kMaxPooled / kMetaAlign;  // one list per 64 B step

struct FreeRecord {
  FreeRecord* next;
};

struct Pool {
  std::mutex lock;
  char* bump = nullptr;  // next free byte of the current region
  char* bump_end = nullptr;
  FreeRecord* free_lists[kClasses + 1] = {};
  std::atomic<std::size_t> mapped{0};
};

Pool& pool() noexcept {
  static Pool instance;  // constant-initialised: safe before main
  return instance;
}

std::size_t round_up(std::size_t n) noexcept { return (n + kMetaAlign - 1) & ~(kMetaAlign - 1); }

std::size_t round_to_pages(std::size_t n) noexcept {
  const std::size_t page = os::page_size();
  return (n + page - 1) & ~(page - 1);
}

}  // namespace

void* meta_alloc(std::size_t size) noexcept {
  Pool& p = pool();
  size = round_up(size == 0 ? 1 : size);
  if (size > kMaxPooled) {
    void* mem = os::map_metadata(round_to_pages(size));
    if (mem != nullptr) p.mapped.fetch_add(round_to_pages(size), std::memory_order_relaxed);
    return mem;  // fresh mappings read as zero
  }
  std::lock_guard guard(p.lock);
  FreeRecord*& head = p.free_lists[size / kMetaAlign];
  if (head != nullptr) {
    FreeRecord* r = head;
    head = r->next;
    std::memset(r, 0, size);
    return r;
  }
  if (static_cast<std::size_t>(p.bump_end - p.bump) < size) {
    // The tail of the old region is lost; it is smaller than one record.
    auto* region = static_cast<char*>(os::map_metadata(kRegionSize));
    if (region == nullptr) return nullptr;
    p.mapped.fetch_add(kRegionSize, std::memory_order_relaxed);
    p.bump = region;
    p.bump_end = region + kRegionSize;
  }
  void* r = p.bump;
  p.bump += size;
  return r;
}

void meta_free(void* ptr, std::size_t size) noexcept {
  if (ptr == nullptr) return;
  size = round_up(size == 0 ? 1 : size);
  if (size > kMaxPooled) {
    os::unmap_metadata(ptr, round_to_pages(size));
    pool().mapped.fetch_sub(round_to_pages(size), std::memory_order_relaxed);
    return;
  }
  // A pooled record spanning whole pages gives them back to the OS: a
  // freed working array must not stay resident. The first page keeps the
  // free-list link; meta_alloc() zeroes a reused record anyway.
  const std::size_t page = os::page_size();
  const auto begin = (reinterpret_cast<std::uintptr_t>(ptr) + sizeof(FreeRecord) + page - 1) & ~(page - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(ptr) + size) & ~(page - 1);
  if (end > begin) os::purge(reinterpret_cast<void*>(begin), end - begin);
  Pool& p = pool();
  std::lock_guard guard(p.lock);
  auto* r = static_cast<FreeRecord*>(ptr);
  r->next = p.free_lists[size / kMetaAlign];
  p.free_lists[size / kMetaAlign] = r;
}

std::size_t meta_mapped_bytes() noexcept { return pool().mapped.load(std::memory_order_relaxed); }

void meta_lock_for_fork(bool lock) noexcept { set_fork_lock(pool().lock, lock); }

}  // namespace mslab::detail
