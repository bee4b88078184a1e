// Runs one benchmark in a forked child, so that every run starts from the
// same clean process image and its RSS is its own. The child sends its
// RunRecord back through a pipe and leaves with _exit (no atexit handlers,
// no stdio flush: the parent owns stdout).
#pragma once

#include "bench/registry.h"

namespace mslab::bench {

/// Runs `spec` in a child process. A child that crashes, exits non-zero or
/// sends a short record yields a kFailed record saying so.
RunRecord run_in_child(const RunSpec& spec, const Options& options);

}  // namespace mslab::bench
