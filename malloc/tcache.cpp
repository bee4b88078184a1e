// Per-thread front caches (tcache.h): creation, overflow, thread exit.
//
// A thread's TCache comes from the metadata pool (never from malloc) on its
// first free of a small object; a pthread key destructor frees its objects
// to the class caches at thread exit and switches the thread to the
// "exited" placeholder, so frees from later destructors bypass the stacks.
#include "malloc/tcache.h"

#include <pthread.h>

#include <cstring>
#include <mutex>

#include "alloc/error.h"
#include "alloc/meta_pool.h"
#include "alloc/slab_geometry.h"
#include "alloc/thread_heap.h"
#include "malloc/malloc.h"
#include "malloc/transfer.h"

namespace mslab::detail {
namespace {

constinit TCache g_placeholder_initial{};  // before the first free: max = 0
constinit TCache g_placeholder_exited{};   // after thread exit: max = 0
constinit std::once_flag g_key_once;
constinit pthread_key_t g_exit_key = 0;

bool is_placeholder(const TCache* tc) noexcept {
  return tc == &g_placeholder_initial || tc == &g_placeholder_exited;
}

// Frees the objects slots[from, from + n) of class c to its cache.
void release(TCache* tc, unsigned c, unsigned from, unsigned n) noexcept {
  SlabCache* cache = g_class_cache[c].load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    void* p = tc->bins[c].slots[from + i];
    if constexpr (kCheapChecks) *static_cast<std::uint64_t*>(p) = 0;
    cache->free(p);
  }
}

void flush_all(TCache* tc) noexcept {
  for (unsigned c = 0; c < kClasses; ++c) {
    release(tc, c, 0, tc->bins[c].count);
    tc->bins[c].count = 0;
  }
}

void on_thread_exit(void* arg) noexcept {
  auto* tc = static_cast<TCache*>(arg);
  tl_tcache = &g_placeholder_exited;
  flush_all(tc);
  meta_free(tc, sizeof(TCache));
}

TCache* create() noexcept {
  // A thread that only frees (a consumer) has no slab-layer heap yet;
  // without one every overflow free would take its cache's lock.
  if (current_heap() == nullptr) create_thread_heap();
  std::call_once(g_key_once, [] { pthread_key_create(&g_exit_key, on_thread_exit); });
  auto* tc = static_cast<TCache*>(meta_alloc(sizeof(TCache)));
  if (tc == nullptr) return nullptr;
  for (unsigned c = 0; c < kClasses; ++c) {
    tc->bins[c].slots = &tc->storage[kTCacheOffset[c]];
    tc->bins[c].max = tcache_depth(c);
  }
  tl_tcache = tc;
  pthread_setspecific(g_exit_key, tc);
  return tc;
}

std::uint64_t make_key() noexcept {
  // Address-space randomisation and the cycle counter: different in every
  // process, never a small integer or a typical pointer.
  std::uint64_t k = reinterpret_cast<std::uintptr_t>(&g_placeholder_initial) ^ __builtin_ia32_rdtsc();
  k = (k ^ (k >> 31)) * 0x9E3779B97F4A7C15ull;
  return k | (std::uint64_t{1} << 63) | 1;
}

}  // namespace

ClassGeometry g_class_geometry[kClasses];
std::uint64_t g_tcache_key = 0;
constinit thread_local TCache* tl_tcache __attribute__((tls_model("initial-exec"))) = &g_placeholder_initial;

void tcache_register_class(unsigned c) noexcept {
  if (g_tcache_key == 0) g_tcache_key = make_key();
  const SlabGeometry g = compute_slab_geometry(kClassSize[c], class_align(c));
  ClassGeometry& info = g_class_geometry[c];
  info.divisor = ExactDivisor(g.stride);
  info.offset_mask = static_cast<std::uint32_t>(order_bytes(g.order) - 1);
  info.objects_offset = static_cast<std::uint32_t>(g.objects_offset);
  info.capacity = static_cast<std::uint32_t>(g.capacity);
}

void tcache_push_slow(void* p, unsigned c) noexcept {
  TCache* tc = tl_tcache;
  if (tc == &g_placeholder_initial) tc = create();
  if (tc == nullptr || is_placeholder(tc)) {
    if constexpr (kCheapChecks) *static_cast<std::uint64_t*>(p) = 0;
    return g_class_cache[c].load(std::memory_order_acquire)->free(p);
  }
  TCache::Bin& bin = tc->bins[c];
  if (bin.count == bin.max) {
    // Free the older half (the colder objects); the newer half moves down.
    const unsigned half = bin.max / 2;
    if (!transfer_put(c, bin.slots, half)) release(tc, c, 0, half);
    std::memmove(bin.slots, bin.slots + half, (bin.count - half) * sizeof(void*));
    bin.count -= half;
  }
  bin.slots[bin.count++] = p;
}

void* tcache_refill(unsigned c) noexcept {
  TCache* tc = tl_tcache;
  if (tc == &g_placeholder_initial) tc = create();
  if (tc == nullptr || is_placeholder(tc)) return nullptr;
  TCache::Bin& bin = tc->bins[c];
  if (bin.count != 0) return tcache_pop(c);
  // A batch is half a stack of this class: it always fits.
  bin.count = transfer_take(c, bin.slots);
  return tcache_pop(c);
}

void tcache_flush() noexcept {
  TCache* tc = tl_tcache;
  if (!is_placeholder(tc)) flush_all(tc);
}

void tcache_double_free(void* p) noexcept {
  report_error(ErrorCode::kDoubleFree, "malloc", p, "object is already free (in a thread's free stack)");
}

}  // namespace mslab::detail
