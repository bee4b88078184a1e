// defrag_stress: two worker threads and the defragmenter on the same
// movable objects for a fixed time, then a full check. Every object is
// checksummed and held in an owner table (one slot per key, OwnedCache
// protocol); each worker writes its own half of the slots and reads all of
// them under RCU. The defragmenter runs bounded passes and, now and then,
// compaction on demand for an order-9 block. The workload alternates
// erase-heavy and insert-heavy phases so that slabs keep becoming sparse.
// With --background 1 the defragmenter is a BackgroundDefrag control loop
// instead. Exit status 0 iff no entry was lost or corrupted and objects were
// moved.
//
// Usage: defrag_stress [--seconds S] [--slots N] [--background 0|1]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "alloc/page_allocator.h"
#include "defrag/background.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"
#include "owned_workload.h"
#include "stress_common.h"

namespace {

using namespace mslab;
using Clock = std::chrono::steady_clock;
namespace owned = stress::owned;

constexpr std::size_t kDefaultSlots = stress::kSanitized ? 20000 : 100000;

struct Shared {
  owned::Store store;
  stress::Tally tally;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> ops{0}, writes{0};
  Clock::time_point start;
  explicit Shared(std::size_t n) : store(n) {}
};

void worker(Shared& sh, unsigned id) {
  owned::Writer writer(sh.store, sh.tally, id, 2, 1234 + id);
  std::uint64_t ops = 0, writes = 0;
  while (!sh.stop.load(std::memory_order_relaxed)) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sh.start).count();
    ++ops;
    writes += writer.step((ms / 300) % 2 == 1);  // fill first, then alternate
  }
  writer.check_all();
  sh.ops.fetch_add(ops);
  sh.writes.fetch_add(writes);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  std::size_t slots = kDefaultSlots;
  bool background = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(argv[i + 1]);
    else if (std::strcmp(argv[i], "--slots") == 0) slots = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--background") == 0) background = std::atoi(argv[i + 1]) != 0;
  }
  slots = slots < 16 ? 16 : slots & ~std::size_t{1};

  PagePolicy policy;
  policy.retain_free_chunks = 64;  // free 2 MiB blocks stay countable
  PageAllocator pages(policy);
  defrag::Registry registry;
  Shared sh(slots);
  if (!sh.store.create(&pages, &registry)) return 2;
  defrag::Defragmenter defragmenter(pages, registry);
  stress::DefragLoop defrag_loop;
  sh.start = Clock::now();
  std::thread workers[2] = {std::thread(worker, std::ref(sh), 0u), std::thread(worker, std::ref(sh), 1u)};
  defrag::BackgroundOptions options;
  options.lower = 1.2;
  options.upper = 1.4;
  options.cpu_share = 0.25;
  options.interval = std::chrono::milliseconds(10);
  defrag::BackgroundDefrag loop(defragmenter, options);
  if (background && !loop.start()) return 2;
  std::thread defrag_thread([&] {
    if (!background) defrag_loop.run(defragmenter, sh.stop);
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  sh.stop.store(true);
  for (std::thread& t : workers) t.join();
  defrag_thread.join();
  if (background) {
    loop.stop();
    const defrag::BackgroundStats st = loop.stats();
    defrag_loop.total = st.total;
    std::printf("background: %llu wake-ups, %llu passes, %.1f ms CPU in passes\n",
                static_cast<unsigned long long>(st.wakeups), static_cast<unsigned long long>(st.passes),
                static_cast<double>(st.cpu_time.count()) / 1e6);
  }

  const defrag::Report& total = defrag_loop.total;
  // Moved while the workers ran (the final pass below is not counted).
  const std::uint64_t moved = sh.store.moved(), raced = sh.store.raced();
  // One last full pass on the quiet heap, for the before/after figures.
  const double frag_before = defragmenter.fragmentation();
  const defrag::Report last = defragmenter.run();
  const double frag_after = defragmenter.fragmentation();
  const std::uint64_t present = sh.store.check_all(sh.tally.corrupted);
  std::printf("defrag_stress: %.1f s, %zu slots, 2 workers + %s\n", seconds, slots,
              background ? "background defragmenter" : "defragmenter");
  std::printf("  ops %llu (writes %llu), out of memory %llu\n", static_cast<unsigned long long>(sh.ops.load()),
              static_cast<unsigned long long>(sh.writes.load()), static_cast<unsigned long long>(sh.tally.oom.load()));
  defrag_loop.print();
  std::printf("  moved %llu objects (%zu bytes), %llu relocations lost the race to a writer, max pause %.1f us\n",
              static_cast<unsigned long long>(moved), total.bytes_copied, static_cast<unsigned long long>(raced),
              static_cast<double>(total.max_pause.count()) / 1000.0);
  stress::print_final_pass(frag_before, frag_after, last);
  std::printf("  entries present %llu, lost %llu, corrupted %llu\n", static_cast<unsigned long long>(present),
              static_cast<unsigned long long>(sh.tally.lost.load()),
              static_cast<unsigned long long>(sh.tally.corrupted.load()));

  sh.store.empty();
  sh.store.destroy();
  const bool ok = sh.tally.lost.load() == 0 && sh.tally.corrupted.load() == 0 && moved > 0;
  if (!ok) std::printf("FAILED%s\n", moved == 0 ? " (nothing was moved)" : "");
  return ok ? 0 : 1;
}
