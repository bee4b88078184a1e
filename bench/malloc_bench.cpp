// mslab-malloc-bench: the general allocator against glibc, mimalloc and
// jemalloc on four malloc workloads (malloc_bench_workloads.h), in one run.
//
// Every (workload, allocator) pair runs in a fresh child process: this
// program re-executes itself with LD_PRELOAD naming the allocator's shared
// library (none for glibc), so all four run the same workload code through
// the plain malloc/free/realloc symbols, and each child's peak RSS comes
// from wait4(). The child checks, with dladdr() on the malloc it resolves,
// that the intended library answers; a preload that did not take is
// reported as unavailable rather than measured as glibc.
//
// Usage: mslab-malloc-bench [--scale X] [--reps N] [--only w1,w2]
//                           [--allocators a1,a2] [--json]
// Each pair runs --reps times (default 3); the fastest run is reported
// (the machine may be shared) with that run's peak RSS.
#include <dlfcn.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/fd_io.h"
#include "bench/malloc_bench_workloads.h"

extern char** environ;

namespace {

using mslab::bench::MallocWorkload;
using mslab::bench::WorkloadResult;

struct Allocator {
  const char* name;
  const char* preload;     // LD_PRELOAD value, nullptr for glibc
  const char* lib_marker;  // substring of the library that must answer malloc
};

const Allocator kAllocators[] = {
    {"mslab", MSLAB_PRELOAD_PATH, "libmslab_preload"},
    {"mimalloc", "libmimalloc.so.2", "libmimalloc"},
    {"jemalloc", "libjemalloc.so.2", "libjemalloc"},
    {"glibc", nullptr, "libc.so"},
};

struct Result {
  bool ok = false;
  std::string why;
  double ns_per_op = 0;
  long peak_rss_kib = 0;
};

// True if `list` (comma-separated, empty = everything) names `name`.
bool in_list(const std::string& list, const char* name) {
  if (list.empty()) return true;
  const std::size_t n = std::strlen(name);
  for (std::size_t start = 0; start <= list.size();) {
    std::size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    if (end - start == n && list.compare(start, n, name) == 0) return true;
    start = end + 1;
  }
  return false;
}

// Child: run one workload, print "ok <ops> <ns> <checksum>" or "bad <why>".
int run_child(const char* workload, double scale, const char* marker) {
  void* m = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info{};
  if (m == nullptr || dladdr(m, &info) == 0 || info.dli_fname == nullptr || std::strstr(info.dli_fname, marker) == nullptr) {
    std::printf("bad malloc answered by %s, not %s\n", info.dli_fname != nullptr ? info.dli_fname : "?", marker);
    return 0;
  }
  std::size_t count = 0;
  const MallocWorkload* w = mslab::bench::malloc_workloads(&count);
  for (std::size_t i = 0; i < count; ++i) {
    if (w[i].name != workload) continue;
    const WorkloadResult r = w[i].run(scale);
    std::printf("ok %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", r.ops, r.ns, r.checksum);
    return 0;
  }
  std::printf("bad unknown workload %s\n", workload);
  return 0;
}

Result run_pair(const char* self, const MallocWorkload& w, const Allocator& a, double scale) {
  Result res;
  int fds[2];
  if (pipe(fds) != 0) return res.why = "pipe failed", res;
  const std::string scale_text = std::to_string(scale);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e)
      if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0) env.emplace_back(*e);
    if (a.preload != nullptr) env.push_back(std::string("LD_PRELOAD=") + a.preload);
    std::vector<char*> envp;
    for (std::string& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    const std::string name(w.name);
    char* argv[] = {const_cast<char*>(self), const_cast<char*>("--child"), const_cast<char*>(name.c_str()),
                    const_cast<char*>(scale_text.c_str()), const_cast<char*>(a.lib_marker), nullptr};
    execve("/proc/self/exe", argv, envp.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[256] = {};
  mslab::bench::read_all(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  std::uint64_t ops = 0, ns = 0, checksum = 0;
  if (std::sscanf(buf, "ok %" SCNu64 " %" SCNu64 " %" SCNu64, &ops, &ns, &checksum) == 3 && WIFEXITED(status) &&
      WEXITSTATUS(status) == 0 && ops > 0) {
    res.ok = true;
    res.ns_per_op = static_cast<double>(ns) / static_cast<double>(ops);
    res.peak_rss_kib = usage.ru_maxrss;
  } else {
    buf[std::strcspn(buf, "\n")] = '\0';
    res.why = std::strncmp(buf, "bad ", 4) == 0 ? std::string(buf + 4) : "child failed (status " + std::to_string(status) + ")";
  }
  return res;
}

std::string cpu_model() {
  FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (f == nullptr) return "?";
  char line[256];
  std::string model = "?";
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* colon = std::strchr(line, ':');
      model = colon != nullptr ? colon + 2 : line;
      model.erase(model.find_last_not_of(" \n") + 1);
      break;
    }
  }
  std::fclose(f);
  return model;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "--child") == 0) return run_child(argv[2], std::atof(argv[3]), argv[4]);
  double scale = 1.0;
  int reps = 3;
  std::string only, allocators;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--scale" && has_value) {
      scale = std::atof(argv[++i]);
    } else if (arg == "--reps" && has_value) {
      reps = std::atoi(argv[++i]);
    } else if (arg == "--only" && has_value) {
      only = argv[++i];
    } else if (arg == "--allocators" && has_value) {
      allocators = argv[++i];
    } else if (arg == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "usage: mslab-malloc-bench [--scale X] [--reps N] [--only w,..] [--allocators a,..] [--json]\n");
      return 2;
    }
  }
  if (scale <= 0 || reps < 1) {
    std::fprintf(stderr, "mslab-malloc-bench: --scale must be > 0 and --reps >= 1\n");
    return 2;
  }

  std::size_t count = 0;
  const MallocWorkload* workloads = mslab::bench::malloc_workloads(&count);
  constexpr std::size_t kAlloc = sizeof kAllocators / sizeof kAllocators[0];
  std::vector<Result> results(count * kAlloc);
  bool failed = false;
  for (std::size_t w = 0; w < count; ++w) {
    if (!in_list(only, std::string(workloads[w].name).c_str())) continue;
    for (std::size_t a = 0; a < kAlloc; ++a) {
      if (!in_list(allocators, kAllocators[a].name)) continue;
      Result& best = results[w * kAlloc + a];
      for (int r = 0; r < reps; ++r) {
        Result one = run_pair(argv[0], workloads[w], kAllocators[a], scale);
        if (!one.ok) {
          best = one;
          break;
        }
        if (!best.ok || one.ns_per_op < best.ns_per_op) best = one;
      }
      // Only mslab failing is an error; a missing baseline is a note.
      if (!best.ok && a == 0) failed = true;
    }
  }

  utsname u{};
  uname(&u);
  char date[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  const Result* base_row = nullptr;
  if (json) {
    std::printf("{\"machine\": {\"cpu\": \"%s\", \"cores\": %ld, \"kernel\": \"%s %s\", \"date\": \"%s\", \"scale\": %g, \"reps\": %d},\n \"runs\": [",
                cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, date, scale, reps);
    bool first = true;
    for (std::size_t w = 0; w < count; ++w)
      for (std::size_t a = 0; a < kAlloc; ++a) {
        const Result& r = results[w * kAlloc + a];
        if (!r.ok && r.why.empty()) continue;
        std::printf("%s\n  {\"workload\": \"%.*s\", \"allocator\": \"%s\", \"ok\": %s, \"ns_per_op\": %.3f, \"peak_rss_bytes\": %ld}",
                    first ? "" : ",", static_cast<int>(workloads[w].name.size()), workloads[w].name.data(),
                    kAllocators[a].name, r.ok ? "true" : "false", r.ns_per_op, r.peak_rss_kib * 1024);
        first = false;
      }
    std::printf("\n]}\n");
    return failed ? 1 : 0;
  }
  std::printf("mslab-malloc-bench  %s  %s  %ld CPUs  %s %s  scale %g  best of %d\n", date, cpu_model().c_str(),
              sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, scale, reps);
  std::printf("ratios are mslab / allocator: time < 1 means mslab is faster, RSS < 1 means mslab uses less\n\n");
  std::printf("%-9s %-9s %10s %12s %10s %10s\n", "workload", "allocator", "ns/op", "peak RSS MiB", "time ratio",
              "RSS ratio");
  for (std::size_t w = 0; w < count; ++w) {
    base_row = &results[w * kAlloc];
    for (std::size_t a = 0; a < kAlloc; ++a) {
      const Result& r = results[w * kAlloc + a];
      if (!r.ok && r.why.empty()) continue;
      const std::string wname(workloads[w].name);
      if (!r.ok) {
        std::printf("%-9s %-9s unavailable: %s\n", wname.c_str(), kAllocators[a].name, r.why.c_str());
        continue;
      }
      std::printf("%-9s %-9s %10.1f %12.1f", wname.c_str(), kAllocators[a].name, r.ns_per_op, r.peak_rss_kib / 1024.0);
      if (a != 0 && base_row->ok)
        std::printf(" %10.2f %10.2f\n", base_row->ns_per_op / r.ns_per_op,
                    static_cast<double>(base_row->peak_rss_kib) / static_cast<double>(r.peak_rss_kib));
      else
        std::printf(" %10s %10s\n", "-", "-");
    }
  }
  for (std::size_t w = 0; w < count; ++w)
    if (in_list(only, std::string(workloads[w].name).c_str()))
      std::printf("\n  %-9.*s %.*s", static_cast<int>(workloads[w].name.size()), workloads[w].name.data(),
                  static_cast<int>(workloads[w].description.size()), workloads[w].description.data());
  std::printf("\n");
  return failed ? 1 : 0;
}
