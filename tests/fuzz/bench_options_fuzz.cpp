// Fuzz target: mslab-bench's command-line parser. The input is split at
// NUL bytes into argv[1..]; the parser must never crash, and its outcome
// must keep its contract: a run has every option inside its documented
// range, an error is one non-empty line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/options.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args{"mslab-bench"};
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(data[i]));
    }
  }
  if (!current.empty()) args.push_back(current);
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);

  namespace bench = mslab::bench;
  const bench::ParseResult r = bench::parse_options(static_cast<int>(args.size()), argv.data());
  switch (r.kind) {
    case bench::ParseResult::Kind::kRun: {
      const bench::Options& o = r.options;
      FUZZ_CHECK(o.size >= 1 && o.size <= 262144);
      FUZZ_CHECK(o.count >= 1 && o.count <= bench::kMaxCount);
      FUZZ_CHECK(o.ring >= 1 && o.ring <= bench::kMaxRing);
      FUZZ_CHECK(o.free_fraction >= 0.0 && o.free_fraction <= 1.0);
      FUZZ_CHECK(!o.workloads.empty() && !o.allocators.empty());
      break;
    }
    case bench::ParseResult::Kind::kError:
      FUZZ_CHECK(!r.error.empty());
      FUZZ_CHECK(r.error.find('\n') == std::string::npos);
      break;
    case bench::ParseResult::Kind::kHelp:
      FUZZ_CHECK(!bench::help_text().empty());
      break;
  }
  return 0;
}
