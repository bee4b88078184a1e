// mslab-soak: the long run of issue 8. For a chosen time, writer threads
// mutate both kinds of store — checksummed owned objects of three sizes in
// an owner-slot table (tests/defrag/owned_workload.h) and checksummed value
// entries in XArrays, own arrays destroyed and recreated
// (tests/defrag/xa_workload.h) — while dedicated reader threads load and
// iterate both under rcu::ReadGuard and verify every checksum, and the
// BackgroundDefrag control loop compacts the global page allocator's
// movable caches (the owned caches and the "xa_node" cache), with
// compaction on demand every 500 ms (one bounded pass, or an order-9
// block). At the end every writer compares its stores with its shadow, the
// whole store is checked once more, everything is emptied and destroyed,
// and the allocator statistics are compared with a baseline taken before
// the workload (tests/soak/alloc_baseline.h says exactly what is compared).
//
// lost   = an entry missing where the writer's shadow has one, or an
//          exchange/store that found nothing where something should be;
// torn   = a checksum mismatch, an entry at the wrong index, out of order,
//          stale, or present where it should not be (readers and writers);
// leaked = objects still live plus pages in use beyond the baseline.
// One summary line last; exit status 0 only on PASS, which also requires
// that something was moved (else the defragmenter was not tested). Nodes
// move in every longer run, but a 5-second run in a plain build sometimes
// moves none (the owned caches dominate the passes): that alone does not
// fail it.
//
// Usage: mslab-soak [--seconds S] [--writers W] [--readers R] [--slots N] [--keys N]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "../defrag/owned_workload.h"
#include "../defrag/stress_common.h"
#include "../defrag/xa_workload.h"
#include "alloc_baseline.h"
#include "defrag/background.h"
#include "defrag/defragmenter.h"
#include "rcu/rcu.h"
#include "xarray/node_mobility.h"

namespace {

using namespace mslab;
using Clock = std::chrono::steady_clock;
namespace owned = stress::owned;
namespace xa = stress::xa;

struct Soak {
  owned::Store store;
  xa::Shared arrays;
  stress::Tally tally;
  unsigned writers;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> writer_ops{0}, reads{0};
  Clock::time_point start;
  Soak(std::size_t slots, std::size_t keys, unsigned w) : store(slots), arrays(keys), writers(w) {}
};

// Alternates the two workloads; erase-heavy and insert-heavy phases of
// 300 ms alternate so that slabs and nodes keep becoming sparse.
void writer(Soak& s, unsigned id) {
  owned::Writer objects(s.store, s.tally, id, s.writers, 1234 + id);
  xa::Writer entries(s.arrays, s.tally, id, s.writers, 99 + id);
  std::uint64_t ops = 0;
  while (!s.stop.load(std::memory_order_relaxed)) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - s.start).count();
    const bool erase_phase = (ms / 300) % 2 == 1;
    objects.step(erase_phase);
    entries.step(erase_phase);
    ops += 2;
  }
  objects.check_all();
  entries.check_all();
  entries.destroy_own();
  s.writer_ops.fetch_add(ops);
}

// Runs of 32 slots or keys per read section, and now and then a whole
// iteration of a shared array; every entry read is checked.
void reader(Soak& s, unsigned id) {
  std::mt19937_64 rng(7 + id);
  const std::size_t slots = s.store.slots.size(), keys = s.arrays.keys;
  std::uint64_t reads = 0;
  while (!s.stop.load(std::memory_order_relaxed)) {
    const unsigned roll = static_cast<unsigned>(rng() % 1000);
    rcu::ReadGuard guard;
    if (roll < 500) {
      const std::size_t first = rng() % slots;
      for (std::size_t i = 0; i < 32; ++i) {
        const std::size_t k = (first + i) % slots;
        const void* p = s.store.slots[k].load(std::memory_order_acquire);
        if (p != nullptr && !owned::intact(p, k)) s.tally.corrupted.fetch_add(1);
      }
      reads += 32;
    } else if (roll < 995) {
      const XArray& a = *s.arrays.arrays[rng() % xa::kSharedArrays];
      const std::size_t first = rng() % keys;
      for (std::size_t i = 0; i < 32; ++i) xa::check_key(s.tally, a, (first + i) % keys);
      reads += 32;
    } else {
      xa::check_array(s.tally, *s.arrays.arrays[rng() % xa::kSharedArrays], nullptr, 0, 1);
      reads += keys;  // counted as `keys` reads: an upper bound, the array holds at most that many
    }
  }
  s.reads.fetch_add(reads);
}

unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }

}  // namespace

int main(int argc, char** argv) {
  double seconds = 600;
  unsigned writers = 2, readers = 2;
  std::size_t slots = stress::kSanitized ? 20000 : 100000;
  std::size_t keys = stress::kSanitized ? 3000 : 20000;
  for (int i = 1; i < argc; i += 2) {
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (value == nullptr) {
      std::fprintf(stderr, "mslab-soak: %s needs a value\n", argv[i]);
      return 2;
    }
    if (std::strcmp(argv[i], "--seconds") == 0) seconds = std::atof(value);
    else if (std::strcmp(argv[i], "--writers") == 0) writers = static_cast<unsigned>(std::atoi(value));
    else if (std::strcmp(argv[i], "--readers") == 0) readers = static_cast<unsigned>(std::atoi(value));
    else if (std::strcmp(argv[i], "--slots") == 0) slots = std::strtoull(value, nullptr, 10);
    else if (std::strcmp(argv[i], "--keys") == 0) keys = std::strtoull(value, nullptr, 10);
    else {
      std::fprintf(stderr, "mslab-soak: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (seconds <= 0 || writers < 1 || writers > 64 || readers > 64 || slots < 16 * writers || keys < 16 * writers) {
    std::fprintf(stderr, "mslab-soak: out of range (seconds > 0, 1..64 writers, 0..64 readers, "
                         "slots and keys >= 16 per writer)\n");
    return 2;
  }

  const soak::AllocSnapshot before = soak::snapshot();
  const XaMigrationStats migration_before = xa_migration_stats();
  Soak s(slots, keys, writers);
  if (!s.store.create(nullptr, nullptr)) return 2;  // the global page allocator and registry

  defrag::Defragmenter defragmenter;  // global: the owned caches and the "xa_node" caches
  defrag::BackgroundOptions options;  // as defrag_stress --background 1
  options.lower = 1.2;
  options.upper = 1.4;
  options.cpu_share = 0.25;
  options.interval = std::chrono::milliseconds(10);
  defrag::BackgroundDefrag background(defragmenter, options);
  if (!background.start()) return 2;

  s.start = Clock::now();
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < writers; ++i) threads.emplace_back(writer, std::ref(s), i);
  for (unsigned i = 0; i < readers; ++i) threads.emplace_back(reader, std::ref(s), i);
  // Compaction on demand every 500 ms, as an application would ask for it:
  // alternately one bounded pass whatever the fragmentation (the control
  // loop alone waits for its upper bound, which the node cache, small next
  // to the owned ones, seldom reaches in a short run) and a free order-9
  // block (a huge page).
  stress::DefragLoop on_demand;
  on_demand.huge_every = 2;
  on_demand.pause = std::chrono::milliseconds(500);
  threads.emplace_back([&] { on_demand.run(defragmenter, s.stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  s.stop.store(true);
  for (std::thread& t : threads) t.join();  // writers compared their stores with their shadows
  background.stop();
  const defrag::BackgroundStats bg = background.stats();
  const XaMigrationStats migration = xa_migration_stats();
  const std::uint64_t objects_moved = s.store.moved(), raced = s.store.raced(), nodes_moved = migration.moved - migration_before.moved;

  // The quiet store once more, whole, then teardown and the leak check.
  const std::uint64_t present = s.store.check_all(s.tally.corrupted) + s.arrays.check_all(s.tally.corrupted);
  s.store.empty();
  rcu::barrier();
  std::uint64_t owned_live = 0;
  for (defrag::OwnedCache* c : s.store.caches) {
    c->slab_cache().flush_thread_cache();
    owned_live += c->slab_cache().stats().live_objects;
  }
  s.store.destroy();
  for (auto& a : s.arrays.arrays) a.reset();
  const soak::AllocSnapshot after = soak::snapshot();
  const soak::Leaks leaks = soak::compare(before, after, owned_live);

  const std::uint64_t ops = s.writer_ops.load() + s.reads.load();
  std::printf("  writers: %llu ops, %llu arrays destroyed and recreated, %llu full iterations, out of memory %llu\n",
              ull(s.writer_ops.load()), ull(s.arrays.recreated.load()), ull(s.arrays.iterations.load()),
              ull(s.tally.oom.load()));
  std::printf("  readers: %llu entries read and checked\n", ull(s.reads.load()));
  std::printf("  background: %llu wake-ups, %llu passes, %.1f ms CPU in passes, %zu slabs freed, max pause %.1f us\n",
              ull(bg.wakeups), ull(bg.passes), static_cast<double>(bg.cpu_time.count()) / 1e6, bg.total.slabs_freed,
              static_cast<double>(bg.total.max_pause.count()) / 1000.0);
  on_demand.print("on demand");
  std::printf("  moved: %llu objects (%llu lost the race to a writer), %llu nodes (%llu gone before phase 2, "
              "%llu busy refusals)\n",
              ull(objects_moved), ull(raced), ull(nodes_moved), ull(migration.gone - migration_before.gone),
              ull(migration.refused - migration_before.refused));
  std::printf("  at the end: %llu entries present, all checked\n", ull(present));
  soak::print(before, after, owned_live);

  const std::uint64_t lost = s.tally.lost.load(), torn = s.tally.corrupted.load(), leaked = leaks.count();
  const bool moved = objects_moved + nodes_moved > 0;
  const bool pass = lost == 0 && torn == 0 && leaked == 0 && moved;
  std::printf("soak: %.0f s, %u writers, %u readers: %llu ops, %llu objects moved, %llu nodes moved, %llu lost, "
              "%llu torn, %llu leaked \xe2\x80\x94 %s\n",
              seconds, writers, readers, ull(ops), ull(objects_moved), ull(nodes_moved), ull(lost), ull(torn),
              ull(leaked), pass ? "PASS" : moved ? "FAIL" : "FAIL (nothing moved)");
  return pass ? 0 : 1;
}
