// The chunk arena (arena.h): the reservation, and the stack of chunks given
// back (kept in the arena's own map, so it needs no allocation).
#include "alloc/arena.h"

#include <mutex>

#include "alloc/fork.h"
#include "alloc/platform.h"

namespace mslab::detail {

constinit std::atomic<std::uintptr_t> g_arena_key{kNoArena};

namespace {

std::mutex g_lock;                    // guards everything below and the reservation
bool g_reserve_failed = false;        // the kernel refused: say so once, do not retry on every call
std::uintptr_t g_base = 0;            // the arena's first byte once reserved
std::uintptr_t g_next = kFirstChunk;  // chunks never taken start here
std::uint32_t* g_returned = nullptr;  // indexes of chunks given back (a stack in the arena's map)
std::size_t g_returned_count = 0;
// Which chunks are taken: a tags page describes two chunks and is purged
// once neither is.
std::uint64_t g_taken[(kArenaChunks + 63) / 64];

bool taken(std::uintptr_t index) noexcept { return (g_taken[index / 64] >> (index % 64)) & 1; }
void set_taken(std::uintptr_t index, bool on) noexcept {
  const std::uint64_t bit = std::uint64_t{1} << (index % 64);
  g_taken[index / 64] = on ? g_taken[index / 64] | bit : g_taken[index / 64] & ~bit;
}

// Caller holds g_lock. The key is stored last (release): a lookup that sees
// it sees the (zero-filled) maps.
bool reserve() noexcept {
  if (g_base != 0) return true;
  if (g_reserve_failed) return false;
  void* base = os::map_sparse(kArenaBytes, kArenaBytes);
  if (base == nullptr) {
    g_reserve_failed = true;
    os::write_error_line(
        "mslab: cannot reserve the chunk arena's address space (MSLAB_ARENA_SHIFT; RLIMIT_AS or strict overcommit?):"
        " page allocations fail");
    return false;
  }
  g_base = reinterpret_cast<std::uintptr_t>(base);
  g_returned = reinterpret_cast<std::uint32_t*>(g_base + kReturnedOffset);
  g_arena_key.store(g_base >> kArenaShift, std::memory_order_release);  // pairs with in_arena()
  return true;
}

}  // namespace

char* arena_take_chunk() noexcept {
  std::lock_guard guard(g_lock);
  if (!reserve()) return nullptr;
  std::uintptr_t index;
  if (g_returned_count != 0) {
    // The most recently given back first: its maps' lines are the warmest.
    index = g_returned[--g_returned_count];
  } else if (g_next < kArenaChunks) {
    index = g_next++;
  } else {
    return nullptr;
  }
  set_taken(index, true);
  return reinterpret_cast<char*>(g_base + (index << kChunkShift));
}

void arena_give_back_chunk(char* chunk_base) noexcept {
  // The chunk and its own pages of the maps (page-aligned: 4 KiB of words
  // and 16 KiB of page descriptors a chunk) are purged outside the lock:
  // madvise may take a while on a resident chunk.
  static_assert(kPagesPerChunk * sizeof(std::uint64_t) == 4096 && kChunkPagesBytes % 4096 == 0);
  os::purge(chunk_base, kChunkSize);
  os::purge(&block_word(chunk_base), kPagesPerChunk * sizeof(std::uint64_t));
  os::purge(chunk_pages_area(chunk_base), kChunkPagesBytes);
  const std::uintptr_t index = (reinterpret_cast<std::uintptr_t>(chunk_base) - g_base) >> kChunkShift;
  std::lock_guard guard(g_lock);
  set_taken(index, false);
  // Its tags (all 0 now) share a page with the other chunk of the pair:
  // purged once that one is not taken either, which the lock keeps so.
  static_assert(2 * kPagesPerChunk * sizeof(std::uint32_t) == 4096);
  if (!taken(index ^ 1)) os::purge(page_tags(reinterpret_cast<char*>(g_base + ((index & ~std::uintptr_t{1}) << kChunkShift))), 4096);
  g_returned[g_returned_count++] = static_cast<std::uint32_t>(index);
}

void arena_publish(const char* chunk_base, ChunkDesc* desc) noexcept {
  // pairs with chunk_of()
  arena_map_entry<std::atomic<ChunkDesc*>, kDescsOffset, kChunkShift>(chunk_base)->store(desc, std::memory_order_release);
}

void arena_lock_for_fork(bool lock) noexcept { set_fork_lock(g_lock, lock); }

}  // namespace mslab::detail
