// The allocator table of mslab-bench: the shape every allocator adapter has
// (the FixedAllocator concept) and the list of adapters, in catalog order.
// Workloads are templates over this shape, so their hot loops call each
// allocator directly — no virtual call sits between a workload and malloc.
// To add an allocator: write an adapter, append it here and its name to
// catalog.h.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "bench/adapter_glibc.h"
#include "bench/adapter_jemalloc.h"
#include "bench/adapter_mimalloc.h"
#include "bench/adapter_mslab.h"
#include "bench/adapter_mslab_defrag.h"

namespace mslab::bench {

/// An allocator of objects of one size, fixed by open(). An adapter may
/// also have `static void prepare_process(char** argv)`, called in the
/// parent before any run when the allocator is selected.
template <class A>
concept FixedAllocator = std::default_initializable<A> &&
    requires(A a, const A ca, void* p, std::size_t n, std::string* why) {
      { A::kName } -> std::convertible_to<std::string_view>;
      { A::kSettle } -> std::convertible_to<std::string_view>;  // what settle() calls, for the report
      { a.open(n, why) } -> std::same_as<bool>;                  // false: skip the run, *why says why
      { a.alloc() } noexcept -> std::same_as<void*>;             // nullptr when out of memory
      { a.free(p) } noexcept;
      { a.settle() } noexcept;  // give back what the allocator can before RSS is read
      { ca.verify(p, n, why) } -> std::same_as<bool>;  // p really is ours; n objects live
      { ca.free_2m_blocks() } -> std::same_as<std::optional<std::uint64_t>>;
      { ca.version() } -> std::same_as<std::string>;
    };

/// Every allocator name of the catalog; MslabDefragAllocator is not a
/// FixedAllocator (workloads say which allocators they support).
using AllAllocators =
    std::tuple<MslabAllocator, MslabDefragAllocator, GlibcAllocator, MimallocAllocator, JemallocAllocator>;

}  // namespace mslab::bench
