// The huge-block registry (huge.h). Linear probing keyed by address with
// backward-shift deletion (no tombstones); the table doubles at 1/2 load.
#include "malloc/huge.h"

#include <cstdint>
#include <mutex>

#include "alloc/fork.h"
#include "alloc/meta_pool.h"
#include "alloc/platform.h"

namespace mslab::detail {
namespace {

struct Entry {
  void* base;        // nullptr: empty slot
  std::size_t size;  // mapped bytes
};

struct Registry {
  std::mutex lock;
  Entry* slots = nullptr;
  std::size_t capacity = 0;  // power of two
  std::size_t count = 0;
  std::size_t bytes = 0;
};

constinit Registry g_huge;

std::size_t hash(const void* p, std::size_t capacity) noexcept {
  return ((reinterpret_cast<std::uintptr_t>(p) >> 12) * 0x9E3779B97F4A7C15ull >> 20) & (capacity - 1);
}

std::size_t round_pages(std::size_t n) noexcept { return (n + 4095) & ~std::size_t{4095}; }

// Index of `p`'s slot, or capacity if absent. Lock held.
std::size_t find_locked(const void* p) noexcept {
  if (g_huge.capacity == 0) return 0;
  for (std::size_t i = hash(p, g_huge.capacity);; i = (i + 1) & (g_huge.capacity - 1)) {
    if (g_huge.slots[i].base == p) return i;
    if (g_huge.slots[i].base == nullptr) return g_huge.capacity;
  }
}

void put_locked(Entry e) noexcept {
  std::size_t i = hash(e.base, g_huge.capacity);
  while (g_huge.slots[i].base != nullptr) i = (i + 1) & (g_huge.capacity - 1);
  g_huge.slots[i] = e;
}

bool grow_locked() noexcept {
  const std::size_t capacity = g_huge.capacity == 0 ? 256 : g_huge.capacity * 2;
  auto* slots = static_cast<Entry*>(meta_alloc(capacity * sizeof(Entry)));
  if (slots == nullptr) return false;
  Entry* old = g_huge.slots;
  const std::size_t old_capacity = g_huge.capacity;
  g_huge.slots = slots;
  g_huge.capacity = capacity;
  for (std::size_t i = 0; i < old_capacity; ++i)
    if (old[i].base != nullptr) put_locked(old[i]);
  if (old != nullptr) meta_free(old, old_capacity * sizeof(Entry));
  return true;
}

void erase_locked(std::size_t i) noexcept {
  const std::size_t mask = g_huge.capacity - 1;
  g_huge.slots[i].base = nullptr;
  // Shift back every later entry of the run whose home is not between the
  // hole and its slot.
  for (std::size_t j = (i + 1) & mask; g_huge.slots[j].base != nullptr; j = (j + 1) & mask) {
    const std::size_t home = hash(g_huge.slots[j].base, g_huge.capacity);
    const bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (movable) {
      g_huge.slots[i] = g_huge.slots[j];
      g_huge.slots[j].base = nullptr;
      i = j;
    }
  }
}

}  // namespace

void* huge_alloc(std::size_t size, std::size_t alignment) noexcept {
  if (size > (std::size_t{1} << 46)) return nullptr;
  const std::size_t mapped = round_pages(size);
  void* p = os::reserve_aligned(mapped, alignment);
  if (p == nullptr) return nullptr;
  std::lock_guard guard(g_huge.lock);
  if ((g_huge.count + 1) * 2 > g_huge.capacity && !grow_locked()) {
    os::release(p, mapped);
    return nullptr;
  }
  put_locked({p, mapped});
  ++g_huge.count;
  g_huge.bytes += mapped;
  return p;
}

bool huge_free(void* p) noexcept {
  std::size_t mapped;
  {
    std::lock_guard guard(g_huge.lock);
    const std::size_t i = find_locked(p);
    if (i == g_huge.capacity) return false;
    mapped = g_huge.slots[i].size;
    erase_locked(i);
    --g_huge.count;
    g_huge.bytes -= mapped;
  }
  os::release(p, mapped);
  return true;
}

std::size_t huge_usable_size(const void* p) noexcept {
  std::lock_guard guard(g_huge.lock);
  const std::size_t i = find_locked(p);
  return i == g_huge.capacity ? 0 : g_huge.slots[i].size;
}

void* huge_resize(void* p, std::size_t size) noexcept {
  if (size > (std::size_t{1} << 46)) return nullptr;
  const std::size_t mapped = round_pages(size);
  // The lock is held across mremap so that no free of `p` can race with it
  // (a racing free would be a caller bug, but must not corrupt the table).
  std::lock_guard guard(g_huge.lock);
  const std::size_t i = find_locked(p);
  if (i == g_huge.capacity) return nullptr;
  const std::size_t old = g_huge.slots[i].size;
  if (old == mapped) return p;
  void* q = os::resize(p, old, mapped);
  if (q == nullptr) return nullptr;
  erase_locked(i);
  put_locked({q, mapped});
  g_huge.bytes = g_huge.bytes - old + mapped;
  return q;
}

HugeStats huge_stats() noexcept {
  std::lock_guard guard(g_huge.lock);
  return {g_huge.count, g_huge.bytes};
}

void huge_lock_for_fork(bool lock) noexcept { set_fork_lock(g_huge.lock, lock); }

}  // namespace mslab::detail
