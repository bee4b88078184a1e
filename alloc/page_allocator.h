// The page allocator: a buddy allocator of blocks of 2^order pages, order 0
// (4 KiB) to kMaxOrder = 9 (2 MiB), over 2 MiB-aligned chunks reserved from
// the OS. A chunk is one order-9 block, so buddies never straddle chunks and
// every wholly free chunk is a free 2 MiB block — the figure the
// defragmenter raises.
//
// Invariants (checked by validate()):
//   free_pages(chunk) == sum of 2^order over the free blocks in the chunk
//   no two free buddies of the same order exist (they would have merged)
//   purged_pages(chunk) == pages of the chunk whose kPurged flag is set
// Depends on: platform, arena, meta_pool, error.
#pragma once

#include <boost/intrusive/list.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "alloc/arena.h"

namespace mslab {

/// What an allocated block is used for; recorded on every page of it so that
/// any interior address leads to its owner in O(1).
enum class BlockKind : std::uint8_t { kNone = 0, kRaw, kSlab, kLarge };

namespace detail {

enum class PageState : std::uint8_t { kFreeInside = 0, kFreeHead, kUsedHead, kUsedInside };

// Intrusive hooks without safe-mode bookkeeping: the lists are private to
// their owner and validate() checks them.
using ListHook = boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>;

inline constexpr std::uint8_t kPagePurged = 1;  // page's memory given back to the OS
inline constexpr std::uint8_t kPageDirty = 2;   // free head: some page may be resident

// One per 4 KiB page, 32 bytes, kept out of line (in the arena's map of
// page descriptors, arena.h) so that free memory is never touched and can
// stay purged.
struct PageDesc {
  ListHook free_hook;  // free_lists_[order] while a free head
  char* block;                                     // start of the block this page belongs to
  union {
    std::uint32_t freed_at_ms;  // free head: when it was freed
    std::uint32_t tag;          // used pages: owner tag given to alloc() (slabs: cache id + 1)
  };
  std::uint8_t order;                              // head: order of its block
  PageState state;
  BlockKind kind;       // used pages: what the block is used for
  std::uint8_t flags;   // kPagePurged, kPageDirty
};
static_assert(sizeof(PageDesc) == 32);

class PageAllocatorImpl;

/// A page's owner in one word: block kind (top byte) and tag. Dense (2 KiB
/// per chunk) so that the free path's ownership check stays in cache.
constexpr std::uint32_t owner_tag(BlockKind kind, std::uint32_t tag) noexcept {
  return (static_cast<std::uint32_t>(kind) << 24) | (tag & 0xFFFFFF);
}

// On a slab's pages the tag is the cache's (bits 0–12) and bits 13–23 hold
// an *owner hint*: the number of the thread that owns the slab (1 … 2047,
// thread_heap.h), 0 when none. A free learns from the tag it loads anyway
// whether the slab is its own, without reading the slab header — a cache
// miss per free when frees are random. Only the slab's cache writes the
// hint (set_owner_hint), under its lock, while it holds the block.
inline constexpr unsigned kOwnerHintShift = 13;
inline constexpr std::uint32_t kOwnerHintMask = std::uint32_t{0x7FF} << kOwnerHintShift;

static_assert(sizeof(PageDesc) * kPagesPerChunk == kChunkPagesBytes);

struct ChunkDesc {
  PageDesc* pages;  // kPagesPerChunk of them, in the arena's map (chunk_pages_area())
  ListHook chunk_hook;  // the owner's list of chunks
  char* base;
  PageAllocatorImpl* owner;
  std::uint32_t free_pages;    // pages in free blocks
  std::uint32_t purged_pages;  // pages with kPagePurged
  std::uint32_t excluded;      // exclude_chunk() holds: no block is allocated from it while > 0
};

/// owner_tag() of the page holding `p` (with, on a slab's page, its owner
/// hint); 0 if the page is free or not ours. The tags are a flat map in the
/// arena (arena.h), 4 bytes a page. Lock-free; any thread; any pointer.
[[gnu::always_inline]] inline std::uint32_t owner_tag_of(const void* p) noexcept {
  if (!in_arena(p)) return 0;
  return page_tags(p)->load(std::memory_order_relaxed);
}

/// Sets the owner hint (`hint` = thread number << kOwnerHintShift, or 0)
/// on every page of the slab block at `block` of `order` pages. For the
/// block's slab cache only, under its lock; frees read the tags meanwhile.
inline void set_owner_hint(const void* block, unsigned order, std::uint32_t hint) noexcept {
  std::atomic<std::uint32_t>* tags = page_tags(block);
  for (std::size_t i = 0; i < (std::size_t{1} << order); ++i)
    tags[i].store((tags[i].load(std::memory_order_relaxed) & ~kOwnerHintMask) | hint, std::memory_order_relaxed);
}

/// The descriptor of the page holding `p`, or nullptr if mslab does not own
/// it. Lock-free, any thread (see chunk_of()).
inline PageDesc* page_desc_of(const void* p) noexcept {
  ChunkDesc* chunk = chunk_of(p);
  if (chunk == nullptr) return nullptr;
  const auto offset = reinterpret_cast<std::uintptr_t>(p) & (kChunkSize - 1);
  return &chunk->pages[offset >> kPageShift];
}

}  // namespace detail

/// When free memory goes back to the OS. The defaults avoid map/unmap
/// thrash: two wholly free chunks stay reserved, others are unmapped once
/// they have been free for 100 ms; free blocks of 64 KiB or more give their
/// pages back (MADV_DONTNEED) once free for 10 ms. Zero delays act at once.
struct PagePolicy {
  std::size_t retain_free_chunks = 2;   // wholly free chunks kept mapped
  std::uint32_t release_delay_ms = 100;  // then unmapped after this long free
  unsigned purge_order = 4;              // free blocks >= this order are purged …
  std::uint32_t purge_delay_ms = 10;     // … once free this long
  std::size_t max_chunks = 0;            // cap on chunks held (0 = none)
};

struct PageStats {
  std::size_t free_blocks[kMaxOrder + 1];  // free blocks per order
  std::size_t chunks_reserved;             // chunks mapped now
  std::size_t chunks_resident;             // chunks with at least one unpurged page
  std::size_t bytes_in_use;                // in allocated blocks
  std::size_t bytes_free;                  // in free blocks (resident or purged)
  std::size_t bytes_purged;                // free and given back to the OS
  std::uint64_t chunks_mapped_total;       // chunks ever reserved
  std::uint64_t chunks_released_total;     // chunks ever unmapped

  /// Free 2 MiB blocks held (= wholly free, still reserved chunks).
  std::size_t free_2m_blocks() const noexcept { return free_blocks[kMaxOrder]; }
};

/// What of the chunks is backed by physical memory now (residency()).
struct PageResidency {
  std::size_t chunk_bytes;  // resident bytes in all chunks
  std::size_t free_bytes;   // of them, in free blocks
  std::size_t desc_bytes;   // chunk descriptors (library metadata, one per chunk)
};

/// A buddy allocator instance. The process-wide one is global(); tests make
/// their own. All members are thread-safe (one internal lock, never held
/// across a call into another layer). Member functions never throw.
class PageAllocator {
 public:
  explicit PageAllocator(const PagePolicy& policy = {}) noexcept;
  /// Unmaps every chunk. Blocks still allocated must no longer be used.
  ~PageAllocator();
  PageAllocator(const PageAllocator&) = delete;
  PageAllocator& operator=(const PageAllocator&) = delete;

  /// The process-wide allocator used by slab caches unless told otherwise.
  /// Never destroyed (safe during exit handlers).
  static PageAllocator& global() noexcept;

  /// Allocates a block of 2^order pages, aligned to its size. `kind` and
  /// `tag` are recorded on every page for owner lookups. Returns nullptr when
  /// out of memory, and reports kInvalidArgument (then returns nullptr) for
  /// order > kMaxOrder. May block (lock, mmap).
  void* alloc(unsigned order, BlockKind kind = BlockKind::kRaw, std::uint32_t tag = 0) noexcept;

  /// Frees a block from alloc() with the same `order`; it merges with free
  /// buddies. A pointer that is not the start of a block of this allocator,
  /// a wrong order or a second free is reported (error.h) and ignored.
  void free(void* block, unsigned order) noexcept;

  /// Frees `block` through whichever page allocator owns it, with the order
  /// it was allocated with. Returns false (and does nothing) if `block` is
  /// not the start of an allocated block of any page allocator. Slab blocks
  /// are refused too: they belong to their cache. Thread-safe.
  static bool free_block(void* block) noexcept;

  /// Applies the policy now: purges and releases what is due, or, with
  /// `force`, gives back every free page whatever its order (as malloc_trim
  /// does) and unmaps the free chunks beyond the reserve (the reserve stays
  /// mapped, purged). Returns the bytes given back.
  std::size_t collect(bool force = false) noexcept;

  PageStats stats() const noexcept;
  /// Asks the OS which pages of the chunks are resident (diagnostics and
  /// tests: O(pages) system-call work under the lock).
  PageResidency residency() const noexcept;
  PagePolicy policy() const noexcept;
  void set_policy(const PagePolicy& policy) noexcept;

  /// Failure injection (tests): makes alloc() call number `n` from now
  /// (0 = the next) return nullptr, and every later one too when `sticky`.
  /// A negative `n` disarms it. Thread-safe.
  void inject_failure(long n, bool sticky = false) noexcept;

  /// Excludes the chunk holding `p` from allocation (`excluded`) or lifts
  /// one exclusion (they nest). While excluded, alloc() takes no block from
  /// the chunk — it maps a new chunk rather — so that the defragmenter's
  /// relocation targets never land in the chunk it evacuates, and a chunk
  /// it has emptied stays a free 2 MiB block. Frees into it work as usual.
  /// Returns false (and does nothing) if `p` is not in a chunk of this
  /// allocator, or when lifting an exclusion the chunk does not hold.
  /// Thread-safe; takes the lock. Allocation cost is unchanged while no
  /// chunk is excluded.
  bool exclude_chunk(const void* p, bool excluded) noexcept;

  /// Pages in free blocks of the chunk holding `p` (0 … kPagesPerChunk), or
  /// -1 if `p` is not in a chunk of this allocator. Thread-safe; takes the
  /// lock; the answer may be stale at once.
  long chunk_free_pages(const void* p) const noexcept;
  /// The free blocks of the chunk holding `p`, counted by order into
  /// `by_order`; false (and `by_order` untouched) if `p` is not in a chunk
  /// of this allocator. Thread-safe; takes the lock; O(pages of a chunk).
  bool chunk_free_blocks(const void* p, std::size_t (&by_order)[kMaxOrder + 1]) const noexcept;
  /// Calls `fn(ctx, block)` for every allocated block of 2^`order` pages
  /// whose owner tag, with the bits of `ignore` cleared, is `owner`, chunk
  /// by chunk in address order. Reads only the dense per-chunk tags (no
  /// block memory): O(chunks × pages / 2^order). Holds the lock throughout,
  /// so `fn` must be short and must not call into this allocator. Which
  /// blocks match may change as soon as it returns.
  using BlockFn = void (*)(void* ctx, void* block) noexcept;
  void for_each_block(std::uint32_t owner, std::uint32_t ignore, unsigned order, BlockFn fn, void* ctx) const noexcept;
  /// Fork support (alloc/fork.h): takes (`lock`) or releases the internal
  /// lock, so that a child process never inherits it held.
  void lock_for_fork(bool lock) noexcept;

  /// True if `p` lies in a chunk of this allocator.
  bool owns(const void* p) const noexcept;

  /// Full consistency walk (see the invariants above). Reports kCorruption
  /// and returns false at the first broken one. O(pages); takes the lock.
  bool validate() const noexcept;

 private:
  detail::PageAllocatorImpl* impl_;
};

}  // namespace mslab
