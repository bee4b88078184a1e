// Transfer pools (transfer.h). One mutex for all classes: a put or take
// moves a whole batch, so the lock is taken once per 1–32 objects. Batch
// records come from the metadata pool and are kept on the class's spare
// list.
#include "malloc/transfer.h"

#include <cstring>
#include <mutex>

#include "alloc/fork.h"
#include "alloc/meta_pool.h"
#include "malloc/malloc.h"
#include "malloc/tcache.h"

namespace mslab::detail {
namespace {

inline constexpr unsigned kBatchMax = 32;  // half of the deepest stack
inline constexpr std::size_t kPoolBytes = 64 * 1024;

struct Batch {
  Batch* next;
  std::uint32_t count;
  void* objects[kBatchMax];
};

struct Pool {
  Batch* full = nullptr;   // parked batches
  Batch* spare = nullptr;  // empty records for reuse
};

// One lock for every class: it is taken once per batch, and fork() must
// hold it — one lock instead of 41 keeps the locks held across fork few
// (ThreadSanitizer's deadlock detector tracks at most 64 per thread).
constinit std::mutex g_lock;
constinit Pool g_pools[kClasses];

std::uint32_t max_batches(unsigned c) noexcept {
  const std::size_t batch_bytes = std::size_t{tcache_depth(c) / 2u} * kClassSize[c];
  const std::size_t n = kPoolBytes / (batch_bytes == 0 ? 1 : batch_bytes);
  return static_cast<std::uint32_t>(n < 2 ? 2 : n > 64 ? 64 : n);
}

}  // namespace

constinit std::atomic<std::uint32_t> g_transfer_batches[kClasses] = {};

bool transfer_put(unsigned c, void* const* objects, unsigned n) noexcept {
  if (n == 0 || n > kBatchMax) return false;
  Pool& pool = g_pools[c];
  std::lock_guard guard(g_lock);
  const std::uint32_t batches = g_transfer_batches[c].load(std::memory_order_relaxed);
  if (batches >= max_batches(c)) return false;
  Batch* b = pool.spare;
  if (b != nullptr) {
    pool.spare = b->next;
  } else if ((b = static_cast<Batch*>(meta_alloc(sizeof(Batch)))) == nullptr) {
    return false;
  }
  b->count = n;
  std::memcpy(b->objects, objects, n * sizeof(void*));
  b->next = pool.full;
  pool.full = b;
  g_transfer_batches[c].store(batches + 1, std::memory_order_relaxed);
  return true;
}

unsigned transfer_take(unsigned c, void** out) noexcept {
  Pool& pool = g_pools[c];
  std::lock_guard guard(g_lock);
  Batch* b = pool.full;
  if (b == nullptr) return 0;
  pool.full = b->next;
  const unsigned n = b->count;
  std::memcpy(out, b->objects, n * sizeof(void*));
  b->next = pool.spare;
  pool.spare = b;
  g_transfer_batches[c].fetch_sub(1, std::memory_order_relaxed);
  return n;
}

void transfer_drain() noexcept {
  void* objects[kBatchMax];
  for (unsigned c = 0; c < kClasses; ++c) {
    while (const unsigned n = transfer_take(c, objects)) {
      for (unsigned i = 0; i < n; ++i) {
        if constexpr (kCheapChecks) *static_cast<std::uint64_t*>(objects[i]) = 0;
        g_class_cache[c].load(std::memory_order_acquire)->free(objects[i]);
      }
    }
  }
}

void transfer_lock_for_fork(bool lock) noexcept { set_fork_lock(g_lock, lock); }

}  // namespace mslab::detail
