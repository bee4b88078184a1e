// The slab order rule: how big a slab is for a given object size and
// alignment, and where its objects start. Pure arithmetic, no state.
// Depends on: slab (header size).
#pragma once

#include <cstddef>
#include <cstdint>

namespace mslab::detail {

inline constexpr std::size_t kMinObjectsPerSlab = 8;
inline constexpr std::size_t kMaxWasteFraction = 8;  // waste ≤ slab_bytes / 8

struct SlabGeometry {
  unsigned order;            // slab = 2^order pages
  std::size_t stride;        // object size rounded up to the alignment
  std::size_t capacity;      // objects per slab
  std::size_t objects_offset;  // header + links, rounded up to the alignment
  std::size_t waste;         // slab bytes holding neither objects nor their slot metadata
};

/// Chooses the geometry for objects of `size` bytes aligned to `align`
/// (a power of two): the smallest order with at least kMinObjectsPerSlab
/// objects and waste (header + padding + tail; the 4 bytes of slot metadata
/// per object — link and state — are not waste) ≤ 1/`max_waste_fraction`
/// of the slab; if none, the order with the least waste fraction. `size`
/// must be in 1 … kMaxObjectSize, `max_waste_fraction` ≥ 1. A larger
/// fraction trades bigger slabs (more memory per partial or owned slab)
/// for less waste in every full one.
SlabGeometry compute_slab_geometry(std::size_t size, std::size_t align,
                                   std::size_t max_waste_fraction = kMaxWasteFraction) noexcept;

}  // namespace mslab::detail
