// Differential test: random operations on an XArray and on a std::map
// model, every result compared. Fixed seeds; 1 M operations in a plain
// build (fewer under sanitizers); the index mix makes both dense leaves and
// deep sparse paths, and hits index 0 (the head entry) and ULONG_MAX.
// The same runs again on allocating arrays (base 0 and 1), adding alloc and
// alloc_cyclic against a model that finds the lowest free key by walking
// the map, with marks 1 and 2 only (mark 0 is the array's free mark).
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "xa_model.h"
#include "xa_test_util.h"

using namespace mslab;
using namespace mslab::xatest;

namespace {

class Runner {
 public:
  explicit Runner(std::uint64_t seed, XaFlags flags = XaFlags::kNone) : rng_(seed), xa_(flags), flags_(flags) {}

  unsigned long pick_index() {
    switch (rng_() % 8) {
      case 0: return rng_() % 16;                          // the head and the first leaf
      case 1: case 2: return rng_() % 2000;                // dense
      case 3: return (rng_() % 64) << (rng_() % 58);       // powers-of-two-ish, deep paths
      case 4: return ~0UL - rng_() % 8;                    // the top of the range
      case 5: return rng_();                               // anywhere
      default: {                                           // near an existing index
        if (model_.empty()) return rng_() % 100;
        auto it = model_.lower_bound(rng_());
        if (it == model_.end()) it = model_.begin();
        return it->first + rng_() % 3 - 1;
      }
    }
  }
  Entry pick_entry() {
    return rng_() % 2 ? Entry::value(rng_() & Entry::kMaxValue) : fake_pointer(rng_() % 1000000);
  }

  void step() {
    const unsigned long i = pick_index();
    const bool alloc_mode = flags_ != XaFlags::kNone;
    const XaMark mk = alloc_mode ? 1 + rng_() % 2 : rng_() % kXaMarks;
    switch (rng_() % (alloc_mode ? 15 : 13)) {
      case 0: case 1: case 2: {  // store; storing empty reserves in an allocating array
        const Entry e = alloc_mode && rng_() % 16 == 0 ? Entry{} : pick_entry();
        const XaResult r = xa_.store(i, e);
        REQUIRE(r.ok());
        REQUIRE(r.entry() == model_load(model_, i));
        auto& s = model_[i];
        if (e.empty()) s.marks = 0;
        s.entry = e;
        break;
      }
      case 3: case 4: {  // erase
        REQUIRE(xa_.erase(i) == model_load(model_, i));
        model_.erase(i);
        break;
      }
      case 5: {  // insert (an empty entry reserves)
        const Entry e = rng_() % 8 ? pick_entry() : Entry{};
        const XaError r = xa_.insert(i, e);
        if (model_.count(i)) {
          REQUIRE(r == XaError::kBusy);
        } else {
          REQUIRE(r == XaError::kOk);
          model_[i].entry = e;
        }
        break;
      }
      case 6: {  // compare_exchange, half the time with the right expectation
        const Entry cur = model_load(model_, i);
        const Entry expected = rng_() % 2 ? cur : pick_entry();
        const Entry desired = rng_() % 4 ? pick_entry() : Entry{};
        const XaResult r = xa_.compare_exchange(i, expected, desired);
        REQUIRE(r.ok());
        REQUIRE(r.entry() == cur);
        if (cur == expected) {
          if (desired.empty()) model_.erase(i);
          else if (auto it = model_.find(i); it != model_.end()) it->second.entry = desired;
          else model_[i].entry = desired;
        }
        break;
      }
      case 7: {  // reserve / release
        if (rng_() % 2) {
          REQUIRE(xa_.reserve(i) == XaError::kOk);
          if (!model_.count(i)) model_[i] = ModelSlot{};
        } else {
          xa_.release(i);
          if (auto it = model_.find(i); it != model_.end() && it->second.entry.empty()) model_.erase(it);
        }
        break;
      }
      case 8: {  // set / clear mark
        const bool set = rng_() % 3 != 0;
        REQUIRE((set ? xa_.set_mark(i, mk) : xa_.clear_mark(i, mk)) == XaError::kOk);
        if (auto it = model_.find(i); it != model_.end() && !it->second.entry.empty()) {
          if (set) it->second.marks |= 1u << mk;
          else it->second.marks &= ~(1u << mk);
        }
        break;
      }
      case 9: {  // load and get_mark
        const Entry e = model_load(model_, i);
        REQUIRE(xa_.load(i) == e);
        auto it = model_.find(i);
        const bool m = it != model_.end() && ((it->second.marks >> mk) & 1);
        REQUIRE(xa_.get_mark(i, mk) == m);
        break;
      }
      case 10: case 11: {  // find / find_after, present or marked
        const XaFilter f = rng_() % 2 ? XaFilter::present() : XaFilter::marked(mk);
        const unsigned long max = rng_() % 4 ? ~0UL : i + rng_() % 5000;
        unsigned long idx = i;
        const bool after = rng_() % 2;
        const Entry e = after ? xa_.find_after(&idx, max, f) : xa_.find(&idx, max, f);
        Model::const_iterator it = model_.end();
        if (!after) it = model_find(model_, i, max, f);
        else if (i != ~0UL) it = model_find(model_, i + 1, max, f);
        if (it == model_.end()) {
          REQUIRE(e.empty());
          REQUIRE(idx == i);
        } else {
          REQUIRE(e == it->second.entry);
          REQUIRE(idx == it->first);
        }
        break;
      }
      case 13: {  // alloc
        const unsigned long min = rng_() % 4 ? i : 0;
        const unsigned long span = rng_() % 3000;
        const unsigned long max = rng_() % 2 || min > ~0UL - span ? ~0UL : min + span;
        const Entry e = rng_() % 8 ? pick_entry() : Entry{};
        const XaAllocResult r = xa_.alloc(e, {min, max});
        unsigned long want;
        const unsigned long lo = flags_ == XaFlags::kAlloc1 && min == 0 ? 1 : min;
        if (!model_free(model_, lo, max, &want)) {
          REQUIRE(r.error() == XaError::kBusy);
        } else {
          REQUIRE(r.ok());
          REQUIRE(r.id() == want);
          model_[want].entry = e;
        }
        break;
      }
      case 14: {  // alloc_cyclic over a small range, so that it wraps
        const unsigned long min = rng_() % 2 ? 0 : i;
        const unsigned long span = rng_() % 600;
        const XaLimit limit{min, min > ~0UL - span ? ~0UL : min + span};
        const Entry e = pick_entry();
        if (rng_() % 64 == 0) next_ = rng_() % 2 ? ~0UL : rng_();
        unsigned long next = next_;
        const XaAllocResult r = xa_.alloc_cyclic(e, limit, next);
        const unsigned long floor = flags_ == XaFlags::kAlloc1 && limit.min == 0 ? 1 : limit.min;
        const unsigned long from = std::max(floor, next_);
        unsigned long want;
        bool wrapped = false;
        bool found = model_free(model_, from, limit.max, &want);
        if (!found && from > floor) wrapped = found = model_free(model_, floor, limit.max, &want);
        if (!found) {
          REQUIRE(r.error() == XaError::kBusy);
          REQUIRE(next == next_);
        } else {
          REQUIRE(r.ok());
          REQUIRE(r.id() == want);
          REQUIRE(r.wrapped() == (wrapped || wrapped_flag_));
          next_ = want + 1;
          wrapped_flag_ = next_ == 0;
          REQUIRE(next == next_);
          model_[want].entry = e;
        }
        break;
      }
      default: {  // array-level questions
        REQUIRE(xa_.empty() == model_.empty());
        if (rng_() % 32 == 0) {  // the model answers "marked" by a walk: not every time
          bool any = false;
          for (const auto& [k, s] : model_) any = any || ((s.marks >> mk) & 1);
          REQUIRE(xa_.marked(mk) == any);
        }
        break;
      }
    }
  }

  void check_all() {
    std::vector<std::pair<unsigned long, Entry>> got, want;
    for (auto [index, e] : xa_) got.emplace_back(index, e);
    for (const auto& [k, s] : model_)
      if (!s.entry.empty()) want.emplace_back(k, s.entry);
    REQUIRE(got == want);
  }

  void run(std::size_t ops) {
    for (std::size_t n = 0; n < ops; ++n) {
      step();
      if (n % 20000 == 0) check_all();
      // Now and then drain the array so the tree shrinks back and regrows.
      if (n % 100000 == 99999) {
        if (rng_() % 2) {
          for (auto it = model_.begin(); it != model_.end();) {
            REQUIRE(xa_.erase(it->first) == it->second.entry);
            it = model_.erase(it);
          }
          REQUIRE(xa_.stats().nodes == 0);
        } else {
          xa_.clear();
          model_.clear();
        }
        REQUIRE(xa_.empty());
      }
    }
    check_all();
  }

  std::size_t model_size() const { return model_.size(); }

 private:
  std::mt19937_64 rng_;
  XArray xa_;
  Model model_;
  XaFlags flags_;
  unsigned long next_ = 0;     // alloc_cyclic's cursor
  bool wrapped_flag_ = false;  // the model of "next wrapped past ULONG_MAX"
};

}  // namespace

TEST_CASE("differential: random operations against a std::map model") {
  // The model's "marked" check walks the map: keep it small by a bounded
  // index mix; 1 M operations in total over four seeds.
  const std::size_t per_seed = scaled(250000);
  for (std::uint64_t seed : {1ULL, 42ULL, 0xdeadbeefULL, 20240601ULL}) {
    CAPTURE(seed);
    Runner r(seed);
    r.run(per_seed);
  }
}

TEST_CASE("differential: allocating arrays, with alloc and alloc_cyclic") {
  const std::size_t per_seed = scaled(200000);
  for (XaFlags flags : {XaFlags::kAlloc, XaFlags::kAlloc1}) {
    for (std::uint64_t seed : {7ULL, 99ULL}) {
      CAPTURE(seed);
      CAPTURE(static_cast<int>(flags));
      Runner r(seed, flags);
      r.run(per_seed);
    }
  }
}
