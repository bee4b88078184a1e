// MSLAB_* environment options (options.h). getenv() reads environ without
// allocating, so this is safe on the first malloc call.
#include "malloc/options.h"

#include <cstdlib>

#include "alloc/page_allocator.h"
#include "alloc/platform.h"
#include "malloc/stats.h"

namespace mslab {
namespace {

constinit MallocOptions g_options;
constinit bool g_loaded = false;

bool flag(const char* name) noexcept {
  const char* v = std::getenv(name);
  return v != nullptr && (v[0] == '1' || v[0] == 'y' || v[0] == 'Y' || v[0] == 't' || v[0] == 'T');
}

bool parse_long(const char* text, long* out) noexcept {
  bool negative = *text == '-';
  if (negative) ++text;
  if (*text < '0' || *text > '9') return false;
  long v = 0;
  for (; *text >= '0' && *text <= '9'; ++text) v = v * 10 + (*text - '0');
  if (*text != '\0') return false;
  *out = negative ? -v : v;
  return true;
}

void warn(const char* name) noexcept {
  char line[96] = "mslab: ignoring malformed ";
  std::size_t n = 26;
  for (std::size_t i = 0; name[i] != '\0' && n < sizeof line - 1; ++i) line[n++] = name[i];
  line[n] = '\0';
  os::write_error_line(line);
}

}  // namespace

const MallocOptions& malloc_options() noexcept { return g_options; }

void set_memory_limit(std::size_t bytes) noexcept {
  g_options.limit = bytes;
  os::set_reserve_limit(bytes);
}

namespace detail {

bool parse_size(const char* text, std::size_t* bytes) noexcept {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  std::size_t v = 0;
  for (; *text >= '0' && *text <= '9'; ++text) v = v * 10 + static_cast<std::size_t>(*text - '0');
  unsigned shift = 0;
  switch (*text) {
    case '\0': break;
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    default: return false;
  }
  if (*text != '\0' && text[1] != '\0' && !((text[1] == 'b' || text[1] == 'B') && text[2] == '\0')) return false;
  *bytes = v << shift;
  return true;
}

void load_options() noexcept {
  g_options.show_stats = flag("MSLAB_SHOW_STATS");
  g_options.verbose = flag("MSLAB_VERBOSE");
  if (const char* v = std::getenv("MSLAB_PURGE_DELAY")) {
    long ms = 0;
    if (parse_long(v, &ms) && ms >= -1) {
      g_options.purge_delay_ms = ms;
      PagePolicy policy = PageAllocator::global().policy();
      if (ms < 0)
        policy.purge_order = kMaxOrder + 1;  // no free block is ever old enough
      else
        policy.purge_delay_ms = static_cast<std::uint32_t>(ms);
      PageAllocator::global().set_policy(policy);
    } else {
      warn("MSLAB_PURGE_DELAY");
    }
  }
  if (const char* v = std::getenv("MSLAB_LIMIT")) {
    std::size_t bytes = 0;
    if (parse_size(v, &bytes))
      set_memory_limit(bytes);
    else
      warn("MSLAB_LIMIT");
  }
  g_loaded = true;
  if (g_options.verbose) print_options();
}

}  // namespace detail
}  // namespace mslab

// Statistics at exit: a destructor of this library, not atexit(), because
// registering with atexit from inside the first malloc could allocate.
__attribute__((destructor)) static void mslab_show_stats_at_exit() {
  if (mslab::g_loaded && mslab::g_options.show_stats) mslab::print_stats();
}
