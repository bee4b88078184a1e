// Huge allocations (> 1 MiB, or alignment > 2 MiB): one OS mapping each,
// recorded in a registry so that free() can tell our mappings from foreign
// pointers without reading memory that might not be mapped. The registry is
// an open-addressing hash table in metadata memory under one lock: huge
// allocations cost a system call anyway. Depends on: alloc/platform,
// alloc/meta_pool.
#pragma once

#include <cstddef>

namespace mslab::detail {

/// Maps `size` bytes (rounded up to pages) aligned to `alignment` (a power
/// of two ≥ 4096) and records them. Zero-filled. nullptr when the OS
/// refuses or the memory limit would be exceeded. Thread-safe, blocks.
void* huge_alloc(std::size_t size, std::size_t alignment) noexcept;

/// Unmaps a huge block. Returns false (nothing done) if `p` is not the
/// start of one. Thread-safe.
bool huge_free(void* p) noexcept;

/// Mapped bytes at `p`, or 0 if `p` is not the start of a huge block.
std::size_t huge_usable_size(const void* p) noexcept;

/// Resizes the huge block at `p` to hold `size` bytes (mremap, which may
/// move it); returns the new address or nullptr (block unchanged).
void* huge_resize(void* p, std::size_t size) noexcept;

struct HugeStats {
  std::size_t blocks, bytes;
};
HugeStats huge_stats() noexcept;

/// Fork support: takes or releases the registry lock.
void huge_lock_for_fork(bool lock) noexcept;

}  // namespace mslab::detail
