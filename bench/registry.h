// The run plan: which (workload, allocator) runs the options select, each
// with the function a child process calls to perform it. Built from the
// workload and allocator tables (workloads.h, allocators.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bench/options.h"
#include "bench/record.h"

namespace mslab::bench {

using RunFn = RunRecord (*)(const Options&);

struct RunSpec {
  std::string_view workload;
  std::string_view allocator;
  RunFn run;
};

/// The selected runs, workloads in catalog order, allocators within each.
std::vector<RunSpec> plan_runs(const Options& options);

/// One line per selected workload saying what it does with these options.
std::string describe_workloads(const Options& options);

/// Lets every selected allocator prepare the process before any run (the
/// jemalloc adapter may re-execute the program here).
void prepare_allocators(const Options& options, char** argv) noexcept;

}  // namespace mslab::bench
