// The stderr progress line (progress.h). Written with one write(2) per
// update, so it never goes through stdio buffers the parent owns.
#include "bench/progress.h"

#include <unistd.h>

#include <cstdio>

#include "bench/workload_util.h"

namespace mslab::bench {
namespace {

constexpr std::uint64_t kIntervalNs = 200'000'000;

void put(const char* text, int n) noexcept {
  // A progress line that cannot be written is not worth a retry.
  if (n > 0 && ::write(STDERR_FILENO, text, static_cast<std::size_t>(n)) < 0) return;
}

}  // namespace

bool Progress::enabled() noexcept {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  return tty;
}

void Progress::show(std::string_view text) noexcept {
  if (!enabled()) return;
  char buf[128];
  put(buf, std::snprintf(buf, sizeof buf, "\r\033[K%.*s", static_cast<int>(text.size()), text.data()));
}

Progress::Progress(std::string_view label, std::uint64_t total) noexcept : total_(total), enabled_(enabled()) {
  std::snprintf(label_, sizeof label_, "%.*s", static_cast<int>(label.size()), label.data());
  if (enabled_) {
    last_ns_ = now_ns();
    draw(0);
  }
}

void Progress::draw(std::uint64_t done_units) noexcept {
  const std::uint64_t now = now_ns();
  if (drawn_ && now - last_ns_ < kIntervalNs) return;
  last_ns_ = now;
  drawn_ = true;
  char buf[128];
  const int n = total_ == 0 ? std::snprintf(buf, sizeof buf, "\r\033[K%s ...", label_)
                            : std::snprintf(buf, sizeof buf, "\r\033[K%s %3u %%", label_,
                                            static_cast<unsigned>(done_units * 100 / total_));
  put(buf, n);
}

void Progress::done() noexcept {
  if (!enabled_ || !drawn_) return;
  drawn_ = false;
  put("\r\033[K", 4);
}

}  // namespace mslab::bench
