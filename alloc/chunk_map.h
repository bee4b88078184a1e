// Geometry of mslab memory and the O(1) map from any address to the
// descriptor of the 2 MiB chunk that holds it (the "pagemap").
//
// The map is one flat table with an entry per 2 MiB of the 47-bit user
// address space (2^26 entries, 512 MiB of address space mapped with
// MAP_NORESERVE; only the entries of chunks we own are ever written, so only
// a few pages of it become resident). A lookup is one shift and one load;
// a pointer we never handed out finds nullptr.
// Depends on: platform.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

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

inline constexpr unsigned kAddressBits = 47;
inline constexpr std::size_t kChunkMapEntries = std::size_t{1} << (kAddressBits - kChunkShift);

// The table; nullptr until the first chunk is registered. Written once
// (release), read with acquire by lookups.
extern std::atomic<std::atomic<ChunkDesc*>*> g_chunk_table;

/// The descriptor of the chunk holding `p`, or nullptr if mslab does not own
/// that address. Lock-free; any thread. A concurrent release of the chunk
/// may make the answer stale: callers only look up pointers they hold.
[[gnu::always_inline]] inline ChunkDesc* chunk_of(const void* p) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::atomic<ChunkDesc*>* table = g_chunk_table.load(std::memory_order_acquire);
  if (table == nullptr || (addr >> kAddressBits) != 0) return nullptr;
  return table[addr >> kChunkShift].load(std::memory_order_acquire);  // pairs with chunk_map_set
}

/// The descriptor of the chunk holding `p`, which lies in a block the
/// caller holds (a slab, say): no tests at all.
[[gnu::always_inline]] inline ChunkDesc* chunk_of_block(const void* p) noexcept {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  return g_chunk_table.load(std::memory_order_acquire)[addr >> kChunkShift].load(std::memory_order_acquire);
}

/// Publishes (or, with nullptr, clears) the descriptor of the chunk at
/// `chunk_base`. Creates the table on first use; false if that fails.
/// Thread-safe.
bool chunk_map_set(const void* chunk_base, ChunkDesc* desc) noexcept;

}  // namespace detail
}  // namespace mslab
