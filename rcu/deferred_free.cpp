// Batched deferred free (deferred_free.h).
//
// Data flow:
//   producer thread: appends {ptr, fn} to its own batch (a 4 KiB page of
//     entries); a full batch gets a cookie and is pushed on `submitted`.
//   worker thread, one cycle: takes `submitted` (and, when the flush interval
//     passed or a barrier waits, steals the producers' partial batches);
//     batches whose cookie has elapsed are ready at once, the others wait for
//     one grace period together; then frees every ready entry.
//
// Cookies (rcu.h: gp_cookie/gp_elapsed, our polling shim over liburcu
// 0.13): a batch takes its cookie when submitted. At collection it has
// elapsed if any grace period — one of ours, or any synchronize() in the
// program — began after that and has ended: it is freed without waiting.
// Otherwise it joins the one waiting set, which the worker's next grace
// period (begun after every cookie in the set was taken) makes ready as a
// whole: an O(1) splice.
//
// Producer slots: `current` holds the thread's partial batch, kBusy while
// the owner appends (a few instructions, never across a blocking call), or
// null. The worker steals a partial batch with a CAS from batch to null,
// spinning only while it sees kBusy.
#include "rcu/deferred_free.h"

#include <malloc.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>

#include "alloc/error.h"
#include "alloc/meta_pool.h"
#include "alloc/page_allocator.h"
#include "alloc/slab_cache.h"
#include "alloc/thread_heap.h"
#include "rcu/rcu.h"

namespace mslab::rcu {
namespace {

struct Entry {
  void* ptr;
  FreeFn fn;  // nullptr: free by owner
};

struct Batch {
  Batch* next;
  std::uint64_t cookie;
  std::uint32_t count;
  bool from_reserve;
  std::size_t bytes;
  static constexpr std::size_t kEntries = (kPageSize - 32) / sizeof(Entry);
  Entry entries[kEntries];
};
static_assert(sizeof(Batch) <= kPageSize);

struct Producer {
  std::atomic<Batch*> current{nullptr};
  Producer* next = nullptr;  // the list only grows; records are reused
  bool in_use = false;       // under State::lock
};

Batch* const kBusy = reinterpret_cast<Batch*>(std::uintptr_t{1});
constexpr std::size_t kReserveBatches = 8;

struct Stats {
  std::atomic<std::uint64_t> queued{0}, freed{0}, grace_periods{0}, batches{0}, batches_elapsed{0},
      producer_waits{0}, emergency_frees{0}, reserve_batches{0}, leaked{0};
  std::atomic<std::size_t> pending_bytes{0}, peak_pending_bytes{0};
};

struct State {
  std::mutex lock;
  std::condition_variable wake;      // the worker sleeps here
  std::condition_variable progress;  // barrier callers and producers over the limit
  Producer* producers = nullptr;
  std::atomic<Batch*> submitted{nullptr};
  std::atomic<std::size_t> partial{0};  // partial batches held in producer slots
  std::uint64_t barrier_requested = 0, barrier_done = 0;  // under lock
  std::atomic<bool> worker_idle{false};
  std::atomic<bool> shut_down{false};
  std::atomic<bool> running{false};  // written under lock
  bool stop = false;                 // under lock
  std::thread worker;
  DeferredOptions options;                     // under lock
  std::atomic<std::size_t> pending_limit{DeferredOptions{}.pending_limit_bytes};
  Stats stats;
  Batch* reserve_free = nullptr;  // under lock
  pthread_key_t exit_key;
  alignas(Batch) unsigned char reserve_storage[kReserveBatches][sizeof(Batch)];

  State() {
    for (auto& raw : reserve_storage) {
      auto* b = reinterpret_cast<Batch*>(raw);
      b->next = reserve_free;
      reserve_free = b;
    }
  }
  ~State();
};

void stop_worker(State& s) noexcept;

State& state() noexcept;

constinit thread_local Producer* tl_producer = nullptr;

// ---------------------------------------------------------------------------
// Freeing one entry.

bool free_if_owned(void* p) noexcept {
  if (SlabCache* cache = SlabCache::cache_of(p)) {
    cache->free(p);
    return true;
  }
  return PageAllocator::free_block(p);
}

std::size_t owner_size(void* p) noexcept {
  if (SlabCache* cache = SlabCache::cache_of(p)) return cache->object_size();
  const mslab::detail::PageDesc* page = mslab::detail::page_desc_of(p);
  if (page != nullptr && page->block == p) return order_bytes(page->order);
  return 0;
}

void free_untyped(void* p) noexcept {
  if (!free_if_owned(p)) std::free(p);
}

void run_entry(const Entry& e) noexcept {
  if (e.fn != nullptr)
    e.fn(e.ptr);
  else
    free_untyped(e.ptr);
}

// ---------------------------------------------------------------------------
// Batches.

Batch* new_batch() noexcept {
  void* page = PageAllocator::global().alloc(0, BlockKind::kRaw);
  if (page == nullptr) return nullptr;
  auto* b = static_cast<Batch*>(page);
  b->next = nullptr;
  b->count = 0;
  b->bytes = 0;
  b->from_reserve = false;
  return b;
}

void release_batch(State& s, Batch* b) noexcept {
  if (!b->from_reserve) {
    PageAllocator::global().free(b, 0);
    return;
  }
  std::lock_guard guard(s.lock);
  b->next = s.reserve_free;
  s.reserve_free = b;
}

void add_pending(State& s, std::size_t bytes) noexcept {
  const std::size_t now = s.stats.pending_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::size_t peak = s.stats.peak_pending_bytes.load(std::memory_order_relaxed);
  while (now > peak && !s.stats.peak_pending_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

// Producers publish work (a submitted batch, a new partial one) and then
// read worker_idle; the worker stores worker_idle and then reads the work
// counters. Each side has a seq_cst fence between its store and its load,
// so at least one of them sees the other's store: either the producer
// wakes the worker, or the worker sees the work and does not sleep.
void wake_worker(State& s) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (s.worker_idle.load(std::memory_order_relaxed)) {
    std::lock_guard guard(s.lock);
    s.wake.notify_one();
  }
}

// A producer hands over a full (or final) batch.
void submit(State& s, Batch* b) noexcept {
  // Read after every pointer in the batch was unpublished (program order).
  b->cookie = gp_cookie();
  s.stats.queued.fetch_add(b->count, std::memory_order_relaxed);
  add_pending(s, b->bytes);
  Batch* head = s.submitted.load(std::memory_order_relaxed);
  do {
    b->next = head;
  } while (!s.submitted.compare_exchange_weak(head, b, std::memory_order_release, std::memory_order_relaxed));
  wake_worker(s);
  // Flood control: wait for the worker while too much is pending — but
  // never inside a read section, whose end the worker's grace period needs.
  const std::size_t limit = s.pending_limit.load(std::memory_order_relaxed);
  if (s.stats.pending_bytes.load(std::memory_order_relaxed) > limit && !in_read_section()) {
    s.stats.producer_waits.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock guard(s.lock);
    s.wake.notify_one();
    s.progress.wait(guard, [&] {
      return s.stats.pending_bytes.load(std::memory_order_relaxed) <= limit || !s.running.load();
    });
  }
}

// ---------------------------------------------------------------------------
// The worker.

void run_grace_period(State& s) noexcept {
  synchronize();
  s.stats.grace_periods.fetch_add(1, std::memory_order_relaxed);
}

// Takes every producer's partial batch. Caller holds s.lock (the producer
// list); producers never take it on their fast path.
Batch* steal_partials(State& s) noexcept {
  Batch* stolen = nullptr;
  for (Producer* p = s.producers; p != nullptr; p = p->next) {
    Batch* b = p->current.load(std::memory_order_acquire);
    for (;;) {
      if (b == nullptr) break;
      if (b == kBusy) {  // the owner is mid-append: a few instructions
        std::this_thread::yield();
        b = p->current.load(std::memory_order_acquire);
        continue;
      }
      // acquire: pairs with the owner's release store of the batch.
      if (p->current.compare_exchange_weak(b, nullptr, std::memory_order_acquire, std::memory_order_acquire)) {
        s.partial.fetch_sub(1, std::memory_order_relaxed);
        s.stats.queued.fetch_add(b->count, std::memory_order_relaxed);
        add_pending(s, b->bytes);
        b->cookie = gp_cookie();
        b->next = stolen;
        stolen = b;
        break;
      }
    }
  }
  return stolen;
}

void free_batches(State& s, Batch* list) noexcept {
  while (list != nullptr) {
    Batch* b = list;
    list = b->next;
    for (std::uint32_t i = 0; i < b->count; ++i) run_entry(b->entries[i]);
    s.stats.freed.fetch_add(b->count, std::memory_order_relaxed);
    s.stats.pending_bytes.fetch_sub(b->bytes, std::memory_order_relaxed);
    release_batch(s, b);
  }
}

// One cycle: collect, wait for a grace period if needed, free.
void run_cycle(State& s, Batch* stolen) noexcept {
  Batch* collected = s.submitted.exchange(nullptr, std::memory_order_acquire);
  Batch* ready = nullptr;
  Batch* waiting = stolen;  // stolen batches always need the next grace period
  while (collected != nullptr) {
    Batch* b = collected;
    collected = b->next;
    s.stats.batches.fetch_add(1, std::memory_order_relaxed);
    if (gp_elapsed(b->cookie)) {
      s.stats.batches_elapsed.fetch_add(1, std::memory_order_relaxed);
      b->next = ready;
      ready = b;
    } else {
      b->next = waiting;
      waiting = b;
    }
  }
  for (Batch* b = stolen; b != nullptr; b = b->next) s.stats.batches.fetch_add(1, std::memory_order_relaxed);
  if (waiting != nullptr) {
    run_grace_period(s);
    // Every waiting batch got its cookie before this grace period began
    // (at submission or at our steal), so it has elapsed for all of them:
    // the whole waiting set becomes ready.
    Batch* tail = waiting;
    while (tail->next != nullptr) tail = tail->next;
    tail->next = ready;
    ready = waiting;
  }
  free_batches(s, ready);
  // Our frees into slabs we do not own are chained per slab: push them now.
  mslab::detail::flush_thread_heap();
}

void worker_main(State& s) noexcept {
  mslab::detail::create_thread_heap();  // lets its frees batch per slab
  using clock = std::chrono::steady_clock;
  auto last_steal = clock::now();
  std::unique_lock guard(s.lock);
  for (;;) {
    const auto interval = std::chrono::microseconds(s.options.flush_interval_us);
    auto has_work = [&] {
      return s.stop || s.submitted.load(std::memory_order_acquire) != nullptr || s.barrier_requested != s.barrier_done;
    };
    if (!has_work()) {
      s.worker_idle.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // see wake_worker()
      if (s.partial.load(std::memory_order_relaxed) > 0)
        s.wake.wait_until(guard, last_steal + interval, has_work);
      else
        s.wake.wait(guard, [&] { return has_work() || s.partial.load(std::memory_order_relaxed) > 0; });
      s.worker_idle.store(false, std::memory_order_relaxed);
    }
    const std::uint64_t barrier_target = s.barrier_requested;
    const bool stopping = s.stop;
    const auto now = clock::now();
    Batch* stolen = nullptr;
    if (barrier_target != s.barrier_done || stopping || now - last_steal >= interval) {
      stolen = steal_partials(s);
      last_steal = now;
    }
    guard.unlock();
    run_cycle(s, stolen);
    guard.lock();
    s.barrier_done = barrier_target;
    s.progress.notify_all();
    if (stopping && s.submitted.load(std::memory_order_acquire) == nullptr) break;
  }
  s.running.store(false);
  s.progress.notify_all();
}

void ensure_worker(State& s) noexcept {
  std::lock_guard guard(s.lock);
  if (s.running.load() || s.shut_down.load(std::memory_order_relaxed)) return;
  s.running.store(true);
  s.stop = false;
  s.worker = std::thread([&s] { worker_main(s); });
}

State::~State() { stop_worker(*this); }

State& state() noexcept {
  // Destroyed at exit (after everything constructed later), which frees
  // whatever is still pending.
  static State instance;
  return instance;
}

// ---------------------------------------------------------------------------
// Producers.

void on_producer_exit(void* arg) noexcept {
  auto* p = static_cast<Producer*>(arg);
  State& s = state();
  Batch* b = p->current.exchange(nullptr, std::memory_order_acquire);
  if (b != nullptr) {
    s.partial.fetch_sub(1, std::memory_order_relaxed);
    submit(s, b);
  }
  std::lock_guard guard(s.lock);
  p->in_use = false;
  if (tl_producer == p) tl_producer = nullptr;
}

Producer* producer(State& s) noexcept {
  if (Producer* p = tl_producer) return p;
  std::lock_guard guard(s.lock);
  static bool key_ready = false;
  if (!key_ready) {
    pthread_key_create(&s.exit_key, on_producer_exit);
    key_ready = true;
  }
  Producer* p = s.producers;
  while (p != nullptr && p->in_use) p = p->next;
  if (p == nullptr) {
    p = mslab::detail::meta_new<Producer>();
    if (p == nullptr) return nullptr;
    p->next = s.producers;
    s.producers = p;
  }
  p->in_use = true;
  tl_producer = p;
  pthread_setspecific(s.exit_key, p);
  return p;
}

// No batch memory: free after our own grace period where we may block;
// inside a read section, fall back on the static reserve.
void emergency(State& s, void* p, FreeFn fn, std::size_t bytes) noexcept {
  if (!in_read_section()) {
    synchronize();
    run_entry(Entry{p, fn});
    s.stats.emergency_frees.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Batch* b = nullptr;
  {
    std::lock_guard guard(s.lock);
    if ((b = s.reserve_free) != nullptr) s.reserve_free = b->next;
  }
  if (b == nullptr) {
    s.stats.leaked.fetch_add(1, std::memory_order_relaxed);
    report_error(ErrorCode::kOutOfMemory, nullptr, p,
                 "deferred free: no memory for a batch inside a read section; the object is leaked");
    return;
  }
  s.stats.reserve_batches.fetch_add(1, std::memory_order_relaxed);
  b->next = nullptr;
  b->from_reserve = true;
  b->count = 1;
  b->bytes = bytes + sizeof(Entry);
  b->entries[0] = Entry{p, fn};
  submit(s, b);
}

// After shutdown: no worker; free directly (see the header).
void free_after_shutdown(void* p, FreeFn fn) noexcept {
  if (in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, nullptr, p,
                 "deferred free after shutdown inside a read section; the object is leaked");
    return;
  }
  synchronize();
  run_entry(Entry{p, fn});
}

void enqueue(void* p, FreeFn fn, std::size_t bytes) noexcept {
  State& s = state();
  if (MSLAB_UNLIKELY(s.shut_down.load(std::memory_order_acquire))) return free_after_shutdown(p, fn);
  Producer* me = producer(s);
  if (MSLAB_UNLIKELY(me == nullptr)) return emergency(s, p, fn, bytes);
  Batch* b = me->current.exchange(kBusy, std::memory_order_acquire);
  if (b == nullptr) {
    me->current.store(nullptr, std::memory_order_relaxed);  // allocate without holding kBusy
    if (!s.running.load(std::memory_order_relaxed)) ensure_worker(s);
    b = new_batch();
    if (b == nullptr) return emergency(s, p, fn, bytes);
    s.partial.fetch_add(1, std::memory_order_relaxed);
    me->current.store(kBusy, std::memory_order_relaxed);
  }
  b->entries[b->count++] = Entry{p, fn};
  b->bytes += bytes + sizeof(Entry);
  if (b->count == Batch::kEntries) {
    me->current.store(nullptr, std::memory_order_release);
    s.partial.fetch_sub(1, std::memory_order_relaxed);
    submit(s, b);
    return;
  }
  // After this store the worker may steal and free the batch at any time:
  // nothing may read it afterwards.
  const bool first_entry = b->count == 1;
  // release: publishes the entries to a worker that steals the batch.
  me->current.store(b, std::memory_order_release);
  if (MSLAB_UNLIKELY(first_entry)) wake_worker(s);  // a new partial batch: the worker's timer must run
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

namespace detail {

void free_by_owner(void* p) noexcept {
  if (!free_if_owned(p)) ::operator delete(p);
}

void defer_with_size(void* p, FreeFn fn, std::size_t bytes) noexcept { enqueue(p, fn, bytes); }

}  // namespace detail

void defer_free(void* p) noexcept {
  if (p == nullptr) return;
  std::size_t bytes = owner_size(p);
  if (bytes == 0) bytes = ::malloc_usable_size(p);  // not ours: it must come from malloc
  enqueue(p, nullptr, bytes);
}

void defer_free(void* p, FreeFn fn) noexcept {
  if (p == nullptr) return;
  enqueue(p, fn, owner_size(p));
}

void defer_free(void* p, FreeFn fn, std::size_t bytes) noexcept {
  if (p != nullptr) enqueue(p, fn, bytes);
}

void barrier() noexcept {
  if (in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, nullptr, nullptr, "rcu::barrier() inside a read section would deadlock");
    return;
  }
  State& s = state();
  std::unique_lock guard(s.lock);
  if (!s.running.load()) return;
  const std::uint64_t target = ++s.barrier_requested;
  s.wake.notify_one();
  s.progress.wait(guard, [&] { return s.barrier_done >= target || !s.running.load(); });
}

void shutdown() noexcept {
  if (in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, nullptr, nullptr, "rcu::shutdown() inside a read section would deadlock");
    return;
  }
  stop_worker(state());
}

namespace {

void stop_worker(State& s) noexcept {
  std::unique_lock guard(s.lock);
  s.shut_down.store(true, std::memory_order_release);
  if (!s.running.load()) return;
  s.stop = true;
  s.wake.notify_one();
  guard.unlock();
  s.worker.join();  // its last cycle steals every partial batch and frees everything
}

}  // namespace

void set_deferred_options(const DeferredOptions& options) noexcept {
  State& s = state();
  std::lock_guard guard(s.lock);
  s.options = options;
  s.pending_limit.store(options.pending_limit_bytes, std::memory_order_relaxed);
  s.wake.notify_one();
  s.progress.notify_all();
}

DeferredOptions deferred_options() noexcept {
  State& s = state();
  std::lock_guard guard(s.lock);
  return s.options;
}

DeferredStats deferred_stats() noexcept {
  const Stats& st = state().stats;
  auto get = [](const auto& a) { return a.load(std::memory_order_relaxed); };
  return DeferredStats{get(st.queued),          get(st.freed),           get(st.grace_periods),
                       get(st.batches),         get(st.batches_elapsed), get(st.producer_waits),
                       get(st.emergency_frees), get(st.reserve_batches), get(st.leaked),
                       get(st.pending_bytes),   get(st.peak_pending_bytes)};
}

}  // namespace mslab::rcu
