// Machine and build description (machine.h), read from /proc, uname and
// the compiler's predefined macros.
#include "bench/machine.h"

#include <gnu/libc-version.h>
#include <mimalloc.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>

#include "alloc/config.h"
#include "bench/adapter_mimalloc.h"
#include "bench/adapter_mslab.h"
#include "bench/workload_util.h"

#ifndef MSLAB_BENCH_BUILD_TYPE
#define MSLAB_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef MSLAB_BENCH_SANITIZE
#define MSLAB_BENCH_SANITIZE ""
#endif

namespace mslab::bench {
namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const std::size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? std::string() : line.substr(start);
  }
  return "unknown";
}

std::string kernel() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "g++ " __VERSION__;
#else
  return "unknown";
#endif
}

// The kernel's cost of a first touch, which every allocator pays once per
// fresh page inside its allocation phase (large on some virtual machines).
double page_fault_ns() {
  constexpr std::size_t kBytes = std::size_t{16} << 20;
  void* map = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return 0;
  auto* bytes = static_cast<volatile char*>(map);
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::uint64_t t0 = now_ns();
  for (std::size_t i = 0; i < kBytes; i += page) bytes[i] = 1;
  const std::uint64_t t1 = now_ns();
  munmap(map, kBytes);
  return static_cast<double>(t1 - t0) / static_cast<double>(kBytes / page);
}

bool malloc_is_mimalloc() {
  void* p = std::malloc(64);
  const bool yes = mi_check_owned(p);
  std::free(p);
  return yes;
}

}  // namespace

MachineInfo probe_machine(const Options& options) {
  MachineInfo m;
  m.cpu_model = cpu_model();
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  m.cores = cores > 0 ? static_cast<unsigned>(cores) : 0;
  m.kernel = kernel();
  m.date = utc_now();
  m.compiler = compiler();
  m.build_type = MSLAB_BENCH_BUILD_TYPE;
  m.sanitizers = MSLAB_BENCH_SANITIZE;
  m.check_level = kCheckLevel;
  m.mslab_version = MslabAllocator().version();
  m.glibc_version = gnu_get_libc_version();
  m.mimalloc_version = MimallocAllocator().version();
  m.page_fault_ns = page_fault_ns();
  m.process_malloc_is_mimalloc = malloc_is_mimalloc();
  for (const std::string& arg : options.argv) m.command += (m.command.empty() ? "" : " ") + arg;
  return m;
}

}  // namespace mslab::bench
