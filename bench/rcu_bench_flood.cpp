// Benchmark 1 of mslab-rcu-bench ("flood"): N deferred frees of 64-byte
// objects from T producer threads, through mslab's defer_free and through
// liburcu's call_rcu and defer_rcu (urcu-memb flavor, the one mslab uses).
// Runs inside a forked child (one case per process): throughput, producer
// cost, peak pending bytes and the free latency of sampled objects.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <limits>
#include <thread>
#include <vector>

#include "alloc/slab_cache.h"
#include "bench/rcu_bench_common.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"  // <urcu/urcu-memb.h> with the inlined read side, as the library uses it

namespace mslab::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Every case frees the same 64-byte object; only call_rcu uses `head`,
// but all carry it so that all allocate the same size.
struct Obj {
  rcu_head head;
  std::uint64_t t0;  // clock_ns() at the free request for sampled objects, else 0
  unsigned char payload[64 - sizeof(rcu_head) - sizeof(std::uint64_t)];
};
static_assert(sizeof(Obj) == 64);

// Producers publish their count every kPublishEvery objects and then sample
// (enqueued − freed): the sampled peak is low by at most that many objects
// per other producer. A power of two keeps the test a mask.
constexpr std::uint64_t kPublishEvery = 256;

// One case per process, so plain globals. The counters sit on their own
// cache lines: `freed` is written by the freeing thread, `produced` by the
// producers, and false sharing would slow exactly what is measured.
struct Shared {
  alignas(64) std::atomic<std::uint64_t> freed{0};
  alignas(64) std::atomic<std::uint64_t> n_samples{0};
  alignas(64) std::atomic<std::uint64_t> produced{0};
  alignas(64) std::atomic<std::uint64_t> peak_pending{0};  // objects
  std::uint32_t* samples = nullptr;
  std::uint64_t sample_cap = 0;
  std::uint64_t headless_freed_base = 0;  // deferred_stats().freed before the run
  SlabCache* cache = nullptr;
};
Shared g;

// Called for every object just before its memory goes back: the free
// latency of a sampled object is now − its request time. The callbacks of
// one case run on one worker thread (defer_rcu: also on the producers), so
// the index is an uncontended atomic.
inline void on_freed(const Obj* o) noexcept {
  if (o->t0 != 0) {
    const std::uint64_t d = clock_ns() - o->t0;
    const std::uint64_t i = g.n_samples.fetch_add(1, std::memory_order_relaxed);
    if (i < g.sample_cap) g.samples[i] = d > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(d);
  }
  g.freed.fetch_add(1, std::memory_order_relaxed);
}

void free_malloced(void* p) noexcept {
  on_freed(static_cast<const Obj*>(p));
  std::free(p);
}

void free_to_slab(void* p) noexcept {
  on_freed(static_cast<const Obj*>(p));
  g.cache->free(p);
}

extern "C" void flood_call_rcu_cb(rcu_head* head) {
  free_malloced(reinterpret_cast<Obj*>(head));  // head is the first member of a standard-layout Obj
}

extern "C" void flood_defer_rcu_cb(void* p) { free_malloced(p); }

template <FloodCase C>
std::uint64_t freed_so_far() noexcept {
  if constexpr (C == FloodCase::kMslabHeadless)
    return rcu::deferred_stats().freed - g.headless_freed_base;  // the library frees these itself
  else
    return g.freed.load(std::memory_order_relaxed);
}

template <FloodCase C>
void sample_pending() noexcept {
  const std::uint64_t freed = freed_so_far<C>();
  const std::uint64_t produced = g.produced.load(std::memory_order_relaxed);
  if (produced <= freed) return;  // another producer's last objects are not published yet
  const std::uint64_t pending = produced - freed;
  std::uint64_t peak = g.peak_pending.load(std::memory_order_relaxed);
  while (pending > peak && !g.peak_pending.compare_exchange_weak(peak, pending, std::memory_order_relaxed)) {
  }
}

struct Sync {
  std::latch ready;      // every producer registered
  std::latch start{1};   // main read the start time
  std::latch done;       // every producer finished its loop
  std::latch release{1}; // main's barrier returned: producers may unregister and exit
  explicit Sync(unsigned threads) : ready(threads), done(threads) {}
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "mslab-rcu-bench: %s\n", what);
  std::_Exit(4);
}

// Pacing for --rate: a producer makes `per_tick` objects, then sleeps until
// its next tick (absolute deadlines, so the rate does not drift).
struct Pace {
  std::uint64_t per_tick = 0;  // 0: flat out
  std::uint64_t tick_ns = 0;
};

Pace pace_for(std::uint64_t rate, unsigned threads) {
  Pace p;
  if (rate == 0) return p;
  const double per_thread = static_cast<double>(rate) / threads;  // objects per second
  p.tick_ns = 1'000'000;                                           // 1 ms ticks …
  p.per_tick = static_cast<std::uint64_t>(per_thread / 1000.0);
  if (p.per_tick == 0) {                                           // … or one object per tick when slower
    p.per_tick = 1;
    p.tick_ns = static_cast<std::uint64_t>(1e9 / per_thread);
  }
  return p;
}

template <FloodCase C>
void producer(std::uint64_t n, unsigned latency_every, Pace pace, Sync& sync, double* ns_per_op) {
  // liburcu's call_rcu takes a read lock inside, so the caller must be a
  // registered reader; defer_rcu needs its own per-thread queue.
  if constexpr (C == FloodCase::kCallRcu) urcu_memb_register_thread();
  if constexpr (C == FloodCase::kDeferRcu)
    if (urcu_memb_defer_register_thread() != 0) die("urcu_memb_defer_register_thread failed");
  sync.ready.count_down();
  sync.start.wait();

  const std::uint64_t t0 = clock_ns();
  unsigned stamp_in = 0;  // the first object is sampled, then every latency_every-th
  std::uint64_t unpublished = 0;
  std::uint64_t in_tick = 0, next_tick = t0, slept_ns = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (pace.per_tick != 0 && in_tick++ == pace.per_tick) {
      in_tick = 1;
      next_tick += pace.tick_ns;
      const std::uint64_t before = clock_ns();
      if (next_tick > before) std::this_thread::sleep_for(std::chrono::nanoseconds(next_tick - before));
      slept_ns += clock_ns() - before;
    }
    Obj* o = static_cast<Obj*>(C == FloodCase::kMslabSlab ? g.cache->alloc() : std::malloc(sizeof(Obj)));
    if (o == nullptr) die("out of memory");
    if (stamp_in == 0 && C != FloodCase::kDirect) {
      o->t0 = clock_ns();
      stamp_in = latency_every - 1;
    } else {
      o->t0 = 0;
      if (stamp_in != 0) --stamp_in;
    }
    if constexpr (C == FloodCase::kCallRcu) urcu_memb_call_rcu(&o->head, flood_call_rcu_cb);
    if constexpr (C == FloodCase::kDeferRcu) urcu_memb_defer_rcu(flood_defer_rcu_cb, o);
    if constexpr (C == FloodCase::kMslab) rcu::defer_free(o, free_malloced, sizeof(Obj));
    if constexpr (C == FloodCase::kMslabHeadless) rcu::defer_free(o);
    if constexpr (C == FloodCase::kMslabSlab) rcu::defer_free(o, free_to_slab);
    if constexpr (C == FloodCase::kDirect) free_malloced(o);
    if (++unpublished == kPublishEvery) {
      g.produced.fetch_add(kPublishEvery, std::memory_order_relaxed);
      unpublished = 0;
      sample_pending<C>();
    }
  }
  g.produced.fetch_add(unpublished, std::memory_order_relaxed);
  sample_pending<C>();
  const std::uint64_t t1 = clock_ns();
  *ns_per_op = n == 0 ? kNaN : static_cast<double>(t1 - t0 - slept_ns) / static_cast<double>(n);

  // Stay registered until main's barrier is done: the barrier, not a
  // thread exit, is what must flush the queues.
  sync.done.count_down();
  sync.release.wait();
  if constexpr (C == FloodCase::kCallRcu) urcu_memb_unregister_thread();
  if constexpr (C == FloodCase::kDeferRcu) urcu_memb_defer_unregister_thread();
}

template <FloodCase C>
void run_case(const RcuBenchOptions& o, FloodResult& r) {
  const unsigned threads = o.threads;
  std::vector<std::uint32_t> samples((o.count + o.latency_every - 1) / o.latency_every + threads);
  g.samples = samples.data();  // zero-filled: its pages are touched before the clock starts
  g.sample_cap = samples.size();

  constexpr bool kOurs = C == FloodCase::kMslab || C == FloodCase::kMslabHeadless || C == FloodCase::kMslabSlab;
  if constexpr (C == FloodCase::kMslabSlab) {
    CacheError error{};
    g.cache = SlabCache::create(CacheOptions{.name = "rcu-bench-64", .object_size = sizeof(Obj)}, &error);
    if (g.cache == nullptr) die(error.message);
  }
  // Start the freeing threads before the clock does, in every case alike.
  if constexpr (C == FloodCase::kCallRcu) {
    urcu_memb_register_thread();  // urcu_memb_barrier() queues a callback: a registered caller
    (void)urcu_memb_get_default_call_rcu_data();
  }
  if constexpr (kOurs) {
    rcu::defer_free(std::malloc(sizeof(Obj)));  // starts the worker; 1 object, freed now
    rcu::barrier();
  }
  const rcu::DeferredStats before = rcu::deferred_stats();
  g.headless_freed_base = before.freed;

  Sync sync(threads);
  std::vector<double> ns(threads, kNaN);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    const std::uint64_t n = o.count / threads + (t < o.count % threads ? 1 : 0);
    pool.emplace_back(producer<C>, n, o.latency_every, pace_for(o.rate, threads), std::ref(sync), &ns[t]);
  }
  sync.ready.wait();
  const std::uint64_t faults_start = minor_faults();
  const CpuUse cpu_start = cpu_use();
  const std::uint64_t t_start = clock_ns();
  sync.start.count_down();
  sync.done.wait();
  const std::uint64_t t_produced = clock_ns();
  if constexpr (C == FloodCase::kCallRcu) urcu_memb_barrier();
  if constexpr (C == FloodCase::kDeferRcu) urcu_memb_defer_barrier();
  if constexpr (kOurs) rcu::barrier();
  const std::uint64_t t_end = clock_ns();
  r.page_faults = static_cast<double>(minor_faults() - faults_start);
  const CpuUse cpu_end = cpu_use();
  r.cpu_ms = cpu_end.cpu_ms - cpu_start.cpu_ms;
  r.context_switches = cpu_end.context_switches - cpu_start.context_switches;
  sync.release.count_down();
  for (std::thread& t : pool) t.join();

  r.frees = freed_so_far<C>();
  r.seconds_total = static_cast<double>(t_end - t_start) * 1e-9;
  r.seconds_producers = static_cast<double>(t_produced - t_start) * 1e-9;
  r.barrier_ms = static_cast<double>(t_end - t_produced) * 1e-6;
  r.frees_per_s = r.seconds_total > 0 ? static_cast<double>(r.frees) / r.seconds_total : kNaN;
  double sum = 0;
  unsigned busy = 0;  // producers that had objects (--count below --threads leaves some idle)
  for (double v : ns)
    if (std::isfinite(v)) sum += v, ++busy;
  r.producer_ns_per_op = busy != 0 ? sum / busy : kNaN;
  r.peak_pending_bytes_sampled = static_cast<double>(g.peak_pending.load() * sizeof(Obj));

  const std::uint64_t n_samples = std::min<std::uint64_t>(g.n_samples.load(), g.sample_cap);
  samples.resize(n_samples);
  r.latency_samples = static_cast<double>(n_samples);
  if (C == FloodCase::kDirect || C == FloodCase::kMslabHeadless) {
    // direct: nothing is deferred; headless: the library frees the object
    // itself, so no callback can read the clock.
    r.latency_samples = r.latency_p50_ns = r.latency_p99_ns = r.latency_max_ns = kNaN;
  } else {
    r.latency_p50_ns = quantile(samples, 0.50);
    r.latency_p99_ns = quantile(samples, 0.99);
    r.latency_max_ns = samples.empty() ? kNaN : *std::max_element(samples.begin(), samples.end());
  }

  r.peak_pending_bytes_library = r.grace_periods = r.batches = r.batches_elapsed = r.producer_waits =
      r.producer_grace_periods = kNaN;
  if constexpr (kOurs) {
    const rcu::DeferredStats after = rcu::deferred_stats();
    r.peak_pending_bytes_library = static_cast<double>(after.peak_pending_bytes);
    r.grace_periods = static_cast<double>(after.grace_periods - before.grace_periods);
    r.batches = static_cast<double>(after.batches - before.batches);
    r.batches_elapsed = static_cast<double>(after.batches_elapsed - before.batches_elapsed);
    r.producer_waits = static_cast<double>(after.producer_waits - before.producer_waits);
    r.producer_grace_periods = static_cast<double>(after.producer_grace_periods - before.producer_grace_periods);
    if (after.pending_bytes != 0 || after.leaked != 0 || after.emergency_frees != before.emergency_frees) {
      std::snprintf(r.note, sizeof r.note, "library after barrier: pending_bytes %zu, leaked %llu, emergency frees %llu",
                    after.pending_bytes, static_cast<unsigned long long>(after.leaked),
                    static_cast<unsigned long long>(after.emergency_frees - before.emergency_frees));
    }
  }
  if (r.frees != o.count) {
    std::snprintf(r.note, sizeof r.note, "%llu of %llu objects freed after the barrier",
                  static_cast<unsigned long long>(r.frees), static_cast<unsigned long long>(o.count));
    r.status = RunStatus::kFailed;
  } else {
    r.status = RunStatus::kOk;
  }
  if constexpr (C == FloodCase::kCallRcu) urcu_memb_unregister_thread();
}

}  // namespace

FloodResult run_flood(FloodCase c, const RcuBenchOptions& options) noexcept {
  FloodResult r;
  switch (c) {
    case FloodCase::kCallRcu: run_case<FloodCase::kCallRcu>(options, r); break;
    case FloodCase::kDeferRcu: run_case<FloodCase::kDeferRcu>(options, r); break;
    case FloodCase::kMslab: run_case<FloodCase::kMslab>(options, r); break;
    case FloodCase::kMslabHeadless: run_case<FloodCase::kMslabHeadless>(options, r); break;
    case FloodCase::kMslabSlab: run_case<FloodCase::kMslabSlab>(options, r); break;
    case FloodCase::kDirect: run_case<FloodCase::kDirect>(options, r); break;
  }
  return r;
}

}  // namespace mslab::bench
