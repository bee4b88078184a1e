// mslab-rcu-bench: mslab's deferred free (rcu/deferred_free.h) against
// liburcu's call_rcu, defer_rcu and synchronize_rcu, all on the urcu-memb
// flavor. Two benchmarks ("flood" and "replace", docs/benchmarks.md); every
// case runs in its own forked child. Prints aligned tables or, with --json,
// one JSON document. Bad options exit with 2, failed cases with 1.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "alloc/config.h"
#include "bench/json.h"
#include "bench/rcu_bench_common.h"
#include "rcu/rcu.h"  // urcu_memb_has_sys_membarrier (read only: the parent never registers)

#ifndef MSLAB_RCU_BENCH_BUILD_TYPE
#define MSLAB_RCU_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef MSLAB_RCU_BENCH_SANITIZE
#define MSLAB_RCU_BENCH_SANITIZE ""
#endif
#ifndef MSLAB_RCU_BENCH_URCU_VERSION
#define MSLAB_RCU_BENCH_URCU_VERSION "unknown"
#endif

namespace mslab::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr std::string_view kHelp =
    R"(Usage: mslab-rcu-bench [options]

Deferred free: mslab::rcu::defer_free against liburcu's call_rcu, defer_rcu
and synchronize_rcu (urcu-memb flavor). Each case runs in a forked child.

Benchmarks:
  flood    COUNT deferred frees of 64-byte objects (malloc; mslab-slab:
           a SlabCache) from THREADS threads: throughput until all are
           freed, producer ns per object, peak pending bytes, free
           latency (median, p99, max)
  replace  a writer replaces a published array REPLACEMENTS times while a
           reader thread reads and checks it non-stop: total time, reader
           reads per second, violations (reads of freed memory; must be 0)

Options (--name=value or --name value):
  --benchmark=LIST      flood, replace or all (comma-separated)   [all]
  --case=LIST           only these cases (comma-separated): call_rcu,
                        defer_rcu, mslab, mslab-headless, mslab-slab,
                        direct (flood), synchronize (replace)     [all]
  --count=N             flood: deferred frees in all, 1 ... 10^9  [10000000]
  --threads=N           flood: producer threads, 1 ... 64         [2]
  --latency-every=N     flood: time every Nth object, 1 ... 2^20  [16]
  --rate=N              flood: pace the producers to N objects/s in all
                        (1 ms ticks), 0 ... 10^9; 0 = flat out    [0]
  --replacements=N      replace: array replacements, 1 ... 10^7   [8192]
  --array-ints=N        replace: ints per array, 2 ... 2^20       [1024]
  --array-memory=M      replace: arrays from malloc or from an mslab
                        SlabCache (slab), in every case           [malloc]
  --repeat=N            run every case N times (round robin); the
                        tables show each case's median run, 1 ... 100 [1]
  --timeout=S           kill a case after S seconds, 1 ... 86400  [600]
  --json                one JSON document on stdout (docs/benchmarks.md)
  --help, -h            this text

Exit status: 0 all cases passed, 1 a case failed (crash, timeout, objects
not freed, reader violations), 2 bad command line.
)";

struct ParseOutcome {
  enum class Kind { kRun, kHelp, kError } kind = Kind::kError;
  RcuBenchOptions options;
  std::string error;
};

bool parse_uint(std::string_view text, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || v < lo || v > hi) return false;
  out = v;
  return true;
}

ParseOutcome parse(int argc, char** argv) {
  ParseOutcome out;
  RcuBenchOptions& o = out.options;
  for (int i = 0; i < argc; ++i) o.argv.emplace_back(argv[i]);
  auto fail = [&](std::string why) {
    out.kind = ParseOutcome::Kind::kError;
    out.error = std::move(why);
    return out;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out.kind = ParseOutcome::Kind::kHelp;
      return out;
    }
    if (arg.substr(0, 2) != "--") return fail("unexpected argument '" + std::string(arg) + "' (see --help)");
    std::string_view name = arg.substr(2), value;
    bool has_value = false;
    if (const std::size_t eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "json") {
      if (has_value) return fail("--json takes no value");
      o.json = true;
      continue;
    }
    struct Numeric {
      std::string_view name;
      std::uint64_t lo, hi;
    };
    static constexpr Numeric kNumeric[] = {
        {"count", 1, 1'000'000'000},  {"threads", 1, 64},          {"latency-every", 1, 1u << 20},
        {"replacements", 1, 10'000'000}, {"array-ints", 2, 1u << 20}, {"timeout", 1, 86400},
        {"rate", 0, 1'000'000'000},   {"repeat", 1, 100},
    };
    const Numeric* numeric = nullptr;
    for (const Numeric& n : kNumeric)
      if (n.name == name) numeric = &n;
    if (numeric == nullptr && name != "benchmark" && name != "case" && name != "array-memory") return fail("unknown option '--" + std::string(name) + "' (see --help)");
    if (!has_value) {
      if (i + 1 >= argc) return fail("--" + std::string(name) + " needs a value");
      value = argv[++i];
    }
    if (name == "benchmark") {
      o.run_flood = o.run_replace = false;
      std::string_view rest = value;
      for (;;) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        if (item == "flood") o.run_flood = true;
        else if (item == "replace") o.run_replace = true;
        else if (item == "all") o.run_flood = o.run_replace = true;
        else return fail("--benchmark: unknown benchmark '" + std::string(item) + "' (flood, replace, all)");
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
      continue;
    }
    if (name == "array-memory") {
      if (value == "malloc") o.array_slab = false;
      else if (value == "slab") o.array_slab = true;
      else return fail("--array-memory: '" + std::string(value) + "' is neither malloc nor slab");
      continue;
    }
    if (name == "case") {
      static constexpr std::string_view kCases[] = {"call_rcu",   "defer_rcu", "mslab",      "mslab-headless",
                                                    "mslab-slab", "direct",    "synchronize"};
      o.cases.clear();
      std::string_view rest = value;
      for (;;) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        if (std::find(std::begin(kCases), std::end(kCases), item) == std::end(kCases))
          return fail("--case: unknown case '" + std::string(item) + "' (see --help)");
        o.cases.emplace_back(item);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
      continue;
    }
    std::uint64_t v = 0;
    if (!parse_uint(value, numeric->lo, numeric->hi, v))
      return fail("--" + std::string(name) + ": '" + std::string(value) + "' is not an integer in " +
                  std::to_string(numeric->lo) + " ... " + std::to_string(numeric->hi));
    if (name == "count") o.count = v;
    else if (name == "threads") o.threads = static_cast<unsigned>(v);
    else if (name == "latency-every") o.latency_every = static_cast<unsigned>(v);
    else if (name == "replacements") o.replacements = v;
    else if (name == "array-ints") o.array_ints = static_cast<std::uint32_t>(v);
    else if (name == "timeout") o.timeout_s = static_cast<unsigned>(v);
    else if (name == "rate") o.rate = v;
    else if (name == "repeat") o.repeat = static_cast<unsigned>(v);
  }
  out.kind = ParseOutcome::Kind::kRun;
  return out;
}

// ---------------------------------------------------------------------------
// Machine description.

struct Machine {
  std::string cpu_model = "unknown", kernel = "unknown", date, compiler, command;
  unsigned cores = 0;
  bool sys_membarrier = false;
};

Machine probe_machine(const RcuBenchOptions& o) {
  Machine m;
  if (std::FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      std::string_view l = line;
      if (l.substr(0, 10) != "model name") continue;
      const std::size_t colon = l.find(':');
      if (colon == std::string_view::npos) break;
      l = l.substr(colon + 1);
      while (!l.empty() && (l.front() == ' ' || l.front() == '\t')) l.remove_prefix(1);
      while (!l.empty() && (l.back() == '\n' || l.back() == ' ')) l.remove_suffix(1);
      m.cpu_model = std::string(l);
      break;
    }
    std::fclose(f);
  }
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  m.cores = cores > 0 ? static_cast<unsigned>(cores) : 0;
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  m.date = buf;
#if defined(__clang__)
  m.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.compiler = "g++ " __VERSION__;
#endif
  for (const std::string& a : o.argv) m.command += (m.command.empty() ? "" : " ") + a;
  // Set by liburcu's constructor; 0 would mean the mb fallback read side.
  m.sys_membarrier = urcu_memb_has_sys_membarrier != 0;
  return m;
}

// ---------------------------------------------------------------------------
// Running the cases.

// One child's result. With --repeat every case runs several times; the
// tables show each case's median run (by its headline figure), and the
// ratios compare median runs.
struct FloodRun {
  FloodCase which;
  unsigned repetition;
  FloodResult r;
  bool median = false;
  static double headline(const FloodResult& r) { return r.frees_per_s; }
};
struct ReplaceRun {
  ReplaceCase which;
  unsigned repetition;
  ReplaceResult r;
  bool median = false;
  static double headline(const ReplaceResult& r) { return r.total_ms; }
};

template <class Case, class Result, Result (*Fn)(Case, const RcuBenchOptions&) noexcept>
struct ChildJob {
  Case which;
  const RcuBenchOptions* options;
  static void body(void* out, const void* arg) {
    const auto* job = static_cast<const ChildJob*>(arg);
    *static_cast<Result*>(out) = Fn(job->which, *job->options);
  }
};

template <class Case, class Result, Result (*Fn)(Case, const RcuBenchOptions&) noexcept>
Result run_one(Case which, const RcuBenchOptions& o) {
  using Job = ChildJob<Case, Result, Fn>;
  const Job job{which, &o};
  Result r;
  const std::string failure = run_forked(&Job::body, &job, &r, sizeof r, o.timeout_s);
  if (!failure.empty()) {
    r = Result{};
    r.status = RunStatus::kFailed;
    copy_text(r.note, sizeof r.note, failure.c_str());
  }
  return r;
}

double ratio(double a, double b) { return (std::isfinite(a) && std::isfinite(b) && b != 0) ? a / b : kNaN; }

// Marks each case's median run among its passing ones (the lower middle
// for an even count); a case with no passing run shows its first run.
// Also sorts the runs by case (the enum order is the table order), keeping
// repetitions in order within a case.
template <class Run>
void mark_medians(std::vector<Run>& runs) {
  std::stable_sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.which < b.which; });
  std::vector<Run*> same;
  for (Run& first : runs) {
    if (first.repetition != 0) continue;
    same.clear();
    for (Run& run : runs)
      if (run.which == first.which && run.r.status == RunStatus::kOk) same.push_back(&run);
    if (same.empty()) {
      first.median = true;
      continue;
    }
    std::sort(same.begin(), same.end(),
              [](const Run* a, const Run* b) { return Run::headline(a->r) < Run::headline(b->r); });
    same[(same.size() - 1) / 2]->median = true;
  }
}

// The median run of a case, if it passed.
template <class Run, class Case>
const Run* find(const std::vector<Run>& runs, Case which) {
  for (const Run& run : runs)
    if (run.which == which && run.median && run.r.status == RunStatus::kOk) return &run;
  return nullptr;
}

// "min – max" of a case's headline over its passing runs, and how many failed.
template <class Run, class Case>
std::string spread(const std::vector<Run>& runs, Case which, double scale, int decimals, unsigned* failed) {
  double lo = kNaN, hi = kNaN;
  *failed = 0;
  for (const Run& run : runs) {
    if (run.which != which) continue;
    if (run.r.status != RunStatus::kOk) {
      ++*failed;
      continue;
    }
    const double v = Run::headline(run.r) * scale;
    if (!(v >= lo)) lo = v;
    if (!(v <= hi)) hi = v;
  }
  if (!std::isfinite(lo)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f-%.*f", decimals, lo, decimals, hi);
  return buf;
}

std::string status_cell(bool ok, unsigned failed, unsigned repeat) {
  if (failed == 0) return ok ? "ok" : "FAILED";
  if (repeat == 1) return "FAILED";
  return std::to_string(failed) + "/" + std::to_string(repeat) + " FAILED";
}

// ---------------------------------------------------------------------------
// Table output.

std::string cell(double v, int decimals) {
  if (!std::isfinite(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Right-aligned columns, first column left-aligned; widths from the content.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      if (c == 0) line += row[c] + pad;
      else line += "  " + pad + row[c];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

void print_flood(const RcuBenchOptions& o, const std::vector<FloodRun>& runs) {
  std::printf("\nflood: %llu deferred frees of 64-byte objects from %u threads", static_cast<unsigned long long>(o.count),
              o.threads);
  if (o.rate != 0) std::printf(", paced to %llu objects/s", static_cast<unsigned long long>(o.rate));
  std::printf("; free latency of every %u%s object\n", o.latency_every, o.latency_every == 1 ? "" : "th");
  const FloodRun* call = find(runs, FloodCase::kCallRcu);
  const FloodRun* defer = find(runs, FloodCase::kDeferRcu);
  if (o.repeat > 1) std::printf("median of %u runs per case (by M frees/s; range: min-max)\n", o.repeat);
  std::vector<std::vector<std::string>> rows = {
      {"case", "M frees/s", "/call_rcu", "/defer_rcu", "prod ns/op", "total s", "barrier ms", "peak KiB",
       "lib peak KiB", "p50 us", "p99 us", "max us", "GPs", "prod GPs", "cpu ms", "csw", "faults", "status"}};
  if (o.repeat > 1) rows[0].insert(rows[0].begin() + 2, "range");
  for (const FloodRun& run : runs) {
    if (!run.median) continue;
    const FloodResult& r = run.r;
    const bool ok = r.status == RunStatus::kOk;
    const double thr = ok ? r.frees_per_s : kNaN;
    unsigned failed = 0;
    const std::string range = spread(runs, run.which, 1e-6, 2, &failed);
    rows.push_back({flood_case_name(run.which), cell(thr * 1e-6, 2),
                    cell(call != nullptr ? ratio(thr, call->r.frees_per_s) : kNaN, 2) ,
                    cell(defer != nullptr ? ratio(thr, defer->r.frees_per_s) : kNaN, 2),
                    cell(ok ? r.producer_ns_per_op : kNaN, 1), cell(ok ? r.seconds_total : kNaN, 3),
                    cell(ok ? r.barrier_ms : kNaN, 2), cell(ok ? r.peak_pending_bytes_sampled / 1024 : kNaN, 0),
                    cell(ok ? r.peak_pending_bytes_library / 1024 : kNaN, 0),
                    cell(ok ? r.latency_p50_ns * 1e-3 : kNaN, 1), cell(ok ? r.latency_p99_ns * 1e-3 : kNaN, 1),
                    cell(ok ? r.latency_max_ns * 1e-3 : kNaN, 1), cell(ok ? r.grace_periods : kNaN, 0),
                    cell(ok ? r.producer_grace_periods : kNaN, 0), cell(ok ? r.cpu_ms : kNaN, 0),
                    cell(ok ? r.context_switches : kNaN, 0), cell(ok ? r.page_faults : kNaN, 0),
                    status_cell(ok, failed, o.repeat)});
    if (o.repeat > 1) rows.back().insert(rows.back().begin() + 2, range);
  }
  print_table(rows);
  for (const FloodRun& run : runs)
    if (run.r.note[0] != '\0')
      std::printf("  %s (run %u): %s\n", flood_case_name(run.which), run.repetition + 1, run.r.note);
}

void print_replace(const RcuBenchOptions& o, const std::vector<ReplaceRun>& runs) {
  const double block = runs.empty() ? kNaN : runs.front().r.block_bytes;
  std::printf("\nreplace: %llu replacements of a published %u-int array (%s-byte blocks from %s) while 1 reader thread "
              "reads it\n",
              static_cast<unsigned long long>(o.replacements), o.array_ints, cell(block, 0).c_str(),
              o.array_slab ? "an mslab SlabCache" : "malloc");
  const ReplaceRun* sync = find(runs, ReplaceCase::kSynchronize);
  const ReplaceRun* call = find(runs, ReplaceCase::kCallRcu);
  if (o.repeat > 1) std::printf("median of %u runs per case (by total ms; range: min-max)\n", o.repeat);
  std::vector<std::vector<std::string>> rows = {{"case", "total ms", "/synchronize", "/call_rcu", "writer ms",
                                                 "barrier ms", "reader M/s", "violations", "GPs", "peak KiB",
                                                 "lib peak KiB", "faults", "status"}};
  if (o.repeat > 1) rows[0].insert(rows[0].begin() + 2, "range");
  for (const ReplaceRun& run : runs) {
    if (!run.median) continue;
    unsigned failed = 0;
    const std::string range = spread(runs, run.which, 1.0, 1, &failed);
    const ReplaceResult& r = run.r;
    const bool ok = r.status == RunStatus::kOk;
    const bool measured = ok || r.total_ms > 0;  // a run with violations still has its timings
    const double total = measured ? r.total_ms : kNaN;
    rows.push_back({replace_case_name(run.which), cell(total, 1),
                    cell(sync != nullptr ? ratio(total, sync->r.total_ms) : kNaN, 3),
                    cell(call != nullptr ? ratio(total, call->r.total_ms) : kNaN, 3),
                    cell(measured ? r.writer_ms : kNaN, 1), cell(measured ? r.barrier_ms : kNaN, 2),
                    cell(measured ? r.reader_iterations_per_s * 1e-6 : kNaN, 2),
                    cell(measured ? r.violations : kNaN, 0), cell(measured ? r.grace_periods : kNaN, 0),
                    cell(measured ? r.peak_pending_bytes_sampled / 1024 : kNaN, 0),
                    cell(measured ? r.peak_pending_bytes_library / 1024 : kNaN, 0),
                    cell(measured ? r.page_faults : kNaN, 0), status_cell(ok, failed, o.repeat)});
    if (o.repeat > 1) rows.back().insert(rows.back().begin() + 2, range);
  }
  print_table(rows);
  for (const ReplaceRun& run : runs)
    if (run.r.note[0] != '\0')
      std::printf("  %s (run %u): %s\n", replace_case_name(run.which), run.repetition + 1, run.r.note);
}

// ---------------------------------------------------------------------------
// JSON output.

void number(JsonWriter& w, std::string_view key, double v) {
  w.key(key);
  w.value(v);  // NaN becomes null
}

void write_json(const Machine& m, const RcuBenchOptions& o, const std::vector<FloodRun>& flood,
                const std::vector<ReplaceRun>& replace) {
  JsonWriter w;
  w.begin_object();
  w.key("machine");
  w.begin_object();
  w.key("cpu_model"); w.value(m.cpu_model);
  w.key("cores"); w.value(std::uint64_t{m.cores});
  w.key("kernel"); w.value(m.kernel);
  w.key("date"); w.value(m.date);
  w.key("compiler"); w.value(m.compiler);
  w.key("build_type"); w.value(MSLAB_RCU_BENCH_BUILD_TYPE);
  w.key("sanitizers"); w.value(MSLAB_RCU_BENCH_SANITIZE);
  w.key("mslab_check_level"); w.value(std::int64_t{kCheckLevel});
  w.key("liburcu_version"); w.value(MSLAB_RCU_BENCH_URCU_VERSION);
  w.key("urcu_flavor"); w.value("memb");
  w.key("sys_membarrier"); w.value(m.sys_membarrier);
  w.key("command"); w.value(m.command);
  w.end_object();

  w.key("flood");
  if (!o.run_flood) {
    w.null();
  } else {
    const FloodRun* call = find(flood, FloodCase::kCallRcu);
    const FloodRun* defer = find(flood, FloodCase::kDeferRcu);
    w.begin_object();
    w.key("objects"); w.value(std::uint64_t{o.count});
    w.key("threads"); w.value(std::uint64_t{o.threads});
    w.key("object_size"); w.value(std::uint64_t{64});
    w.key("repeat"); w.value(std::uint64_t{o.repeat});
    w.key("latency_every"); w.value(std::uint64_t{o.latency_every});
    w.key("rate"); w.value(std::uint64_t{o.rate});
    w.key("runs");
    w.begin_array();
    for (const FloodRun& run : flood) {
      const FloodResult& r = run.r;
      const bool ok = r.status == RunStatus::kOk;
      auto v = [&](double x) { return ok ? x : kNaN; };
      w.begin_object();
      w.key("case"); w.value(flood_case_name(run.which));
      w.key("repetition"); w.value(std::uint64_t{run.repetition + 1});
      w.key("median"); w.value(run.median);
      w.key("api"); w.value(flood_case_api(run.which));
      w.key("status"); w.value(ok ? "ok" : "failed");
      w.key("note");
      if (r.note[0] != '\0') w.value(r.note);
      else w.null();
      w.key("frees"); w.value(std::uint64_t{r.frees});
      number(w, "seconds_total", v(r.seconds_total));
      number(w, "seconds_producers", v(r.seconds_producers));
      number(w, "barrier_ms", v(r.barrier_ms));
      number(w, "frees_per_s", v(r.frees_per_s));
      number(w, "ratio_vs_call_rcu", call != nullptr ? ratio(v(r.frees_per_s), call->r.frees_per_s) : kNaN);
      number(w, "ratio_vs_defer_rcu", defer != nullptr ? ratio(v(r.frees_per_s), defer->r.frees_per_s) : kNaN);
      number(w, "producer_ns_per_op", v(r.producer_ns_per_op));
      number(w, "peak_pending_bytes_sampled", v(r.peak_pending_bytes_sampled));
      number(w, "peak_pending_bytes_library", v(r.peak_pending_bytes_library));
      number(w, "latency_samples", v(r.latency_samples));
      number(w, "latency_p50_ns", v(r.latency_p50_ns));
      number(w, "latency_p99_ns", v(r.latency_p99_ns));
      number(w, "latency_max_ns", v(r.latency_max_ns));
      number(w, "grace_periods", v(r.grace_periods));
      number(w, "batches", v(r.batches));
      number(w, "batches_elapsed", v(r.batches_elapsed));
      number(w, "producer_waits", v(r.producer_waits));
      number(w, "producer_grace_periods", v(r.producer_grace_periods));
      number(w, "page_faults", v(r.page_faults));
      number(w, "cpu_ms", v(r.cpu_ms));
      number(w, "context_switches", v(r.context_switches));
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }

  w.key("replace");
  if (!o.run_replace) {
    w.null();
  } else {
    const ReplaceRun* sync = find(replace, ReplaceCase::kSynchronize);
    const ReplaceRun* call = find(replace, ReplaceCase::kCallRcu);
    w.begin_object();
    w.key("repeat"); w.value(std::uint64_t{o.repeat});
    w.key("replacements"); w.value(std::uint64_t{o.replacements});
    w.key("array_ints"); w.value(std::uint64_t{o.array_ints});
    w.key("array_memory"); w.value(o.array_slab ? "slab" : "malloc");
    number(w, "block_bytes", replace.empty() ? kNaN : replace.front().r.block_bytes);
    w.key("runs");
    w.begin_array();
    for (const ReplaceRun& run : replace) {
      const ReplaceResult& r = run.r;
      const bool ok = r.status == RunStatus::kOk;
      const bool measured = ok || r.total_ms > 0;
      auto v = [&](double x) { return measured ? x : kNaN; };
      w.begin_object();
      w.key("case"); w.value(replace_case_name(run.which));
      w.key("repetition"); w.value(std::uint64_t{run.repetition + 1});
      w.key("median"); w.value(run.median);
      w.key("api"); w.value(replace_case_api(run.which));
      w.key("status"); w.value(ok ? "ok" : "failed");
      w.key("note");
      if (r.note[0] != '\0') w.value(r.note);
      else w.null();
      number(w, "total_ms", v(r.total_ms));
      number(w, "writer_ms", v(r.writer_ms));
      number(w, "barrier_ms", v(r.barrier_ms));
      number(w, "ratio_vs_synchronize", sync != nullptr ? ratio(v(r.total_ms), sync->r.total_ms) : kNaN);
      number(w, "ratio_vs_call_rcu", call != nullptr ? ratio(v(r.total_ms), call->r.total_ms) : kNaN);
      number(w, "reader_iterations", v(r.reader_iterations));
      number(w, "reader_iterations_per_s", v(r.reader_iterations_per_s));
      number(w, "violations", v(r.violations));
      number(w, "grace_periods", v(r.grace_periods));
      number(w, "peak_pending_bytes_sampled", v(r.peak_pending_bytes_sampled));
      number(w, "peak_pending_bytes_library", v(r.peak_pending_bytes_library));
      number(w, "page_faults", v(r.page_faults));
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  w.end_object();
  std::fputs(w.str().c_str(), stdout);
}

int run(int argc, char** argv) {
  ParseOutcome parsed = parse(argc, argv);
  if (parsed.kind == ParseOutcome::Kind::kHelp) {
    std::fwrite(kHelp.data(), 1, kHelp.size(), stdout);
    return 0;
  }
  if (parsed.kind == ParseOutcome::Kind::kError) {
    std::fprintf(stderr, "mslab-rcu-bench: %s\n", parsed.error.c_str());
    return 2;
  }
  const RcuBenchOptions& o = parsed.options;
  const Machine m = probe_machine(o);
  if (!o.json)
    std::printf("mslab-rcu-bench %s  %s, %u cores, %s, %s; liburcu %s (urcu-memb, sys_membarrier %s)\n", m.date.c_str(),
                m.cpu_model.c_str(), m.cores, m.kernel.c_str(), m.compiler.c_str(), MSLAB_RCU_BENCH_URCU_VERSION,
                m.sys_membarrier ? "yes" : "no");

  bool all_ok = true;
  std::vector<FloodRun> flood;
  // Repetitions go round the cases, so that a noisy stretch of time
  // touches several cases rather than all runs of one.
  if (o.run_flood) {
    for (unsigned rep = 0; rep < o.repeat; ++rep)
      for (FloodCase c : kFloodCases) {
        if (!case_selected(o, flood_case_name(c))) continue;
        flood.push_back({c, rep, run_one<FloodCase, FloodResult, run_flood>(c, o)});
        all_ok = all_ok && flood.back().r.status == RunStatus::kOk;
      }
    mark_medians(flood);
    if (!o.json) print_flood(o, flood);
  }
  std::vector<ReplaceRun> replace;
  if (o.run_replace) {
    for (unsigned rep = 0; rep < o.repeat; ++rep)
      for (ReplaceCase c : kReplaceCases) {
        if (!case_selected(o, replace_case_name(c))) continue;
        replace.push_back({c, rep, run_one<ReplaceCase, ReplaceResult, run_replace>(c, o)});
        all_ok = all_ok && replace.back().r.status == RunStatus::kOk;
      }
    mark_medians(replace);
    if (!o.json) print_replace(o, replace);
  }
  if (o.json) write_json(m, o, flood, replace);
  for (const FloodRun& run : flood)
    if (run.r.status != RunStatus::kOk)
      std::fprintf(stderr, "mslab-rcu-bench: flood/%s (run %u) failed: %s\n", flood_case_name(run.which),
                   run.repetition + 1, run.r.note);
  for (const ReplaceRun& run : replace)
    if (run.r.status != RunStatus::kOk)
      std::fprintf(stderr, "mslab-rcu-bench: replace/%s (run %u) failed: %s\n", replace_case_name(run.which),
                   run.repetition + 1, run.r.note);
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace mslab::bench

int main(int argc, char** argv) { return mslab::bench::run(argc, argv); }
