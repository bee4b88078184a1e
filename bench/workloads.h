// The workload table of mslab-bench, in catalog order. A workload is a
// type with a name (kName), `static std::string describe(const Options&)`,
// `template <class A> static constexpr bool kSupports` (which allocators
// it runs with) and either (kFixedSize true) `template <FixedAllocator A>
// static void run(A&, const Options&, RunRecord&)` — given an adapter
// opened for --size — or (kFixedSize false, or A not a FixedAllocator:
// mslab-defrag) `template <class A> static void run(const Options&,
// RunRecord&)`, which opens its own. run fills the
// record's figures (or marks it failed). `kWarmUp`: whether the runner
// first runs it with --warm-up entries, unrecorded (registry.cpp; only
// workloads of the second form). To add one: write it, append it here and
// its name to catalog.h.
#pragma once

#include <tuple>

#include "bench/workload_kv.h"
#include "bench/workload_pair.h"
#include "bench/workload_slab.h"
#include "bench/workload_xarray.h"

namespace mslab::bench {

using AllWorkloads = std::tuple<SlabWorkload, PairWorkload, KvWorkload, XarrayWorkload>;

}  // namespace mslab::bench
