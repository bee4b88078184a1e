// The fork helper, quantiles and case names of mslab-rcu-bench
// (rcu_bench_common.h). Every case runs in a fresh child so that liburcu's
// workers and mslab's deferred-free worker and statistics (which cannot be
// reset) start from nothing in each one.
#include "bench/rcu_bench_common.h"
#include "bench/fd_io.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <limits>

namespace mslab::bench {

const char* flood_case_name(FloodCase c) noexcept {
  switch (c) {
    case FloodCase::kCallRcu: return "call_rcu";
    case FloodCase::kDeferRcu: return "defer_rcu";
    case FloodCase::kMslab: return "mslab";
    case FloodCase::kMslabHeadless: return "mslab-headless";
    case FloodCase::kMslabSlab: return "mslab-slab";
    case FloodCase::kDirect: return "direct";
  }
  return "?";
}

const char* flood_case_api(FloodCase c) noexcept {
  switch (c) {
    case FloodCase::kCallRcu: return "urcu_memb_call_rcu(&obj->head, cb), malloc";
    case FloodCase::kDeferRcu: return "urcu_memb_defer_rcu(cb, obj), malloc";
    case FloodCase::kMslab: return "mslab::rcu::defer_free(obj, cb), malloc";
    case FloodCase::kMslabHeadless: return "mslab::rcu::defer_free(obj), malloc";
    case FloodCase::kMslabSlab: return "mslab::rcu::defer_free(obj, cb), SlabCache";
    case FloodCase::kDirect: return "free(obj) at once (reference)";
  }
  return "?";
}

const char* replace_case_name(ReplaceCase c) noexcept {
  switch (c) {
    case ReplaceCase::kSynchronize: return "synchronize";
    case ReplaceCase::kMslab: return "mslab";
    case ReplaceCase::kCallRcu: return "call_rcu";
    case ReplaceCase::kDeferRcu: return "defer_rcu";
  }
  return "?";
}

const char* replace_case_api(ReplaceCase c) noexcept {
  switch (c) {
    case ReplaceCase::kSynchronize: return "urcu_memb_synchronize_rcu(); free(old)";
    case ReplaceCase::kMslab: return "mslab::rcu::defer_free(old)";
    case ReplaceCase::kCallRcu: return "urcu_memb_call_rcu(&old->head, cb)";
    case ReplaceCase::kDeferRcu: return "urcu_memb_defer_rcu(cb, old)";
  }
  return "?";
}

bool case_selected(const RcuBenchOptions& options, const char* name) {
  if (options.cases.empty()) return true;
  return std::find(options.cases.begin(), options.cases.end(), name) != options.cases.end();
}

std::uint64_t minor_faults() noexcept {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<std::uint64_t>(u.ru_minflt);
}

CpuUse cpu_use() noexcept {
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return {};
  auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) * 1e-3; };
  return {ms(u.ru_utime) + ms(u.ru_stime), static_cast<double>(u.ru_nvcsw + u.ru_nivcsw)};
}

double quantile(std::vector<std::uint32_t>& v, double q) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<std::size_t>(rank, 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank), v.end());
  return v[rank];
}

std::string run_forked(void (*body)(void* out, const void* arg), const void* arg, void* out, std::size_t size,
                       unsigned timeout_s) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return std::string("fork: ") + std::strerror(errno);
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(timeout_s);  // a hung case (a lost wake-up, say) must not hang the suite
    body(out, arg);
    ::_exit(write_all(fds[1], out, size) ? 0 : 3);
  }
  ::close(fds[1]);
  const std::size_t got = read_all(fds[0], out, size);
  ::close(fds[0]);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  char why[160];
  if (WIFSIGNALED(wstatus)) {
    const int sig = WTERMSIG(wstatus);
    std::snprintf(why, sizeof why, "child killed by signal %d (%s)%s", sig, strsignal(sig),
                  sig == SIGALRM ? ": timed out" : "");
    return why;
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    std::snprintf(why, sizeof why, "child exited with status %d", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    return why;
  }
  if (got != size) {
    std::snprintf(why, sizeof why, "child sent %zu of %zu bytes", got, size);
    return why;
  }
  return {};
}

}  // namespace mslab::bench
