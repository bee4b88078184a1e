// The general allocator's slow paths (malloc.h): initialisation, class
// cache creation, the medium and huge paths, realloc, calloc, alignment.
//
// Initialisation is lazy and recursion-free: the first call that finds its
// class cache missing takes g_init_lock, reads the options, creates the
// cache (metadata from mmap, never from malloc), and only after releasing
// the lock registers the fork handlers — pthread_atfork may call malloc,
// which by then finds everything ready.
#include "malloc/malloc.h"

#include <pthread.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "alloc/error.h"
#include "alloc/fork.h"
#include "alloc/platform.h"
#include "alloc/thread_heap.h"
#include "malloc/huge.h"
#include "malloc/options.h"
#include "malloc/stats.h"
#include "malloc/transfer.h"

namespace mslab {
namespace detail {

constinit std::atomic<SlabCache*> g_class_cache[kClasses] = {};

namespace {

inline constexpr std::size_t kMediumMax = std::size_t{1} << 20;
inline constexpr std::uint32_t kMediumTag = 0x4D414C;  // "MAL": medium blocks of malloc
inline constexpr std::uint32_t kMediumOwner = owner_tag(BlockKind::kLarge, kMediumTag);
inline constexpr const char* kName = "malloc";

constinit std::mutex g_init_lock;
constinit std::atomic<bool> g_options_loaded{false};  // set under g_init_lock
constinit std::atomic<bool> g_fork_registered{false};
constinit std::atomic<std::size_t> g_medium_blocks{0};
constinit std::atomic<std::size_t> g_medium_bytes{0};

// The slab layer's own handlers (alloc/fork.h, registered first) take its
// locks after these, and release them before.
void prepare_fork() noexcept {
  g_init_lock.lock();
  transfer_lock_for_fork(true);
  huge_lock_for_fork(true);
}

void after_fork_parent() noexcept {
  huge_lock_for_fork(false);
  transfer_lock_for_fork(false);
  g_init_lock.unlock();
}

void after_fork_child() noexcept {
  huge_lock_for_fork(false);
  transfer_lock_for_fork(false);
  g_init_lock.unlock();
}

// "malloc-<size>" without snprintf (this runs inside the first malloc).
void class_name(unsigned c, char* out) noexcept {
  std::memcpy(out, "malloc-", 7);
  char digits[12];
  int n = 0;
  for (std::uint32_t v = kClassSize[c]; v != 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
  char* p = out + 7;
  while (n > 0) *p++ = digits[--n];
  *p = '\0';
}

void load_options_once_locked() noexcept {
  if (g_options_loaded.load(std::memory_order_relaxed)) return;
  load_options();
  g_options_loaded.store(true, std::memory_order_release);
}

// The options (limit, purge delay) apply before the first block is taken.
void ensure_options() noexcept {
  if (MSLAB_LIKELY(g_options_loaded.load(std::memory_order_acquire))) return;
  std::lock_guard guard(g_init_lock);
  load_options_once_locked();
}

void register_fork_handlers() noexcept {
  bool expected = false;
  if (g_fork_registered.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    mslab::register_fork_handlers();  // first: its prepare must run after ours
    pthread_atfork(prepare_fork, after_fork_parent, after_fork_child);
  }
}

SlabCache* class_cache(unsigned c) noexcept {
  SlabCache* cache = g_class_cache[c].load(std::memory_order_acquire);
  if (MSLAB_LIKELY(cache != nullptr)) return cache;
  {
    std::lock_guard guard(g_init_lock);
    load_options_once_locked();
    cache = g_class_cache[c].load(std::memory_order_acquire);
    if (cache == nullptr) {
      char name[kMaxCacheName + 1];
      class_name(c, name);
      CacheOptions options;
      options.name = name;
      options.object_size = kClassSize[c];
      options.align = class_align(c);
      options.reserved_id = kFirstClassCacheId + c;  // the free path reads the class off the page tag
      cache = SlabCache::create(options);
      if (cache != nullptr) {
        tcache_register_class(c);
        g_class_cache[c].store(cache, std::memory_order_release);
      }
    }
  }
  register_fork_handlers();
  return cache;
}

void* out_of_memory(std::size_t size) noexcept {
  errno = ENOMEM;
  if (malloc_options().verbose) {
    char text[96] = "mslab: out of memory for a request of ";
    std::size_t n = std::strlen(text);
    char digits[24];
    int d = 0;
    do {
      digits[d++] = static_cast<char>('0' + size % 10);
      size /= 10;
    } while (size != 0);
    while (d > 0) text[n++] = digits[--d];
    std::memcpy(text + n, " bytes", 7);
    os::write_error_line(text);
  }
  return nullptr;
}

unsigned order_for(std::size_t size) noexcept {
  return size <= kPageSize ? 0 : static_cast<unsigned>(std::bit_width((size - 1) >> kPageShift));
}

void* medium_alloc(unsigned order) noexcept {
  ensure_options();
  void* p = PageAllocator::global().alloc(order, BlockKind::kLarge, kMediumTag);
  if (p == nullptr) return nullptr;
  g_medium_blocks.fetch_add(1, std::memory_order_relaxed);
  g_medium_bytes.fetch_add(order_bytes(order), std::memory_order_relaxed);
  register_fork_handlers();
  return p;
}

void* huge(std::size_t size, std::size_t alignment) noexcept {
  ensure_options();
  void* p = huge_alloc(size, alignment < kPageSize ? kPageSize : alignment);
  if (p != nullptr) register_fork_handlers();
  return p;
}

void* class_alloc(unsigned c) noexcept {
  SlabCache* cache = class_cache(c);
  return cache == nullptr ? nullptr : cache->alloc();
}

enum class Kind { kNone, kSmall, kMedium, kHuge };

// Usable bytes at `p` and its kind; reports a pointer that is not ours.
std::size_t usable(const void* p, Kind* kind) noexcept {
  const std::uint32_t tag = owner_tag_of(p);
  if (class_cache_of_tag(tag) != nullptr) {
    if (unsigned c; small_object_class(p, &c)) {
      *kind = Kind::kSmall;
      return kClassSize[c];
    }
    report_error(ErrorCode::kInteriorPointer, kName, p, "pointer is inside an object, not at its start");
    *kind = Kind::kNone;
    return 0;
  } else if (tag == kMediumOwner) {
    const PageDesc* page = page_desc_of(p);
    if (page->block == p) {
      *kind = Kind::kMedium;
      return order_bytes(page->order);
    }
    report_error(ErrorCode::kInteriorPointer, kName, p, "pointer is inside a block, not at its start");
    *kind = Kind::kNone;
    return 0;
  } else if (tag == 0) {
    if (const std::size_t n = huge_usable_size(p)) {
      *kind = Kind::kHuge;
      return n;
    }
  }
  report_error(ErrorCode::kForeignPointer, kName, p, "pointer was not allocated by mslab::malloc, or was freed");
  *kind = Kind::kNone;
  return 0;
}

}  // namespace

void medium_counts(std::size_t* blocks, std::size_t* bytes) noexcept {
  *blocks = g_medium_blocks.load(std::memory_order_relaxed);
  *bytes = g_medium_bytes.load(std::memory_order_relaxed);
}

void* malloc_small(unsigned c) noexcept {
  if (MSLAB_UNLIKELY(g_transfer_batches[c].load(std::memory_order_relaxed) != 0))
    if (void* p = tcache_refill(c)) return p;
  SlabCache* cache = g_class_cache[c].load(std::memory_order_acquire);
  if (MSLAB_LIKELY(cache != nullptr)) {
    if (void* p = cache->alloc(); MSLAB_LIKELY(p != nullptr)) return p;
  }
  return malloc_slow(kClassSize[c]);
}

void* malloc_slow(std::size_t size) noexcept {
  void* p;
  if (size <= kSmallMax)
    p = class_alloc(class_of(size));
  else if (size <= kMediumMax)
    p = medium_alloc(order_for(size));
  else
    p = huge(size, kPageSize);
  return p != nullptr ? p : out_of_memory(size);
}

void free_slow(void* p) noexcept {
  if (p == nullptr) return;
  const std::uint32_t tag = owner_tag_of(p);
  if (SlabCache* cache = class_cache_of_tag(tag)) {
    // A malloc class's slab: an object when the stacks are off (ASan),
    // else not the start of one, which the class cache reports.
    return cache->free(p);
  }
  if (tag == kMediumOwner) {
    PageDesc* page = page_desc_of(p);
    if (page->block != p) {
      report_error(ErrorCode::kInteriorPointer, kName, p, "pointer is inside a block, not at its start");
      return;
    }
    const unsigned order = page->order;
    g_medium_blocks.fetch_sub(1, std::memory_order_relaxed);
    g_medium_bytes.fetch_sub(order_bytes(order), std::memory_order_relaxed);
    PageAllocator::global().free(p, order);
    return;
  }
  if (tag == 0 && huge_free(p)) return;
  report_error(ErrorCode::kForeignPointer, kName, p, "pointer was not allocated by mslab::malloc, or was freed");
}

}  // namespace detail

using detail::Kind;

void* calloc(std::size_t n, std::size_t size) noexcept {
  std::size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  void* p = malloc(total);
  // Huge blocks are fresh mappings: already zero.
  if (p != nullptr && total <= detail::kMediumMax) std::memset(p, 0, total);
  return p;
}

void* realloc(void* p, std::size_t size) noexcept {
  if (p == nullptr) return malloc(size);
  if (size == 0) {
    free(p);
    return nullptr;
  }
  Kind kind;
  const std::size_t have = detail::usable(p, &kind);
  if (kind == Kind::kNone) return nullptr;
  // In place while the block fits and is not more than twice what is asked
  // (a shrink to a much smaller size moves, so memory goes back).
  if (size <= have && (size > have / 2 || have <= 16)) return p;
  if (kind == Kind::kHuge && size > detail::kMediumMax) {
    void* q = detail::huge_resize(p, size);
    return q != nullptr ? q : detail::out_of_memory(size);
  }
  void* q = malloc(size);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, size < have ? size : have);
  free(p);
  return q;
}

void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  if (alignment <= 8 || (alignment <= 16 && size > 8)) return malloc(size);
  void* p = nullptr;
  const std::size_t want = size > alignment ? size : alignment;
  if (alignment <= kMaxObjectAlign && want <= detail::kSmallMax) {
    unsigned c = detail::class_of(want);
    while (c < detail::kClasses && (detail::kClassSize[c] & (alignment - 1)) != 0) ++c;
    if (c < detail::kClasses) {
      p = detail::class_alloc(c);
      return p != nullptr ? p : detail::out_of_memory(size);
    }
  }
  if (alignment <= kChunkSize && size <= detail::kMediumMax) {
    // Buddy blocks are aligned to their size.
    p = detail::medium_alloc(detail::order_for(want));
  } else {
    p = detail::huge(size, alignment);
  }
  return p != nullptr ? p : detail::out_of_memory(size);
}

std::size_t usable_size(const void* p) noexcept {
  if (p == nullptr) return 0;
  Kind kind;
  return detail::usable(p, &kind);
}

std::size_t trim() noexcept {
  detail::tcache_flush();
  detail::transfer_drain();
  detail::flush_thread_heap();
  return PageAllocator::global().collect(true);
}

}  // namespace mslab
