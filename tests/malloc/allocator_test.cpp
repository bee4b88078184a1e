// mslab::allocator<T> in standard containers, and the per-class mixin.
#include <doctest/doctest.h>

#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <vector>

#include "malloc/allocator.h"
#include "malloc/cache_allocated.h"

using namespace mslab;

namespace {

struct Session : CacheAllocated<Session> {
  static constexpr const char* kCacheName = "session";
  std::uint64_t id;
  char payload[40];
  explicit Session(std::uint64_t i) : id(i) {}
};

struct alignas(64) Line : CacheAllocated<Line> {
  char bytes[64];
};

struct Derived : Session {
  explicit Derived(std::uint64_t i) : Session(i) {}
  char more[500];
};

}  // namespace

TEST_CASE("containers run on mslab::allocator") {
  std::vector<int, allocator<int>> v;
  for (int i = 0; i < 100000; ++i) v.push_back(i);
  CHECK(v[99999] == 99999);
  using String = std::basic_string<char, std::char_traits<char>, allocator<char>>;
  std::map<int, String, std::less<>, allocator<std::pair<const int, String>>> m;
  for (int i = 0; i < 1000; ++i) m.emplace(i, String(100, 'x'));
  CHECK(m.size() == 1000);
  CHECK(m[500].size() == 100);
  std::list<double, allocator<double>> l(1000, 1.5);
  CHECK(l.size() == 1000);
  struct alignas(128) Wide {
    char b[128];
  };
  std::vector<Wide, allocator<Wide>> w(10);
  CHECK(reinterpret_cast<std::uintptr_t>(w.data()) % 128 == 0);
  CHECK(allocator<int>() == allocator<double>());
  CHECK_THROWS_AS((void)allocator<std::uint64_t>().allocate(SIZE_MAX / 4), std::bad_array_new_length);
}

TEST_CASE("the mixin allocates from the class's own cache") {
  std::vector<Session*> sessions;
  for (int i = 0; i < 1000; ++i) sessions.push_back(new Session(i));
  for (Session* s : sessions) CHECK(SlabCache::cache_of(s) == Session::cache());
  CHECK(std::string(Session::cache()->name()) == "session");
  CHECK(Session::cache()->stats().live_objects >= 1000);
  for (Session* s : sessions) delete s;
  Line* line = new Line;
  CHECK(reinterpret_cast<std::uintptr_t>(line) % 64 == 0);
  CHECK(SlabCache::cache_of(line) == Line::cache());
  delete line;
  // A larger derived class does not fit the cache: the global new serves it.
  Derived* d = new Derived(7);
  CHECK(SlabCache::cache_of(d) != Session::cache());
  delete d;
}
