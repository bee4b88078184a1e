// The three renderings of a benchmark's results: an aligned table for the
// terminal, one JSON document, and CSV. Each writes the whole report to
// `out`; the table also lists skipped and failed runs under it.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "bench/machine.h"
#include "bench/record.h"

namespace mslab::bench {

/// `setup` describes the selected workloads (describe_workloads()), one line each.
void print_table(std::FILE* out, const MachineInfo& machine, const std::string& setup,
                 const std::vector<RunRecord>& runs);
void print_json(std::FILE* out, const MachineInfo& machine, const std::vector<RunRecord>& runs);
void print_csv(std::FILE* out, const std::vector<RunRecord>& runs);

}  // namespace mslab::bench
