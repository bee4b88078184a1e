// Per-thread heaps and the cache-id registry (thread_heap.h).
//
// Locking: g_registry.lock guards the id table and is held while a thread
// flushes its heap, so a cache cannot be destroyed half-way through a flush
// (order: registry lock → cache lock → page allocator lock).
#include "alloc/thread_heap.h"

#include <pthread.h>

#include <bit>
#include <mutex>
#include <new>

#include "alloc/meta_pool.h"
#include "alloc/slab_cache.h"

namespace mslab::detail {

constinit ThreadHeap g_no_heap{.owner_hint = kNoOwnerHint, .max_id_used = 0, .entries = {}, .record = nullptr};
constinit thread_local ThreadHeap* tl_heap __attribute__((tls_model("initial-exec"))) = &g_no_heap;
constinit thread_local std::uint32_t tl_owner_hint __attribute__((tls_model("initial-exec"))) = kNoOwnerHint;

// Every thread heap, so that a destroyed cache's entries can be cleared
// in all of them (ThreadHeap itself stays a plain struct: g_no_heap is
// constant-initialised).
struct HeapRecord {
  ListHook hook;
  ThreadHeap* heap;
};
using HeapList = boost::intrusive::list<HeapRecord, boost::intrusive::member_hook<HeapRecord, ListHook, &HeapRecord::hook>>;

namespace {

inline constexpr std::uint32_t kThreadNumbers = (kOwnerHintMask >> kOwnerHintShift) + 1;  // 0 … 2047

struct Registry {
  std::mutex lock;
  HeapList heaps;
  SlabCache* caches[MSLAB_MAX_CACHES] = {};
  std::uint64_t serials[MSLAB_MAX_CACHES] = {};
  std::uint64_t next_serial = 1;
  pthread_key_t exit_key;
  bool key_ready = false;
  // Thread numbers for owner hints (page_allocator.h) in use; 0 is never
  // handed out (hint 0 means "no owner"). A number goes back only after its
  // thread detached every slab it owned, so no tag still carries it. In a
  // child after fork() the numbers of the threads that did not survive
  // stay taken: their slabs keep their hints, which must not match anyone.
  std::uint64_t numbers_used[kThreadNumbers / 64] = {1};
};

// The smallest free thread number as an owner hint, or kNoOwnerHint.
std::uint32_t take_owner_hint(Registry& r) noexcept {
  for (std::uint32_t w = 0; w < kThreadNumbers / 64; ++w) {
    if (~r.numbers_used[w] == 0) continue;
    const auto bit = static_cast<std::uint32_t>(std::countr_one(r.numbers_used[w]));
    r.numbers_used[w] |= std::uint64_t{1} << bit;
    return (w * 64 + bit) << kOwnerHintShift;
  }
  return kNoOwnerHint;
}

// The cache heap entry `id` belongs to, or nullptr for a stale entry (its
// cache destroyed, its slabs gone). Under r.lock.
SlabCache* cache_of_entry(const Registry& r, std::uint32_t id, const ThreadHeap::Entry& e) noexcept {
  return r.caches[id] != nullptr && r.serials[id] == e.serial ? r.caches[id] : nullptr;
}

void give_back_owner_hint(Registry& r, std::uint32_t hint) noexcept {
  if (hint == kNoOwnerHint) return;
  const std::uint32_t n = hint >> kOwnerHintShift;
  r.numbers_used[n / 64] &= ~(std::uint64_t{1} << (n % 64));
}

// Never destroyed: threads may still exit, and flush, after main returns.
Registry& registry() noexcept {
  alignas(Registry) static unsigned char storage[sizeof(Registry)];
  static Registry* const instance = new (storage) Registry;
  return *instance;
}

// pthread key destructor: runs at thread exit with the heap as argument.
void on_thread_exit(void* arg) noexcept {
  auto* heap = static_cast<ThreadHeap*>(arg);
  flush_heap(heap, /*release=*/true);  // detaches every owned slab: no tag keeps the hint
  if (tl_heap == heap) {
    tl_heap = &g_no_heap;
    tl_owner_hint = kNoOwnerHint;
  }
  {
    Registry& r = registry();
    std::lock_guard guard(r.lock);
    give_back_owner_hint(r, heap->owner_hint);
    r.heaps.erase(r.heaps.iterator_to(*heap->record));
  }
  meta_free(heap->record, sizeof(HeapRecord));
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

bool register_cache(SlabCache* cache, std::uint32_t requested, std::uint32_t* id, std::uint64_t* serial) noexcept {
  Registry& r = registry();
  std::lock_guard guard(r.lock);
  const bool any = requested == kAnyCacheId;
  for (std::uint32_t i = any ? kReservedCacheIds : requested; i < (any ? MSLAB_MAX_CACHES : requested + 1); ++i) {
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
  // The allocation fast path trusts a non-null active slab without testing
  // the entry's serial: no entry may keep a slab of this cache once the id
  // can be reused. The serial and the buffer stay — the heap's own thread
  // reads its buffers without a lock, and resets a stale entry itself.
  for (HeapRecord& rec : r.heaps) {
    ThreadHeap::Entry& e = rec.heap->entries[id];
    if (e.serial != 0) e.clear();
  }
}

ThreadHeap* create_thread_heap() noexcept {
  const pthread_key_t key = exit_key();
  auto* heap = static_cast<ThreadHeap*>(meta_alloc(sizeof(ThreadHeap)));
  if (heap == nullptr) return nullptr;
  void* record = meta_alloc(sizeof(HeapRecord));
  if (record == nullptr) {
    meta_free(heap, sizeof(ThreadHeap));
    return nullptr;
  }
  heap->record = new (record) HeapRecord{{}, heap};
  {
    Registry& r = registry();
    std::lock_guard guard(r.lock);
    heap->owner_hint = take_owner_hint(r);
    r.heaps.push_back(*heap->record);
  }
  tl_heap = heap;
  tl_owner_hint = heap->owner_hint;
  pthread_setspecific(key, heap);
  return heap;
}

void flush_heap(ThreadHeap* heap, bool release) noexcept {
  Registry& r = registry();
  std::lock_guard guard(r.lock);
  for (std::uint32_t id = 0; id < heap->max_id_used; ++id) {
    ThreadHeap::Entry& e = heap->entries[id];
    if (SlabCache* cache = cache_of_entry(r, id, e)) cache->flush_entry(e, heap->token());
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

void flush_free_buffers() noexcept {
  ThreadHeap* heap = current_heap();
  if (heap == nullptr) return;
  // Our own heap: its buffers are only ever filled by this thread, so a
  // lock-free look settles the common "nothing buffered" case.
  bool any = false;
  for (std::uint32_t id = 0; id < heap->max_id_used && !any; ++id) {
    const ThreadHeap::FreeBuffer* b = heap->entries[id].buffer;
    any = b != nullptr && b->count != 0;
  }
  if (!any) return;
  Registry& r = registry();
  std::lock_guard guard(r.lock);  // no cache is destroyed half-way through
  for (std::uint32_t id = 0; id < heap->max_id_used; ++id) {
    ThreadHeap::Entry& e = heap->entries[id];
    if (e.buffer == nullptr || e.buffer->count == 0) continue;
    if (SlabCache* cache = cache_of_entry(r, id, e))
      cache->flush_buffer(e, heap->token());
    else
      e.buffer->count = 0;  // a destroyed cache's: its slabs are gone
  }
}

}  // namespace mslab::detail
