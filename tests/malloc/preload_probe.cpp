// Run under LD_PRELOAD=libmslab_preload.so by CTest: calls the C allocation
// functions by their plain names and checks that mslab answers them (its
// size classes give malloc_usable_size(malloc(100)) == 112, glibc 104),
// with glibc's contracts. Also allocates in threads, across fork, in a
// static constructor and in an exit handler. Exit status 0 = all good;
// each failure prints a line.
#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

int g_failures = 0;

void expect(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "preload_probe: FAILED %s\n", what);
  ++g_failures;
}

bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

void* before_main = std::malloc(77);  // a static constructor allocates

void* worker(void*) {
  for (int i = 0; i < 100000; ++i) {
    void* p = std::malloc(static_cast<std::size_t>(i % 2000));
    std::free(p);
  }
  return std::malloc(64);  // freed by main: a cross-thread free after exit
}

void at_exit() {
  void* p = std::malloc(1000);
  std::free(p);
  std::free(before_main);
}

}  // namespace

int main() {
  void* p = std::malloc(100);
  expect(malloc_usable_size(p) == 112, "malloc is mslab's (usable size of 100 is 112)");
  std::free(p);
  expect(malloc_usable_size(before_main) == 80, "static constructors allocate from mslab");

  auto* z = static_cast<unsigned char*>(std::calloc(1000, 10));
  bool zero = z != nullptr;
  for (int i = 0; zero && i < 10000; ++i) zero = z[i] == 0;
  expect(zero, "calloc zeroes");
  z = static_cast<unsigned char*>(std::realloc(z, 100000));
  expect(z != nullptr && z[9999] == 0, "realloc keeps contents");
  std::free(z);

  void* a = nullptr;
  expect(posix_memalign(&a, 4096, 100) == 0 && aligned(a, 4096), "posix_memalign 4096");
  std::free(a);
  expect(posix_memalign(&a, 24, 100) == EINVAL, "posix_memalign rejects 24");
  a = aligned_alloc(256, 512);
  expect(a != nullptr && aligned(a, 256), "aligned_alloc");
  std::free(a);
  a = memalign(64, 10);
  expect(a != nullptr && aligned(a, 64), "memalign");
  std::free(a);
  a = valloc(10);
  expect(a != nullptr && aligned(a, 4096), "valloc");
  std::free(a);
  a = pvalloc(5000);
  expect(a != nullptr && aligned(a, 4096) && malloc_usable_size(a) >= 8192, "pvalloc rounds to pages");
  std::free(a);
  errno = 0;
  expect(std::malloc(SIZE_MAX / 2) == nullptr && errno == ENOMEM, "huge failure sets ENOMEM");
  expect(std::realloc(std::malloc(10), 0) == nullptr, "realloc(p, 0) frees");

  pthread_t threads[4];
  for (pthread_t& t : threads) pthread_create(&t, nullptr, worker, nullptr);
  for (pthread_t& t : threads) {
    void* r = nullptr;
    pthread_join(t, &r);
    std::free(r);
  }

  const pid_t pid = fork();
  if (pid == 0) {
    void* q = std::malloc(5000);
    std::free(q);
    _exit(q != nullptr ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child allocates");

  std::atexit(at_exit);
  std::printf("preload_probe: %s\n", g_failures == 0 ? "ok" : "FAILED");
  return g_failures == 0 ? 0 : 1;
}
