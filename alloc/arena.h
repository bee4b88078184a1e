// The chunk arena: one reservation of address space, aligned to its size,
// that holds every 2 MiB chunk of the page allocators and, at its start,
// the dense maps from an address in it to the chunk's descriptor, the
// page's owner tag and the block's word (the "pagemap").
//
// Why: a free must learn from any pointer whether it is ours and whose it
// is. With the arena aligned to its size, "ours" is one shift and one
// compare against a single word (the arena's key), and the page's tag lies
// at an address computed from the pointer alone, so a free reads its tag
// with one load and no chain of lookups (snmalloc's pagemap and mimalloc's
// arenas rest on the same idea; here the maps live inside the reservation,
// so not even their base is loaded). A pointer we never handed out fails
// the compare, or lands on a page whose tag is 0.
//
// Layout, from the base: tags (4 bytes a page of the arena), block words
// (8 bytes a page), the page allocator's page descriptors (16 KiB a
// chunk), descriptor pointers (8 bytes a chunk), the stack of chunks given
// back (4 bytes a chunk), then the chunks. Everything is reserved with
// MAP_NORESERVE on first use: address space only. A chunk's share of the
// maps (2 KiB of tags, 4 KiB of words, 16 KiB of page descriptors) becomes
// resident as the chunk is used and goes back to the OS with the chunk's
// memory when its page allocator releases it (the tags' page once both
// chunks it describes are released); the range stays reserved, so a chunk
// taken again reads as zero, and so do its maps. The arena's
// size (MSLAB_ARENA_SHIFT, 256 GiB by default) bounds the memory of all
// page allocators together; huge allocations of the malloc layer are
// separate mappings.
// Depends on: platform, config.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/config.h"

namespace mslab {

inline constexpr unsigned kPageShift = 12;
inline constexpr std::size_t kPageSize = std::size_t{1} << kPageShift;  // order 0
inline constexpr unsigned kMaxOrder = 9;                                // 2 MiB
inline constexpr unsigned kChunkShift = kPageShift + kMaxOrder;
inline constexpr std::size_t kChunkSize = std::size_t{1} << kChunkShift;
inline constexpr std::size_t kPagesPerChunk = std::size_t{1} << kMaxOrder;

/// Bytes in a block of `order` pages (order 0 = 4 KiB … order 9 = 2 MiB).
constexpr std::size_t order_bytes(unsigned order) noexcept { return kPageSize << order; }

namespace detail {

struct ChunkDesc;

static_assert(MSLAB_ARENA_SHIFT >= 34 && MSLAB_ARENA_SHIFT <= 44, "MSLAB_ARENA_SHIFT: 34 (16 GiB) to 44 (16 TiB)");
inline constexpr unsigned kArenaShift = MSLAB_ARENA_SHIFT;
inline constexpr std::uintptr_t kArenaBytes = std::uintptr_t{1} << kArenaShift;
inline constexpr std::uintptr_t kArenaPages = kArenaBytes >> kPageShift;
inline constexpr std::uintptr_t kArenaChunks = kArenaBytes >> kChunkShift;

// Offsets of the maps from the arena's base, and the first chunk's index.
inline constexpr std::uintptr_t kTagsOffset = 0;
inline constexpr std::uintptr_t kWordsOffset = kTagsOffset + kArenaPages * sizeof(std::uint32_t);
inline constexpr std::size_t kChunkPagesBytes = 16384;  // a chunk's page descriptors (page_allocator.h)
inline constexpr std::uintptr_t kPagesOffset = kWordsOffset + kArenaPages * sizeof(std::uint64_t);
inline constexpr std::uintptr_t kDescsOffset = kPagesOffset + kArenaChunks * kChunkPagesBytes;
inline constexpr std::uintptr_t kReturnedOffset = kDescsOffset + kArenaChunks * sizeof(void*);
inline constexpr std::uintptr_t kFirstChunk =
    (kReturnedOffset + kArenaChunks * sizeof(std::uint32_t) + kChunkSize - 1) >> kChunkShift;

// The arena's key: its base >> kArenaShift once reserved. Before that it
// is a value no user-space address shifts to, so every lookup misses.
inline constexpr std::uintptr_t kNoArena = ~std::uintptr_t{0};
extern constinit std::atomic<std::uintptr_t> g_arena_key;

/// True if `p` lies in the arena. Lock-free; any thread; any pointer. The
/// acquire load pairs with the reservation's release: a thread that sees
/// the key sees the maps.
[[gnu::always_inline]] inline bool in_arena(const void* p) noexcept {
  return (reinterpret_cast<std::uintptr_t>(p) >> kArenaShift) == g_arena_key.load(std::memory_order_acquire);
}

/// The entry for `p`'s page (or chunk) in the map at `map_offset` with
/// entries of `T`; `p` lies in the arena.
template <class T, std::uintptr_t map_offset, unsigned unit_shift>
[[gnu::always_inline]] inline T* arena_map_entry(const void* p) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t base = addr & ~(kArenaBytes - 1);
  return reinterpret_cast<T*>(base + map_offset) + ((addr & (kArenaBytes - 1)) >> unit_shift);
}

/// The owner tag of the page holding `p`, followed by those of the pages
/// after it; `p` lies in the arena (in a block the caller holds): no test.
[[gnu::always_inline]] inline std::atomic<std::uint32_t>* page_tags(const void* p) noexcept {
  return arena_map_entry<std::atomic<std::uint32_t>, kTagsOffset, kPageShift>(p);
}

/// The word of the block starting at `block`, a block the caller holds: no
/// test. Dense metadata for the block's user, zeroed by the page allocator
/// when it hands the block out, never read by it (slabs keep their
/// remote-free word here, slab.h).
[[gnu::always_inline]] inline std::atomic<std::uint64_t>& block_word(const void* block) noexcept {
  return *arena_map_entry<std::atomic<std::uint64_t>, kWordsOffset, kPageShift>(block);
}

/// The kChunkPagesBytes reserved for the page descriptors of the chunk at
/// `chunk_base` (a range from arena_take_chunk()): zero when it is taken.
[[gnu::always_inline]] inline void* chunk_pages_area(const char* chunk_base) noexcept {
  return arena_map_entry<char[kChunkPagesBytes], kPagesOffset, kChunkShift>(chunk_base);
}

/// The descriptor of the chunk holding `p`, or nullptr if no page allocator
/// holds that address. Lock-free; any thread. A concurrent release of the
/// chunk may make the answer stale: callers only look up pointers they hold.
[[gnu::always_inline]] inline ChunkDesc* chunk_of(const void* p) noexcept {
  if (!in_arena(p)) return nullptr;
  // pairs with arena_publish()
  return arena_map_entry<std::atomic<ChunkDesc*>, kDescsOffset, kChunkShift>(p)->load(std::memory_order_acquire);
}

/// Takes a chunk's address range from the arena (reserving the arena on
/// first use): zero-filled, chunk aligned. nullptr when the arena is full
/// or cannot be reserved (said once on stderr). Thread-safe (the arena's
/// lock). Does not count against the platform's reservation limit: the
/// caller does that.
char* arena_take_chunk() noexcept;

/// Gives a chunk's range back: purges its memory and its share of the maps
/// and makes it available to arena_take_chunk(). Its descriptor must be
/// unpublished first and every page of it free (tag 0). Thread-safe.
void arena_give_back_chunk(char* chunk_base) noexcept;

/// Publishes (or, with nullptr, clears) the descriptor of the chunk at
/// `chunk_base`, a range from arena_take_chunk(). Thread-safe.
void arena_publish(const char* chunk_base, ChunkDesc* desc) noexcept;

/// Fork support: takes or releases the arena's lock (after the page
/// allocator's, before the metadata pool's).
void arena_lock_for_fork(bool lock) noexcept;

}  // namespace detail
}  // namespace mslab
