// mslab-xarray-bench: mslab's XArray against std::map (behind a
// std::shared_mutex), absl::btree_map, JudyL and liburcu's rculfhash —
// load, store, erase, ordered iteration, find-next, bytes per entry (dense
// and sparse keys), and one reader against one writer. All containers run
// in one process, one after the other, and are reported as ratios to the
// XArray from that one run. Prints aligned tables or, with --json, one JSON
// document (docs/benchmarks.md). Exit: 0 ok, 1 a container answered wrong,
// 2 bad command line.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "bench/json.h"
#include "bench/xarray_bench.h"
#include "xarray/xarray.h"

#ifndef MSLAB_XARRAY_BENCH_BUILD_TYPE
#define MSLAB_XARRAY_BENCH_BUILD_TYPE "unknown"
#endif

namespace mslab::bench::xb {
namespace {

constexpr std::string_view kHelp =
    R"(Usage: mslab-xarray-bench [options]

mslab's XArray against std::map (behind a std::shared_mutex), absl::btree_map
and JudyL (each behind a std::shared_mutex) and liburcu's rculfhash
(urcu-memb, presized). Single thread: store, load, iterate, find-next and
erase over a dense (0 ... N-1) and a sparse (random keys below 2^32) pattern,
ns per operation and the ratio to the XArray; bytes per entry; then one
reader thread loading random keys, alone and while one writer thread
stores and erases, in Mops/s.

Options (--name=value or --name value):
  --n=N             dense entries, 1024 ... 2^26                  [1048576]
  --sparse-n=N      sparse entries, 16 ... 2^26; 0 = N/8          [0]
  --seconds=S       reader/writer phase per container, 0.01 ... 60 [0.4]
  --containers=LIST only these (comma-separated): xarray, std::map,
                    absl::btree_map, JudyL, rculfhash              [all]
  --json            one JSON document on stdout
  --help, -h        this text
)";

bool parse_size(std::string_view text, std::size_t lo, std::size_t hi, std::size_t& out) {
  std::size_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

// Returns "" and fills `o`, "help", or the error message.
std::string parse(int argc, char** argv, Options& o) {
  for (int i = 0; i < argc; ++i) o.argv.emplace_back(argv[i]);
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return "help";
    if (arg.substr(0, 2) != "--") return "unexpected argument '" + std::string(arg) + "' (see --help)";
    std::string_view name = arg.substr(2), value;
    const std::size_t eq = name.find('=');
    if (eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "json") {
      if (eq != std::string_view::npos) return "--json takes no value";
      o.json = true;
      continue;
    }
    if (name != "n" && name != "sparse-n" && name != "seconds" && name != "containers")
      return "unknown option '--" + std::string(name) + "' (see --help)";
    if (eq == std::string_view::npos) {
      if (i + 1 >= argc) return "--" + std::string(name) + " needs a value";
      value = argv[++i];
    }
    const std::string bad = "bad value '" + std::string(value) + "' for --" + std::string(name);
    if (name == "n") {
      if (!parse_size(value, 1024, std::size_t{1} << 26, o.n)) return bad;
    } else if (name == "sparse-n") {
      if (!parse_size(value, 0, std::size_t{1} << 26, o.sparse_n) || (o.sparse_n != 0 && o.sparse_n < 16)) return bad;
    } else if (name == "seconds") {
      char* end = nullptr;
      const std::string text(value);
      o.seconds = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !(o.seconds >= 0.01 && o.seconds <= 60)) return bad;
    } else {
      o.containers.clear();
      for (std::size_t start = 0; start <= value.size();) {
        std::size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) comma = value.size();
        const std::string one(value.substr(start, comma - start));
        const auto& all = container_names();
        if (std::find(all.begin(), all.end(), one) == all.end()) return "unknown container '" + one + "'";
        o.containers.push_back(one);
        start = comma + 1;
      }
    }
  }
  return "";
}

struct Machine {
  std::string cpu_model = "unknown", kernel = "unknown", date, compiler, command;
  unsigned cores = 0;
};

Machine probe(const Options& o) {
  Machine m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos) m.cpu_model = line.substr(line.find_first_not_of(' ', colon + 1));
    break;
  }
  m.cores = static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN));
  utsname u{};
  if (uname(&u) == 0) m.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  char buf[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  m.date = buf;
#if defined(__clang__)
  m.compiler = "clang " __clang_version__;
#else
  m.compiler = "gcc " __VERSION__;
#endif
  for (const std::string& a : o.argv) m.command += (m.command.empty() ? "" : " ") + a;
  return m;
}

// ---- Reports --------------------------------------------------------------

double ratio(double value, double base) { return base > 0 && std::isfinite(value) ? value / base : NAN; }

void print_table(const Options& o, const Machine& m, const Results& r) {
  std::vector<std::string> names;
  for (const std::string& c : container_names())
    if (o.containers.empty() || std::find(o.containers.begin(), o.containers.end(), c) != o.containers.end())
      names.push_back(c);
  std::printf("mslab-xarray-bench  %s  %s, %u cores  %s  %s build\n", m.date.c_str(), m.cpu_model.c_str(), m.cores,
              m.compiler.c_str(), MSLAB_XARRAY_BENCH_BUILD_TYPE);
  std::printf("XArray fan-out %u; dense n=%zu\n\n", XArray::kChunkSize, o.n);

  std::printf("Single thread, ns per operation (ratio: container / xarray; > 1 = xarray faster)\n");
  std::printf("%-8s %-20s", "pattern", "operation");
  for (const std::string& c : names) std::printf(" %22s", c.c_str());
  std::printf("\n");
  std::map<std::string, double> base;  // pattern/op → xarray's figure
  for (const OpResult& op : r.ops)
    if (op.container == "xarray") base[op.pattern + "/" + op.op] = op.ns_per_op;
  std::vector<std::pair<std::string, std::string>> rows;
  for (const OpResult& op : r.ops)
    if (std::find(rows.begin(), rows.end(), std::pair{op.pattern, op.op}) == rows.end()) rows.emplace_back(op.pattern, op.op);
  for (const auto& row : rows) {
    const std::string& pattern = row.first;  // (clang 14 cannot capture structured bindings)
    const std::string& opname = row.second;
    std::printf("%-8s %-20s", pattern.c_str(), opname.c_str());
    for (const std::string& c : names) {
      auto it = std::find_if(r.ops.begin(), r.ops.end(), [&](const OpResult& x) {
        return x.pattern == pattern && x.op == opname && x.container == c;
      });
      char cell[64] = "-";
      if (it != r.ops.end() && std::isfinite(it->ns_per_op)) {
        const double q = ratio(it->ns_per_op, base[pattern + "/" + it->op]);
        if (c == "xarray" || !std::isfinite(q)) std::snprintf(cell, sizeof cell, "%.1f", it->ns_per_op);
        else std::snprintf(cell, sizeof cell, "%.1f (%.2fx)", it->ns_per_op, q);
      }
      std::printf(" %22s", cell);
    }
    std::printf("\n");
  }

  std::printf("(rculfhash iterates in hash order and has no find-next)\n");
  std::printf("\nMemory after storing every entry, bytes per entry\n%-8s %-20s", "pattern", "entries");
  for (const std::string& c : names) std::printf(" %22s", c.c_str());
  std::printf("\n");
  for (const char* pattern : {"dense", "sparse"}) {
    std::size_t entries = 0;
    for (const MemResult& x : r.memory)
      if (x.pattern == pattern) entries = x.entries;
    std::printf("%-8s %-20zu", pattern, entries);
    for (const std::string& c : names) {
      char cell[32] = "-";
      for (const MemResult& x : r.memory)
        if (x.pattern == pattern && x.container == c)
          std::snprintf(cell, sizeof cell, "%.1f", static_cast<double>(x.bytes) / static_cast<double>(x.entries));
      std::printf(" %22s", cell);
    }
    std::printf("\n");
  }

  std::printf("\nOne reader (random loads, half hits) and one writer (stores/erases), dense n=%zu, Mops/s\n", o.n);
  std::printf("%-16s %14s %22s %14s\n", "container", "reader alone", "reader with writer", "writer");
  double base_reader = 0, base_writer = 0;
  for (const ConcResult& x : r.concurrent)
    if (x.container == "xarray") base_reader = x.reader_mops, base_writer = x.writer_mops;
  for (const ConcResult& x : r.concurrent) {
    char rd[48], wr[48];
    std::snprintf(rd, sizeof rd, "%.2f (%.2fx)", x.reader_mops, ratio(x.reader_mops, base_reader));
    std::snprintf(wr, sizeof wr, "%.2f (%.2fx)", x.writer_mops, ratio(x.writer_mops, base_writer));
    std::printf("%-16s %14.2f %22s %14s\n", x.container.c_str(), x.reader_alone_mops, rd, wr);
  }
  std::printf("(reader/writer ratios: container / xarray; > 1 = container faster)\n");
}

void print_json(const Options& o, const Machine& m, const Results& r) {
  JsonWriter w;
  w.begin_object();
  w.key("machine");
  w.begin_object();
  const std::pair<const char*, const std::string*> text[] = {
      {"cpu_model", &m.cpu_model}, {"kernel", &m.kernel}, {"date", &m.date}, {"compiler", &m.compiler},
      {"command", &m.command}};
  for (const auto& [key, value] : text) {
    w.key(key);
    w.value(*value);
  }
  w.key("cores");
  w.value(std::uint64_t{m.cores});
  w.key("build_type");
  w.value(MSLAB_XARRAY_BENCH_BUILD_TYPE);
  w.key("xarray_chunk_size");
  w.value(std::uint64_t{XArray::kChunkSize});
  w.end_object();
  w.key("config");
  w.begin_object();
  w.key("n"); w.value(std::uint64_t{o.n});
  w.key("seconds"); w.value(o.seconds);
  w.end_object();
  std::map<std::string, double> base;
  for (const OpResult& op : r.ops)
    if (op.container == "xarray") base[op.pattern + "/" + op.op] = op.ns_per_op;
  w.key("operations");
  w.begin_array();
  for (const OpResult& op : r.ops) {
    w.begin_object();
    w.key("pattern"); w.value(op.pattern);
    w.key("op"); w.value(op.op);
    w.key("container"); w.value(op.container);
    w.key("ns_per_op"); w.value(op.ns_per_op);
    w.key("ratio_vs_xarray"); w.value(ratio(op.ns_per_op, base.count(op.pattern + "/" + op.op) ? base[op.pattern + "/" + op.op] : NAN));
    w.end_object();
  }
  w.end_array();
  w.key("memory");
  w.begin_array();
  for (const MemResult& x : r.memory) {
    w.begin_object();
    w.key("pattern"); w.value(x.pattern);
    w.key("container"); w.value(x.container);
    w.key("entries"); w.value(std::uint64_t{x.entries});
    w.key("bytes"); w.value(std::uint64_t{x.bytes});
    w.key("bytes_per_entry"); w.value(static_cast<double>(x.bytes) / static_cast<double>(x.entries));
    w.end_object();
  }
  w.end_array();
  double base_reader = 0, base_writer = 0;
  for (const ConcResult& x : r.concurrent)
    if (x.container == "xarray") base_reader = x.reader_mops, base_writer = x.writer_mops;
  w.key("concurrent");
  w.begin_array();
  for (const ConcResult& x : r.concurrent) {
    w.begin_object();
    w.key("container"); w.value(x.container);
    w.key("reader_alone_mops"); w.value(x.reader_alone_mops);
    w.key("reader_mops"); w.value(x.reader_mops);
    w.key("writer_mops"); w.value(x.writer_mops);
    w.key("reader_ratio_vs_xarray"); w.value(ratio(x.reader_mops, base_reader));
    w.key("writer_ratio_vs_xarray"); w.value(ratio(x.writer_mops, base_writer));
    w.end_object();
  }
  w.end_array();
  w.key("error");
  if (r.error.empty()) w.null();
  else w.value(r.error);
  w.end_object();
  std::printf("%s\n", w.str().c_str());
}

}  // namespace
}  // namespace mslab::bench::xb

int main(int argc, char** argv) {
  using namespace mslab::bench::xb;
  Options o;
  const std::string problem = parse(argc, argv, o);
  if (problem == "help") {
    std::fwrite(kHelp.data(), 1, kHelp.size(), stdout);
    return 0;
  }
  if (!problem.empty()) {
    std::fprintf(stderr, "mslab-xarray-bench: %s\n", problem.c_str());
    return 2;
  }
  const Machine m = probe(o);
  const Results r = run_all(o);
  if (o.json) print_json(o, m, r);
  else print_table(o, m, r);
  if (!r.error.empty()) {
    std::fprintf(stderr, "mslab-xarray-bench: %s\n", r.error.c_str());
    return 1;
  }
  return 0;
}
