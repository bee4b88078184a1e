// Movable application objects reached through one owner slot
// (owned_cache.h).
//
// The header word of an object: 0 while unpublished, kRetired while it waits
// for its grace period, otherwise the address of its owner slot. It is read
// by phase 1 and 2 of objects that may be freed concurrently: the slab is
// isolated, so the memory stays mapped and the slot is not reused, but under
// AddressSanitizer a freed object is poisoned — hence the uninstrumented
// accessors. The word is only ever accessed with atomic builtins.
#include "defrag/owned_cache.h"

#include <cstring>
#include <new>

#include "alloc/meta_pool.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"

namespace mslab::defrag {

namespace {

constexpr std::uintptr_t kUnpublished = 0;
constexpr std::uintptr_t kRetired = 1;

__attribute__((no_sanitize("address"))) std::uintptr_t load_owner(const void* object) noexcept {
  return __atomic_load_n(static_cast<const std::uintptr_t*>(object), __ATOMIC_ACQUIRE);
}

__attribute__((no_sanitize("address"))) void store_owner(void* object, std::uintptr_t v) noexcept {
  __atomic_store_n(static_cast<std::uintptr_t*>(object), v, __ATOMIC_RELEASE);
}

// A retired object's deferred free: the plain free (buffered, one cache
// lock per 128 frees); the deferred free pushes the freeing thread's
// buffers after every batch, so a slab is exact — empty once its last
// retired object is freed — when rcu::barrier() returns.
void free_object(void* object) noexcept { SlabCache::cache_of(object)->free(object); }

// The old copy of a moved object goes straight onto its slab's lists.
void free_object_direct(void* object) noexcept { SlabCache::cache_of(object)->free_direct(object); }

}  // namespace

OwnedCache* OwnedCache::create(const OwnedOptions& options, CacheError* error) noexcept {
  auto fail = [&](CacheError e) -> OwnedCache* {
    if (error != nullptr) *error = e;
    return nullptr;
  };
  if (options.align > 16 || (options.align & (options.align - 1)) != 0)
    return fail({ErrorCode::kInvalidArgument, "owned objects align to a power of two of at most 16"});
  if (options.payload_size == 0) return fail({ErrorCode::kInvalidArgument, "payload size is zero"});
  void* mem = detail::meta_alloc(sizeof(OwnedCache));
  if (mem == nullptr) return fail({ErrorCode::kOutOfMemory, "no memory for the owned cache"});
  auto* self = new (mem) OwnedCache();
  // The header is one alignment unit, so that object and payload share the
  // alignment: 8 bytes (the owner word) unless 16-byte payloads are asked.
  self->header_ = options.align > 8 ? 16 : 8;
  CacheOptions co;
  co.name = options.name;
  co.object_size = self->header_ + options.payload_size;
  co.align = self->header_;
  co.empty_reserve = options.empty_reserve;
  co.slab_waste = options.slab_waste;
  co.pages = options.pages;
  self->cache_ = SlabCache::create(co, error);  // fills `error` itself on failure
  self->registry_ = options.registry != nullptr ? options.registry : &Registry::global();
  self->payload_size_ = options.payload_size;
  self->relocate_ = options.relocate;
  self->relocate_arg_ = options.relocate_arg;
  if (self->cache_ == nullptr) {
    self->~OwnedCache();
    detail::meta_free(self, sizeof(OwnedCache));
    return nullptr;
  }
  MobilityOps ops;
  ops.can_free = &OwnedCache::can_free;
  ops.reclaim = &OwnedCache::reclaim;
  ops.cookie = self;
  ops.defers_free = true;
  self->entry_ = self->registry_->add(self->cache_, ops);
  if (self->entry_ != nullptr) return self;
  self->cache_->destroy();
  self->~OwnedCache();
  detail::meta_free(self, sizeof(OwnedCache));
  return fail({ErrorCode::kOutOfMemory, "no memory to register the owned cache"});
}

void OwnedCache::destroy() noexcept {
  registry_->remove(entry_);
  rcu::barrier();  // retired objects are freed through this cache
  cache_->destroy();
  this->~OwnedCache();
  detail::meta_free(this, sizeof(OwnedCache));
}

void* OwnedCache::alloc() noexcept {
  void* object = cache_->alloc();
  if (object == nullptr) return nullptr;
  // A recycled object still carries its old header (kRetired or 0).
  store_owner(object, kUnpublished);
  return payload_of(object);
}

void* OwnedCache::exchange(std::atomic<void*>& slot, void* p) noexcept {
  if (p != nullptr) store_owner(object_of(p), reinterpret_cast<std::uintptr_t>(&slot));
  return slot.exchange(p, std::memory_order_acq_rel);
}

void OwnedCache::retire(void* p) noexcept {
  if (p == nullptr) return;
  void* object = object_of(p);
  store_owner(object, kRetired);
  rcu::defer_free(object, &free_object);
}

void OwnedCache::free_unpublished(void* p) noexcept {
  if (p != nullptr) cache_->free_direct(object_of(p));
}

OwnedStats OwnedCache::stats() const noexcept {
  return {moved_.load(std::memory_order_relaxed), raced_.load(std::memory_order_relaxed)};
}

// Phase 1, under the cache lock: busy if any object is still being built.
// No per-object reference is needed: while the slab is isolated an object
// can only go from published to retired, never be reused.
bool OwnedCache::can_free(std::span<void*> objects, void*) noexcept {
  for (void* object : objects)
    if (load_owner(object) == kUnpublished) return false;
  return true;
}

void OwnedCache::reclaim(std::span<void*> objects, void* cookie) noexcept {
  auto* self = static_cast<OwnedCache*>(cookie);
  for (void* object : objects) self->move_one(object);
}

void OwnedCache::move_one(void* object) noexcept {
  if (load_owner(object) <= kRetired) return;  // retired: only its grace period to wait for
  void* copy = cache_->alloc_direct();
  if (copy == nullptr) return;  // out of memory: leave it where it is
  bool published = false;
  {
    // The read section keeps the object (should the application retire it
    // now) and its slot alive while we copy and publish.
    rcu::ReadGuard guard;
    const std::uintptr_t owner = load_owner(object);
    auto* slot = reinterpret_cast<std::atomic<void*>*>(owner);
    void* expected = payload_of(object);
    if (owner > kRetired && slot->load(std::memory_order_acquire) == expected) {
      if (relocate_ != nullptr)
        relocate_(payload_of(copy), expected, payload_size_, relocate_arg_);
      else
        std::memcpy(payload_of(copy), expected, payload_size_);
      store_owner(copy, owner);
      // release: the copy's contents before the slot; pairs with readers' acquire.
      published = slot->compare_exchange_strong(expected, payload_of(copy), std::memory_order_acq_rel,
                                                std::memory_order_relaxed);
    }
  }
  if (!published) {
    raced_.fetch_add(1, std::memory_order_relaxed);
    cache_->free_direct(copy);
    return;
  }
  moved_.fetch_add(1, std::memory_order_relaxed);
  store_owner(object, kRetired);
  rcu::defer_free(object, &free_object_direct);
}

}  // namespace mslab::defrag
