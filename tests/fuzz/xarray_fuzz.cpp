// Fuzz target: XArray operation sequences against the std::map model
// (tests/xarray/xa_model.h). The first byte picks the fan-out — 64 slots,
// or 8 (shift 3) so that trees get deep with few entries — then each op is
// a few bytes: what to do, where (an index from a small pool that makes
// neighbours, deep paths, 0 and ULONG_MAX likely), with which entry and
// mark. Every result is compared; the whole array is compared at the end
// and after every clear.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "fuzz_input.h"
#include "xarray/xa_model.h"
#include "xarray/xarray.h"

namespace {

using mslab::Entry;
using mslab::XaError;
using mslab::XaFilter;
using mslab::XaMark;
using mslab::XaResult;
using mslab::fuzz::Input;
using mslab::xatest::Model;
using mslab::xatest::model_find;
using mslab::xatest::model_load;

unsigned long pick_index(Input& in, const Model& model) {
  switch (in.below(8)) {
    case 0: return in.below(16);                              // the head and the first leaf
    case 1: return in.u16();                                  // dense
    case 2: return static_cast<unsigned long>(in.below(64)) << in.below(58);  // deep paths
    case 3: return ~0UL - in.below(8);                        // the top of the range
    case 4: return in.u64();                                  // anywhere
    default: {                                                // next to an existing index
      if (model.empty()) return in.below(100);
      auto it = model.lower_bound(in.u64());
      if (it == model.end()) it = model.begin();
      return it->first + in.below(3) - 1;
    }
  }
}

Entry pick_entry(Input& in) {
  switch (in.below(4)) {
    case 0: return Entry{};
    case 1: return Entry::value(in.u64() & Entry::kMaxValue);
    default: return Entry::pointer(reinterpret_cast<void*>((std::uintptr_t{in.u16()} + 1) << 2));
  }
}

template <class Array>
void check_all(const Array& xa, const Model& model) {
  std::vector<std::pair<unsigned long, Entry>> got, want;
  for (auto [index, e] : xa) got.emplace_back(index, e);
  for (const auto& [k, s] : model)
    if (!s.entry.empty()) want.emplace_back(k, s.entry);
  FUZZ_CHECK(got == want);
  FUZZ_CHECK(xa.empty() == model.empty());
  for (XaMark m = 0; m < mslab::kXaMarks; ++m) {
    bool any = false;
    for (const auto& [k, s] : model) any = any || ((s.marks >> m) & 1);
    FUZZ_CHECK(xa.marked(m) == any);
  }
}

template <class Array>
void run(Input& in) {
  Array xa;
  Model model;
  while (!in.done()) {
    const unsigned op = in.below(12);
    const unsigned long i = pick_index(in, model);
    const XaMark mk = in.below(mslab::kXaMarks + 1);  // 3 is an invalid mark
    switch (op) {
      case 0: case 1: {  // store (an empty entry erases)
        const Entry e = pick_entry(in);
        const XaResult r = xa.store(i, e);
        FUZZ_CHECK(r.ok());
        FUZZ_CHECK(r.entry() == model_load(model, i));
        if (e.empty()) model.erase(i);
        else model[i].entry = e;
        break;
      }
      case 2: {
        FUZZ_CHECK(xa.erase(i) == model_load(model, i));
        model.erase(i);
        break;
      }
      case 3: {  // insert: an empty entry reserves
        const Entry e = pick_entry(in);
        const XaError r = xa.insert(i, e);
        if (model.count(i)) {
          FUZZ_CHECK(r == XaError::kBusy);
        } else {
          FUZZ_CHECK(r == XaError::kOk);
          model[i].entry = e;
        }
        break;
      }
      case 4: {  // compare_exchange, half the time with the right expectation
        const Entry cur = model_load(model, i);
        const Entry expected = in.below(2) ? cur : pick_entry(in);
        const Entry desired = pick_entry(in);
        const XaResult r = xa.compare_exchange(i, expected, desired);
        FUZZ_CHECK(r.ok());
        FUZZ_CHECK(r.entry() == cur);
        if (cur == expected) {
          if (desired.empty()) model.erase(i);
          else model[i].entry = desired;
        }
        break;
      }
      case 5: {  // reserve / release
        if (in.below(2)) {
          FUZZ_CHECK(xa.reserve(i) == XaError::kOk);
          if (!model.count(i)) model[i] = {};
        } else {
          xa.release(i);
          if (auto it = model.find(i); it != model.end() && it->second.entry.empty()) model.erase(it);
        }
        break;
      }
      case 6: {  // set / clear mark; mark 3 is rejected
        const bool set = in.below(3) != 0;
        const XaError r = set ? xa.set_mark(i, mk) : xa.clear_mark(i, mk);
        if (mk >= mslab::kXaMarks) {
          FUZZ_CHECK(r == XaError::kInvalid);
          break;
        }
        FUZZ_CHECK(r == XaError::kOk);
        if (auto it = model.find(i); it != model.end() && !it->second.entry.empty()) {
          if (set) it->second.marks |= 1u << mk;
          else it->second.marks &= ~(1u << mk);
        }
        break;
      }
      case 7: {  // load and get_mark
        FUZZ_CHECK(xa.load(i) == model_load(model, i));
        if (mk < mslab::kXaMarks) {
          auto it = model.find(i);
          FUZZ_CHECK(xa.get_mark(i, mk) == (it != model.end() && ((it->second.marks >> mk) & 1)));
        }
        break;
      }
      case 8: case 9: {  // find / find_after, present or marked, bounded or not
        const XaFilter f = mk < mslab::kXaMarks && in.below(2) ? XaFilter::marked(mk) : XaFilter::present();
        const unsigned long max = in.below(4) ? ~0UL : i + in.u16();
        unsigned long idx = i;
        const bool after = op == 9;
        const Entry e = after ? xa.find_after(&idx, max, f) : xa.find(&idx, max, f);
        Model::const_iterator it = model.end();
        if (!after) it = model_find(model, i, max, f);
        else if (i != ~0UL) it = model_find(model, i + 1, max, f);
        if (it == model.end() || max < i) {
          FUZZ_CHECK(e.empty());
          FUZZ_CHECK(idx == i);
        } else {
          FUZZ_CHECK(e == it->second.entry);
          FUZZ_CHECK(idx == it->first);
        }
        break;
      }
      case 10: {  // a bounded range, compared whole
        const unsigned long last = i + in.u16();
        std::vector<std::pair<unsigned long, Entry>> got, want;
        for (auto [index, e] : xa.range(i, last)) got.emplace_back(index, e);
        for (auto it = model.lower_bound(i); it != model.end() && it->first <= last && last >= i; ++it)
          if (!it->second.entry.empty()) want.emplace_back(it->first, it->second.entry);
        FUZZ_CHECK(got == want);
        break;
      }
      default: {  // now and then: everything, or clear
        check_all(xa, model);
        if (in.below(4) == 0) {
          xa.clear();
          model.clear();
          FUZZ_CHECK(xa.empty());
          FUZZ_CHECK(xa.stats().nodes == 0);
        }
        break;
      }
    }
  }
  check_all(xa, model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  if (in.below(2) == 0)
    run<mslab::BasicXArray<6>>(in);
  else
    run<mslab::BasicXArray<3>>(in);
  return 0;
}
