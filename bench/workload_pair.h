// Workload `pair`: the cost of one alloc+free pair in steady state. A ring
// holds `ring` live objects; each step allocates one object, writes a byte
// of it and frees the oldest (FIFO), so frees land in older memory than
// the allocations, as in a queue or a cache with expiry. `count` pairs
// make a round; after a warm-up round the best of 3 timed rounds counts
// (the least disturbed by the other tenants of the machine).
#pragma once

#include <algorithm>
#include <limits>
#include <string>

#include "bench/allocators.h"
#include "bench/options.h"
#include "bench/record.h"
#include "bench/scratch.h"
#include "bench/workload_util.h"

namespace mslab::bench {

struct PairWorkload {
  static constexpr std::string_view kName = "pair";
  static constexpr bool kFixedSize = true;
  static constexpr bool kWarmUp = false;
  template <class A>
  static constexpr bool kSupports = FixedAllocator<A>;
  static constexpr int kRounds = 3;
  static constexpr std::size_t kWarmupPairs = 1 << 16;

  static std::string describe(const Options& o) {
    return std::to_string(o.size) + " B objects, " + std::to_string(o.ring) + " live, " + std::to_string(o.count) +
           " alloc+free pairs per round, best of " + std::to_string(kRounds) + " rounds";
  }

  template <FixedAllocator A>
  static void run(A& a, const Options& o, RunRecord& r) {
    ScratchArray<void*> ring(o.ring);
    if (!ring.ok()) return set_outcome(r, RunStatus::kFailed, "cannot map the ring");
    for (std::size_t i = 0; i < o.ring; ++i) {
      if ((ring[i] = a.alloc()) == nullptr) return set_outcome(r, RunStatus::kFailed, "out of memory");
      stamp(ring[i], i);
    }
    std::string why;
    if (!a.verify(ring[0], o.ring, &why)) return set_outcome(r, RunStatus::kFailed, why);

    std::size_t head = 0;  // the oldest object
    auto round = [&](std::size_t pairs) { return run_pairs(a, ring.data(), o.ring, head, pairs); };
    if (!round(std::min(o.count, kWarmupPairs))) return set_outcome(r, RunStatus::kFailed, "out of memory");
    std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
    for (int i = 0; i < kRounds; ++i) {
      const std::uint64_t t0 = now_ns();
      if (!round(o.count)) return set_outcome(r, RunStatus::kFailed, "out of memory");
      best = std::min(best, now_ns() - t0);
    }
    for (std::size_t i = 0; i < o.ring; ++i) a.free(ring[i]);

    r.objects_allocated = o.ring + (kRounds * o.count) + std::min(o.count, kWarmupPairs);
    r.objects_live = o.ring;
    r.live_bytes = o.ring * o.size;
    r.ns_per_op = static_cast<double>(best) / static_cast<double>(o.count);
    set_text(r.settle, "");  // no RSS is read, so nothing was settled
  }

 private:
  // `pairs` steps over the ring. A function of its own, with the loop state
  // in locals, so that every allocator's loop compiles alike: as a lambda
  // over captured references it stayed out of line for the allocators whose
  // fast paths inline (mslab), and the byte store of stamp() — which may
  // alias anything — made it reload the ring, the head and the bound from
  // memory on every step, about 15 instructions a pair that the allocators
  // behind a call did not pay.
  template <FixedAllocator A>
  [[gnu::noinline]] static bool run_pairs(A& a, void** ring, std::size_t ring_size, std::size_t& head_io,
                                          std::size_t pairs) {
    std::size_t head = head_io;
    for (std::size_t k = 0; k < pairs; ++k) {
      void* p = a.alloc();
      if (p == nullptr) return false;
      stamp(p, k);
      a.free(ring[head]);
      ring[head] = p;
      if (++head == ring_size) head = 0;
    }
    head_io = head;
    return true;
  }

  // One volatile byte store: the object is used, and no compiler may drop
  // the allocation as dead.
  static void stamp(void* p, std::size_t k) noexcept {
    *static_cast<volatile unsigned char*>(p) = static_cast<unsigned char>(k);
  }
};

}  // namespace mslab::bench
