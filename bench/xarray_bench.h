// mslab-xarray-bench: the options, the result records and the entry point
// of the measurements (xarray_bench_run.cpp). main() and the reports are
// in xarray_bench.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mslab::bench::xb {

struct Options {
  std::size_t n = 1u << 20;   // dense entries (keys 0 … n-1); also the concurrent phase's prefill
  std::size_t sparse_n = 0;   // sparse entries (random keys below 2^32); 0 = n / 8
  double seconds = 0.4;       // concurrent phase per container, with the writer (alone: half)
  std::vector<std::string> containers;  // names to run; empty = all
  bool json = false;
  std::vector<std::string> argv;
};

/// One timed operation over a whole pattern: ns per operation (per entry
/// for iterate); NaN where the container cannot do it (rculfhash find-next).
struct OpResult {
  std::string pattern, op, container;
  double ns_per_op;
};

/// Memory after storing every entry of a pattern: malloc'd bytes (glibc
/// mallinfo2 delta) or, for the XArray, its slab nodes.
struct MemResult {
  std::string pattern, container;
  std::size_t entries, bytes;
};

/// One reader thread doing random loads (half hits), alone and while one
/// writer thread stores and erases (keys beyond the prefill), in Mops/s.
struct ConcResult {
  std::string container;
  double reader_alone_mops, reader_mops, writer_mops;
};

struct Results {
  std::vector<OpResult> ops;
  std::vector<MemResult> memory;
  std::vector<ConcResult> concurrent;
  std::string error;  // a container gave a wrong answer (the run fails)
};

/// The container names, in report order ("xarray" first: the ratio base).
const std::vector<std::string>& container_names();

/// Runs every selected container over both patterns, then the concurrent
/// phase. Single process, one container at a time.
Results run_all(const Options& options);

}  // namespace mslab::bench::xb
