// Fork, pipe and wait for run_in_child (child.h).
#include "bench/child.h"
#include "bench/fd_io.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

namespace mslab::bench {
namespace {

RunRecord failed(const RunSpec& spec, const Options& options, const std::string& why) {
  RunRecord r;
  r.object_size = options.size;
  set_text(r.workload, spec.workload);
  set_text(r.allocator, spec.allocator);
  set_outcome(r, RunStatus::kFailed, why);
  return r;
}

[[noreturn]] void child_main(const RunSpec& spec, const Options& options, int out) noexcept {
  RunRecord r;
  try {
    r = spec.run(options);
  } catch (const std::exception& e) {
    r = failed(spec, options, std::string("exception: ") + e.what());
  } catch (...) {
    r = failed(spec, options, "unknown exception");
  }
  _exit(write_all(out, &r, sizeof r) ? 0 : 3);
}

}  // namespace

RunRecord run_in_child(const RunSpec& spec, const Options& options) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return failed(spec, options, std::string("pipe: ") + std::strerror(errno));
  std::fflush(nullptr);  // nothing buffered may be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return failed(spec, options, std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(fds[0]);
    child_main(spec, options, fds[1]);
  }
  ::close(fds[1]);
  RunRecord r;
  const std::size_t got = read_all(fds[0], &r, sizeof r);
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status))
    return failed(spec, options, std::string("child killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                            strsignal(WTERMSIG(status)) + ")");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return failed(spec, options, "child exited with status " + std::to_string(WEXITSTATUS(status)));
  if (got != sizeof r) return failed(spec, options, "child sent a short record");
  return r;
}

}  // namespace mslab::bench
