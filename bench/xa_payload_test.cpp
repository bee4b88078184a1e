// CTest mslab_bench_xa_payload: the xarray workload's movable heap
// (xa_heap.h's XaPayloadCache, payloads owned by an XArray index) under a
// writer that erases and inserts while Defragmenter passes move payloads
// and nodes, and readers check what they load. The benchmark itself never
// writes during its pass; this covers phase 2's races (a payload erased or
// its id reused between the phases, a payload freed before phase 2 reads
// its owner word). Exit 0 when every live entry is intact and no reader saw
// a wrong payload. Usage: mslab-bench-xa-payload-test [entries [passes]]
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <random>
#include <thread>
#include <vector>

#include "bench/kv_readers.h"
#include "bench/xa_heap.h"
#include "bench/xa_store.h"
#include "defrag/defragmenter.h"
#include "rcu/rcu.h"

using namespace mslab;
using namespace mslab::bench;

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000;
  const int passes = argc > 2 ? std::atoi(argv[2]) : 40;
  XaMovableHeap heap;
  std::string why;
  if (!heap.open(&why)) {
    std::fprintf(stderr, "open: %s\n", why.c_str());
    return 1;
  }
  int failures = 0;
  {
    XaStore<XaMovableHeap> store(heap);
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> live;
    for (std::size_t k = 0; k < n; ++k) {
      const auto key =
          store.put(static_cast<unsigned>(k % kXaArrays), kv_class_of(static_cast<unsigned>(rng() % 100)));
      if (!key) return std::fprintf(stderr, "fill: out of memory\n"), 1;
      live.push_back(*key);
    }
    // A random 90 % erased: sparse slabs for the passes.
    for (std::size_t i = live.size(); i > 1; --i) std::swap(live[i - 1], live[rng() % i]);
    for (std::size_t i = 0; i < n - n / 10; ++i) store.erase(live[i]);
    live.erase(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(n - n / 10));
    heap.drain();

    // Readers load keys of a snapshot that the writer never erases (the
    // first half); the writer churns the second half.
    const auto half = static_cast<std::ptrdiff_t>(live.size() / 2);
    const std::vector<std::uint64_t> stable(live.begin(), live.begin() + half);
    std::vector<std::uint64_t> churn(live.begin() + half, live.end());
    KvReaders<XaStore<XaMovableHeap>> readers(store, 1, 3);
    readers.set_keys(stable.data(), stable.size());
    readers.open(KvReaders<XaStore<XaMovableHeap>>::kDefrag);

    std::atomic<bool> stop{false};
    std::uint64_t writes = 0;
    std::thread writer([&] {
      std::mt19937_64 wrng(11);
      while (!stop.load(std::memory_order_relaxed)) {
        const std::size_t i = wrng() % churn.size();
        store.erase(churn[i]);  // its id is free again: the next put may reuse it
        const auto key =
            store.put(static_cast<unsigned>(wrng() % kXaArrays), kv_class_of(static_cast<unsigned>(wrng() % 100)));
        if (!key) break;
        churn[i] = *key;
        ++writes;
      }
    });
    std::size_t moved = 0;
    for (int p = 0; p < passes; ++p) moved += defrag::Defragmenter().run().objects_moved;
    stop.store(true);
    writer.join();
    readers.stop();

    if (readers.bad() != 0) {
      std::fprintf(stderr, "%llu reader loads found a wrong payload\n", static_cast<unsigned long long>(readers.bad()));
      ++failures;
    }
    const std::vector<std::uint64_t>* lists[] = {&stable, &churn};
    for (const std::vector<std::uint64_t>* keys : lists)
      for (const std::uint64_t key : *keys) {
        rcu::ReadGuard guard;
        const XaPayloadHead* v = store.load(key);
        if (v == nullptr || !v->matches(key)) {
          if (failures++ < 5)
            std::fprintf(stderr, "key %llu lost or corrupted\n", static_cast<unsigned long long>(key));
        }
      }
    std::printf("%zu entries, %zu live, %llu writes during %d passes, %zu objects moved, %d failures\n", n,
                stable.size() + churn.size(), static_cast<unsigned long long>(writes), passes, moved, failures);
    if (moved == 0) {
      std::fprintf(stderr, "the passes moved nothing\n");
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}
