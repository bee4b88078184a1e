// The run key table (fields.h).
#include "bench/fields.h"

#include <array>
#include <optional>

namespace mslab::bench {
namespace {

template <class T>
FieldValue opt(const std::optional<T>& v) {
  if (!v) return std::monostate{};
  return *v;
}

FieldValue text(const char* s) {
  if (*s == '\0') return std::monostate{};
  return std::string_view(s);
}

#define MSLAB_FIELD(name, expr) Field{name, [](const RunRecord& r) -> FieldValue { return expr; }}

const std::array kFields{
    MSLAB_FIELD("workload", std::string_view(r.workload)),
    MSLAB_FIELD("allocator", std::string_view(r.allocator)),
    MSLAB_FIELD("status", status_name(r.status)),
    MSLAB_FIELD("note", text(r.note)),
    MSLAB_FIELD("allocator_version", text(r.version)),
    MSLAB_FIELD("object_size", r.object_size),
    MSLAB_FIELD("objects_allocated", r.objects_allocated),
    MSLAB_FIELD("objects_live", r.objects_live),
    MSLAB_FIELD("live_bytes", opt(r.live_bytes)),
    MSLAB_FIELD("rss_bytes_peak", opt(r.rss_bytes_peak)),
    MSLAB_FIELD("rss_bytes_before", opt(r.rss_bytes_before)),
    MSLAB_FIELD("rss_bytes_after", opt(r.rss_bytes_after)),
    MSLAB_FIELD("ratio_before", opt(r.ratio_before)),
    MSLAB_FIELD("ratio_after", opt(r.ratio_after)),
    MSLAB_FIELD("free_2m_blocks_before", opt(r.free_2m_blocks_before)),
    MSLAB_FIELD("free_2m_blocks_after", opt(r.free_2m_blocks_after)),
    MSLAB_FIELD("defrag_ms", opt(r.defrag_ms)),
    MSLAB_FIELD("max_pause_ms", opt(r.max_pause_ms)),
    MSLAB_FIELD("objects_moved", opt(r.objects_moved)),
    MSLAB_FIELD("reader_ops_per_s", opt(r.reader_ops_per_s)),
    MSLAB_FIELD("reader_p99_us", opt(r.reader_p99_us)),
    MSLAB_FIELD("alloc_ns", opt(r.alloc_ns)),
    MSLAB_FIELD("free_ns", opt(r.free_ns)),
    MSLAB_FIELD("ns_per_op", opt(r.ns_per_op)),
    MSLAB_FIELD("settle", text(r.settle)),
    // Added with the kv workload (issue 7); appended so older columns keep their place.
    MSLAB_FIELD("bytes_copied", opt(r.bytes_copied)),
    MSLAB_FIELD("slabs_freed", opt(r.slabs_freed)),
    MSLAB_FIELD("reader_threads", opt(r.reader_threads)),
    MSLAB_FIELD("reader_ops_per_s_quiet", opt(r.reader_ops_per_s_quiet)),
    MSLAB_FIELD("reader_p99_us_quiet", opt(r.reader_p99_us_quiet)),
    MSLAB_FIELD("total_ms", opt(r.total_ms)),
    // Added with the xarray workload (issues 5 and 7).
    MSLAB_FIELD("nodes_moved", opt(r.nodes_moved)),
};

#undef MSLAB_FIELD

}  // namespace

std::span<const Field> run_fields() noexcept { return kFields; }

std::string_view status_name(RunStatus status) noexcept {
  switch (status) {
    case RunStatus::kOk: return "ok";
    case RunStatus::kSkipped: return "skipped";
    case RunStatus::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace mslab::bench
