// The registry of movable caches (registry.h): RCU list, try_get/put
// references, and a remove() that waits for in-flight users.
#include "defrag/registry.h"

#include <new>

#include "alloc/error.h"

namespace mslab::defrag {

bool MovableCache::try_get() noexcept {
  // Once removal began no new user may start, so that a steady stream of
  // users cannot keep remove() waiting.
  if (dying_.load(std::memory_order_acquire)) return false;
  long n = refs_.load(std::memory_order_relaxed);
  while (n > 0) {
    // acquire: pairs with the release store that published the entry.
    if (refs_.compare_exchange_weak(n, n + 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
  return false;
}

void MovableCache::put() noexcept {
  // acq_rel: the user's accesses to the cache happen before remove() returns.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    done_.store(true, std::memory_order_release);
    done_.notify_all();
  }
}

Registry& Registry::global() noexcept {
  alignas(Registry) static unsigned char storage[sizeof(Registry)];
  static Registry* instance = new (storage) Registry();
  return *instance;
}

Registry::~Registry() {
  std::lock_guard guard(lock_);
  for (MovableCache* e = head_.load(std::memory_order_relaxed); e != nullptr;) {
    MovableCache* next = e->next_.load(std::memory_order_relaxed);
    delete e;
    e = next;
  }
  head_.store(nullptr, std::memory_order_relaxed);
}

MovableCache* Registry::add(SlabCache* cache, const MobilityOps& ops) noexcept {
  if (cache == nullptr || ops.can_free == nullptr || ops.reclaim == nullptr) {
    report_error(ErrorCode::kInvalidArgument, cache != nullptr ? cache->name() : nullptr, cache,
                 "movable cache needs a cache and both can_free and reclaim");
    return nullptr;
  }
  auto* e = new (std::nothrow) MovableCache(cache, ops);
  if (e == nullptr) return nullptr;
  {
    std::lock_guard guard(lock_);
    e->next_.store(head_.load(std::memory_order_relaxed), std::memory_order_relaxed);
    head_.store(e, std::memory_order_release);
    size_.fetch_add(1, std::memory_order_relaxed);
  }
  // Last: from here on readers may use it (release pairs with try_get).
  e->refs_.store(1, std::memory_order_release);
  return e;
}

void Registry::remove(MovableCache* e) noexcept {
  if (e == nullptr) return;
  if (rcu::in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, e->cache_->name(), e,
                 "Registry::remove() inside a read section would deadlock");
    return;
  }
  e->dying_.store(true, std::memory_order_release);
  e->put();  // the first reference
  // Wait for in-flight users (the completion).
  while (!e->done_.load(std::memory_order_acquire)) e->done_.wait(false, std::memory_order_acquire);
  {
    std::lock_guard guard(lock_);
    std::atomic<MovableCache*>* link = &head_;
    while (link->load(std::memory_order_relaxed) != e) link = &link->load(std::memory_order_relaxed)->next_;
    // Readers inside `e` still find its successor through e->next_.
    link->store(e->next_.load(std::memory_order_relaxed), std::memory_order_release);
    size_.fetch_sub(1, std::memory_order_relaxed);
  }
  rcu::synchronize();  // a reader may still be stepping past `e`
  delete e;
}

void Registry::acquire_all(std::vector<CacheRef>& out) {
  rcu::ReadGuard guard;
  for (MovableCache* e = head_.load(std::memory_order_acquire); e != nullptr;
       e = e->next_.load(std::memory_order_acquire)) {
    if (e->try_get()) out.emplace_back(e);
  }
}

}  // namespace mslab::defrag
