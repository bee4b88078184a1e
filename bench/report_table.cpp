// The terminal table (report.h): one line per completed run, numbers right
// aligned, ns/op also as a multiple of the reference allocator's
// (catalog.h) in the same workload. RSS before and after the defrag step
// side by side; reader figures as "quiet/during defrag". Skipped and failed
// runs are listed under the table with their reasons. Figures without a
// column (alloc and free ns, bytes copied, ...) are in --json and --csv.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "bench/catalog.h"
#include "bench/report.h"

namespace mslab::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

template <class T>
std::string fixed(const std::optional<T>& v, double scale, int decimals) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, static_cast<double>(*v) / scale);
  return buf;
}

std::optional<double> reference_ns(const std::vector<RunRecord>& runs, std::string_view workload) {
  for (const RunRecord& r : runs)
    if (r.status == RunStatus::kOk && workload == r.workload && kReferenceAllocator == r.allocator) return r.ns_per_op;
  return std::nullopt;
}

// "quiet/defrag" for the reader figures; "-" when neither exists.
std::string pair_of(const std::optional<double>& quiet, const std::optional<double>& during, double scale,
                    int decimals) {
  if (!quiet && !during) return "-";
  return fixed(quiet, scale, decimals) + "/" + fixed(during, scale, decimals);
}

}  // namespace

void print_table(std::FILE* out, const MachineInfo& m, const std::string& setup, const std::vector<RunRecord>& runs) {
  std::fprintf(out, "mslab-bench %s  %s, %u cores, %s, %s%s%s; page fault %.0f ns\n", m.date.c_str(),
               m.cpu_model.c_str(), m.cores, m.kernel.c_str(), m.compiler.c_str(),
               m.sanitizers.empty() ? "" : ", sanitizers: ", m.sanitizers.c_str(), m.page_fault_ns);
  std::fprintf(out, "%s\n", setup.c_str());

  const std::string vs = "vs " + std::string(kReferenceAllocator);
  std::vector<std::vector<std::string>> rows{{"workload", "allocator", "live MiB", "peak MiB", "RSS MiB", "RSS/live",
                                              "defrag MiB", "RSS/live", "free 2M", "defrag ms", "pause ms", "moved",
                                              "reads M/s", "p99 us", "ns/op", vs, "run ms"}};
  for (const RunRecord& r : runs) {
    if (r.status != RunStatus::kOk) continue;
    const std::optional<double> ref = reference_ns(runs, r.workload);
    std::optional<double> ratio;
    if (ref && r.ns_per_op && *ref > 0) ratio = *r.ns_per_op / *ref;
    const bool defragged = r.defrag_ms.has_value();
    rows.push_back({r.workload, r.allocator, fixed(r.live_bytes, kMiB, 2), fixed(r.rss_bytes_peak, kMiB, 1),
                    fixed(r.rss_bytes_before, kMiB, 1), fixed(r.ratio_before, 1, 2),
                    defragged ? fixed(r.rss_bytes_after, kMiB, 1) : "-", defragged ? fixed(r.ratio_after, 1, 2) : "-",
                    defragged ? fixed(r.free_2m_blocks_before, 1, 0) + "/" + fixed(r.free_2m_blocks_after, 1, 0)
                              : fixed(r.free_2m_blocks_after, 1, 0),
                    fixed(r.defrag_ms, 1, 1), fixed(r.max_pause_ms, 1, 2),
                    fixed(r.objects_moved, 1, 0), pair_of(r.reader_ops_per_s_quiet, r.reader_ops_per_s, 1e6, 2),
                    pair_of(r.reader_p99_us_quiet, r.reader_p99_us, 1, 2), fixed(r.ns_per_op, 1, 1),
                    ratio ? fixed(ratio, 1, 2) + "x" : "-", fixed(r.total_ms, 1, 0)});
  }
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      line += c < 2 ? row[c] + pad : pad + row[c];  // names left, numbers right
      if (c + 1 < row.size()) line += "  ";
    }
    std::fprintf(out, "%s\n", line.c_str());
  }

  std::fprintf(out,
               "\nRSS = resident bytes after the frees and the allocator's own release call, minus a baseline "
               "taken before\nthe first allocation (kv, xarray: after a small warm-up run of the same workload and "
               "allocator,\n--warm-up); peak = the same right after the allocation (kv, xarray: fill) "
               "phase; defrag MiB =\nRSS after the defrag step (mslab-defrag only). free 2M = free 2 MiB blocks of "
               "mslab's page allocator\n(before/after defrag). reads M/s, p99 us: kv and xarray readers, quiet "
               "window/during defrag.\nmoved: objects moved by the defrag step (xarray: payloads and XArray nodes). "
               "ns/op: slab = alloc ns +\nfree ns; pair = one alloc+free pair (best of 3 rounds); kv, xarray = one "
               "insert in the fill phase.\nrun ms = the whole run in its child process. Definitions: "
               "docs/benchmarks.md.\n");
  for (const RunRecord& r : runs)
    if (r.status != RunStatus::kOk)
      std::fprintf(out, "%s: %s/%s: %s\n", r.status == RunStatus::kSkipped ? "skipped" : "FAILED", r.workload,
                   r.allocator, r.note);
}

}  // namespace mslab::bench
