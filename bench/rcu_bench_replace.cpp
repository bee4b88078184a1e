// Benchmark 2 of mslab-rcu-bench ("replace", seed 003's case): a writer
// replaces a published array R times while a reader thread reads it in
// read sections non-stop, retiring each old array through one of four
// paths. Runs inside a forked child (one case per process). The reader
// checks every array it reads, so a premature free shows up as a violation.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>

#include "alloc/slab_cache.h"
#include "bench/rcu_bench_common.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"  // <urcu/urcu-memb.h> with the inlined read side, as the library uses it

namespace mslab::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// glibc's M_PERTURB fills every freed byte with this, so a reader that
// reads an array after its free sees a tag and a sum that cannot match.
// (Slab objects are not poisoned, except under ASan: with
// --array-memory=slab only a reuse during the read is seen.)
constexpr int kPoisonByte = 0xA5;
constexpr std::uint32_t kPoisonWord = 0xA5A5A5A5u;

// An array's element 0 is its tag (the replacement number); every other
// element holds fill_value(tag). A torn, freed or reused array breaks that.
constexpr std::uint32_t fill_value(std::uint32_t tag) noexcept { return tag * 0x9E3779B1u + 0x7F4A7C15u; }
static_assert(fill_value(kPoisonWord) != kPoisonWord);

// Block layout: [ints × uint32][rcu_head]. The rcu_head (for call_rcu) sits
// after the data, so that allocator metadata written at the start of a
// freed chunk lands in the data, where the reader's check sees it.
struct Shared {
  std::atomic<std::uint32_t*> published{nullptr};
  alignas(64) std::atomic<bool> stop{false};
  alignas(64) std::atomic<std::uint64_t> iterations{0};  // reader: reads done
  alignas(64) std::atomic<std::uint64_t> violations{0};  // reader: written once at the end
  alignas(64) std::atomic<std::uint64_t> freed{0};       // baselines' frees
  std::size_t ints = 0, head_offset = 0, bytes = 0;
  std::uint64_t max_tag = 0;
  SlabCache* cache = nullptr;  // --array-memory=slab: every case allocates and frees here
};
Shared s;

rcu_head* head_of(std::uint32_t* block) noexcept {
  return reinterpret_cast<rcu_head*>(reinterpret_cast<char*>(block) + s.head_offset);
}

void free_block(void* block) noexcept {
  s.freed.fetch_add(1, std::memory_order_relaxed);
  if (s.cache != nullptr)
    s.cache->free(block);
  else
    std::free(block);
}

extern "C" void replace_call_rcu_cb(rcu_head* head) { free_block(reinterpret_cast<char*>(head) - s.head_offset); }
extern "C" void replace_defer_rcu_cb(void* block) { free_block(block); }

std::uint32_t* make_block(std::uint32_t tag) {
  auto* b = static_cast<std::uint32_t*>(s.cache != nullptr ? s.cache->alloc() : std::malloc(s.bytes));
  if (b == nullptr) {
    std::fputs("mslab-rcu-bench: out of memory\n", stderr);
    std::_Exit(4);
  }
  std::fill(b + 1, b + s.ints, fill_value(tag));
  b[0] = tag;
  return b;
}

void reader() {
  rcu::register_thread();
  std::uint64_t reads = 0, bad = 0;
  const std::uint64_t n = s.ints - 1;
  while (!s.stop.load(std::memory_order_relaxed)) {
    {
      rcu::ReadGuard guard;
      const std::uint32_t* a = s.published.load(std::memory_order_acquire);
      const std::uint32_t tag = a[0];
      std::uint64_t sum = 0;
      for (std::size_t i = 1; i < s.ints; ++i) sum += a[i];
      if (tag > s.max_tag || sum != n * fill_value(tag)) ++bad;
    }
    s.iterations.store(++reads, std::memory_order_relaxed);
  }
  s.violations.store(bad, std::memory_order_relaxed);
}

template <ReplaceCase C>
std::uint64_t freed_so_far(std::uint64_t library_base) noexcept {
  if constexpr (C == ReplaceCase::kMslab)
    return rcu::deferred_stats().freed - library_base;  // the library frees them itself
  else
    return s.freed.load(std::memory_order_relaxed);
}

template <ReplaceCase C>
void run_case(const RcuBenchOptions& o, ReplaceResult& r) {
  mallopt(M_PERTURB, kPoisonByte);  // costs every case the same two memsets per array
  s.ints = o.array_ints;
  s.head_offset = (s.ints * sizeof(std::uint32_t) + alignof(rcu_head) - 1) / alignof(rcu_head) * alignof(rcu_head);
  s.bytes = s.head_offset + sizeof(rcu_head);
  s.max_tag = o.replacements;
  r.block_bytes = static_cast<double>(s.bytes);
  if (o.array_slab) {
    CacheError error{};
    s.cache = SlabCache::create(CacheOptions{.name = "rcu-bench-array", .object_size = s.bytes}, &error);
    if (s.cache == nullptr) {
      copy_text(r.note, sizeof r.note, error.message);
      return;
    }
  }

  // Start every freeing thread before the clock does.
  if constexpr (C == ReplaceCase::kCallRcu) {
    urcu_memb_register_thread();  // call_rcu and urcu_memb_barrier() read-lock inside
    (void)urcu_memb_get_default_call_rcu_data();
  }
  if constexpr (C == ReplaceCase::kDeferRcu)
    if (urcu_memb_defer_register_thread() != 0) {
      copy_text(r.note, sizeof r.note, "urcu_memb_defer_register_thread failed");
      return;
    }
  if constexpr (C == ReplaceCase::kMslab) {
    rcu::defer_free(std::malloc(64));  // starts the worker; 1 object, freed now
    rcu::barrier();
  }
  const rcu::DeferredStats before = rcu::deferred_stats();

  s.published.store(make_block(0), std::memory_order_release);
  std::thread reader_thread(reader);
  while (s.iterations.load(std::memory_order_relaxed) == 0) std::this_thread::yield();

  std::uint64_t peak_pending = 0;
  const std::uint64_t faults_start = minor_faults();
  const std::uint64_t t_start = clock_ns();
  const std::uint64_t reads_start = s.iterations.load(std::memory_order_relaxed);
  for (std::uint64_t tag = 1; tag <= o.replacements; ++tag) {
    std::uint32_t* old = s.published.exchange(make_block(static_cast<std::uint32_t>(tag)), std::memory_order_acq_rel);
    if constexpr (C == ReplaceCase::kSynchronize) {
      urcu_memb_synchronize_rcu();
      free_block(old);
    }
    if constexpr (C == ReplaceCase::kMslab) rcu::defer_free(old);
    if constexpr (C == ReplaceCase::kCallRcu) urcu_memb_call_rcu(head_of(old), replace_call_rcu_cb);
    if constexpr (C == ReplaceCase::kDeferRcu) urcu_memb_defer_rcu(replace_defer_rcu_cb, old);
    // retired = tag; a synchronize case never holds more than the one it frees.
    const std::uint64_t freed = freed_so_far<C>(before.freed);
    const std::uint64_t pending = C == ReplaceCase::kSynchronize ? 1 : (tag > freed ? tag - freed : 0);
    peak_pending = std::max(peak_pending, pending);
  }
  const std::uint64_t t_written = clock_ns();
  if constexpr (C == ReplaceCase::kMslab) rcu::barrier();
  if constexpr (C == ReplaceCase::kCallRcu) urcu_memb_barrier();
  if constexpr (C == ReplaceCase::kDeferRcu) urcu_memb_defer_barrier();
  const std::uint64_t t_end = clock_ns();
  const std::uint64_t reads_end = s.iterations.load(std::memory_order_relaxed);
  r.page_faults = static_cast<double>(minor_faults() - faults_start);

  s.stop.store(true, std::memory_order_relaxed);
  reader_thread.join();
  free_block(s.published.load(std::memory_order_relaxed));  // the reader is gone
  s.freed.fetch_sub(1, std::memory_order_relaxed);         // not one of the retired arrays

  r.total_ms = static_cast<double>(t_end - t_start) * 1e-6;
  r.writer_ms = static_cast<double>(t_written - t_start) * 1e-6;
  r.barrier_ms = static_cast<double>(t_end - t_written) * 1e-6;
  r.reader_iterations = static_cast<double>(reads_end - reads_start);
  r.reader_iterations_per_s = r.total_ms > 0 ? r.reader_iterations / (r.total_ms * 1e-3) : kNaN;
  r.violations = static_cast<double>(s.violations.load());
  r.peak_pending_bytes_sampled = static_cast<double>(peak_pending * s.bytes);
  r.peak_pending_bytes_library = kNaN;
  r.grace_periods = C == ReplaceCase::kSynchronize ? static_cast<double>(o.replacements) : kNaN;
  if constexpr (C == ReplaceCase::kMslab) {
    const rcu::DeferredStats after = rcu::deferred_stats();
    r.peak_pending_bytes_library = static_cast<double>(after.peak_pending_bytes);
    r.grace_periods = static_cast<double>(after.grace_periods - before.grace_periods);
  }

  const std::uint64_t freed = freed_so_far<C>(before.freed);
  if (freed != o.replacements) {
    std::snprintf(r.note, sizeof r.note, "%llu of %llu old arrays freed after the barrier",
                  static_cast<unsigned long long>(freed), static_cast<unsigned long long>(o.replacements));
  } else if (r.violations != 0) {
    std::snprintf(r.note, sizeof r.note, "the reader saw %.0f freed or torn arrays", r.violations);
  } else {
    r.status = RunStatus::kOk;
  }
  if constexpr (C == ReplaceCase::kCallRcu) urcu_memb_unregister_thread();
  if constexpr (C == ReplaceCase::kDeferRcu) urcu_memb_defer_unregister_thread();
}

}  // namespace

ReplaceResult run_replace(ReplaceCase c, const RcuBenchOptions& options) noexcept {
  ReplaceResult r;
  switch (c) {
    case ReplaceCase::kSynchronize: run_case<ReplaceCase::kSynchronize>(options, r); break;
    case ReplaceCase::kMslab: run_case<ReplaceCase::kMslab>(options, r); break;
    case ReplaceCase::kCallRcu: run_case<ReplaceCase::kCallRcu>(options, r); break;
    case ReplaceCase::kDeferRcu: run_case<ReplaceCase::kDeferRcu>(options, r); break;
  }
  return r;
}

}  // namespace mslab::bench
