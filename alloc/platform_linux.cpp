// Linux implementation of the platform layer (platform.h). This is the one
// file of mslab that calls mmap, munmap, madvise and mincore or reads /proc.
#include "alloc/platform.h"

#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace mslab::os {
namespace {

std::atomic<std::size_t> g_reserved{0};
std::atomic<std::size_t> g_limit{0};
std::atomic<long> g_fail_countdown{-1};  // < 0: disarmed
std::atomic<bool> g_fail_sticky{false};

// Consumes one step of the failure plan; true if this call must fail.
bool injected_failure() noexcept {
  long n = g_fail_countdown.load(std::memory_order_relaxed);
  while (n >= 0) {
    if (n == 0) {
      if (g_fail_sticky.load(std::memory_order_relaxed)) return true;
      if (g_fail_countdown.compare_exchange_weak(n, -1, std::memory_order_relaxed))
        return true;
      continue;
    }
    if (g_fail_countdown.compare_exchange_weak(n, n - 1, std::memory_order_relaxed))
      return false;
  }
  return false;
}

void* map_anonymous(std::size_t size, int extra_flags) noexcept {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

// Maps `size` bytes aligned to `alignment`: over-maps by alignment - page
// and trims both ends, since the kernel gives page alignment only.
void* map_aligned(std::size_t size, std::size_t alignment, int extra_flags) noexcept {
  if (alignment <= page_size()) return map_anonymous(size, extra_flags);
  const std::size_t span = size + alignment - page_size();
  auto* raw = static_cast<char*>(map_anonymous(span, extra_flags));
  if (raw == nullptr) return nullptr;
  const auto addr = reinterpret_cast<std::uintptr_t>(raw);
  auto* aligned = reinterpret_cast<char*>((addr + alignment - 1) & ~(alignment - 1));
  if (aligned > raw) ::munmap(raw, static_cast<std::size_t>(aligned - raw));
  char* end = aligned + size;
  if (end < raw + span) ::munmap(end, static_cast<std::size_t>(raw + span - end));
  return aligned;
}

}  // namespace

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

bool charge(std::size_t size) noexcept {
  if (injected_failure()) return false;
  const std::size_t limit = g_limit.load(std::memory_order_relaxed);
  const std::size_t before = g_reserved.fetch_add(size, std::memory_order_relaxed);
  if (limit != 0 && before + size > limit) {
    g_reserved.fetch_sub(size, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void uncharge(std::size_t size) noexcept { g_reserved.fetch_sub(size, std::memory_order_relaxed); }

void* reserve_aligned(std::size_t size, std::size_t alignment) noexcept {
  if (!charge(size)) return nullptr;
  void* p = map_aligned(size, alignment, 0);
  if (p == nullptr) uncharge(size);
  return p;
}

void release(void* addr, std::size_t size) noexcept {
  ::munmap(addr, size);
  uncharge(size);
}

void* resize(void* addr, std::size_t old_size, std::size_t new_size) noexcept {
  if (new_size > old_size) {
    if (injected_failure()) return nullptr;
    const std::size_t grow = new_size - old_size;
    const std::size_t limit = g_limit.load(std::memory_order_relaxed);
    const std::size_t before = g_reserved.fetch_add(grow, std::memory_order_relaxed);
    if (limit != 0 && before + grow > limit) {
      g_reserved.fetch_sub(grow, std::memory_order_relaxed);
      return nullptr;
    }
    void* p = ::mremap(addr, old_size, new_size, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) {
      g_reserved.fetch_sub(grow, std::memory_order_relaxed);
      return nullptr;
    }
    return p;
  }
  void* p = ::mremap(addr, old_size, new_size, 0);  // shrinking never moves
  if (p == MAP_FAILED) return nullptr;
  g_reserved.fetch_sub(old_size - new_size, std::memory_order_relaxed);
  return p;
}

void purge(void* addr, std::size_t size) noexcept {
  ::madvise(addr, size, MADV_DONTNEED);
}

std::size_t resident_in(const void* addr, std::size_t size) noexcept {
  // One byte per page; query in pieces so the vector stays on the stack.
  constexpr std::size_t kPiece = 512;
  unsigned char vec[kPiece];
  const std::size_t page = page_size();
  std::size_t resident = 0;
  auto* p = static_cast<char*>(const_cast<void*>(addr));
  for (std::size_t done = 0; done < size; done += kPiece * page) {
    const std::size_t len = size - done < kPiece * page ? size - done : kPiece * page;
    if (::mincore(p + done, len, vec) != 0) return 0;
    for (std::size_t i = 0; i < (len + page - 1) / page; ++i) resident += (vec[i] & 1) ? page : 0;
  }
  return resident;
}

void* map_metadata(std::size_t size) noexcept {
  if (injected_failure()) return nullptr;
  return map_anonymous(size, 0);
}

void unmap_metadata(void* addr, std::size_t size) noexcept { ::munmap(addr, size); }

void* map_sparse(std::size_t size, std::size_t alignment) noexcept {
  return map_aligned(size, alignment, MAP_NORESERVE);
}

std::size_t resident_bytes() noexcept {
  // statm: size resident shared text lib data dt (in pages). Read with plain
  // syscalls: this may run inside malloc, where stdio is off limits.
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* s = buf;
  while (*s != '\0' && *s != ' ') ++s;  // skip "size"
  std::size_t pages = 0;
  for (++s; *s >= '0' && *s <= '9'; ++s) pages = pages * 10 + static_cast<std::size_t>(*s - '0');
  return pages * page_size();
}

void write_error_line(const char* text) noexcept {
  char line[512];
  std::size_t len = 0;
  while (text[len] != '\0' && len < sizeof line - 1) {
    line[len] = text[len];
    ++len;
  }
  line[len++] = '\n';
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, line, len);
}

void set_reserve_limit(std::size_t bytes) noexcept { g_limit.store(bytes, std::memory_order_relaxed); }

std::size_t reserved_bytes() noexcept { return g_reserved.load(std::memory_order_relaxed); }

void inject_failure(long n, bool sticky) noexcept {
  g_fail_sticky.store(sticky, std::memory_order_relaxed);
  g_fail_countdown.store(n, std::memory_order_relaxed);
}

}  // namespace mslab::os
