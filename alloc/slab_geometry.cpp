// The slab order rule (slab_geometry.h).
#include "alloc/slab_geometry.h"

#include "alloc/slab.h"

namespace mslab::detail {
namespace {

std::size_t round_up(std::size_t n, std::size_t align) noexcept { return (n + align - 1) & ~(align - 1); }

SlabGeometry geometry_for_order(unsigned order, std::size_t stride, std::size_t align) noexcept {
  const std::size_t bytes = order_bytes(order);
  // Largest capacity whose header + links + objects fit; the offset depends
  // on the capacity (2-byte links), so start from the estimate and step down.
  std::size_t capacity = (bytes - sizeof(Slab)) / (stride + kSlotMetadata);
  if (capacity > kMaxSlabObjects) capacity = kMaxSlabObjects;
  std::size_t offset = 0;
  while (capacity > 0) {
    offset = round_up(sizeof(Slab) + capacity * kSlotMetadata, align);
    if (offset + capacity * stride <= bytes) break;
    --capacity;
  }
  return SlabGeometry{order, stride, capacity, offset, bytes - capacity * (stride + kSlotMetadata)};
}

}  // namespace

SlabGeometry compute_slab_geometry(std::size_t size, std::size_t align, std::size_t max_waste_fraction) noexcept {
  const std::size_t stride = round_up(size, align);
  SlabGeometry best{};
  bool have_best = false;
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    const SlabGeometry g = geometry_for_order(order, stride, align);
    if (g.capacity == 0) continue;
    if (g.capacity >= kMinObjectsPerSlab && g.waste * max_waste_fraction <= order_bytes(order)) return g;
    // Compare waste fractions: g.waste / bytes(g) < best.waste / bytes(best).
    if (!have_best || g.waste * order_bytes(best.order) < best.waste * order_bytes(order)) {
      best = g;
      have_best = true;
    }
  }
  return best;
}

}  // namespace mslab::detail
