// The keys of a run in the JSON and CSV reports, in output order, each with
// the function that reads it from a RunRecord. One table for both formats,
// so they never disagree; docs/benchmarks.md documents every key.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <variant>

#include "bench/record.h"

namespace mslab::bench {

/// monostate = null.
using FieldValue = std::variant<std::monostate, std::string_view, std::uint64_t, std::int64_t, double>;

struct Field {
  std::string_view key;
  FieldValue (*get)(const RunRecord&);
};

std::span<const Field> run_fields() noexcept;

std::string_view status_name(RunStatus status) noexcept;

}  // namespace mslab::bench
