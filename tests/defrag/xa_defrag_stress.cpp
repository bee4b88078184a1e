// xa_defrag_stress: two worker threads storing, erasing and reading
// checksummed entries in XArrays while the defragmenter migrates their
// nodes, for a fixed time, then a full check. Each worker owns four arrays
// (and now and then destroys one and starts it afresh, so that arrays die
// while migrations may hold them) and writes its half of the indices of two
// shared arrays, which both read and iterate. A value entry carries its
// sequence number and a checksum of (index, sequence); the writer's shadow
// says what every index must hold, and every store/erase must return
// exactly what was there. The defragmenter runs bounded passes over the
// global page allocator and registry (where the "xa_node" caches live) and,
// now and then, compaction on demand for an order-9 block. Exit status 0
// iff nothing was lost or corrupted and nodes were moved.
//
// Usage: xa_defrag_stress [--seconds S] [--keys N]   (N keys per array)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "alloc/page_allocator.h"
#include "defrag/defragmenter.h"
#include "rcu/rcu.h"
#include "stress_common.h"
#include "xa_workload.h"
#include "xarray/xarray.h"

namespace {

using namespace mslab;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kDefaultKeys = stress::kSanitized ? 3000 : 20000;

struct Run {
  stress::xa::Shared shared;
  stress::Tally tally;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0};
  Clock::time_point start;
  explicit Run(std::size_t keys) : shared(keys) {}
};

void worker(Run& run, unsigned id) {
  stress::xa::Writer writer(run.shared, run.tally, id, 2, 99 + id);
  std::uint64_t ops = 0;
  while (!run.stop.load(std::memory_order_relaxed)) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - run.start).count();
    ++ops;
    writer.step((ms / 250) % 2 == 1);  // fill first, then alternate: nodes keep emptying
  }
  writer.check_all();
  run.ops.fetch_add(ops);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  std::size_t keys = kDefaultKeys;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
    else if (std::strcmp(argv[i], "--keys") == 0) keys = std::strtoull(argv[i + 1], nullptr, 10);
  }
  keys = keys < 16 ? 16 : keys & ~std::size_t{1};

  Run sh(keys);
  defrag::Defragmenter defragmenter;  // the global page allocator and registry: the "xa_node" caches
  stress::DefragLoop defrag_loop;
  const XaMigrationStats before = xa_migration_stats();
  sh.start = Clock::now();
  std::thread workers[2] = {std::thread(worker, std::ref(sh), 0u), std::thread(worker, std::ref(sh), 1u)};
  std::thread defrag_thread([&] { defrag_loop.run(defragmenter, sh.stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  sh.stop.store(true);
  for (std::thread& t : workers) t.join();
  defrag_thread.join();
  const XaMigrationStats during = xa_migration_stats();

  // One last full pass on the quiet heap, for the before/after figures.
  const double frag_before = defragmenter.fragmentation();
  const defrag::Report last = defragmenter.run();
  const double frag_after = defragmenter.fragmentation();
  const std::uint64_t present = sh.shared.check_all(sh.tally.corrupted);
  const std::uint64_t moved = during.moved - before.moved;
  std::printf("xa_defrag_stress: %.1f s, %zu keys per array, fan-out %u, 2 workers + defragmenter\n", seconds,
              keys, XArray::kChunkSize);
  std::printf("  ops %llu, full iterations %llu, arrays destroyed and recreated %llu, out of memory %llu\n",
              static_cast<unsigned long long>(sh.ops.load()), static_cast<unsigned long long>(sh.shared.iterations.load()),
              static_cast<unsigned long long>(sh.shared.recreated.load()), static_cast<unsigned long long>(sh.tally.oom.load()));
  defrag_loop.print();
  std::printf("  nodes moved %llu, gone before phase 2 %llu, busy refusals %llu, no memory %llu, max pause %.1f us\n",
              static_cast<unsigned long long>(moved), static_cast<unsigned long long>(during.gone - before.gone),
              static_cast<unsigned long long>(during.refused - before.refused),
              static_cast<unsigned long long>(during.no_memory - before.no_memory),
              static_cast<double>(defrag_loop.total.max_pause.count()) / 1000.0);
  stress::print_final_pass(frag_before, frag_after, last);
  std::printf("  shared entries present %llu, lost %llu, corrupted %llu\n", static_cast<unsigned long long>(present),
              static_cast<unsigned long long>(sh.tally.lost.load()), static_cast<unsigned long long>(sh.tally.corrupted.load()));
  const bool ok = sh.tally.lost.load() == 0 && sh.tally.corrupted.load() == 0 && moved > 0;
  if (!ok) std::printf("FAILED%s\n", moved == 0 ? " (no node was moved)" : "");
  return ok ? 0 : 1;
}
