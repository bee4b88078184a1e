// Command-line options of mslab-bench and their parser. The parser is pure:
// no I/O, no exit(), no global state, so tests and a fuzz target can call it
// with any argv and inspect the outcome.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mslab::bench {

enum class OutputFormat { kTable, kJson, kCsv };

struct Options {
  std::vector<std::string> workloads;   // catalog order, no duplicates; all by default
  std::vector<std::string> allocators;  // catalog order, no duplicates; all by default
  std::size_t size = 64;                // object size in bytes, 1 … 262144
  std::size_t count = 2'000'000;        // objects (slab) or timed pairs per round (pair)
  std::size_t ring = 256;               // live objects of the pair workload
  double free_fraction = 0.9;           // share of the objects (slab) or keys (kv) freed
  std::uint64_t seed = 1;               // seeds the choice of the freed objects and the value sizes
  std::size_t keys = 400'000;           // entries the kv workload fills
  std::size_t entries = 400'000;        // entries the xarray workload fills (over all its arrays)
  double refill = 0.0;                  // kv: new keys inserted after the erase, × keys
  unsigned threads = 1;                 // kv, xarray: reader threads
  std::size_t warm_up = 1000;           // kv, xarray: entries of the warm-up run before the baseline (0: none)
  std::string plot;                     // --plot: PNG file to draw, empty for none
  OutputFormat format = OutputFormat::kTable;
  std::vector<std::string> argv;        // the command line, for the report
};

struct ParseResult {
  enum class Kind { kRun, kHelp, kError };
  Kind kind = Kind::kError;
  Options options;    // valid when kind == kRun
  std::string error;  // one line, no trailing newline, when kind == kError
};

inline constexpr std::size_t kMaxCount = 1'000'000'000;
inline constexpr std::size_t kMaxRing = 1'000'000;
inline constexpr std::size_t kMaxThreads = 64;

/// Parses argv (argv[0] is the program name). Accepts `--name=value` and
/// `--name value`; a repeated option takes its last value.
ParseResult parse_options(int argc, const char* const* argv);

/// The text printed by --help.
std::string_view help_text() noexcept;

}  // namespace mslab::bench
