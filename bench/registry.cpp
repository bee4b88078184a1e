// The run plan (registry.h): the cross product of the workload and
// allocator tables, one instantiated function per pair, so hot loops are
// specialized per allocator. Also checks the tables against catalog.h.
#include "bench/registry.h"

#include <algorithm>
#include <array>
#include <string>
#include <tuple>
#include <utility>

#include "bench/allocators.h"
#include "bench/catalog.h"
#include "bench/workload_util.h"
#include "bench/workloads.h"

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
