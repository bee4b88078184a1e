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
// Producer slots: `current` holds the thread's partial batch, or null;
// `busy` is set while the owner appends to it (a few instructions, never
// across a blocking call). An append is plain stores, no atomic
// read-modify-write: the owner sets `busy`, then loads `current`. The
// worker steals by exchanging `current` to null, then forces a memory
// barrier on every thread of the process (membarrier(2), the asymmetric
// fence urcu-memb's readers rely on too), then waits for `busy` to drop:
// an owner either set `busy` before that barrier (the worker sees it and
// waits) or loads `current` after it (and sees null). Without membarrier
// the owner fences after setting `busy` instead. Only the owner stores a
// batch into its slot, and it takes a full batch out with a CAS.
//
// Helping (a flood): once pending bytes exceed help_above_bytes, a
// producer keeps its own full batches in a small ring (`held`); when the
// ring is full it runs a grace period itself and frees the batches whose
// cookie has elapsed. Its frees are then local (into its own slab heap, its
// own malloc arena, from a hot cache) and the freeing is spread over every
// producing CPU instead of one worker; pending memory stays at a ring per
// producer, and the worker (a third thread on CPUs the producers keep busy)
// stays asleep. Where the producer may not wait (read section, free
// function) a full ring passes its oldest batch to the worker. The worker
// takes the ring and the partial batch of a producer that stopped (no ring
// activity for a flush interval), every ring on a barrier and at shutdown
// (then it also waits for a producer still freeing one it took:
// `reaping`), and ends helping after a flush interval in which no ring
// filled up.
#include "rcu/deferred_free.h"

#include <linux/membarrier.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>

#include "alloc/error.h"
#include "alloc/fork.h"
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

// A producer's ring of full batches while helping: it runs a grace period
// when the ring is full, so this many batches share one. 8 was no slower
// than 12 or 16 within the noise of a loaded machine (10 M flood, 2
// threads, 2026-11-30) and holds half the pending memory of 16.
constexpr unsigned kHeldSlots = 8;

struct Producer {
  std::atomic<Batch*> current{nullptr};  // see the top of the file
  std::atomic<bool> busy{false};         // the owner is appending to `current`
  Batch* stolen = nullptr;               // worker only: taken from `current`, not yet counted
  // Full batches waiting for their grace period, oldest at `head`. The
  // owner fills and reaps them; the worker may take any slot (exchange).
  std::atomic<Batch*> held[kHeldSlots] = {};
  std::uint64_t held_cookie[kHeldSlots] = {};  // owner only: each slot's cookie
  std::uint32_t head = 0, tail = 0;            // owner only
  std::atomic<std::uint64_t> activity{0};      // bumped by the owner's ring operations
  std::atomic<bool> reaping{false};            // the owner is freeing a batch it took from `held`
  std::uint64_t seen_activity = 0;             // worker only: `activity` at its last tick
  bool idle = false;                           // worker only: no ring activity for a whole tick
  Producer* next = nullptr;  // the list only grows; records are reused
  bool in_use = false;       // under State::lock
};

constexpr std::size_t kReserveBatches = 8;

struct Stats {
  std::atomic<std::uint64_t> queued{0}, freed{0}, grace_periods{0}, batches{0}, batches_elapsed{0},
      producer_waits{0}, producer_grace_periods{0}, emergency_frees{0}, reserve_batches{0}, leaked{0}, helped{0};
  std::atomic<std::size_t> pending_bytes{0}, peak_pending_bytes{0};
};

int membarrier(int cmd) noexcept { return static_cast<int>(::syscall(__NR_membarrier, cmd, 0, 0)); }

// Whether the worker can force a memory barrier on the owners (the slot
// protocol, see the top of the file). Registers the process once; a forked
// child inherits the registration.
bool register_asymmetric_fence() noexcept {
  const int cmds = membarrier(MEMBARRIER_CMD_QUERY);
  return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
         membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

struct State {
  // Set before any producer or the worker exists; read on every append.
  const bool asymmetric = register_asymmetric_fence();
  std::mutex lock;
  std::condition_variable wake;      // the worker sleeps here
  std::condition_variable progress;  // barrier callers and producers over the limit
  Producer* producers = nullptr;
  std::atomic<Batch*> submitted{nullptr};
  std::atomic<std::size_t> partial{0};  // partial batches held in producer slots
  std::atomic<std::size_t> held{0};     // full batches in producers' rings
  std::atomic<bool> helping{false};     // set by the worker: producers keep and free their batches
  std::atomic<std::uint64_t> ring_fills{0};  // times a helping producer found its ring full
  std::uint64_t ring_fills_seen = 0;         // worker only: ring_fills at its last tick
  std::uint64_t barrier_requested = 0, barrier_done = 0;  // under lock
  // kRunning, or how the worker sleeps: its timer brings it back by
  // itself (kSleepsTimed) or only a notify does (kSleepsUntimed).
  std::atomic<int> worker_idle{0};
  std::atomic<bool> shut_down{false};
  std::atomic<bool> running{false};  // written under lock
  bool stop = false;                 // under lock
  std::thread worker;
  DeferredOptions options;                     // under lock
  std::atomic<std::size_t> pending_limit{DeferredOptions{}.pending_limit_bytes};
  std::atomic<std::size_t> help_above{DeferredOptions{}.help_above_bytes};
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
    // The slab layer's handlers too: a child's first defer_free allocates
    // a batch, which must not find a page-allocator lock held.
    mslab::register_fork_handlers();
    pthread_atfork(nullptr, nullptr, after_fork_child);
  }
  static void after_fork_child() noexcept;
  ~State();
};

void stop_worker(State& s) noexcept;

State& state() noexcept;

constinit thread_local Producer* tl_producer = nullptr;
// Non-zero while this thread runs free functions (the worker, or a producer
// reaping its ring). A free function may itself call defer_free; that call
// must never wait, for the wait could need this very thread to go on.
constinit thread_local unsigned tl_freeing = 0;

// Whether a producer may block here: not inside a read section (a grace
// period would wait for it), not inside a free function (see tl_freeing).
bool may_wait() noexcept { return !in_read_section() && tl_freeing == 0; }

// ---------------------------------------------------------------------------
// The slot protocol's fences (see the top of the file).

// Owner: `busy` is set; the load of `current` that follows must not pass
// that store (StoreLoad). With membarrier the worker's barrier provides the
// order and the compiler only must keep the two in place.
inline void enter(const State& s, Producer* me) noexcept {
  me->busy.store(true, std::memory_order_relaxed);
  if (MSLAB_LIKELY(s.asymmetric))
    std::atomic_signal_fence(std::memory_order_seq_cst);
  else
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

// release: a worker that sees `busy` drop sees every entry written before.
inline void leave(Producer* me) noexcept { me->busy.store(false, std::memory_order_release); }

// Worker, after exchanging slots to null and before reading `busy`: every
// owner that set `busy` before this is seen busy; every other one loads
// `current` after it (and sees null).
void owners_fence(const State& s) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!s.asymmetric) return;
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  // Not expected (registered at start, inherited by fork): the global
  // command is slower (the kernel waits for an RCU grace period) but needs
  // no registration. Without either, owners could write a stolen batch.
  if (membarrier(MEMBARRIER_CMD_GLOBAL) == 0) return;
  report_error(ErrorCode::kInvalidArgument, nullptr, nullptr, "deferred free: membarrier(2) failed; cannot steal safely");
  std::abort();
}

// ---------------------------------------------------------------------------
// Freeing one entry.

// True when `p` was mslab's and has been dealt with: freed by its cache or
// page allocator — or, for mslab memory that is no allocated block (freed
// twice, or its cache destroyed meanwhile), reported: such a pointer must
// never reach std::free, which would take it for heap corruption.
bool free_if_owned(void* p) noexcept {
  // One table load settles memory mslab does not own (malloc's, in the
  // head-less flood): no call into the slab or page layer.
  if (mslab::detail::chunk_of(p) == nullptr) return false;
  if (SlabCache* cache = SlabCache::cache_of(p)) {
    cache->free(p);
    return true;
  }
  if (PageAllocator::free_block(p)) return true;
  report_error(ErrorCode::kForeignPointer, nullptr, p,
               "deferred free of mslab memory that is not an allocated block (already freed, or its cache destroyed)");
  return true;
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
//
// A new partial batch needs only the worker's timer (it steals the batch
// after a flush interval): `timer_enough` skips the wake-up when the
// worker sleeps with its timer set. In a flood a new batch starts every few
// microseconds; waking the worker for each cost a context switch pair
// each (some 10 000 in a 10 M flood).
constexpr int kRunning = 0, kSleepsTimed = 1, kSleepsUntimed = 2;
void wake_worker(State& s, bool timer_enough = false) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const int idle = s.worker_idle.load(std::memory_order_relaxed);
  if (idle == kSleepsUntimed || (idle == kSleepsTimed && !timer_enough)) {
    std::lock_guard guard(s.lock);
    s.wake.notify_one();
  }
}

void free_batch(State& s, Batch* b) noexcept {
  ++tl_freeing;
  for (std::uint32_t i = 0; i < b->count; ++i) run_entry(b->entries[i]);
  // Slab frees into slabs this thread does not own went to its free
  // buffers (one cache lock per 128 of them): push them now, so that a
  // batch counts as freed only with its slabs exact — what rcu::barrier()
  // promises, and what lets free functions use the buffered free.
  mslab::detail::flush_free_buffers();
  --tl_freeing;
  s.stats.freed.fetch_add(b->count, std::memory_order_relaxed);
  s.stats.pending_bytes.fetch_sub(b->bytes, std::memory_order_relaxed);
  release_batch(s, b);
}

// A full (or final) batch enters the pending count with its cookie, read
// after every pointer in it was unpublished (program order).
void account(State& s, Batch* b) noexcept {
  b->cookie = gp_cookie();
  s.stats.queued.fetch_add(b->count, std::memory_order_relaxed);
  add_pending(s, b->bytes);
}

void drain_after_shutdown(State& s) noexcept;

void push_submitted(State& s, Batch* b) noexcept {
  Batch* head = s.submitted.load(std::memory_order_relaxed);
  do {
    b->next = head;
    // seq_cst, with the shutdown flag: see drain_after_shutdown().
  } while (!s.submitted.compare_exchange_weak(head, b, std::memory_order_seq_cst, std::memory_order_relaxed));
  wake_worker(s);
  if (MSLAB_UNLIKELY(s.shut_down.load(std::memory_order_seq_cst))) drain_after_shutdown(s);
}

// A producer racing with shutdown() pushed a batch: if the worker has
// already ended, nobody else will free it. (The worker stores shut_down
// before its last cycles and checks `submitted` last, both seq_cst: a push
// that did not see the flag is seen by the worker.)
void drain_after_shutdown(State& s) noexcept {
  {
    std::lock_guard guard(s.lock);
    if (s.running.load()) return;  // its last cycle will collect the batch
  }
  Batch* list = s.submitted.exchange(nullptr, std::memory_order_acquire);
  if (list == nullptr) return;
  if (in_read_section()) {
    report_error(ErrorCode::kInvalidArgument, nullptr, list,
                 "deferred free after shutdown inside a read section; the objects are leaked");
    for (Batch* b = list; b != nullptr; b = b->next) s.stats.leaked.fetch_add(b->count, std::memory_order_relaxed);
    return;
  }
  synchronize();
  while (list != nullptr) {
    Batch* b = list;
    list = b->next;
    free_batch(s, b);
  }
}

// Every held batch of `p` goes to the worker (already counted); the ring
// is left empty.
void give_ring_to_worker(State& s, Producer* p) noexcept {
  for (auto& slot : p->held) {
    if (Batch* b = slot.exchange(nullptr, std::memory_order_acquire)) {
      s.held.fetch_sub(1, std::memory_order_relaxed);
      push_submitted(s, b);
    }
  }
  p->head = p->tail = 0;
}

// ---------------------------------------------------------------------------
// Helping: a producer's ring of held batches (see the top of the file).

void run_grace_period(State& s) noexcept;

bool can_reap(const Producer* me) noexcept {
  return me->head != me->tail && gp_elapsed(me->held_cookie[me->head % kHeldSlots]);
}

// The owner frees, oldest first, the held batches whose grace period has
// elapsed; slots the worker emptied are skipped. A free function may defer
// a free and so reap again, nested: each slot is consumed (head advanced)
// before its batch's free functions run.
void reap(State& s, Producer* me) noexcept {
  const std::uint32_t head = me->head;
  while (me->head != me->tail) {
    const unsigned i = me->head % kHeldSlots;
    if (me->held[i].load(std::memory_order_relaxed) != nullptr && !gp_elapsed(me->held_cookie[i])) break;
    ++me->head;
    // seq_cst store, then the exchange: a worker that found this slot empty
    // sees `reaping` (take_held / wait_for_reapers). Nested reaps leave the
    // flag to the outermost one.
    const bool outer = !me->reaping.load(std::memory_order_relaxed);
    me->reaping.store(true, std::memory_order_seq_cst);
    if (Batch* b = me->held[i].exchange(nullptr, std::memory_order_seq_cst)) {
      s.held.fetch_sub(1, std::memory_order_relaxed);
      s.stats.helped.fetch_add(b->count, std::memory_order_relaxed);
      free_batch(s, b);
    }
    if (outer) me->reaping.store(false, std::memory_order_release);
  }
  if (me->head != head) me->activity.fetch_add(1, std::memory_order_relaxed);
}

// A helping producer's ring is full and its oldest batch still waits: the
// producer runs the grace period itself, as defer_rcu's caller does. It
// has the CPU already, where handing the grace period to the worker means
// waking a third thread on CPUs that both producers keep busy, and
// sleeping until the scheduler runs it (milliseconds, not microseconds).
// liburcu lets concurrent callers share one grace period.
void ring_grace_period(State& s, Producer* me) noexcept {
  if (gp_elapsed(me->held_cookie[me->head % kHeldSlots])) return;
  s.stats.producer_grace_periods.fetch_add(1, std::memory_order_relaxed);
  synchronize();
}

// Flood control: past the pending limit a producer outside a read section
// (whose end the worker's grace period needs) frees what it can of its own
// and otherwise waits for the worker.
void wait_below_limit(State& s, Producer* me) noexcept {
  const std::size_t limit = s.pending_limit.load(std::memory_order_relaxed);
  auto below = [&] { return s.stats.pending_bytes.load(std::memory_order_relaxed) <= limit || !s.running.load(); };
  if (below() || !may_wait()) return;
  s.stats.producer_waits.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock guard(s.lock);
  s.wake.notify_one();
  while (!below()) {
    if (me != nullptr && can_reap(me)) {
      guard.unlock();
      reap(s, me);
      guard.lock();
      continue;
    }
    s.progress.wait(guard, [&] { return below() || (me != nullptr && can_reap(me)); });
  }
}

// Producers start helping when pending bytes exceed help_above (checked at
// every full batch, so that helping starts before a backlog builds up).
// Helping ends when the flood does: when a whole flush interval passed
// without a producer's ring filling up (end_helping_if_calm, on the
// worker's timer). Pending bytes cannot end it: while producers help they
// stay low by construction, and ending on them made the mode flap (about
// a hundred times in a 10 M flood, each time sending batches to the
// worker, where they wait for a CPU that both producers keep busy).
bool update_helping(State& s) noexcept {
  if (s.helping.load(std::memory_order_relaxed)) return true;
  if (s.stats.pending_bytes.load(std::memory_order_relaxed) <= s.help_above.load(std::memory_order_relaxed))
    return false;
  s.helping.store(true, std::memory_order_relaxed);
  return true;
}

// Worker only, once per flush interval.
void end_helping_if_calm(State& s) noexcept {
  const std::uint64_t fills = s.ring_fills.load(std::memory_order_relaxed);
  if (s.helping.load(std::memory_order_relaxed) && fills == s.ring_fills_seen) {
    s.helping.store(false, std::memory_order_relaxed);
  }
  s.ring_fills_seen = fills;
}

// Makes room in a helping producer's ring: frees what has elapsed and, if
// the ring is still full, runs the grace period its oldest batch needs
// (ring_grace_period). Not where it may not wait (may_wait); the caller
// then overflows to the worker.
void make_room(State& s, Producer* me) noexcept {
  reap(s, me);
  if (me->tail - me->head < kHeldSlots) return;
  s.ring_fills.fetch_add(1, std::memory_order_relaxed);
  while (me->tail - me->head >= kHeldSlots && may_wait()) {
    ring_grace_period(s, me);
    reap(s, me);
  }
}

// Puts a counted full batch at the tail of the ring, passing the oldest to
// the worker if the ring is still full.
void put_in_ring(State& s, Producer* me, Batch* b) noexcept {
  if (me->tail - me->head >= kHeldSlots) {
    Batch* oldest = me->held[me->head % kHeldSlots].exchange(nullptr, std::memory_order_acquire);
    ++me->head;
    if (oldest != nullptr) {
      s.held.fetch_sub(1, std::memory_order_relaxed);
      push_submitted(s, oldest);
    }
  }
  const unsigned i = me->tail % kHeldSlots;
  me->held_cookie[i] = b->cookie;
  s.held.fetch_add(1, std::memory_order_relaxed);  // before the batch can be taken
  me->held[i].store(b, std::memory_order_release);  // release: the entries, to a worker that takes it
  ++me->tail;
  me->activity.fetch_add(1, std::memory_order_relaxed);
}

// A producer's batch `b` just became full; the owner holds `busy` and b
// sits in its slot. The batch moves to the ring (helping) or to
// `submitted`, and stays reachable by a barrier at every step: in the slot
// (stealable) while we may block, otherwise under `busy` until it is placed
// — a barrier's cycle waits for every owner's `busy` to drop before it
// visits the rings and `submitted` (steal_partials).
void full_batch(State& s, Producer* me, Batch* b) noexcept {
  const bool help = update_helping(s);
  if (help || me->head != me->tail) {
    leave(me);  // b stays in the slot, stealable while we free or wait
    if (help)
      make_room(s, me);
    else
      reap(s, me);  // what is left from helping
    enter(s, me);
    // A free function we ran may have called defer_free: that call found
    // b full and passed it to the worker (see start_batch), and may have
    // left a partial batch of its own — never full, maybe in b's old page.
    if (me->current.load(std::memory_order_relaxed) != b || b->count != Batch::kEntries) {
      leave(me);
      return wait_below_limit(s, me);
    }
  }
  // Out of the slot; the worker may have stolen b meanwhile (it waits for
  // `busy` to drop, then counts and frees it).
  Batch* expected = b;
  if (!me->current.compare_exchange_strong(expected, nullptr, std::memory_order_acquire, std::memory_order_relaxed)) {
    leave(me);
    return wait_below_limit(s, me);
  }
  s.partial.fetch_sub(1, std::memory_order_relaxed);
  account(s, b);
  if (help)
    put_in_ring(s, me, b);
  else
    push_submitted(s, b);
  leave(me);
  if (help) {
    // A shutdown that began meanwhile may have taken the rings for the
    // last time: then hand ours over (the fence pairs with the seq_cst
    // store of shut_down and the worker's seq_cst exchanges in take_held).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (MSLAB_UNLIKELY(s.shut_down.load(std::memory_order_relaxed))) give_ring_to_worker(s, me);
  }
  wait_below_limit(s, me);
}

// ---------------------------------------------------------------------------
// The worker.

void run_grace_period(State& s) noexcept {
  synchronize();
  s.stats.grace_periods.fetch_add(1, std::memory_order_relaxed);
}

// Worker only, at each tick: which producers' rings did not move for a
// whole flush interval (they stopped producing, or produce slowly).
void mark_idle(Producer* producers) noexcept {
  for (Producer* p = producers; p != nullptr; p = p->next) {
    const std::uint64_t activity = p->activity.load(std::memory_order_relaxed);
    p->idle = activity == p->seen_activity;
    p->seen_activity = activity;
  }
}

// Takes the producers' partial batches: every one, or with `only_idle`
// only those of producers marked idle. While producers help, a busy one
// fills a batch in microseconds; stealing it would hand the worker a
// batch to free remotely, late (it waits for a CPU that the producers keep
// busy), and make the producer allocate a new one. `producers` is a
// snapshot of the list head taken under s.lock (records are never freed;
// the list grows only at its head).
//
// `all_owners` (a barrier's or the final cycle): also waits for every
// owner's `busy` to drop, so that a full batch an owner holds outside its
// slot while it places it (full_batch) is in a ring or in `submitted` by
// the time the cycle looks there.
Batch* steal_partials(State& s, Producer* producers, bool only_idle, bool all_owners) noexcept {
  bool any = false;
  for (Producer* p = producers; p != nullptr; p = p->next) {
    if ((only_idle && !p->idle) || p->current.load(std::memory_order_relaxed) == nullptr) continue;
    // acquire: pairs with the owner's release store of a new batch.
    p->stolen = p->current.exchange(nullptr, std::memory_order_acquire);
    any |= p->stolen != nullptr;
  }
  if (!any && !all_owners) return nullptr;
  owners_fence(s);
  Batch* stolen = nullptr;
  for (Producer* p = producers; p != nullptr; p = p->next) {
    if (p->stolen == nullptr && !all_owners) continue;
    // The owner is mid-append (a few instructions); acquire: its entries.
    while (p->busy.load(std::memory_order_acquire)) std::this_thread::yield();
    if (Batch* b = p->stolen) {
      p->stolen = nullptr;
      s.partial.fetch_sub(1, std::memory_order_relaxed);
      account(s, b);
      b->next = stolen;
      stolen = b;
    }
  }
  return stolen;
}

// Takes held batches out of the producers' rings: all of them when `all`,
// else only those of producers marked idle (they stopped producing; their
// batches would wait for ever).
Batch* take_held(State& s, Producer* producers, bool all) noexcept {
  Batch* taken = nullptr;
  for (Producer* p = producers; p != nullptr; p = p->next) {
    if (!all && !p->idle) continue;
    for (auto& slot : p->held) {
      if (slot.load(std::memory_order_relaxed) == nullptr) continue;
      // acquire (seq_cst): the owner's release store of the batch; see reap().
      if (Batch* b = slot.exchange(nullptr, std::memory_order_seq_cst)) {
        s.held.fetch_sub(1, std::memory_order_relaxed);
        b->next = taken;
        taken = b;
      }
    }
  }
  return taken;
}

// After take_held(all): a producer may still be freeing a batch it took
// just before; a barrier must not return until it has.
void wait_for_reapers(Producer* producers) noexcept {
  for (Producer* p = producers; p != nullptr; p = p->next)
    while (p->reaping.load(std::memory_order_seq_cst)) std::this_thread::yield();
}

struct CycleInput {
  Batch* stolen;         // partial batches (steal_partials), cookies just taken
  Producer* producers;   // snapshot of the list head (it only grows at its head)
  bool take_all_held;    // barrier, shutdown, or helping has ended
  bool take_idle_held;   // a flush tick: take the rings of stopped producers
};

// One cycle: collect, wait for a grace period if needed, free.
void run_cycle(State& s, const CycleInput& in) noexcept {
  // Rings before `submitted`: the direction batches move in (full_batch).
  Batch* collected = nullptr;
  if (in.take_all_held || in.take_idle_held) collected = take_held(s, in.producers, in.take_all_held);
  if (Batch* submitted = s.submitted.exchange(nullptr, std::memory_order_acquire)) {
    Batch* tail = submitted;
    while (tail->next != nullptr) tail = tail->next;
    tail->next = collected;
    collected = submitted;
  }
  Batch* ready = nullptr;
  Batch* waiting = in.stolen;  // stolen batches always need the next grace period
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
  for (Batch* b = in.stolen; b != nullptr; b = b->next) s.stats.batches.fetch_add(1, std::memory_order_relaxed);
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
  while (ready != nullptr) {
    Batch* b = ready;
    ready = b->next;
    free_batch(s, b);
  }
  // Our frees into slabs we do not own are chained per slab: push them now.
  mslab::detail::flush_thread_heap();
  if (in.take_all_held) wait_for_reapers(in.producers);
}


void worker_main(State& s) noexcept {
  mslab::detail::create_thread_heap();  // lets its frees batch per slab
  using clock = std::chrono::steady_clock;
  auto last_steal = clock::now();
  std::unique_lock guard(s.lock);
  for (;;) {
    const auto interval = std::chrono::microseconds(s.options.flush_interval_us);
    auto has_work = [&] {
      return s.stop || s.submitted.load(std::memory_order_acquire) != nullptr ||
             s.barrier_requested != s.barrier_done;
    };
    // Work that only a timer brings back: partial batches to steal, held
    // batches of producers that may have stopped, helping to end.
    auto has_timed_work = [&] {
      return s.partial.load(std::memory_order_relaxed) > 0 || s.held.load(std::memory_order_relaxed) > 0 ||
             s.helping.load(std::memory_order_relaxed);
    };
    if (!has_work()) {
      // Untimed first, then the check: a producer that starts a partial
      // batch (timed work) after the check sees kSleepsUntimed and wakes us.
      s.worker_idle.store(kSleepsUntimed, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // see wake_worker()
      if (has_timed_work()) {
        s.worker_idle.store(kSleepsTimed, std::memory_order_relaxed);
        s.wake.wait_until(guard, last_steal + interval, has_work);
      } else {
        s.wake.wait(guard, [&] { return has_work() || has_timed_work(); });
      }
      s.worker_idle.store(kRunning, std::memory_order_relaxed);
    }
    const std::uint64_t barrier_target = s.barrier_requested;
    const bool stopping = s.stop;
    const bool final = barrier_target != s.barrier_done || stopping;
    const auto now = clock::now();
    CycleInput in{nullptr, s.producers, final, false};
    // A tick: a whole flush interval passed. Idleness and calm are judged
    // over whole intervals only, never over the shorter span a barrier's
    // cycle cuts (which takes everything anyway).
    const bool tick = now - last_steal >= interval;
    const bool steal = final || tick;
    if (tick) last_steal = now;
    guard.unlock();
    // Not under the lock: a producer holding `busy` may take it (wake_worker).
    if (tick) mark_idle(in.producers);
    if (steal) {
      in.stolen = steal_partials(s, in.producers, !final && s.helping.load(std::memory_order_relaxed), final);
      in.take_idle_held = true;
    }
    run_cycle(s, in);
    if (tick) end_helping_if_calm(s);
    guard.lock();
    s.barrier_done = barrier_target;
    s.progress.notify_all();
    if (stopping && s.submitted.load(std::memory_order_seq_cst) == nullptr) break;
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

// In a forked child only the forking thread runs: the worker is gone, the
// lock and condition variables may be held or waited on by threads that do
// not exist, and other producers' slots and rings may hold batches that
// were mid-flight in them. The state is rebuilt for one thread: the worker
// restarts on the next defer_free; the forking thread keeps its own
// batches; `submitted` is kept (its batches are complete); what the other
// threads held is dropped — their pointers are counted as leaked in the
// child (their memory stays the parent's to free) and their batch pages
// are not reused.
void State::after_fork_child() noexcept {
  State& s = state();
  new (&s.lock) std::mutex;
  new (&s.wake) std::condition_variable;
  new (&s.progress) std::condition_variable;
  new (&s.worker) std::thread;  // the parent's handle: never joined here
  s.running.store(false);
  s.stop = false;
  s.worker_idle.store(kRunning);
  s.barrier_done = s.barrier_requested;
  std::size_t partial = 0, held = 0;
  for (Producer* p = s.producers; p != nullptr; p = p->next) {
    // A thread that was appending at the fork does not exist here: a
    // barrier must not wait for its `busy` (steal_partials). What the
    // parent's worker had stolen but not counted stays the parent's.
    p->busy.store(false, std::memory_order_relaxed);
    p->stolen = nullptr;
    if (p == tl_producer) {  // ours: still valid
      Batch* b = p->current.load(std::memory_order_relaxed);
      partial += b != nullptr;
      for (auto& slot : p->held) held += slot.load(std::memory_order_relaxed) != nullptr;
      continue;
    }
    auto drop = [&](Batch* b) {
      if (b == nullptr) return;
      s.stats.leaked.fetch_add(b->count, std::memory_order_relaxed);
      s.stats.pending_bytes.fetch_sub(b->bytes, std::memory_order_relaxed);
    };
    // A partial batch was never counted as pending; ring batches were.
    if (Batch* b = p->current.exchange(nullptr); b != nullptr)
      s.stats.leaked.fetch_add(b->count, std::memory_order_relaxed);
    for (auto& slot : p->held) drop(slot.exchange(nullptr));
    p->head = p->tail = 0;
    p->reaping.store(false);
    p->in_use = false;
  }
  s.partial.store(partial);
  s.held.store(held);
}

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
  // `busy` while the batches move, so that a barrier cannot miss them (see
  // full_batch); the record is then reused with an empty ring.
  enter(s, p);
  Batch* b = p->current.exchange(nullptr, std::memory_order_acquire);  // or the worker stole it
  if (b != nullptr) {
    s.partial.fetch_sub(1, std::memory_order_relaxed);
    account(s, b);
    push_submitted(s, b);
  }
  give_ring_to_worker(s, p);
  leave(p);
  wait_below_limit(s, nullptr);
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
  account(s, b);
  push_submitted(s, b);
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

// The owner holds `busy` and its slot holds `full` (a full batch) or null.
// Returns a new batch in the slot with `busy` held, or null — no memory;
// `busy` is then released.
Batch* start_batch(State& s, Producer* me, Batch* full) noexcept {
  if (full != nullptr) {
    // A full batch here belongs to a full_batch() further up this thread's
    // stack, which is running free functions (we are one of them): hand it
    // to the worker — unless the worker stole it already.
    Batch* expected = full;
    if (me->current.compare_exchange_strong(expected, nullptr, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
      s.partial.fetch_sub(1, std::memory_order_relaxed);
      account(s, full);
      push_submitted(s, full);
    }
  }
  leave(me);  // allocate without holding `busy`: a barrier may wait on it
  if (!s.running.load(std::memory_order_relaxed)) ensure_worker(s);
  Batch* b = new_batch();
  if (b == nullptr) return nullptr;
  s.partial.fetch_add(1, std::memory_order_relaxed);  // before the worker can steal it
  enter(s, me);
  // release: the batch's header, to a worker that steals it. Only the owner
  // stores into its slot, and nothing ran since it was null.
  me->current.store(b, std::memory_order_release);
  return b;
}

// The hot path: plain stores, no atomic read-modify-write (see the top of
// the file for the slot protocol).
void enqueue(void* p, FreeFn fn, std::size_t bytes) noexcept {
  State& s = state();
  if (MSLAB_UNLIKELY(s.shut_down.load(std::memory_order_acquire))) return free_after_shutdown(p, fn);
  Producer* me = producer(s);
  if (MSLAB_UNLIKELY(me == nullptr)) return emergency(s, p, fn, bytes);
  enter(s, me);
  Batch* b = me->current.load(std::memory_order_relaxed);
  if (MSLAB_UNLIKELY(b == nullptr || b->count == Batch::kEntries)) {
    b = start_batch(s, me, b);
    if (b == nullptr) return emergency(s, p, fn, bytes);
  }
  b->entries[b->count++] = Entry{p, fn};
  b->bytes += bytes + sizeof(Entry);
  if (b->count == Batch::kEntries) return full_batch(s, me, b);
  // After leave() the worker may steal and free the batch at any time:
  // nothing may read it afterwards.
  const bool first_entry = b->count == 1;
  leave(me);
  if (MSLAB_UNLIKELY(first_entry)) wake_worker(s, true);  // a new partial batch: the worker's timer must run
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
  // Outside mslab memory: malloc's. Inside: its block's size — 0 for a
  // stale pointer (reported when it is freed), which malloc must never be
  // asked about.
  const std::size_t bytes = mslab::detail::chunk_of(p) == nullptr ? ::malloc_usable_size(p) : owner_size(p);
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
  if (tl_freeing != 0) {
    report_error(ErrorCode::kInvalidArgument, nullptr, nullptr, "rcu::barrier() inside a deferred free function would deadlock");
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
  s.shut_down.store(true, std::memory_order_seq_cst);  // see drain_after_shutdown()
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
  s.help_above.store(options.help_above_bytes, std::memory_order_relaxed);
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
                       get(st.producer_grace_periods), get(st.emergency_frees), get(st.reserve_batches), get(st.leaked),
                       get(st.helped),          get(st.pending_bytes),   get(st.peak_pending_bytes),
                       state().helping.load(std::memory_order_relaxed)};
}

}  // namespace mslab::rcu
