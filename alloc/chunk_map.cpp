// The address → chunk table (chunk_map.h).
#include "alloc/chunk_map.h"

#include <mutex>

#include "alloc/platform.h"

namespace mslab::detail {

std::atomic<std::atomic<ChunkDesc*>*> g_chunk_table{nullptr};

namespace {

std::atomic<ChunkDesc*>* table_or_create() noexcept {
  static std::mutex init_lock;
  std::atomic<ChunkDesc*>* table = g_chunk_table.load(std::memory_order_acquire);
  if (table != nullptr) return table;
  std::lock_guard guard(init_lock);
  table = g_chunk_table.load(std::memory_order_relaxed);
  if (table == nullptr) {
    // Zero-filled memory is a table of null atomics.
    table = static_cast<std::atomic<ChunkDesc*>*>(
        os::map_sparse(kChunkMapEntries * sizeof(std::atomic<ChunkDesc*>)));
    g_chunk_table.store(table, std::memory_order_release);  // pairs with chunk_of()
  }
  return table;
}

}  // namespace

bool chunk_map_set(const void* chunk_base, ChunkDesc* desc) noexcept {
  std::atomic<ChunkDesc*>* table = table_or_create();
  if (table == nullptr) return false;
  const auto addr = reinterpret_cast<std::uintptr_t>(chunk_base);
  table[addr >> kChunkShift].store(desc, std::memory_order_release);  // pairs with chunk_of()
  return true;
}

}  // namespace mslab::detail
