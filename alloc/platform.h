// The platform layer: the only interface through which mslab talks to the
// operating system (mmap, munmap, madvise, /proc). Everything above it
// allocates address space through these calls, so tests can inject failures
// here and see every out-of-memory path run.
//
// Shared conventions (as in mimalloc's prim.h):
//  - addresses passed in are page aligned and were returned by this layer;
//  - sizes are > 0 and a multiple of the OS page size;
//  - functions that can fail return nullptr / false and never throw.
// All functions are thread-safe and may block in the kernel.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mslab::os {

/// The OS base page size (4096 on the machines we target).
std::size_t page_size() noexcept;

/// Reserves and commits `size` bytes aligned to `alignment` (a power of two,
/// >= page_size()). The memory reads as zero. Counts against the reservation
/// limit and the failure plan below. Returns nullptr when the OS refuses, the
/// limit would be exceeded, or a failure was injected.
void* reserve_aligned(std::size_t size, std::size_t alignment) noexcept;

/// Gives back a range obtained from reserve_aligned() (whole or a part).
void release(void* addr, std::size_t size) noexcept;

/// Resizes a range from reserve_aligned() (page alignment) to `new_size`,
/// moving it if it cannot grow in place (mremap MAYMOVE). Growth counts
/// against the reservation limit and the failure plan. Returns the new
/// address, or nullptr (the old range untouched) on failure.
void* resize(void* addr, std::size_t old_size, std::size_t new_size) noexcept;

/// Drops the physical pages behind a range while keeping it mapped: resident
/// memory falls at once, the next touch reads zeros (MADV_DONTNEED).
void purge(void* addr, std::size_t size) noexcept;

/// Bytes of [addr, addr + size) backed by physical pages now (mincore);
/// 0 if the kernel cannot tell. For statistics and tests: O(size / page).
std::size_t resident_in(const void* addr, std::size_t size) noexcept;

/// Maps `size` bytes for the library's own metadata. Not counted against the
/// reservation limit (metadata is small), but subject to the failure plan.
void* map_metadata(std::size_t size) noexcept;
void unmap_metadata(void* addr, std::size_t size) noexcept;

/// Maps a large zero-filled range, aligned to `alignment` (a power of two,
/// >= page_size()), whose pages are only backed once written
/// (MAP_NORESERVE): the chunk arena and its maps. Address space only: not
/// counted against the reservation limit (the arena counts its chunks with
/// charge()) and not subject to the failure plan. nullptr on failure.
void* map_sparse(std::size_t size, std::size_t alignment = 4096) noexcept;

/// Counts `size` bytes of memory taken inside a sparse mapping against the
/// reservation limit, as reserve_aligned() does for its mappings, and
/// consumes a step of the failure plan. False (nothing counted) when the
/// limit would be exceeded or a failure was injected.
bool charge(std::size_t size) noexcept;

/// Undoes charge() for `size` bytes.
void uncharge(std::size_t size) noexcept;

/// Resident set size of this process in bytes (from /proc/self/statm); 0 if
/// it cannot be read.
std::size_t resident_bytes() noexcept;

/// Writes `text` and a newline to stderr with one write(2): safe inside
/// malloc, where stdio must not be used.
void write_error_line(const char* text) noexcept;

// ---------------------------------------------------------------------------
// Failure injection and limits (for tests and for a memory-limit option).

/// Caps the bytes that reserve_aligned() may hold at once; 0 = no cap.
void set_reserve_limit(std::size_t bytes) noexcept;

/// Bytes currently held through reserve_aligned().
std::size_t reserved_bytes() noexcept;

/// Makes the call number `n` (0 = the next one) of reserve_aligned() or
/// map_metadata() fail, and every later one too when `sticky`. A negative `n`
/// disarms the plan.
void inject_failure(long n, bool sticky = false) noexcept;

}  // namespace mslab::os
