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
#include <random>
#include <thread>
#include <vector>

#include "alloc/page_allocator.h"
#include "defrag/background.h"
#include "defrag/defragmenter.h"
#include "defrag/owned_cache.h"
#include "rcu/deferred_free.h"
#include "rcu/rcu.h"
#include "stress_common.h"

namespace {

using namespace mslab;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kDefaultSlots = stress::kSanitized ? 20000 : 100000;

constexpr std::size_t kSizes[] = {40, 120, 232};  // payload bytes: three caches

struct Header {
  std::uint64_t key, seq, checksum;
};

std::uint64_t mix(std::uint64_t key, std::uint64_t seq) {
  std::uint64_t x = key * 0x9E3779B97F4A7C15ull + seq * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 31;
  return x * 0x94D049BB133111EBull;
}

std::size_t size_of_key(std::uint64_t key) { return kSizes[key % 3]; }

void fill(void* p, std::uint64_t key, std::uint64_t seq) {
  auto* h = static_cast<Header*>(p);
  h->key = key;
  h->seq = seq;
  h->checksum = mix(key, seq);
  auto* bytes = static_cast<unsigned char*>(p);
  for (std::size_t i = sizeof(Header); i < size_of_key(key); ++i)
    bytes[i] = static_cast<unsigned char>(h->checksum >> (i % 8 * 8)) ^ static_cast<unsigned char>(i);
}

bool intact(const void* p, std::uint64_t key) {
  const auto* h = static_cast<const Header*>(p);
  if (h->key != key || h->checksum != mix(key, h->seq)) return false;
  const auto* bytes = static_cast<const unsigned char*>(p);
  for (std::size_t i = sizeof(Header); i < size_of_key(key); ++i)
    if (bytes[i] != (static_cast<unsigned char>(h->checksum >> (i % 8 * 8)) ^ static_cast<unsigned char>(i)))
      return false;
  return true;
}

struct Shared {
  std::vector<std::atomic<void*>> slots;
  defrag::OwnedCache* caches[3];
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> lost{0}, corrupted{0}, ops{0}, reads{0}, writes{0}, oom{0};
  Clock::time_point start;
  explicit Shared(std::size_t n) : slots(n) {}
  defrag::OwnedCache& cache_for(std::uint64_t key) { return *caches[key % 3]; }
};

void worker(Shared& sh, unsigned id) {
  std::mt19937_64 rng(1234 + id);
  const std::size_t n = sh.slots.size();
  // This worker writes slots k with k % 2 == id; the shadow says what each holds.
  std::vector<std::uint64_t> seq(n, 0);
  std::vector<bool> present(n, false);
  std::uint64_t ops = 0, reads = 0, writes = 0;
  auto own_slot = [&] { return (rng() % (n / 2)) * 2 + id; };
  while (!sh.stop.load(std::memory_order_relaxed)) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sh.start).count();
    const bool erase_phase = (ms / 300) % 2 == 1;  // fill first, then alternate
    const unsigned roll = static_cast<unsigned>(rng() % 100);
    ++ops;
    if (roll < 40) {  // read any slot
      const std::size_t k = rng() % n;
      rcu::ReadGuard guard;
      const void* p = sh.slots[k].load(std::memory_order_acquire);
      if (p != nullptr && !intact(p, k)) sh.corrupted.fetch_add(1);
      ++reads;
      continue;
    }
    const std::size_t k = own_slot();
    defrag::OwnedCache& cache = sh.cache_for(k);
    const bool erase = erase_phase ? roll < 85 : roll < 50;
    void* fresh = nullptr;
    if (!erase || roll >= 95) {  // insert or replace
      fresh = cache.alloc();
      if (fresh == nullptr) {
        sh.oom.fetch_add(1);
        continue;
      }
      fill(fresh, k, seq[k] + 1);
    }
    void* old = cache.exchange(sh.slots[k], fresh);
    ++writes;
    // What we took out must be exactly what we last put in (moved or not).
    if (present[k]) {
      if (old == nullptr) sh.lost.fetch_add(1);
      else if (!intact(old, k) || static_cast<const Header*>(old)->seq != seq[k]) sh.corrupted.fetch_add(1);
    } else if (old != nullptr) {
      sh.corrupted.fetch_add(1);
    }
    cache.retire(old);
    present[k] = fresh != nullptr;
    if (fresh != nullptr) ++seq[k];
  }
  // Final check of our own slots.
  rcu::ReadGuard guard;
  for (std::size_t k = id; k < n; k += 2) {
    const void* p = sh.slots[k].load(std::memory_order_acquire);
    if (present[k] && p == nullptr) sh.lost.fetch_add(1);
    else if (!present[k] && p != nullptr) sh.corrupted.fetch_add(1);
    else if (p != nullptr && (!intact(p, k) || static_cast<const Header*>(p)->seq != seq[k])) sh.corrupted.fetch_add(1);
  }
  sh.ops.fetch_add(ops);
  sh.reads.fetch_add(reads);
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
  for (int c = 0; c < 3; ++c) {
    defrag::OwnedOptions o;
    o.name = "stress";
    o.payload_size = kSizes[c];
    o.pages = &pages;
    o.registry = &registry;
    sh.caches[c] = defrag::OwnedCache::create(o);
    if (sh.caches[c] == nullptr) return 2;
  }
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
  std::uint64_t moved = 0, raced = 0;
  for (defrag::OwnedCache* c : sh.caches) {
    moved += c->stats().moved;
    raced += c->stats().raced;
  }
  // One last full pass on the quiet heap, for the before/after figures.
  const double frag_before = defragmenter.fragmentation();
  const defrag::Report last = defragmenter.run();
  const double frag_after = defragmenter.fragmentation();
  std::uint64_t present = 0, bad = 0;
  {
    rcu::ReadGuard guard;
    for (std::size_t k = 0; k < slots; ++k) {
      const void* p = sh.slots[k].load(std::memory_order_acquire);
      if (p == nullptr) continue;
      ++present;
      if (!intact(p, k)) ++bad;
    }
  }
  sh.corrupted.fetch_add(bad);
  std::printf("defrag_stress: %.1f s, %zu slots, 2 workers + %s\n", seconds, slots,
              background ? "background defragmenter" : "defragmenter");
  std::printf("  ops %llu (reads %llu, writes %llu), out of memory %llu\n",
              static_cast<unsigned long long>(sh.ops.load()), static_cast<unsigned long long>(sh.reads.load()),
              static_cast<unsigned long long>(sh.writes.load()), static_cast<unsigned long long>(sh.oom.load()));
  defrag_loop.print();
  std::printf("  moved %llu objects (%zu bytes), %llu relocations lost the race to a writer, max pause %.1f us\n",
              static_cast<unsigned long long>(moved), total.bytes_copied, static_cast<unsigned long long>(raced),
              static_cast<double>(total.max_pause.count()) / 1000.0);
  stress::print_final_pass(frag_before, frag_after, last);
  std::printf("  entries present %llu, lost %llu, corrupted %llu\n", static_cast<unsigned long long>(present),
              static_cast<unsigned long long>(sh.lost.load()), static_cast<unsigned long long>(sh.corrupted.load()));

  for (std::size_t k = 0; k < slots; ++k) sh.cache_for(k).retire(sh.cache_for(k).exchange(sh.slots[k], nullptr));
  for (defrag::OwnedCache* c : sh.caches) c->destroy();
  const bool ok = sh.lost.load() == 0 && sh.corrupted.load() == 0 && moved > 0;
  if (!ok) std::printf("FAILED%s\n", moved == 0 ? " (nothing was moved)" : "");
  return ok ? 0 : 1;
}
