// The buddy allocator (page_allocator.h).
//
// Data flow: alloc() pops the smallest free block of at least the wanted
// order (reserving a new chunk when none is left) and splits it, pushing the
// upper halves back on the lower free lists. free() marks the block free and
// merges it with its buddy while the buddy is a free block of the same order.
// A block whose order reaches 9 is a wholly free chunk. maintain() then
// applies the PagePolicy: purge old dirty free blocks, unmap old free chunks
// beyond the reserve.
#include "alloc/page_allocator.h"

#include <chrono>
#include <new>

#include "alloc/config.h"
#include "alloc/error.h"
#include "alloc/fork.h"
#include "alloc/meta_pool.h"
#include "alloc/platform.h"

namespace mslab {
namespace detail {
namespace bi = boost::intrusive;

namespace {

std::uint32_t now_ms() noexcept {
  using namespace std::chrono;
  return static_cast<std::uint32_t>(
      duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

// Wrap-safe "at least `delay` ms passed since `then`".
bool elapsed(std::uint32_t now, std::uint32_t then, std::uint32_t delay) noexcept {
  return static_cast<std::uint32_t>(now - then) >= delay;
}

std::size_t page_index(const ChunkDesc* chunk, const void* p) noexcept {
  return static_cast<std::size_t>(static_cast<const char*>(p) - chunk->base) >> kPageShift;
}

}  // namespace

class PageAllocatorImpl {
 public:
  explicit PageAllocatorImpl(const PagePolicy& policy) noexcept : policy_(policy) {}
  ~PageAllocatorImpl() {
    for (FreeList& list : free_lists_) list.clear();  // before their nodes go
    while (!chunks_.empty()) {
      ChunkDesc& chunk = chunks_.front();
      chunks_.pop_front();
      unmap_chunk(&chunk);
    }
  }

  void* alloc(unsigned order, BlockKind kind, std::uint32_t tag) noexcept;
  void free(void* block, unsigned order) noexcept;
  std::size_t collect(bool force) noexcept {
    std::lock_guard guard(lock_);
    return maintain(now_ms(), force);
  }
  PageStats stats() const noexcept;
  PageResidency residency() const noexcept;
  bool validate() const noexcept;
  void inject_failure(long n, bool sticky) noexcept {
    std::lock_guard guard(lock_);
    fail_countdown_ = n;
    fail_sticky_ = sticky;
  }
  PagePolicy policy() const noexcept {
    std::lock_guard guard(lock_);
    return policy_;
  }
  bool exclude_chunk(const void* p, bool excluded) noexcept;
  long chunk_free_pages(const void* p) const noexcept;
  bool chunk_free_blocks(const void* p, std::size_t (&by_order)[kMaxOrder + 1]) const noexcept;
  void for_each_block(std::uint32_t owner, std::uint32_t ignore, unsigned order, PageAllocator::BlockFn fn,
                      void* ctx) const noexcept;
  void set_policy(const PagePolicy& policy) noexcept {
    std::lock_guard guard(lock_);
    policy_ = policy;
    maintain(now_ms(), false);
  }
  void lock_for_fork(bool lock) noexcept { set_fork_lock(lock_, lock); }

 private:
  using FreeList = bi::list<PageDesc, bi::member_hook<PageDesc, ListHook, &PageDesc::free_hook>,
                            bi::constant_time_size<true>>;
  using ChunkList = bi::list<ChunkDesc, bi::member_hook<ChunkDesc, ListHook, &ChunkDesc::chunk_hook>,
                             bi::constant_time_size<true>>;

  ChunkDesc* map_chunk() noexcept;
  void unmap_chunk(ChunkDesc* chunk) noexcept;
  void push_free(ChunkDesc* chunk, std::size_t index, unsigned order, bool dirty, std::uint32_t when) noexcept;
  void mark_used(ChunkDesc* chunk, std::size_t index, unsigned order, BlockKind kind, std::uint32_t tag) noexcept;
  void purge_block(ChunkDesc* chunk, PageDesc& head) noexcept;
  std::size_t maintain(std::uint32_t now, bool force) noexcept;
  const char* check_free(ChunkDesc* chunk, void* block, unsigned order, ErrorCode* code) noexcept;
  PageDesc* first_allowed(unsigned order, unsigned* k) noexcept;

  mutable std::mutex lock_;
  PagePolicy policy_;
  FreeList free_lists_[kMaxOrder + 1];
  ChunkList chunks_;
  std::size_t dirty_blocks_ = 0;  // dirty free blocks, any order (the scan filters by purge_order)
  std::uint32_t last_purge_scan_ms_ = 0;
  std::uint64_t mapped_total_ = 0;
  std::uint64_t released_total_ = 0;
  std::size_t bytes_in_use_ = 0;
  std::size_t excluded_chunks_ = 0;  // chunks with ChunkDesc::excluded > 0
  long fail_countdown_ = -1;  // failure injection: < 0 disarmed
  bool fail_sticky_ = false;
};

ChunkDesc* PageAllocatorImpl::map_chunk() noexcept {
  if (policy_.max_chunks != 0 && chunks_.size() >= policy_.max_chunks) return nullptr;
  char* base = arena_take_chunk();
  if (base == nullptr) return nullptr;
  if (!os::charge(kChunkSize)) {
    arena_give_back_chunk(base);
    return nullptr;
  }
  auto* chunk = static_cast<ChunkDesc*>(meta_alloc(sizeof(ChunkDesc)));
  if (chunk == nullptr) {
    os::uncharge(kChunkSize);
    arena_give_back_chunk(base);
    return nullptr;
  }
  new (chunk) ChunkDesc{};
  chunk->pages = static_cast<PageDesc*>(chunk_pages_area(base));  // zero-filled: value-initialised PageDescs
  for (std::size_t i = 0; i < kPagesPerChunk; ++i) new (&chunk->pages[i]) PageDesc{};
  chunk->base = base;
  chunk->owner = this;
  chunk->free_pages = kPagesPerChunk;
  arena_publish(base, chunk);
  chunks_.push_back(*chunk);
  ++mapped_total_;
  // Fresh memory is not resident yet: it is clean, not dirty.
  push_free(chunk, 0, kMaxOrder, /*dirty=*/false, now_ms());
  return chunk;
}

void PageAllocatorImpl::unmap_chunk(ChunkDesc* chunk) noexcept {
  if (chunk->excluded != 0) --excluded_chunks_;
  arena_publish(chunk->base, nullptr);
  arena_give_back_chunk(chunk->base);
  os::uncharge(kChunkSize);
  chunk->~ChunkDesc();
  meta_free(chunk, sizeof(ChunkDesc));
  ++released_total_;
}

void PageAllocatorImpl::push_free(ChunkDesc* chunk, std::size_t index, unsigned order, bool dirty,
                                  std::uint32_t when) noexcept {
  PageDesc& head = chunk->pages[index];
  head.block = chunk->base + (index << kPageShift);
  head.order = static_cast<std::uint8_t>(order);
  head.state = PageState::kFreeHead;
  head.kind = BlockKind::kNone;
  head.freed_at_ms = when;
  head.flags = static_cast<std::uint8_t>((head.flags & kPagePurged) | (dirty ? kPageDirty : 0));
  free_lists_[order].push_front(head);
  if (dirty) ++dirty_blocks_;
}

void PageAllocatorImpl::mark_used(ChunkDesc* chunk, std::size_t index, unsigned order, BlockKind kind,
                                  std::uint32_t tag) noexcept {
  char* block = chunk->base + (index << kPageShift);
  const std::size_t pages = std::size_t{1} << order;
  for (std::size_t i = 0; i < pages; ++i) {
    PageDesc& page = chunk->pages[index + i];
    if (page.flags & kPagePurged) --chunk->purged_pages;
    page.flags = 0;
    page.block = block;
    page.kind = kind;
    page.tag = tag;
    page_tags(block)[i].store(owner_tag(kind, tag), std::memory_order_relaxed);
    page.state = i == 0 ? PageState::kUsedHead : PageState::kUsedInside;
  }
  chunk->pages[index].order = static_cast<std::uint8_t>(order);
  block_word(block).store(0, std::memory_order_relaxed);
  chunk->free_pages -= static_cast<std::uint32_t>(pages);
  bytes_in_use_ += order_bytes(order);
}

void* PageAllocatorImpl::alloc(unsigned order, BlockKind kind, std::uint32_t tag) noexcept {
  std::lock_guard guard(lock_);
  if (MSLAB_UNLIKELY(fail_countdown_ >= 0)) {
    if (fail_countdown_ == 0) {
      if (!fail_sticky_) fail_countdown_ = -1;
      return nullptr;
    }
    --fail_countdown_;
  }
  unsigned k = order;
  PageDesc* found = nullptr;
  if (MSLAB_LIKELY(excluded_chunks_ == 0)) {
    while (k <= kMaxOrder && free_lists_[k].empty()) ++k;
    if (k <= kMaxOrder) found = &free_lists_[k].front();
  } else {
    found = first_allowed(order, &k);
  }
  if (found == nullptr) {
    if (map_chunk() == nullptr) return nullptr;
    k = kMaxOrder;
    found = &free_lists_[k].front();  // the new chunk, never excluded
  }
  PageDesc& head = *found;
  free_lists_[k].erase(free_lists_[k].iterator_to(head));
  const bool dirty = (head.flags & kPageDirty) != 0;
  if (dirty) --dirty_blocks_;
  const std::uint32_t when = head.freed_at_ms;
  ChunkDesc* chunk = chunk_of(head.block);
  const std::size_t index = page_index(chunk, head.block);
  // Split: the upper half of each step goes back on the lower free list.
  while (k > order) {
    --k;
    push_free(chunk, index + (std::size_t{1} << k), k, dirty, when);
  }
  mark_used(chunk, index, order, kind, tag);
  return chunk->base + (index << kPageShift);
}

// The smallest free block of at least `order` outside excluded chunks (its
// order in *k), or nullptr. Only used while some chunk is excluded.
PageDesc* PageAllocatorImpl::first_allowed(unsigned order, unsigned* k) noexcept {
  for (unsigned o = order; o <= kMaxOrder; ++o) {
    for (PageDesc& head : free_lists_[o]) {
      if (chunk_of(head.block)->excluded != 0) continue;
      *k = o;
      return &head;
    }
  }
  return nullptr;
}

bool PageAllocatorImpl::exclude_chunk(const void* p, bool excluded) noexcept {
  std::lock_guard guard(lock_);
  ChunkDesc* chunk = chunk_of(p);
  if (chunk == nullptr || chunk->owner != this) return false;
  if (excluded) {
    if (chunk->excluded++ == 0) ++excluded_chunks_;
    return true;
  }
  if (chunk->excluded == 0) return false;
  if (--chunk->excluded == 0) --excluded_chunks_;
  return true;
}

long PageAllocatorImpl::chunk_free_pages(const void* p) const noexcept {
  std::lock_guard guard(lock_);
  const ChunkDesc* chunk = chunk_of(p);
  if (chunk == nullptr || chunk->owner != this) return -1;
  return static_cast<long>(chunk->free_pages);
}

void PageAllocatorImpl::for_each_block(std::uint32_t owner, std::uint32_t ignore, unsigned order,
                                       PageAllocator::BlockFn fn, void* ctx) const noexcept {
  std::lock_guard guard(lock_);
  // Blocks of `order` are aligned to their size inside a chunk, and every
  // page of a block carries its owner tag: reading the tags of the aligned
  // positions finds each matching block once, from dense metadata only.
  for (const ChunkDesc& chunk : chunks_)
    for (std::size_t i = 0; i < kPagesPerChunk; i += std::size_t{1} << order)
      if ((page_tags(chunk.base)[i].load(std::memory_order_relaxed) & ~ignore) == owner &&
          chunk.pages[i].state == PageState::kUsedHead && chunk.pages[i].order == order)
        fn(ctx, chunk.base + (i << kPageShift));
}

bool PageAllocatorImpl::chunk_free_blocks(const void* p, std::size_t (&by_order)[kMaxOrder + 1]) const noexcept {
  std::lock_guard guard(lock_);
  const ChunkDesc* chunk = chunk_of(p);
  if (chunk == nullptr || chunk->owner != this) return false;
  for (std::size_t& n : by_order) n = 0;
  for (std::size_t i = 0; i < kPagesPerChunk; i += std::size_t{1} << chunk->pages[i].order)
    if (chunk->pages[i].state == PageState::kFreeHead) ++by_order[chunk->pages[i].order];
  return true;
}

// Why freeing `block` with `order` is invalid, or nullptr if it is valid.
// Caller holds the lock; the report is made after unlocking, so that an error
// handler may allocate.
const char* PageAllocatorImpl::check_free(ChunkDesc* chunk, void* block, unsigned order, ErrorCode* code) noexcept {
  *code = ErrorCode::kInvalidArgument;
  if (chunk == nullptr || chunk->owner != this) {
    *code = ErrorCode::kForeignPointer;
    return "page block not from this page allocator";
  }
  const PageDesc& page = chunk->pages[page_index(chunk, block)];
  if (page.state == PageState::kFreeHead || page.state == PageState::kFreeInside) {
    *code = ErrorCode::kDoubleFree;
    return "page block is already free";
  }
  if (page.block != block) {
    *code = ErrorCode::kInteriorPointer;
    return "pointer is inside a page block";
  }
  if (page.order != order) return "page block freed with the wrong order";
  return nullptr;
}

void PageAllocatorImpl::free(void* block, unsigned order) noexcept {
  std::unique_lock guard(lock_);
  ChunkDesc* chunk = chunk_of(block);
  ErrorCode code;
  if (const char* problem = check_free(chunk, block, order, &code)) {
    guard.unlock();
    report_error(code, nullptr, block, problem);
    return;
  }
  std::size_t index = page_index(chunk, block);
  const std::size_t pages = std::size_t{1} << order;
  for (std::size_t i = 0; i < pages; ++i) {
    chunk->pages[index + i].state = PageState::kFreeInside;
    chunk->pages[index + i].kind = BlockKind::kNone;  // slab_of() relies on it
    page_tags(block)[i].store(0, std::memory_order_relaxed);
    chunk->pages[index + i].block = nullptr;
  }
  chunk->free_pages += static_cast<std::uint32_t>(pages);
  bytes_in_use_ -= order_bytes(order);
  // Coalesce with free buddies of the same order.
  while (order < kMaxOrder) {
    const std::size_t buddy_index = index ^ (std::size_t{1} << order);
    PageDesc& buddy = chunk->pages[buddy_index];
    if (buddy.state != PageState::kFreeHead || buddy.order != order) break;
    free_lists_[order].erase(free_lists_[order].iterator_to(buddy));
    if (buddy.flags & kPageDirty) --dirty_blocks_;
    buddy.state = PageState::kFreeInside;
    buddy.flags &= kPagePurged;
    chunk->pages[index].state = PageState::kFreeInside;
    chunk->pages[index].flags &= kPagePurged;
    index &= ~(std::size_t{1} << order);
    ++order;
  }
  const std::uint32_t now = now_ms();
  push_free(chunk, index, order, /*dirty=*/true, now);
  maintain(now, false);
}

void PageAllocatorImpl::purge_block(ChunkDesc* chunk, PageDesc& head) noexcept {
  const std::size_t index = page_index(chunk, head.block);
  const std::size_t pages = std::size_t{1} << head.order;
  os::purge(head.block, pages << kPageShift);
  for (std::size_t i = 0; i < pages; ++i) {
    PageDesc& page = chunk->pages[index + i];
    if (!(page.flags & kPagePurged)) ++chunk->purged_pages;
    page.flags |= kPagePurged;
  }
  head.flags &= static_cast<std::uint8_t>(~kPageDirty);
  --dirty_blocks_;
}

std::size_t PageAllocatorImpl::maintain(std::uint32_t now, bool force) noexcept {
  std::size_t given_back = 0;
  // Unmap the oldest wholly free chunks beyond the reserve (the list's back
  // holds the oldest: blocks are pushed at the front).
  FreeList& chunks_free = free_lists_[kMaxOrder];
  while (chunks_free.size() > policy_.retain_free_chunks) {
    PageDesc& oldest = chunks_free.back();
    if (!force && !elapsed(now, oldest.freed_at_ms, policy_.release_delay_ms)) break;
    chunks_free.pop_back();
    if (oldest.flags & kPageDirty) --dirty_blocks_;
    ChunkDesc* chunk = chunk_of(oldest.block);
    given_back += kChunkSize - (std::size_t{chunk->purged_pages} << kPageShift);
    chunks_.erase(chunks_.iterator_to(*chunk));
    unmap_chunk(chunk);
  }
  if (dirty_blocks_ == 0 && !force) return given_back;
  // Scan at most every quarter delay (so blocks go back between 1 and 1.25
  // delays after their free), not on every free.
  const std::uint32_t scan_interval = policy_.purge_delay_ms / 4;
  if (!force && scan_interval != 0 && !elapsed(now, last_purge_scan_ms_, scan_interval)) return given_back;
  last_purge_scan_ms_ = now;
  // A forced collection gives back every free page, as malloc_trim() and
  // mi_collect(true) do; the policy's purge_order only paces the timer.
  for (unsigned order = force ? 0 : policy_.purge_order; order <= kMaxOrder; ++order) {
    for (PageDesc& head : free_lists_[order]) {
      if (!(head.flags & kPageDirty)) continue;
      if (!force && !elapsed(now, head.freed_at_ms, policy_.purge_delay_ms)) continue;
      ChunkDesc* chunk = chunk_of(head.block);
      const std::size_t before = chunk->purged_pages;
      purge_block(chunk, head);
      given_back += (chunk->purged_pages - before) << kPageShift;
    }
  }
  return given_back;
}

PageStats PageAllocatorImpl::stats() const noexcept {
  std::lock_guard guard(lock_);
  PageStats s{};
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    s.free_blocks[order] = free_lists_[order].size();
    s.bytes_free += free_lists_[order].size() * order_bytes(order);
  }
  s.chunks_reserved = chunks_.size();
  for (const ChunkDesc& chunk : chunks_) {
    if (chunk.purged_pages < kPagesPerChunk) ++s.chunks_resident;
    s.bytes_purged += std::size_t{chunk.purged_pages} << kPageShift;
  }
  s.bytes_in_use = bytes_in_use_;
  s.chunks_mapped_total = mapped_total_;
  s.chunks_released_total = released_total_;
  return s;
}

PageResidency PageAllocatorImpl::residency() const noexcept {
  std::lock_guard guard(lock_);
  PageResidency r{};
  for (const ChunkDesc& chunk : chunks_) {
    r.chunk_bytes += os::resident_in(chunk.base, kChunkSize);
    r.desc_bytes += sizeof(ChunkDesc) + kChunkPagesBytes;
  }
  for (const FreeList& list : free_lists_)
    for (const PageDesc& head : list) r.free_bytes += os::resident_in(head.block, order_bytes(head.order));
  return r;
}

bool PageAllocatorImpl::validate() const noexcept {
  std::lock_guard guard(lock_);
  auto fail = [](const void* where, const char* what) {
    report_error(ErrorCode::kCorruption, nullptr, where, what);
    return false;
  };
  std::size_t free_heads[kMaxOrder + 1] = {};
  std::size_t in_use = 0, dirty = 0;
  for (const ChunkDesc& chunk : chunks_) {
    std::size_t free_pages = 0, purged = 0;
    for (std::size_t i = 0; i < kPagesPerChunk;) {
      const PageDesc& head = chunk.pages[i];
      const std::size_t pages = std::size_t{1} << head.order;
      if (head.state != PageState::kFreeHead && head.state != PageState::kUsedHead)
        return fail(chunk.base + (i << kPageShift), "page allocator: block does not start with a head page");
      if (i % pages != 0) return fail(head.block, "page allocator: misaligned block");
      const bool is_free = head.state == PageState::kFreeHead;
      for (std::size_t j = 1; j < pages; ++j) {
        const PageState want = is_free ? PageState::kFreeInside : PageState::kUsedInside;
        if (chunk.pages[i + j].state != want) return fail(head.block, "page allocator: inconsistent inner page");
      }
      if (is_free) {
        ++free_heads[head.order];
        dirty += (head.flags & kPageDirty) ? 1 : 0;
        free_pages += pages;
        if (head.order < kMaxOrder) {
          const PageDesc& buddy = chunk.pages[i ^ pages];
          if (buddy.state == PageState::kFreeHead && buddy.order == head.order)
            return fail(head.block, "page allocator: two free buddies were not merged");
        }
      } else {
        in_use += pages << kPageShift;
      }
      for (std::size_t j = 0; j < pages; ++j) purged += (chunk.pages[i + j].flags & kPagePurged) ? 1 : 0;
      i += pages;
    }
    if (free_pages != chunk.free_pages) return fail(chunk.base, "page allocator: free page count is wrong");
    if (purged != chunk.purged_pages) return fail(chunk.base, "page allocator: purged page count is wrong");
  }
  for (unsigned order = 0; order <= kMaxOrder; ++order)
    if (free_heads[order] != free_lists_[order].size())
      return fail(nullptr, "page allocator: a free list does not match the free blocks");
  if (in_use != bytes_in_use_) return fail(nullptr, "page allocator: bytes in use are wrong");
  if (dirty != dirty_blocks_) return fail(nullptr, "page allocator: dirty block count is wrong");
  return true;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// Public facade.

PageAllocator::PageAllocator(const PagePolicy& policy) noexcept
    : impl_(detail::meta_new<detail::PageAllocatorImpl>(policy)) {}

PageAllocator::~PageAllocator() { detail::meta_delete(impl_); }

PageAllocator& PageAllocator::global() noexcept {
  // Constructed on first use in static storage and never destroyed, so that
  // frees from exit handlers and late thread exits still work.
  alignas(PageAllocator) static unsigned char storage[sizeof(PageAllocator)];
  static PageAllocator* instance = new (storage) PageAllocator();
  return *instance;
}

void* PageAllocator::alloc(unsigned order, BlockKind kind, std::uint32_t tag) noexcept {
  if (order > kMaxOrder) {
    report_error(ErrorCode::kInvalidArgument, nullptr, nullptr, "page order above 9 (2 MiB)");
    return nullptr;
  }
  return impl_ == nullptr ? nullptr : impl_->alloc(order, kind, tag);
}

void PageAllocator::free(void* block, unsigned order) noexcept {
  if (block == nullptr) return;
  if (order > kMaxOrder) {
    report_error(ErrorCode::kInvalidArgument, nullptr, block, "page order above 9 (2 MiB)");
    return;
  }
  impl_->free(block, order);
}

std::size_t PageAllocator::collect(bool force) noexcept { return impl_->collect(force); }
void PageAllocator::inject_failure(long n, bool sticky) noexcept { impl_->inject_failure(n, sticky); }
PageStats PageAllocator::stats() const noexcept { return impl_->stats(); }
PageResidency PageAllocator::residency() const noexcept { return impl_->residency(); }
PagePolicy PageAllocator::policy() const noexcept { return impl_->policy(); }
void PageAllocator::set_policy(const PagePolicy& policy) noexcept { impl_->set_policy(policy); }
bool PageAllocator::validate() const noexcept { return impl_->validate(); }
bool PageAllocator::exclude_chunk(const void* p, bool excluded) noexcept { return impl_->exclude_chunk(p, excluded); }
long PageAllocator::chunk_free_pages(const void* p) const noexcept { return impl_->chunk_free_pages(p); }
void PageAllocator::for_each_block(std::uint32_t owner, std::uint32_t ignore, unsigned order, BlockFn fn,
                                   void* ctx) const noexcept {
  impl_->for_each_block(owner, ignore, order, fn, ctx);
}
bool PageAllocator::chunk_free_blocks(const void* p, std::size_t (&by_order)[kMaxOrder + 1]) const noexcept {
  return impl_->chunk_free_blocks(p, by_order);
}

bool PageAllocator::free_block(void* block) noexcept {
  detail::ChunkDesc* chunk = detail::chunk_of(block);
  if (chunk == nullptr) return false;
  const detail::PageDesc& page = *detail::page_desc_of(block);
  // Racy only for invalid input: a valid caller owns the block.
  if (page.state != detail::PageState::kUsedHead || page.block != block || page.kind == BlockKind::kSlab) return false;
  chunk->owner->free(block, page.order);
  return true;
}

void PageAllocator::lock_for_fork(bool lock) noexcept { impl_->lock_for_fork(lock); }

bool PageAllocator::owns(const void* p) const noexcept {
  detail::ChunkDesc* chunk = detail::chunk_of(p);
  return chunk != nullptr && chunk->owner == impl_;
}

}  // namespace mslab
