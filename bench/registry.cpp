// The run plan (registry.h): the cross product of the workload and
// allocator tables, one instantiated function per pair, so hot loops are
// specialized per allocator. Also checks the tables against catalog.h.
#include "bench/registry.h"

#include <algorithm>
#include <array>
#include <concepts>
#include <string>
#include <tuple>
#include <utility>

#include "alloc/page_allocator.h"
#include "alloc/thread_heap.h"
#include "bench/adapter_mslab.h"
#include "bench/adapter_mslab_defrag.h"
#include "bench/allocators.h"
#include "bench/catalog.h"
#include "bench/workload_util.h"
#include "bench/workloads.h"
#include "rcu/deferred_free.h"

namespace mslab::bench {
namespace {

template <class Tuple, std::size_t N>
constexpr bool names_match(const std::array<std::string_view, N>& names) {
  return []<std::size_t... I>(const std::array<std::string_view, N>& want, std::index_sequence<I...>) {
    return std::tuple_size_v<Tuple> == N && ((std::tuple_element_t<I, Tuple>::kName == want[I]) && ...);
  }(names, std::make_index_sequence<N>{});
}
static_assert(names_match<AllWorkloads>(kWorkloadNames), "workloads.h and catalog.h disagree");
static_assert(names_match<AllAllocators>(kAllocatorNames), "allocators.h and catalog.h disagree");
static_assert(kMaxObjectSize == 256 * 1024, "--size's documented range is 1 to 262144");

// After the warm-up: give back what it left in the allocator's free lists
// and per-thread caches, as the measured run's own settle does, so that
// none of its data pages is resident in the baseline (a page resident
// there and freed later would flatter the allocator).
template <class A>
void settle_after_warm_up() noexcept {
  if constexpr (FixedAllocator<A>) {
    A a;
    std::string why;
    if (a.open(64, &why)) a.settle();  // mimalloc, glibc, jemalloc: process-wide
  }
  if constexpr (std::same_as<A, MslabAllocator> || std::same_as<A, MslabDefragAllocator>) {
    rcu::barrier();                 // retired values reach their slabs
    detail::flush_thread_heap();    // this thread's slabs of the process-wide node cache
    PageAllocator::global().collect(true);
  }
}

// The warm-up of the churn workloads (kv, xarray; docs/benchmarks.md,
// "Definitions"): the same workload with the same allocator, readers and
// seed, but o.warm_up entries, recorded nowhere, before the measured run
// takes its RSS baseline. Code pages (libc, libstdc++, the benchmark's and
// the allocator's), reader thread stacks and the allocator's process-wide
// state that its first use touches are then resident before the baseline,
// for every allocator alike, instead of counting as memory per live byte.
template <class W, class A>
void warm_up(const Options& o) {
  if constexpr (W::kWarmUp) {
    if (o.warm_up == 0) return;
    Options small = o;
    small.keys = std::min(o.keys, o.warm_up);
    small.entries = std::min(o.entries, o.warm_up);
    RunRecord scratch;
    W::template run<A>(small, scratch);  // its heap and store are gone when it returns
    settle_after_warm_up<A>();
  }
}

template <class W, class A>
RunRecord run_one(const Options& o) {
  RunRecord r;
  set_text(r.workload, W::kName);
  set_text(r.allocator, A::kName);
  set_text(r.settle, A::kSettle);
  r.object_size = o.size;
  const std::uint64_t t0 = now_ns();
  if constexpr (W::kFixedSize && FixedAllocator<A>) {
    A allocator;
    std::string why;
    if (!allocator.open(o.size, &why)) {
      set_outcome(r, RunStatus::kSkipped, why);
      return r;
    }
    set_text(r.version, allocator.version());
    W::run(allocator, o, r);
  } else {
    warm_up<W, A>(o);
    W::template run<A>(o, r);
  }
  r.total_ms = static_cast<double>(now_ns() - t0) / 1e6;
  return r;
}

bool selected(const std::vector<std::string>& chosen, std::string_view name) {
  return std::find(chosen.begin(), chosen.end(), name) != chosen.end();
}

template <class W, class A>
void add_run(const Options& o, std::vector<RunSpec>& out) {
  if constexpr (W::template kSupports<A>)
    if (selected(o.allocators, A::kName)) out.push_back({W::kName, A::kName, &run_one<W, A>});
}

template <class W, class... As>
void add_runs(const Options& o, std::vector<RunSpec>& out, std::tuple<As...>*) {
  (add_run<W, As>(o, out), ...);
}

template <class... Ws>
void add_all(const Options& o, std::vector<RunSpec>& out, std::tuple<Ws...>*) {
  ((selected(o.workloads, Ws::kName) ? add_runs<Ws>(o, out, static_cast<AllAllocators*>(nullptr)) : void()), ...);
}

template <class... Ws>
std::string describe_all(const Options& o, std::tuple<Ws...>*) {
  std::string lines;
  ((selected(o.workloads, Ws::kName) ? void(lines += std::string(Ws::kName) + ": " + Ws::describe(o) + "\n") : void()),
   ...);
  return lines;
}

template <class A>
void prepare_one(const Options& o, char** argv) noexcept {
  if constexpr (requires { A::prepare_process(argv); })
    if (selected(o.allocators, A::kName)) A::prepare_process(argv);
}

template <class... As>
void prepare_all(const Options& o, char** argv, std::tuple<As...>*) noexcept {
  (prepare_one<As>(o, argv), ...);
}

}  // namespace

std::vector<RunSpec> plan_runs(const Options& options) {
  std::vector<RunSpec> runs;
  add_all(options, runs, static_cast<AllWorkloads*>(nullptr));
  return runs;
}

std::string describe_workloads(const Options& options) {
  return describe_all(options, static_cast<AllWorkloads*>(nullptr));
}

void prepare_allocators(const Options& options, char** argv) noexcept {
  prepare_all(options, argv, static_cast<AllAllocators*>(nullptr));
}

}  // namespace mslab::bench
