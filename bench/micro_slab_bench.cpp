// mslab-micro: Google Benchmark microbenchmarks of the alloc+free fast
// paths — a SlabCache against mi_malloc/mi_free and glibc's malloc/free —
// for object sizes 16, 64, 256 and 1024. Two patterns: `pair` frees each
// object right after allocating it (LIFO, the best case of every
// allocator); `ring` keeps 256 objects live and frees the oldest (FIFO, as
// mslab-bench's pair workload). Not run by the tests.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench/adapter_glibc.h"
#include "bench/adapter_mimalloc.h"
#include "bench/adapter_mslab.h"

namespace mslab::bench {
namespace {

constexpr std::size_t kRing = 256;

template <class A>
bool open_or_skip(A& a, benchmark::State& state) {
  std::string why;
  if (a.open(static_cast<std::size_t>(state.range(0)), &why)) return true;
  state.SkipWithError(why.c_str());
  return false;
}

template <class A>
void BM_pair(benchmark::State& state) {
  A a;
  if (!open_or_skip(a, state)) return;
  for (auto _ : state) {
    void* p = a.alloc();
    benchmark::DoNotOptimize(p);
    a.free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class A>
void BM_ring(benchmark::State& state) {
  A a;
  if (!open_or_skip(a, state)) return;
  std::vector<void*> ring(kRing);
  for (void*& p : ring) p = a.alloc();
  std::size_t head = 0;
  for (auto _ : state) {
    void* p = a.alloc();
    benchmark::DoNotOptimize(p);
    a.free(ring[head]);
    ring[head] = p;
    if (++head == kRing) head = 0;
  }
  for (void* p : ring) a.free(p);
  state.SetItemsProcessed(state.iterations());
}

#define MSLAB_SIZES ->Arg(16)->Arg(64)->Arg(256)->Arg(1024)
BENCHMARK_TEMPLATE(BM_pair, MslabAllocator) MSLAB_SIZES;
BENCHMARK_TEMPLATE(BM_pair, MimallocAllocator) MSLAB_SIZES;
BENCHMARK_TEMPLATE(BM_pair, GlibcAllocator) MSLAB_SIZES;
BENCHMARK_TEMPLATE(BM_ring, MslabAllocator) MSLAB_SIZES;
BENCHMARK_TEMPLATE(BM_ring, MimallocAllocator) MSLAB_SIZES;
BENCHMARK_TEMPLATE(BM_ring, GlibcAllocator) MSLAB_SIZES;
#undef MSLAB_SIZES

}  // namespace
}  // namespace mslab::bench

BENCHMARK_MAIN();
