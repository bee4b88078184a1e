// The names mslab-bench knows: its workloads and allocators, in run order.
// Kept apart from the implementations so that the option parser (and a fuzz
// target over it) needs none of them; registry.cpp checks at compile time
// that these lists match the workload and allocator tables.
#pragma once

#include <array>
#include <string_view>

namespace mslab::bench {

inline constexpr std::array<std::string_view, 4> kWorkloadNames{"slab", "pair", "kv", "xarray"};
inline constexpr std::array<std::string_view, 5> kAllocatorNames{"mslab", "mslab-defrag", "glibc", "mimalloc",
                                                                 "jemalloc"};

/// The allocator every ns/op is compared with in the terminal table.
inline constexpr std::string_view kReferenceAllocator = "mimalloc";

}  // namespace mslab::bench
