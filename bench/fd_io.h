// Whole-buffer read/write on a pipe, retried across EINTR and short
// transfers; shared by the forked-child runners of both benchmark programs.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace mslab::bench {

// Writes all n bytes; false on error or a closed pipe.
inline bool write_all(int fd, const void* data, std::size_t n) noexcept {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// Reads up to n bytes, stopping early only at end of file or an error;
// returns the count read (a short count means the writer died).
inline std::size_t read_all(int fd, void* data, std::size_t n) noexcept {
  char* p = static_cast<char*>(data);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t k = ::read(fd, p + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    got += static_cast<std::size_t>(k);
  }
  return got;
}

}  // namespace mslab::bench
