// Workloads of mslab-malloc-bench. Each calls the process's plain malloc,
// free and realloc — which allocator answers is decided by LD_PRELOAD when
// the parent starts the child — so every allocator runs the same machine
// code. A workload returns the operations it did and the wall time.
#pragma once

#include <cstdint>
#include <string_view>

namespace mslab::bench {

struct WorkloadResult {
  std::uint64_t ops = 0;
  std::uint64_t ns = 0;
  std::uint64_t checksum = 0;  // keeps the compiler from dropping work
};

struct MallocWorkload {
  std::string_view name;
  std::string_view description;
  WorkloadResult (*run)(double scale);
};

/// The four workloads, in report order.
const MallocWorkload* malloc_workloads(std::size_t* count) noexcept;

}  // namespace mslab::bench
