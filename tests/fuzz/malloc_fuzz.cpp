// Fuzz target: the general allocator's alloc/free/realloc sequences. 64
// slots each hold a block from mslab::malloc, calloc, aligned_alloc or
// realloc with a size the input picks across the small classes, the medium
// buddy blocks and huge mappings; every block carries a pattern derived
// from its slot and generation, checked before it is freed, resized or
// overwritten (realloc must keep the common prefix), together with its
// alignment and usable size. A trim() pass now and then gives memory back
// underneath. At the end every slot is freed.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_input.h"
#include "malloc/malloc.h"

namespace {

using mslab::fuzz::Input;

constexpr std::size_t kSlots = 64;

struct Slot {
  unsigned char* p = nullptr;
  std::size_t size = 0;
  std::uint32_t gen = 0;
};

unsigned char pattern(std::size_t slot, std::uint32_t gen, std::size_t i) {
  return static_cast<unsigned char>(slot * 7 + gen * 13 + i * 31);
}

// Large blocks are written and checked sparsely — 512 bytes at each end
// and every 509th byte between — so that megabyte blocks do not make a fuzz run crawl.
constexpr std::size_t kDense = 512;
std::size_t next_index(std::size_t i, std::size_t size) {
  if (i + 1 < kDense || i + 1 + kDense >= size) return i + 1;
  const std::size_t step = i + 509;
  return step + kDense < size ? step : size - kDense;
}

void fill(Slot& s, std::size_t k, std::size_t from) {
  for (std::size_t i = from; i < s.size; i = next_index(i, s.size)) s.p[i] = pattern(k, s.gen, i);
}

bool intact(const Slot& s, std::size_t k, std::size_t upto) {
  for (std::size_t i = 0; i < upto; i = next_index(i, s.size))
    if (s.p[i] != pattern(k, s.gen, i)) return false;
  return true;
}

std::size_t pick_size(Input& in) {
  switch (in.below(8)) {
    case 0: return in.below(17);                               // 0 … 16
    case 1: case 2: case 3: return in.u16() % 1025;            // small classes
    case 4: case 5: return 1024 + in.u16() * 2u;               // up to ~130 KiB: classes and buddy blocks
    case 6: return (std::size_t{1} << 20) + in.u16() * 16u;    // just above 1 MiB: huge mappings
    default: return in.u16() % 40000;                          // around the small/medium boundary
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  Slot slots[kSlots];
  while (!in.done()) {
    const std::size_t k = in.below(kSlots);
    Slot& s = slots[k];
    switch (in.below(7)) {
      case 0: case 1: {  // malloc or calloc into slot k
        if (s.p != nullptr) {
          FUZZ_CHECK(intact(s, k, s.size));
          mslab::free(s.p);
        }
        const std::size_t n = pick_size(in);
        const bool zeroed = in.below(2);
        s.p = static_cast<unsigned char*>(zeroed ? mslab::calloc(1, n) : mslab::malloc(n));
        FUZZ_CHECK(s.p != nullptr);
        FUZZ_CHECK(mslab::usable_size(s.p) >= n);
        FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(s.p) % (n <= 8 ? 8 : 16) == 0);
        if (zeroed)
          for (std::size_t i = 0; i < n; i = next_index(i, n)) FUZZ_CHECK(s.p[i] == 0);
        s.size = n;
        ++s.gen;
        fill(s, k, 0);
        break;
      }
      case 2: {  // aligned_alloc
        if (s.p != nullptr) mslab::free(s.p);
        const std::size_t align = std::size_t{1} << in.below(13);  // 1 … 4096
        const std::size_t n = pick_size(in);
        s.p = static_cast<unsigned char*>(mslab::aligned_alloc(align, n));
        FUZZ_CHECK(s.p != nullptr);
        FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(s.p) % align == 0);
        s.size = n;
        ++s.gen;
        fill(s, k, 0);
        break;
      }
      case 3: case 4: {  // realloc: the common prefix survives
        const std::size_t n = pick_size(in);
        if (s.p == nullptr && n == 0) break;  // realloc(nullptr, 0): implementation-defined, skip
        auto* q = static_cast<unsigned char*>(mslab::realloc(s.p, n));
        if (n == 0) {  // frees (as glibc)
          s = Slot{nullptr, 0, s.gen};
          break;
        }
        FUZZ_CHECK(q != nullptr);
        const std::size_t keep = s.size < n ? s.size : n;
        s.p = q;
        FUZZ_CHECK(intact(s, k, keep));  // checked with the old size's sparse positions
        s.size = n;
        fill(s, k, 0);  // then written anew for the new size's
        break;
      }
      case 5: {  // free
        if (s.p != nullptr) FUZZ_CHECK(intact(s, k, s.size));
        mslab::free(s.p);
        s = Slot{nullptr, 0, s.gen};
        break;
      }
      default:
        if (in.below(8) == 0) mslab::trim();
        break;
    }
  }
  for (std::size_t k = 0; k < kSlots; ++k) {
    if (slots[k].p != nullptr) FUZZ_CHECK(intact(slots[k], k, slots[k].size));
    mslab::free(slots[k].p);
  }
  return 0;
}
