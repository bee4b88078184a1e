// jemalloc adapter (adapter_jemalloc.h): the re-exec that makes room for
// its TLS, loading it privately, and talking to it through mallctl.
#include "bench/adapter_jemalloc.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace mslab::bench {
namespace {

constexpr const char* kLibrary = "libjemalloc.so.2";
constexpr const char* kTunable = "glibc.rtld.optional_static_tls=8192";
constexpr const char* kReexecMark = "MSLAB_BENCH_STATIC_TLS";  // set once we re-executed

}  // namespace

void JemallocAllocator::prepare_process(char** argv) noexcept {
  if (std::getenv(kReexecMark) != nullptr) return;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::strstr(tunables, "optional_static_tls") != nullptr) return;  // the user chose
  std::string value = tunables != nullptr && *tunables != '\0' ? std::string(tunables) + ":" + kTunable : kTunable;
  if (setenv("GLIBC_TUNABLES", value.c_str(), 1) != 0 || setenv(kReexecMark, "1", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: exec failed. Carry on without the tunable.
}

bool JemallocAllocator::open(std::size_t object_size, std::string* why) {
  size_ = object_size;
  // Never dlclose'd: jemalloc registers fork handlers and thread-exit hooks.
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    *why = std::string("jemalloc unavailable: ") + dlerror();
    return false;
  }
  mallocx_ = reinterpret_cast<void* (*)(std::size_t, int)>(dlsym(lib, "mallocx"));
  dallocx_ = reinterpret_cast<void (*)(void*, int)>(dlsym(lib, "dallocx"));
  mallctl_ = reinterpret_cast<MallctlFn>(dlsym(lib, "mallctl"));
  if (mallocx_ == nullptr || dallocx_ == nullptr || mallctl_ == nullptr) {
    *why = std::string(kLibrary) + " lacks mallocx, dallocx or mallctl (a prefixed build?)";
    return false;
  }
  if (version().empty()) {
    *why = "jemalloc's mallctl(\"version\") does not answer";
    return false;
  }
  return true;
}

void JemallocAllocator::settle() noexcept {
  mallctl_("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  mallctl_("arena.4096.purge", nullptr, nullptr, nullptr, 0);  // 4096 = MALLCTL_ARENAS_ALL
}

bool JemallocAllocator::verify(const void*, std::size_t live_objects, std::string* why) const {
  std::uint64_t epoch = 1;
  std::size_t len = sizeof epoch;
  std::size_t allocated = 0;
  std::size_t alen = sizeof allocated;
  // Statistics are snapshots refreshed by writing "epoch".
  if (mallctl_("epoch", &epoch, &len, &epoch, len) != 0 ||
      mallctl_("stats.allocated", &allocated, &alen, nullptr, 0) != 0) {
    *why = "jemalloc's statistics do not answer (built without --enable-stats?)";
    return false;
  }
  if (allocated < live_objects * size_) {
    *why = "jemalloc counts " + std::to_string(allocated) + " bytes allocated, expected at least " +
           std::to_string(live_objects * size_);
    return false;
  }
  return true;
}

std::string JemallocAllocator::version() const {
  const char* v = nullptr;
  std::size_t len = sizeof v;
  if (mallctl_("version", &v, &len, nullptr, 0) != 0 || v == nullptr) return {};
  return v;
}

}  // namespace mslab::bench
