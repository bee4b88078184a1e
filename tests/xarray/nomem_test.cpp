// Injected node-allocation failure (check_xa_err): every writer that needs
// a node returns kNoMemory and leaves the array exactly as it was — entries,
// marks, node count, no node leaked — whichever allocation fails.
#include <vector>

#include "rcu/deferred_free.h"

#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

namespace {

struct Snapshot {
  std::vector<std::pair<unsigned long, Entry>> entries, marked0;
  std::size_t nodes;
  bool empty, any_marked;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const FailingArray& xa) {
  Snapshot s;
  for (auto [i, e] : xa) s.entries.emplace_back(i, e);
  for (auto [i, e] : xa.marked_range(0)) s.marked0.emplace_back(i, e);
  s.nodes = xa.stats().nodes;
  s.empty = xa.empty();
  s.any_marked = xa.marked(0);
  return s;
}

// Builds one of several starting shapes.
void build(FailingArray& xa, int shape) {
  switch (shape) {
    case 0: break;                                  // empty
    case 1: xa.store(0, index_entry(0)); break;     // a head entry
    case 2:                                         // a small tree
      for (unsigned long i = 0; i < 20; ++i) xa.store(i, index_entry(i));
      break;
    case 3:                                         // a sparse, deep tree
      xa.store(5, index_entry(5));
      xa.store(1UL << 33, index_entry(33));
      break;
    default:                                        // a reserved head
      xa.reserve(0);
      break;
  }
  xa.set_mark(0, 0);
  xa.set_mark(5, 0);
}

}  // namespace

TEST_CASE("no memory: the array is unchanged and nothing leaks") {
  const unsigned long targets[] = {1, 7, 64, 4097, 1UL << 33, (1UL << 33) + 9, 1UL << 50, ~0UL};
  for (int shape = 0; shape < 5; ++shape) {
    for (unsigned long index : targets) {
      for (long fail_at = 0;; ++fail_at) {
        CAPTURE(shape);
        CAPTURE(index);
        CAPTURE(fail_at);
        FailingArray xa;
        build(xa, shape);
        const Snapshot before = snapshot(xa);
        rcu::barrier();  // earlier arrays' nodes: freed, so `live` is stable
        const long live = FailingNodeAlloc::live.load();
        const int op = static_cast<int>(fail_at % 4);
        FailingNodeAlloc::arm(fail_at);
        XaError err;
        switch (op) {
          case 0: err = xa.store(index, fake_pointer(index & 0xffff)).error(); break;
          case 1: err = xa.insert(index, index_entry(index)); break;
          case 2: err = xa.reserve(index); break;
          default: err = xa.compare_exchange(index, Entry{}, index_entry(1)).error(); break;
        }
        const bool failed = FailingNodeAlloc::countdown.load() == -1 && err != XaError::kOk;
        FailingNodeAlloc::disarm();
        if (!failed) {
          // fail_at was beyond the nodes this store needed: it succeeded.
          REQUIRE(err == XaError::kOk);
          if (op != 2) REQUIRE_FALSE(xa.load(index).empty());
          break;
        }
        REQUIRE(err == XaError::kNoMemory);
        REQUIRE(snapshot(xa) == before);
        REQUIRE(FailingNodeAlloc::live.load() == live);
        REQUIRE(xa.load(index).empty());
        // and the array still works
        REQUIRE(xa.store(index, index_entry(3)).ok());
        REQUIRE(xa.load(index) == index_entry(3));
      }
    }
  }
}

TEST_CASE("no memory: erase, marks, release and loads never allocate") {
  FailingArray xa;
  for (unsigned long i = 0; i < 100; ++i) xa.store(i * 1000, index_entry(i));
  xa.reserve(7);
  FailingNodeAlloc::arm(0, true);
  CHECK(xa.set_mark(5000, 1) == XaError::kOk);
  CHECK(xa.get_mark(5000, 1));
  CHECK(xa.clear_mark(5000, 1) == XaError::kOk);
  CHECK(xa.store(3000, index_entry(9)).ok());  // overwrite: path exists
  CHECK(xa.store(7, index_entry(7)).ok());     // into a reservation
  xa.release(7);
  CHECK(xa.erase(7) == index_entry(7));
  for (unsigned long i = 0; i < 100; ++i) CHECK(!xa.erase(i * 1000).empty());
  CHECK(xa.empty());
  CHECK(xa.store(1, index_entry(1)).error() == XaError::kNoMemory);
  CHECK(xa.store(0, index_entry(0)).ok());  // the head needs no node
  FailingNodeAlloc::disarm();
}
