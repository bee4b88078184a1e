// Per-mapping growth of resident memory since the RSS baseline, from
// /proc/self/smaps (diagnostics of MSLAB_BENCH_BREAKDOWN, issue 5's RSS/live
// target: which mappings the memory outside mslab's chunks lies in — file-
// backed code pages, the heap of the benchmark's own malloc, thread stacks,
// metadata). The snapshot at the baseline is read with plain syscalls into
// a buffer mapped and touched before the baseline, so taking it adds
// nothing to the RSS the report measures; parsing waits until the end.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace mslab::bench {

class SmapsGrowth {
 public:
  static constexpr std::size_t kBufferBytes = std::size_t{1} << 20;

  /// Maps and touches the buffer (before the baseline) when the breakdown
  /// is enabled; otherwise does nothing at all.
  void prepare() noexcept {
    if (std::getenv("MSLAB_BENCH_BREAKDOWN") == nullptr) return;
    void* p = ::mmap(nullptr, kBufferBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return;
    buffer_ = static_cast<char*>(p);
  }
  /// Reads smaps into the buffer: call right after the RSS baseline.
  void snapshot() noexcept {
    if (buffer_ == nullptr) return;
    int fd = ::open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    std::size_t n = 0;
    for (ssize_t got; n + 1 < kBufferBytes && (got = ::read(fd, buffer_ + n, kBufferBytes - 1 - n)) > 0;)
      n += static_cast<std::size_t>(got);
    ::close(fd);
    buffer_[n] = '\0';
    length_ = n;
  }
  ~SmapsGrowth() {
    if (buffer_ != nullptr) ::munmap(buffer_, kBufferBytes);
  }

  /// Prints every mapping whose resident size changed by 8 kB or more since
  /// the snapshot, and the anonymous / file-backed totals.
  void print() const {
    if (length_ == 0) return;
    std::string now;
    if (std::FILE* f = std::fopen("/proc/self/smaps", "r")) {
      char chunk[4096];
      for (std::size_t got; (got = std::fread(chunk, 1, sizeof chunk, f)) > 0;) now.append(chunk, got);
      std::fclose(f);
    }
    const Table before = parse(buffer_), after = parse(now.c_str());
    long anon = 0, file = 0;
    auto report = [&](const std::string& key, Kb b, Kb a) {
      const long d_rss = a.rss - b.rss, d_anon = a.anon - b.anon;
      anon += d_anon;
      file += d_rss - d_anon;
      if (d_rss >= 8 || d_rss <= -8) std::fprintf(stderr, "    %+7ld kB (anonymous %+7ld) %s\n", d_rss, d_anon, key.c_str());
    };
    for (const auto& [key, a] : after) {
      auto it = before.find(key);
      report(key, it == before.end() ? Kb{} : it->second, a);
    }
    for (const auto& [key, b] : before)
      if (after.find(key) == after.end()) report(key, b, Kb{});
    std::fprintf(stderr, "  smaps growth since the baseline: anonymous %ld kB, file-backed %ld kB\n", anon, file);
  }

 private:
  struct Kb {
    long rss = 0, anon = 0;
  };
  using Table = std::map<std::string, Kb>;  // "start-end perms path" -> kB

  static Table parse(const char* text) {
    Table t;
    std::string key;
    for (const char* line = text; *line != '\0';) {
      const char* end = std::strchr(line, '\n');
      const std::string l(line, end != nullptr ? static_cast<std::size_t>(end - line) : std::strlen(line));
      line = end != nullptr ? end + 1 : line + l.size();
      long v = 0;
      char range[64] = {}, perms[8] = {}, dev[16] = {}, path[400] = {};
      unsigned long offset = 0, inode = 0;
      if (std::sscanf(l.c_str(), "Rss: %ld kB", &v) == 1) {
        t[key].rss = v;
      } else if (std::sscanf(l.c_str(), "Anonymous: %ld kB", &v) == 1) {
        t[key].anon = v;
      } else if (const int n = std::sscanf(l.c_str(), "%63[0-9a-f-] %7s %lx %15s %lu %399[^\n]", range, perms,
                                           &offset, dev, &inode, path);
                 n >= 5 && std::strchr(range, '-') != nullptr) {
        key = std::string(range) + " " + perms + " " + (n == 6 ? path : "[anonymous]");
      }
    }
    return t;
  }

  char* buffer_ = nullptr;
  std::size_t length_ = 0;
};

}  // namespace mslab::bench
