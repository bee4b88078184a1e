// mslab-defrag: mslab with its objects in movable caches and a defrag step.
// Not a FixedAllocator (an object must be published in an owner slot before
// it can move), so it is only a name in the allocator table; the workloads
// that support it build their own movable heap (kv_heap.h's OwnedHeap).
#pragma once

#include <string_view>

namespace mslab::bench {

struct MslabDefragAllocator {
  static constexpr std::string_view kName = "mslab-defrag";
  static constexpr std::string_view kSettle =
      "rcu::barrier + flush_thread_cache + PageAllocator::global().collect(true)";
};

}  // namespace mslab::bench
