// The CSV report (report.h): a header of the fields.h keys, then one line
// per run; null is an empty cell, text is quoted when it needs to be
// (RFC 4180).
#include <cstdio>
#include <string>
#include <type_traits>

#include "bench/fields.h"
#include "bench/report.h"

namespace mslab::bench {
namespace {

std::string cell(const FieldValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return {};
        } else if constexpr (std::is_same_v<T, std::string_view>) {
          if (v.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(v);
          std::string q = "\"";
          for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
          return q + "\"";
        } else if constexpr (std::is_same_v<T, double>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.6g", v);
          return buf;
        } else {
          return std::to_string(v);
        }
      },
      value);
}

}  // namespace

void print_csv(std::FILE* out, const std::vector<RunRecord>& runs) {
  std::string line;
  for (const Field& f : run_fields()) line += (line.empty() ? "" : ",") + std::string(f.key);
  std::fprintf(out, "%s\n", line.c_str());
  for (const RunRecord& r : runs) {
    line.clear();
    bool first = true;
    for (const Field& f : run_fields()) {
      if (!first) line += ',';
      first = false;
      line += cell(f.get(r));
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

}  // namespace mslab::bench
