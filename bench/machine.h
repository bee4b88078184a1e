// What the machine and the build were when the benchmark ran: the "machine"
// object of the JSON report and the header of the table.
#pragma once

#include <string>

#include "bench/options.h"

namespace mslab::bench {

struct MachineInfo {
  std::string cpu_model;     // /proc/cpuinfo "model name"
  unsigned cores = 0;        // online CPUs
  std::string kernel;        // uname: sysname release machine
  std::string date;          // UTC, ISO 8601
  std::string compiler;      // that built mslab-bench
  std::string build_type;    // CMake configuration
  std::string sanitizers;    // MSLAB_SANITIZE of the build, "" when none
  int check_level = 0;       // MSLAB_CHECK_LEVEL
  std::string mslab_version;
  std::string glibc_version;
  std::string mimalloc_version;
  double page_fault_ns = 0;  // first touch of a fresh 4 KiB page, measured at startup
  bool process_malloc_is_mimalloc = false;  // the linked libmimalloc.so overrides malloc
  std::string command;       // the command line, space-joined
};

MachineInfo probe_machine(const Options& options);

}  // namespace mslab::bench
