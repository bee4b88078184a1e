// Per-thread heaps and the cache-id registry (thread_heap.h).
//
// Locking: g_registry.lock guards the id table and is held while a thread
// flushes its heap, so a cache cannot be destroyed half-way through a flush
// (order: registry lock → cache lock → page allocator lock).
#include "alloc/thread_heap.h"

#include <pthread.h>

#include <mutex>

#include "alloc/meta_pool.h"
#include "alloc/slab_cache.h"

namespace mslab::detail {

constinit ThreadHeap g_no_heap{};
constinit thread_local ThreadHeap* tl_heap __attribute__((tls_model("initial-exec"))) = &g_no_heap;

namespace {

struct Registry {
  std::mutex lock;
  SlabCache* caches[MSLAB_MAX_CACHES] = {};
  std::uint64_t serials[MSLAB_MAX_CACHES] = {};
  std::uint64_t next_serial = 1;
  pthread_key_t exit_key;
  bool key_ready = false;
};

Registry& registry() noexcept {
  static Registry instance;
  return instance;
}

// pthread key destructor: runs at thread exit with the heap as argument.
void on_thread_exit(void* arg) noexcept {
  auto* heap = static_cast<ThreadHeap*>(arg);
  flush_heap(heap, /*release=*/true);
  if (tl_heap == heap) tl_heap = &g_no_heap;
  meta_free(heap, sizeof(ThreadHeap));
}

pthread_key_t exit_key() noexcept {
  Registry& r = registry();
  std::lock_guard guard(r.lock);
  if (!r.key_ready) {
    pthread_key_create(&r.exit_key, on_thread_exit);
    r.key_ready = true;
  }
  return r.exit_key;
}

}  // namespace

bool register_cache(SlabCache* cache, std::uint32_t* id, std::uint64_t* serial) noexcept {
  Registry& r = registry();
  std::lock_guard guard(r.lock);
  for (std::uint32_t i = 0; i < MSLAB_MAX_CACHES; ++i) {
    if (r.caches[i] != nullptr) continue;
    r.caches[i] = cache;
    r.serials[i] = r.next_serial++;
    *id = i;
    *serial = r.serials[i];
    return true;
  }
  return false;
}

void unregister_cache(std::uint32_t id) noexcept {
  Registry& r = registry();
  std::lock_guard guard(r.lock);
  r.caches[id] = nullptr;
  r.serials[id] = 0;
}

ThreadHeap* create_thread_heap() noexcept {
  const pthread_key_t key = exit_key();
  auto* heap = static_cast<ThreadHeap*>(meta_alloc(sizeof(ThreadHeap)));
  if (heap == nullptr) return nullptr;
  tl_heap = heap;
  pthread_setspecific(key, heap);
  return heap;
}

void flush_heap(ThreadHeap* heap, bool release) noexcept {
  Registry& r = registry();
  std::lock_guard guard(r.lock);
  for (std::uint32_t id = 0; id < heap->max_id_used; ++id) {
    ThreadHeap::Entry& e = heap->entries[id];
    if (r.caches[id] != nullptr && r.serials[id] == e.serial) r.caches[id]->flush_entry(e, heap->token());
    // A stale entry's cache is gone with its slabs: drop what it buffered.
    if (e.buffer != nullptr) e.buffer->count = 0;
    e.clear();
    e.serial = 0;
    if (release && e.buffer != nullptr) {
      meta_free(e.buffer, sizeof(ThreadHeap::FreeBuffer));
      e.buffer = nullptr;
    }
  }
}

void lock_caches_for_fork(bool lock) noexcept {
  Registry& r = registry();
  if (lock) {
    r.lock.lock();
    for (SlabCache* c : r.caches)
      if (c != nullptr) c->lock_.lock();
    return;
  }
  for (std::size_t i = MSLAB_MAX_CACHES; i-- > 0;)
    if (r.caches[i] != nullptr) r.caches[i]->lock_.unlock();
  r.lock.unlock();
}

void flush_thread_heap() noexcept {
  if (ThreadHeap* heap = current_heap()) flush_heap(heap);
}

}  // namespace mslab::detail
