// mslab::new_delete: every replaced operator form lands in mslab, the
// new_handler loop and std::bad_alloc on out of memory (via the limit),
// nullptr from the nothrow forms. Linked with mslab::new_delete.
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "malloc/malloc.h"
#include "malloc/options.h"

using namespace mslab;

namespace {

bool ours(const void* p) { return mslab::usable_size(p) != 0; }
bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

struct alignas(256) Over {
  char b[300];
};

int g_handler_calls = 0;
void release_limit_handler() {
  ++g_handler_calls;
  set_memory_limit(0);  // the handler "frees memory": the retry succeeds
}

}  // namespace

TEST_CASE("every operator new/delete form goes through mslab") {
  void* p = ::operator new(40);
  CHECK(ours(p));
  ::operator delete(p);
  p = ::operator new[](400);
  CHECK(ours(p));
  ::operator delete[](p);
  p = ::operator new(40, std::nothrow);
  CHECK(ours(p));
  ::operator delete(p, std::nothrow);
  p = ::operator new[](40, std::nothrow);
  CHECK(ours(p));
  ::operator delete[](p, std::nothrow);
  p = ::operator new(40);
  ::operator delete(p, 40);
  p = ::operator new[](40);
  ::operator delete[](p, 40);
  for (std::size_t a = 32; a <= 8192; a <<= 1) {
    const auto al = std::align_val_t{a};
    p = ::operator new(100, al);
    CHECK((ours(p) && aligned(p, a)));
    ::operator delete(p, al);
    p = ::operator new[](5000, al);
    CHECK((ours(p) && aligned(p, a)));
    ::operator delete[](p, al);
    p = ::operator new(100, al, std::nothrow);
    CHECK((ours(p) && aligned(p, a)));
    ::operator delete(p, al, std::nothrow);
    p = ::operator new[](100, al, std::nothrow);
    CHECK((ours(p) && aligned(p, a)));
    ::operator delete[](p, al, std::nothrow);
    p = ::operator new(100, al);
    ::operator delete(p, 100, al);
    p = ::operator new[](100, al);
    ::operator delete[](p, 100, al);
  }
  auto* o = new Over;
  CHECK(aligned(o, 256));
  delete o;
  auto* arr = new Over[3];
  CHECK(aligned(arr, 256));
  delete[] arr;
  std::vector<std::string> strings(1000, std::string(100, 'q'));
  CHECK(ours(strings.data()));
  auto shared = std::make_shared<std::string>(200, 'z');
  CHECK(ours(shared->data()));
}

TEST_CASE("out of memory: bad_alloc, nullptr for nothrow, the new_handler loop") {
  mslab::trim();
  set_memory_limit(16 << 20);
  CHECK_THROWS_AS((void)::operator new(std::size_t{64} << 20), std::bad_alloc);
  CHECK_THROWS_AS((void)::operator new[](std::size_t{64} << 20), std::bad_alloc);
  CHECK_THROWS_AS((void)::operator new(std::size_t{64} << 20, std::align_val_t{4096}), std::bad_alloc);
  CHECK(::operator new(std::size_t{64} << 20, std::nothrow) == nullptr);
  CHECK(::operator new[](std::size_t{64} << 20, std::nothrow) == nullptr);
  CHECK(::operator new(std::size_t{64} << 20, std::align_val_t{64}, std::nothrow) == nullptr);
  CHECK(::operator new[](std::size_t{64} << 20, std::align_val_t{64}, std::nothrow) == nullptr);
  CHECK_THROWS_AS((void)std::vector<char>(std::size_t{64} << 20), std::bad_alloc);

  std::set_new_handler(release_limit_handler);
  void* p = ::operator new(std::size_t{64} << 20);
  std::set_new_handler(nullptr);
  CHECK(g_handler_calls == 1);
  CHECK(p != nullptr);
  ::operator delete(p);
  set_memory_limit(0);
}
