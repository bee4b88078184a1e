// The reference model of an XArray that the differential test and the
// XArray fuzz target compare against: a std::map from index to entry and
// marks (an empty entry is a reserved slot). No test framework in here.
#pragma once

#include <map>

#include "xarray/xarray.h"

namespace mslab::xatest {

struct ModelSlot {
  Entry entry;         // empty = reserved
  unsigned marks = 0;  // bit m
};
using Model = std::map<unsigned long, ModelSlot>;

inline Entry model_load(const Model& m, unsigned long i) {
  auto it = m.find(i);
  return it == m.end() ? Entry{} : it->second.entry;
}

// First present entry at ≥ i and ≤ max (with the filter's mark, if any).
inline Model::const_iterator model_find(const Model& m, unsigned long i, unsigned long max, XaFilter f) {
  for (auto it = m.lower_bound(i); it != m.end() && it->first <= max; ++it) {
    if (it->second.entry.empty()) continue;
    if (f.is_mark() && !((it->second.marks >> f.mark) & 1)) continue;
    return it;
  }
  return m.end();
}

// The lowest index in [min, max] that the model does not hold (free).
inline bool model_free(const Model& m, unsigned long min, unsigned long max, unsigned long* out) {
  if (min > max) return false;
  unsigned long i = min;
  for (auto it = m.lower_bound(min); it != m.end() && it->first == i; ++it) {
    if (i == max) return false;
    ++i;
  }
  *out = i;
  return true;
}

}  // namespace mslab::xatest
