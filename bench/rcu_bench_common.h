// Shared pieces of mslab-rcu-bench: its options, the fixed-size result
// records that a forked child sends back through a pipe, the clock, and the
// fork helper. The two benchmarks themselves live in rcu_bench_flood.cpp
// (deferred-free flood) and rcu_bench_replace.cpp (array replacement).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mslab::bench {

struct RcuBenchOptions {
  std::uint64_t count = 10'000'000;  // flood: deferred frees in all, split over the threads
  unsigned threads = 2;              // flood: producer threads
  unsigned latency_every = 16;       // flood: every Nth object carries a timestamp
  std::uint64_t rate = 0;            // flood: objects per second in all (paced producers); 0 = flat out
  std::uint64_t replacements = 8192; // replace: times the published array is replaced
  std::uint32_t array_ints = 1024;   // replace: ints per array
  bool array_slab = false;           // replace: arrays from an mslab SlabCache instead of malloc
  bool run_flood = true;
  bool run_replace = true;
  std::vector<std::string> cases;    // case names to run (both benchmarks); empty: all
  bool json = false;
  unsigned timeout_s = 600;          // per child: SIGALRM after this many seconds
  unsigned repeat = 1;               // runs per case; tables show the median run
  std::vector<std::string> argv;     // the command line, for the report
};

inline std::uint64_t clock_ns() noexcept {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count());
}

// Results are plain structs (memcpy'd through a pipe), so text is a fixed
// array. A figure that does not apply to a case is NaN (printed "-" / null).
inline void copy_text(char* dst, std::size_t cap, const char* src) noexcept {
  std::strncpy(dst, src, cap - 1);
  dst[cap - 1] = '\0';
}

enum class RunStatus : std::uint32_t { kOk, kFailed };

// ---------------------------------------------------------------------------
// Benchmark 1: N deferred frees of 64-byte objects from T threads.

enum class FloodCase : std::uint32_t {
  kCallRcu,        // urcu_memb_call_rcu, rcu_head inside each object
  kDeferRcu,       // urcu_memb_defer_rcu(fn, p)
  kMslab,          // mslab::rcu::defer_free(p, fn), malloc'd objects
  kMslabHeadless,  // mslab::rcu::defer_free(p): the library calls free() itself
  kMslabSlab,      // objects from an mslab SlabCache, defer_free(p, fn)
  kDirect,         // reference: free() at once, no grace period
};
inline constexpr FloodCase kFloodCases[] = {FloodCase::kCallRcu,       FloodCase::kDeferRcu,
                                            FloodCase::kMslab,         FloodCase::kMslabHeadless,
                                            FloodCase::kMslabSlab,     FloodCase::kDirect};

const char* flood_case_name(FloodCase c) noexcept;
const char* flood_case_api(FloodCase c) noexcept;

struct FloodResult {
  RunStatus status = RunStatus::kFailed;
  char note[200] = {};
  std::uint64_t frees = 0;                  // objects freed by the end (must equal count)
  double seconds_total = 0;                 // start → everything freed (after the barrier)
  double seconds_producers = 0;             // start → last producer done
  double frees_per_s = 0;                   // frees / seconds_total
  double producer_ns_per_op = 0;            // mean over producers: loop time (less pacing sleeps) / its objects
  double barrier_ms = 0;                    // the final barrier call alone
  double peak_pending_bytes_sampled = 0;    // max (enqueued − freed) × 64, sampled by producers
  double peak_pending_bytes_library = 0;    // mslab: deferred_stats().peak_pending_bytes; else NaN
  double latency_samples = 0;               // objects whose free latency was recorded
  double latency_p50_ns = 0, latency_p99_ns = 0, latency_max_ns = 0;  // NaN when not measured
  double grace_periods = 0;                 // mslab: worker grace periods during the run; else NaN
  double batches = 0, batches_elapsed = 0;  // mslab: batches, of which freed without waiting
  double producer_waits = 0;                // mslab: producers blocked by the pending limit
  double page_faults = 0;                   // minor faults of the whole child, start → all freed
  double cpu_ms = 0;                        // user + system CPU time of the whole child, start → all freed
  double context_switches = 0;              // voluntary + involuntary, whole child, start → all freed
  double producer_grace_periods = 0;        // mslab: grace periods run by helping producers; else NaN
};

FloodResult run_flood(FloodCase c, const RcuBenchOptions& options) noexcept;

// ---------------------------------------------------------------------------
// Benchmark 2: replace a published array R times while a reader reads it.

enum class ReplaceCase : std::uint32_t {
  kSynchronize,  // new, publish, urcu_memb_synchronize_rcu(), free(old)
  kMslab,        // new, publish, mslab::rcu::defer_free(old)
  kCallRcu,      // new, publish, urcu_memb_call_rcu(old)
  kDeferRcu,     // new, publish, urcu_memb_defer_rcu(free, old)
};
inline constexpr ReplaceCase kReplaceCases[] = {ReplaceCase::kSynchronize, ReplaceCase::kMslab,
                                                ReplaceCase::kCallRcu, ReplaceCase::kDeferRcu};

const char* replace_case_name(ReplaceCase c) noexcept;
const char* replace_case_api(ReplaceCase c) noexcept;

struct ReplaceResult {
  RunStatus status = RunStatus::kFailed;
  char note[200] = {};
  double total_ms = 0;                     // first replacement → every old array freed
  double writer_ms = 0;                    // the replacement loop alone
  double barrier_ms = 0;                   // the final barrier alone
  double reader_iterations = 0;            // reads completed during total_ms
  double reader_iterations_per_s = 0;
  double violations = 0;                   // reads that saw a freed or torn array (must be 0)
  double grace_periods = 0;                // synchronize: R; mslab: worker's; else NaN
  double peak_pending_bytes_sampled = 0;   // max (retired − freed) × block bytes, per replacement
  double peak_pending_bytes_library = 0;   // mslab only; else NaN
  double block_bytes = 0;                  // bytes malloc'd per array (ints + rcu_head)
  double page_faults = 0;                  // minor faults of the whole child during total_ms
};

ReplaceResult run_replace(ReplaceCase c, const RcuBenchOptions& options) noexcept;

// ---------------------------------------------------------------------------

/// Runs `body(out)` in a forked child that writes `size` bytes of `*out`
/// back. Returns "" on success, else why it failed (signal, exit code,
/// short record). The child calls alarm(timeout_s) first and leaves with
/// _exit. The parent must not have touched liburcu (no registration, no
/// call_rcu worker): the child inherits none of that correctly.
std::string run_forked(void (*body)(void* out, const void* arg), const void* arg, void* out, std::size_t size,
                       unsigned timeout_s);

/// Whether --case selected the case `name` (every case when none was given).
bool case_selected(const RcuBenchOptions& options, const char* name);

/// Minor page faults of this process so far (all threads).
std::uint64_t minor_faults() noexcept;

/// CPU time (user + system, ms) and context switches (voluntary +
/// involuntary) of this process so far, all threads.
struct CpuUse {
  double cpu_ms = 0;
  double context_switches = 0;
};
CpuUse cpu_use() noexcept;

/// The value at quantile q (0 … 1) of `v` (reordered); NaN when empty.
double quantile(std::vector<std::uint32_t>& v, double q);

}  // namespace mslab::bench
