// The option parser (options.h). Every failure becomes a one-line message
// naming the option and what it accepts; the caller decides how to exit.
#include "bench/options.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

#include "alloc/slab_cache.h"
#include "bench/catalog.h"

namespace mslab::bench {
namespace {

constexpr std::string_view kHelp =
    R"(Usage: mslab-bench [OPTION]...
Measures fragmentation (resident memory against live bytes) and speed of
mslab and of baseline allocators. Every (workload, allocator) pair runs in
its own child process.

Workloads:
  slab   allocate COUNT objects of SIZE bytes, free a random FREE-FRACTION of
         them, then measure RSS / live bytes and the time per alloc and free
  pair   time alloc+free pairs over a ring of RING live objects (allocate one,
         free the oldest); COUNT pairs per round, best of 3 rounds
  kv     a Redis-like store: KEYS values of 16 B to 4 KiB indexed by an
         XArray; erase a random FREE-FRACTION, insert REFILL x KEYS new keys,
         then (mslab-defrag) defragment while THREADS readers load values;
         RSS after fill, after erase, after defrag
  xarray index churn: ENTRIES entries over 8 allocating XArrays (ids from
         ID allocation), each pointing to a payload of 16 B to 4 KiB; erase a
         random FREE-FRACTION, then (mslab-defrag) defragment payloads and
         XArray nodes while THREADS readers load; payloads and nodes both
         come from the allocator under test
Allocators: mslab (SlabCaches, no defrag), mslab-defrag (movable caches and
  one Defragmenter pass; slab, kv and xarray), glibc (malloc), mimalloc (mi_malloc),
  jemalloc (mallocx, loaded at run time; skipped if libjemalloc.so.2 is absent)

Options (--name=value and --name value are both accepted):
  --workload=LIST       comma-separated workloads, or "all" [all]
  --allocator=LIST      comma-separated allocators, or "all" [all]
  --size=BYTES          object size, 1 to 262144 [64]
  --count=N             objects (slab) or pairs per round (pair),
                        1 to 1000000000 [2000000]
  --free-fraction=F     share of the objects (slab), keys (kv) or entries
                        (xarray) freed, 0 to 1 [0.9]
  --seed=N              seed of the freed objects and of the value sizes [1]
  --ring=N              live objects of the pair workload, 1 to 1000000 [256]
  --keys=N              entries the kv workload fills, 1 to 1000000000 [400000]
  --entries=N           entries the xarray workload fills, 1 to 1000000000
                        [400000]
  --refill=F            kv: new keys inserted after the erase, as a share of
                        KEYS, 0 to 1 [0]
  --threads=N           kv, xarray: reader threads loading during the quiet window and
                        the defrag pass, 0 to 64 [1]
  --warm-up=N           kv, xarray: entries of a warm-up run of the same
                        workload and allocator before the RSS baseline,
                        0 (none) to 1000000000 [1000]
  --json                print one JSON document {"machine": ..., "runs": [...]}
  --csv                 print CSV, one header line then one line per run
  --plot=FILE.png       also draw RSS after fill, erase and defrag for each
                        run that has them (needs gnuplot)
  --help, -h            print this help and exit

A progress line is shown on stderr during long phases when stderr is a
terminal.
Exit status: 0 success, 1 a run failed or the plot could not be drawn,
2 bad command line.
Figures and their definitions: docs/benchmarks.md.
)";

struct Parser {
  ParseResult result;
  bool saw_json = false, saw_csv = false;

  // The message quotes what the user typed: control characters in it are
  // written as \xNN, so that the error stays one line (found by the
  // bench_options fuzz target).
  bool fail(std::string_view message) {
    result.kind = ParseResult::Kind::kError;
    result.error.clear();
    for (const char c : message) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u != 0x7f) {
        result.error.push_back(c);
      } else {
        static constexpr char kHex[] = "0123456789abcdef";
        result.error += "\\x";
        result.error.push_back(kHex[u >> 4]);
        result.error.push_back(kHex[u & 15]);
      }
    }
    return false;
  }

  static std::optional<std::uint64_t> to_unsigned(std::string_view text) {
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
    return v;
  }

  bool integer(std::string_view name, std::string_view text, std::uint64_t lo, std::uint64_t hi, std::size_t* out) {
    const std::optional<std::uint64_t> v = to_unsigned(text);
    if (!v || *v < lo || *v > hi)
      return fail("--" + std::string(name) + " must be an integer from " + std::to_string(lo) + " to " +
                  std::to_string(hi) + ", not '" + std::string(text) + "'");
    *out = static_cast<std::size_t>(*v);
    return true;
  }

  bool fraction(std::string_view name, std::string_view text, double* out) {
    double v = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, v, std::chars_format::fixed);
    if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(v) || v < 0.0 || v > 1.0)
      return fail("--" + std::string(name) + " must be a number from 0 to 1, not '" + std::string(text) + "'");
    *out = v;
    return true;
  }

  bool png_path(std::string_view text) {
    if (text.size() < 5 || text.substr(text.size() - 4) != ".png")
      return fail("--plot needs a file name ending in .png, not '" + std::string(text) + "'");
    result.options.plot = std::string(text);
    return true;
  }

  // A comma-separated list of catalog names (or "all"), kept in catalog order.
  template <std::size_t N>
  bool names(std::string_view option, std::string_view text, const std::array<std::string_view, N>& known,
             std::vector<std::string>* out) {
    std::vector<bool> chosen(N, false);
    std::size_t start = 0;
    for (;;) {
      const std::size_t comma = std::min(text.find(',', start), text.size());
      const std::string_view item = text.substr(start, comma - start);
      if (item == "all") {
        chosen.assign(N, true);
      } else {
        const auto it = std::find(known.begin(), known.end(), item);
        if (it == known.end()) {
          std::string list;
          for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
          return fail("--" + std::string(option) + ": unknown name '" + std::string(item) + "' (known: " + list +
                      ", all)");
        }
        chosen[static_cast<std::size_t>(it - known.begin())] = true;
      }
      if (comma == text.size()) break;
      start = comma + 1;
    }
    out->clear();
    for (std::size_t i = 0; i < N; ++i)
      if (chosen[i]) out->emplace_back(known[i]);
    return true;
  }

  bool apply(std::string_view name, std::string_view value) {
    Options& o = result.options;
    if (name == "workload") return names(name, value, kWorkloadNames, &o.workloads);
    if (name == "allocator") return names(name, value, kAllocatorNames, &o.allocators);
    if (name == "size") return integer(name, value, 1, kMaxObjectSize, &o.size);
    if (name == "count") return integer(name, value, 1, kMaxCount, &o.count);
    if (name == "ring") return integer(name, value, 1, kMaxRing, &o.ring);
    if (name == "free-fraction") return fraction(name, value, &o.free_fraction);
    if (name == "refill") return fraction(name, value, &o.refill);
    if (name == "keys") return integer(name, value, 1, kMaxCount, &o.keys);
    if (name == "entries") return integer(name, value, 1, kMaxCount, &o.entries);
    if (name == "warm-up") return integer(name, value, 0, kMaxCount, &o.warm_up);
    if (name == "plot") return png_path(value);
    if (name == "threads") {
      std::size_t t = 0;
      if (!integer(name, value, 0, kMaxThreads, &t)) return false;
      o.threads = static_cast<unsigned>(t);
      return true;
    }
    if (name == "seed") {
      const std::optional<std::uint64_t> v = to_unsigned(value);
      if (!v) return fail("--seed must be an unsigned 64-bit integer, not '" + std::string(value) + "'");
      o.seed = *v;
      return true;
    }
    return fail("unknown option '--" + std::string(name) + "' (see --help)");
  }

  static bool takes_value(std::string_view name) {
    return name == "workload" || name == "allocator" || name == "size" || name == "count" || name == "ring" ||
           name == "free-fraction" || name == "seed" || name == "keys" || name == "entries" || name == "refill" ||
           name == "threads" || name == "plot" || name == "warm-up";
  }

  bool run(int argc, const char* const* argv) {
    for (int i = 0; i < argc; ++i) result.options.argv.emplace_back(argv[i] != nullptr ? argv[i] : "");
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i] != nullptr ? argv[i] : "";
      if (arg == "--help" || arg == "-h") {
        result.kind = ParseResult::Kind::kHelp;
        return true;
      }
      if (arg.size() < 3 || arg.substr(0, 2) != "--")
        return fail(arg.empty() || arg[0] != '-' ? "unexpected argument '" + std::string(arg) + "' (see --help)"
                                                  : "unknown option '" + std::string(arg) + "' (see --help)");
      const std::size_t eq = arg.find('=');
      const std::string_view name = arg.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2);
      if (name == "json" || name == "csv") {
        if (eq != std::string_view::npos) return fail("option --" + std::string(name) + " takes no value");
        (name == "json" ? saw_json : saw_csv) = true;
        continue;
      }
      if (!takes_value(name)) return fail("unknown option '--" + std::string(name) + "' (see --help)");
      std::string_view value;
      if (eq != std::string_view::npos) {
        value = arg.substr(eq + 1);
      } else {
        if (i + 1 >= argc || argv[i + 1] == nullptr) return fail("option --" + std::string(name) + " needs a value");
        value = argv[++i];
      }
      if (!apply(name, value)) return false;
    }
    if (saw_json && saw_csv) return fail("--json and --csv exclude each other");
    Options& o = result.options;
    o.format = saw_json ? OutputFormat::kJson : saw_csv ? OutputFormat::kCsv : OutputFormat::kTable;
    if (o.workloads.empty()) o.workloads.assign(kWorkloadNames.begin(), kWorkloadNames.end());
    if (o.allocators.empty()) o.allocators.assign(kAllocatorNames.begin(), kAllocatorNames.end());
    result.kind = ParseResult::Kind::kRun;
    return true;
  }
};

}  // namespace

ParseResult parse_options(int argc, const char* const* argv) {
  Parser parser;
  parser.run(argc, argv);
  if (parser.result.kind == ParseResult::Kind::kError) parser.result.options = Options{};
  return std::move(parser.result);
}

std::string_view help_text() noexcept { return kHelp; }

}  // namespace mslab::bench
