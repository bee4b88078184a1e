// The RSS plot (plot.h). gnuplot runs as a child with the script on its
// stdin; the data are inline ($rss heredoc), so no temporary file exists.
// The PNG is written to FILE.png.tmp and renamed, so a failed run never
// leaves a half-written picture under the requested name.
#include "bench/plot.h"

#include <cstdio>
#include <string>
#include <string_view>

namespace mslab::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

bool plottable(const RunRecord& r) {
  return r.status == RunStatus::kOk && r.rss_bytes_peak && r.rss_bytes_before && r.rss_bytes_after;
}

// One colour per allocator, so that the same allocator looks the same in
// every workload; the workload picks the dash pattern and the point shape.
const char* colour_of(std::string_view allocator) {
  if (allocator == "mslab") return "#1f77b4";
  if (allocator == "mslab-defrag") return "#2ca02c";
  if (allocator == "glibc") return "#ff7f0e";
  if (allocator == "mimalloc") return "#d62728";
  if (allocator == "jemalloc") return "#9467bd";
  return "#7f7f7f";
}

// gnuplot string literal in single quotes: a quote is doubled.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

}  // namespace

bool plot_rss(const std::string& path, const std::vector<RunRecord>& runs, std::string* why) {
  std::string data, plots;
  int index = 0;
  for (const RunRecord& r : runs) {
    if (!plottable(r)) continue;
    char block[256];
    std::snprintf(block, sizeof block, "\"after fill\" %.2f\n\"after free\" %.2f\n\"after defrag\" %.2f\n\n\n",
                  static_cast<double>(*r.rss_bytes_peak) / kMiB, static_cast<double>(*r.rss_bytes_before) / kMiB,
                  static_cast<double>(*r.rss_bytes_after) / kMiB);
    data += block;
    plots += std::string(plots.empty() ? "plot " : ", ") + "$rss index " + std::to_string(index++) +
             " using 0:2:xtic(1) with linespoints lw 2 lc rgb '" + colour_of(r.allocator) + "' dt " +
             (std::string_view(r.workload) == "kv"       ? "1 pt 7"
              : std::string_view(r.workload) == "xarray" ? "3 pt 9"
                                                         : "2 pt 5") + " title " +
             quoted(std::string(r.workload) + "/" + std::string(r.allocator));
  }
  if (index == 0) {
    *why = "no run measured RSS after all three phases";
    return false;
  }
  const std::string tmp = path + ".tmp";
  const std::string script = "set terminal pngcairo size 900,540 font ',11'\nset output " + quoted(tmp) +
                             "\nset title 'RSS after each phase (mslab-bench)'\nset ylabel 'RSS (MiB)'\n"
                             "set key outside right\nset grid ytics\nset yrange [0:*]\nset offsets 0.2,0.2,0,0\n"
                             "$rss << EOD\n" + data + "EOD\n" + plots + "\n";
  // gnuplot's own messages go to our stderr: stdout may carry --json.
  std::FILE* gp = ::popen("gnuplot >&2", "w");
  if (gp == nullptr) {
    *why = "cannot start gnuplot";
    return false;
  }
  std::fwrite(script.data(), 1, script.size(), gp);
  const int status = ::pclose(gp);
  if (status != 0) {
    std::remove(tmp.c_str());
    *why = status == 127 << 8 ? "gnuplot not found (Debian: apt-get install gnuplot-nox, or `make deps`)"
                              : "gnuplot failed (exit status " + std::to_string(status) + ")";
    return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *why = "cannot write " + path;
    return false;
  }
  return true;
}

}  // namespace mslab::bench
