// The result of one (workload, allocator) run. A child process fills it and
// writes its bytes into a pipe, so it is trivially copyable: fixed-size
// text fields, std::optional for figures that may be null (absent = null
// in JSON, empty in CSV, "-" in the table).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

namespace mslab::bench {

enum class RunStatus : std::uint8_t { kOk, kSkipped, kFailed };

struct RunRecord {
  RunStatus status = RunStatus::kOk;
  char workload[16] = {};
  char allocator[16] = {};
  char note[240] = {};     // why a run was skipped or failed
  char version[64] = {};   // of the allocator, as it reports itself
  char settle[64] = {};    // what was called before RSS was read

  std::uint64_t object_size = 0;
  std::uint64_t objects_allocated = 0;
  std::uint64_t objects_live = 0;

  std::optional<std::uint64_t> live_bytes;
  std::optional<std::int64_t> rss_bytes_peak;    // right after the allocation (kv: fill) phase
  std::optional<std::int64_t> rss_bytes_before;  // after the frees, before the defrag step
  std::optional<std::int64_t> rss_bytes_after;   // after the defrag step (none: the same moment)
  std::optional<double> ratio_before, ratio_after;
  std::optional<std::uint64_t> free_2m_blocks_before, free_2m_blocks_after;
  std::optional<double> defrag_ms, max_pause_ms;
  std::optional<std::uint64_t> objects_moved, bytes_copied, slabs_freed;
  std::optional<std::uint64_t> reader_threads;
  std::optional<double> reader_ops_per_s, reader_p99_us;              // during the defrag step
  std::optional<double> reader_ops_per_s_quiet, reader_p99_us_quiet;  // the same readers without it
  std::optional<double> alloc_ns, free_ns, ns_per_op;
  std::optional<double> total_ms;  // the whole run in its child: set-up, workload, clean-up
  std::optional<std::uint64_t> nodes_moved;  // XArray nodes migrated by the defrag step (part of objects_moved)
};

static_assert(std::is_trivially_copyable_v<RunRecord>, "RunRecord travels through a pipe as bytes");

/// Copies `text` into a fixed field, truncating, always NUL-terminated.
template <std::size_t N>
void set_text(char (&field)[N], std::string_view text) noexcept {
  const std::size_t n = text.size() < N - 1 ? text.size() : N - 1;
  for (std::size_t i = 0; i < n; ++i) field[i] = text[i];
  field[n] = '\0';
}

/// Marks the run skipped or failed with a reason.
inline void set_outcome(RunRecord& r, RunStatus status, std::string_view note) noexcept {
  r.status = status;
  set_text(r.note, note);
}

}  // namespace mslab::bench
