// mslab-bench: the project's benchmark program. Parses the command line,
// runs every selected (workload, allocator) pair in its own child process
// and prints the results as a table, JSON or CSV. See --help and
// docs/benchmarks.md.
#include <cstdio>
#include <string>
#include <vector>

#include "bench/child.h"
#include "bench/machine.h"
#include "bench/options.h"
#include "bench/plot.h"
#include "bench/progress.h"
#include "bench/registry.h"
#include "bench/report.h"

int main(int argc, char** argv) {
  using namespace mslab::bench;
  const ParseResult parsed = parse_options(argc, argv);
  if (parsed.kind == ParseResult::Kind::kHelp) {
    std::fwrite(help_text().data(), 1, help_text().size(), stdout);
    return 0;
  }
  if (parsed.kind == ParseResult::Kind::kError) {
    std::fprintf(stderr, "mslab-bench: %s\n", parsed.error.c_str());
    return 2;
  }
  const Options& options = parsed.options;
  prepare_allocators(options, argv);  // may re-execute this program

  const MachineInfo machine = probe_machine(options);
  std::vector<RunRecord> runs;
  bool any_failed = false;
  const std::vector<RunSpec> plan = plan_runs(options);
  for (const RunSpec& spec : plan) {
    const std::string label = "[" + std::to_string(runs.size() + 1) + "/" + std::to_string(plan.size()) + "] " +
                              std::string(spec.workload) + "/" + std::string(spec.allocator);
    Progress::show(label);
    runs.push_back(run_in_child(spec, options));
    any_failed |= runs.back().status == RunStatus::kFailed;
  }
  Progress::show("");

  switch (options.format) {
    case OutputFormat::kTable: print_table(stdout, machine, describe_workloads(options), runs); break;
    case OutputFormat::kJson: print_json(stdout, machine, runs); break;
    case OutputFormat::kCsv: print_csv(stdout, runs); break;
  }
  // Skipped and failed runs are in every format; say so on stderr too, where
  // a script reading stdout still shows them to a person.
  if (options.format != OutputFormat::kTable)
    for (const RunRecord& r : runs)
      if (r.status != RunStatus::kOk)
        std::fprintf(stderr, "mslab-bench: %s %s/%s: %s\n", r.status == RunStatus::kSkipped ? "skipped" : "failed",
                     r.workload, r.allocator, r.note);
  if (!options.plot.empty()) {
    std::string why;
    if (!plot_rss(options.plot, runs, &why)) {
      std::fprintf(stderr, "mslab-bench: --plot: %s\n", why.c_str());
      return 1;
    }
  }
  return any_failed ? 1 : 0;
}
