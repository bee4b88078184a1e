// The JSON report (report.h): {"machine": {...}, "runs": [...]}, one run
// object per (workload, allocator) with every key of fields.h.
#include <string_view>
#include <type_traits>

#include "bench/fields.h"
#include "bench/json.h"
#include "bench/report.h"

namespace mslab::bench {

void print_json(std::FILE* out, const MachineInfo& m, const std::vector<RunRecord>& runs) {
  JsonWriter w;
  auto put = [&w](std::string_view key, auto value) {
    w.key(key);
    w.value(value);
  };
  w.begin_object();
  w.key("machine");
  w.begin_object();
  put("cpu_model", m.cpu_model);
  put("cores", std::uint64_t{m.cores});
  put("kernel", m.kernel);
  put("date", m.date);
  put("compiler", m.compiler);
  put("build_type", m.build_type);
  put("sanitizers", m.sanitizers);
  put("mslab_check_level", std::int64_t{m.check_level});
  put("mslab_version", m.mslab_version);
  put("glibc_version", m.glibc_version);
  put("mimalloc_version", m.mimalloc_version);
  put("page_fault_ns", m.page_fault_ns);
  put("process_malloc_is_mimalloc", m.process_malloc_is_mimalloc);
  put("command", m.command);
  w.end_object();
  w.key("runs");
  w.begin_array();
  for (const RunRecord& r : runs) {
    w.begin_object();
    for (const Field& f : run_fields()) {
      w.key(f.key);
      std::visit(
          [&](const auto& v) {
            if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>)
              w.null();
            else
              w.value(v);
          },
          f.get(r));
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
  std::fputs(w.str().c_str(), out);
}

}  // namespace mslab::bench
