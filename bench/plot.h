// --plot FILE.png: draws RSS after the three phases (fill, free/erase,
// defrag) for each run that measured them, one line per run, by piping a
// script with inline data to gnuplot (Debian's gnuplot-nox; the Makefile's
// set-up installs it).
#pragma once

#include <string>
#include <vector>

#include "bench/record.h"

namespace mslab::bench {

/// Writes the PNG. False with *why set when gnuplot is missing or fails, or
/// no run has the three figures.
bool plot_rss(const std::string& path, const std::vector<RunRecord>& runs, std::string* why);

}  // namespace mslab::bench
