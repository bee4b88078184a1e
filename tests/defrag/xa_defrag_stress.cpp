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
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "alloc/page_allocator.h"
#include "defrag/defragmenter.h"
#include "rcu/rcu.h"
#include "stress_common.h"
#include "xarray/xarray.h"

namespace {

using namespace mslab;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kDefaultKeys = stress::kSanitized ? 3000 : 20000;

constexpr unsigned kOwnArrays = 4;
constexpr unsigned kSharedArrays = 2;
constexpr unsigned long kSpread = 13;  // index = key * kSpread: sparse leaves, many nodes

std::uint64_t check32(unsigned long index, std::uint64_t seq) {
  std::uint64_t x = index * 0x9E3779B97F4A7C15ull + seq * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 29;
  return (x * 0x94D049BB133111EBull) >> 32;
}

Entry make_entry(unsigned long index, std::uint64_t seq) { return Entry::value((seq << 32) | check32(index, seq)); }

bool intact(Entry e, unsigned long index) {
  if (!e.is_value()) return false;
  const std::uint64_t v = e.to_value();
  return (v & 0xffffffffu) == check32(index, v >> 32);
}

struct Shared {
  std::unique_ptr<XArray> shared[kSharedArrays];
  std::size_t keys;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> lost{0}, corrupted{0}, ops{0}, iterations{0}, recreated{0}, oom{0};
  Clock::time_point start;
};

// What one writer put into one array: the sequence number of each key, 0 = empty.
struct Shadow {
  std::vector<std::uint32_t> seq;
  explicit Shadow(std::size_t n) : seq(n, 0) {}
};

// Stores or erases key k of `xa` and checks the old entry against the shadow.
void write_key(Shared& sh, XArray& xa, Shadow& shadow, std::size_t k, bool erase) {
  const unsigned long index = k * kSpread;
  const std::uint32_t had = shadow.seq[k];
  const std::uint32_t next = erase ? 0 : had + 1;
  XaResult r = erase ? XaResult(xa.erase(index)) : xa.store(index, make_entry(index, next));
  if (!r.ok()) {
    sh.oom.fetch_add(1);
    return;
  }
  const Entry old = r.entry();
  if (had == 0 && !old.empty()) sh.corrupted.fetch_add(1);
  if (had != 0 && old.empty()) sh.lost.fetch_add(1);
  if (had != 0 && !old.empty() && old != make_entry(index, had)) sh.corrupted.fetch_add(1);
  shadow.seq[k] = next;
}

// Every entry of `xa` is intact and in increasing index order; with a shadow,
// exactly the shadow's entries (keys of `stride`/`first`) are present.
void check_array(Shared& sh, const XArray& xa, const Shadow* shadow, std::size_t first, std::size_t stride) {
  unsigned long last = 0;
  bool any = false;
  for (auto [index, e] : xa) {
    if (!intact(e, index) || index % kSpread != 0 || (any && index <= last)) sh.corrupted.fetch_add(1);
    any = true;
    last = index;
  }
  if (shadow == nullptr) return;
  for (std::size_t k = first; k < shadow->seq.size(); k += stride) {
    const unsigned long index = k * kSpread;
    const Entry e = xa.load(index);
    if (shadow->seq[k] == 0 ? !e.empty() : e != make_entry(index, shadow->seq[k]))
      (e.empty() ? sh.lost : sh.corrupted).fetch_add(1);
  }
}

void worker(Shared& sh, unsigned id) {
  std::mt19937_64 rng(99 + id);
  const std::size_t n = sh.keys;
  std::unique_ptr<XArray> own[kOwnArrays];
  std::vector<Shadow> own_shadow(kOwnArrays, Shadow(n));
  std::vector<Shadow> shared_shadow(kSharedArrays, Shadow(n));  // our half (k % 2 == id)
  for (auto& a : own) a = std::make_unique<XArray>();
  std::uint64_t ops = 0, iterations = 0;
  auto last_recreate = Clock::now();
  while (!sh.stop.load(std::memory_order_relaxed)) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sh.start).count();
    const bool erase_phase = (ms / 250) % 2 == 1;  // fill first, then alternate: nodes keep emptying
    const unsigned roll = static_cast<unsigned>(rng() % 1000);
    ++ops;
    if (roll < 300) {  // read any key of any array we may read
      const bool shared = rng() % 2;
      const XArray& xa = shared ? *sh.shared[rng() % kSharedArrays] : *own[rng() % kOwnArrays];
      const unsigned long index = (rng() % n) * kSpread;
      const Entry e = xa.load(index);
      if (!e.empty() && !intact(e, index)) sh.corrupted.fetch_add(1);
      continue;
    }
    if (roll < 302) {  // a full iteration
      const unsigned a = static_cast<unsigned>(rng() % kOwnArrays);
      check_array(sh, *own[a], &own_shadow[a], 0, 1);
      ++iterations;
      continue;
    }
    const bool erase = erase_phase ? roll < 850 : roll < 550;
    if (roll % 3 == 0) {
      const unsigned a = static_cast<unsigned>(rng() % kSharedArrays);
      write_key(sh, *sh.shared[a], shared_shadow[a], (rng() % (n / 2)) * 2 + id, erase);
    } else {
      const unsigned a = static_cast<unsigned>(rng() % kOwnArrays);
      write_key(sh, *own[a], own_shadow[a], rng() % n, erase);
    }
    // Now and then an array dies with its entries and a fresh one replaces it.
    if (Clock::now() - last_recreate > std::chrono::milliseconds(200)) {
      const unsigned a = static_cast<unsigned>(rng() % kOwnArrays);
      check_array(sh, *own[a], &own_shadow[a], 0, 1);
      own[a] = std::make_unique<XArray>();
      own_shadow[a] = Shadow(n);
      sh.recreated.fetch_add(1);
      last_recreate = Clock::now();
    }
  }
  for (unsigned a = 0; a < kOwnArrays; ++a) check_array(sh, *own[a], &own_shadow[a], 0, 1);
  for (unsigned a = 0; a < kSharedArrays; ++a) check_array(sh, *sh.shared[a], &shared_shadow[a], id, 2);
  sh.ops.fetch_add(ops);
  sh.iterations.fetch_add(iterations);
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

  Shared sh;
  sh.keys = keys;
  for (auto& a : sh.shared) a = std::make_unique<XArray>();
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
  std::uint64_t present = 0;
  for (const auto& a : sh.shared) {
    for (auto [index, e] : *a) {
      ++present;
      if (!intact(e, index)) sh.corrupted.fetch_add(1);
    }
  }
  const std::uint64_t moved = during.moved - before.moved;
  std::printf("xa_defrag_stress: %.1f s, %zu keys per array, fan-out %u, 2 workers + defragmenter\n", seconds,
              keys, XArray::kChunkSize);
  std::printf("  ops %llu, full iterations %llu, arrays destroyed and recreated %llu, out of memory %llu\n",
              static_cast<unsigned long long>(sh.ops.load()), static_cast<unsigned long long>(sh.iterations.load()),
              static_cast<unsigned long long>(sh.recreated.load()), static_cast<unsigned long long>(sh.oom.load()));
  defrag_loop.print();
  std::printf("  nodes moved %llu, gone before phase 2 %llu, busy refusals %llu, no memory %llu, max pause %.1f us\n",
              static_cast<unsigned long long>(moved), static_cast<unsigned long long>(during.gone - before.gone),
              static_cast<unsigned long long>(during.refused - before.refused),
              static_cast<unsigned long long>(during.no_memory - before.no_memory),
              static_cast<double>(defrag_loop.total.max_pause.count()) / 1000.0);
  stress::print_final_pass(frag_before, frag_after, last);
  std::printf("  shared entries present %llu, lost %llu, corrupted %llu\n", static_cast<unsigned long long>(present),
              static_cast<unsigned long long>(sh.lost.load()), static_cast<unsigned long long>(sh.corrupted.load()));
  const bool ok = sh.lost.load() == 0 && sh.corrupted.load() == 0 && moved > 0;
  if (!ok) std::printf("FAILED%s\n", moved == 0 ? " (no node was moved)" : "");
  return ok ? 0 : 1;
}
