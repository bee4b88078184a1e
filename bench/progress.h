// A progress line on stderr for long phases ("kv/glibc fill 41 %"),
// rewritten in place at most five times a second and erased when the phase
// ends. Only when stderr is a terminal: piped or redirected output (CI, the
// tests, --json into a file) never sees it.
#pragma once

#include <cstdint>
#include <string_view>

namespace mslab::bench {

class Progress {
 public:
  /// `label` e.g. "kv/glibc fill"; `total` units of work (0: no percentage).
  Progress(std::string_view label, std::uint64_t total) noexcept;
  ~Progress() { done(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Cheap: checks the clock only every 4096 calls.
  void update(std::uint64_t done_units) noexcept {
    if (enabled_ && (++calls_ & 4095) == 0) draw(done_units);
  }
  /// Erases the line (idempotent).
  void done() noexcept;

  /// Whether stderr is a terminal (checked once per process).
  static bool enabled() noexcept;
  /// Prints `text` as the whole progress line now (no percentage), if enabled.
  static void show(std::string_view text) noexcept;

 private:
  void draw(std::uint64_t done_units) noexcept;

  char label_[64] = {};
  std::uint64_t total_;
  std::uint64_t calls_ = 0;
  std::uint64_t last_ns_ = 0;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace mslab::bench
