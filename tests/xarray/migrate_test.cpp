// XArray node migration (the defragmenter moving "xa_node" objects): each
// phase and each node state on one slab driven by hand — nodes of several
// arrays in one slab, a node being built, an array destroyed and a node
// erased between the phases, a node waiting for RCU free — then readers
// iterating while nodes move, a whole Defragmenter pass over fragmented
// arrays, and multi-index entries and allocating arrays across moves.
// Built at both fan-outs (xarray_test and xarray_test_shift3).
#include <atomic>
#include <chrono>
#include <memory>
#include <new>
#include <random>
#include <thread>

#include "alloc/page_allocator.h"
#include "defrag/defragmenter.h"
#include "xa_migrate_util.h"

using namespace mslab;
using namespace mslab::xatest;
using namespace std::chrono_literals;

namespace {

constexpr unsigned long kLeaf = XArray::kChunkSize;  // one entry per leaf node at index i * kLeaf

// Stores entries into `arrays` in turn (entry i of array k at i * kLeaf + k),
// so that their nodes interleave in the node cache's slabs.
void fill_interleaved(std::span<XArray> arrays, unsigned long per_array) {
  for (unsigned long i = 0; i < per_array; ++i)
    for (std::size_t k = 0; k < arrays.size(); ++k) {
      const unsigned long index = i * kLeaf + k;
      REQUIRE(arrays[k].store(index, index_entry(index)).ok());
      if (i % 3 == 0) REQUIRE(arrays[k].set_mark(index, 1) == XaError::kOk);
    }
  node_slab_cache()->flush_thread_cache();  // the last active slab becomes isolatable
}

// Every entry of fill_interleaved is there, exactly, with its mark.
std::size_t faults(const XArray& xa, std::size_t k, unsigned long per_array) {
  std::size_t bad = 0, seen = 0;
  for (unsigned long i = 0; i < per_array; ++i) {
    const unsigned long index = i * kLeaf + k;
    bad += xa.load(index) != index_entry(index);
    bad += xa.get_mark(index, 1) != (i % 3 == 0);
  }
  for (auto [index, e] : xa) {
    bad += e != index_entry(index);
    ++seen;
  }
  return bad + (seen != per_array);
}

// A slab holding nodes of both arrays.
detail::Slab* shared_slab(const XArray& a, const XArray& b) {
  for (const void* n : nodes_of(a))
    if (nodes_in_slab(b, detail::slab_of(n)) > 0) return detail::slab_of(n);
  return nullptr;
}

// `N` arrays filled by fill_interleaved, and a slab holding nodes of the
// first two, with how many nodes each has there.
template <std::size_t N>
struct SharedSlab {
  XArray arrays[N];
  unsigned long per_array;
  detail::Slab* slab = nullptr;
  std::size_t in_slab[N] = {};

  explicit SharedSlab(unsigned long per) : per_array(per) {
    quiesce_nodes();
    fill_interleaved(arrays, per_array);
    slab = shared_slab(arrays[0], arrays[1]);
    REQUIRE(slab != nullptr);
    for (std::size_t k = 0; k < N; ++k) in_slab[k] = nodes_in_slab(arrays[k], slab);
  }
};

XaMigrationStats delta(const XaMigrationStats& before) {
  const XaMigrationStats now = xa_migration_stats();
  return {now.moved - before.moved, now.gone - before.gone, now.no_memory - before.no_memory,
          now.refused - before.refused};
}

}  // namespace

TEST_CASE("migration: node slabs waste at most 1/32 of their bytes (movable, so kept full)") {
  const CacheStats s = node_slab_cache()->stats();
  CHECK(s.stride == s.object_size);  // 16-byte alignment: no padding per node
  // Waste as slab_geometry.h counts it (4 bytes of slot metadata per node
  // are not waste): at 1/8, 560-byte nodes would be 14 per 8 KiB (3.6 %).
  CHECK((s.slab_bytes - s.objects_per_slab * (s.stride + 4)) * 32 <= s.slab_bytes);
}

TEST_CASE("migration: every node of a slab moves, nodes of several arrays share it, entries intact") {
  SharedSlab<3> f(300);
  XArray* arrays = f.arrays;
  const unsigned long per_array = f.per_array;
  detail::Slab* s = f.slab;
  std::size_t ours = 0, nodes_before = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    ours += f.in_slab[k];
    nodes_before += arrays[k].stats().nodes;
  }
  const XaMigrationStats before = xa_migration_stats();

  SlabDriver d;
  REQUIRE(d.phase1(s));
  CHECK(d.listed == ours);
  d.phase2();
  CHECK(d.finish());  // every node left: the slab went back to the page allocator

  const XaMigrationStats moved = delta(before);
  CHECK(moved.moved == ours);
  CHECK(moved.gone == 0);
  std::size_t nodes_after = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(faults(arrays[k], k, per_array) == 0);
    CHECK(nodes_in_slab(arrays[k], s) == 0);
    nodes_after += arrays[k].stats().nodes;
  }
  CHECK(nodes_after == nodes_before);
  // The moved tree is a normal tree: writers and erasers work on it.
  for (std::size_t k = 0; k < 3; ++k)
    for (unsigned long i = 0; i < per_array; i += 2) CHECK(arrays[k].erase(i * kLeaf + k) == index_entry(i * kLeaf + k));
  CHECK(node_slab_cache()->validate());
}

TEST_CASE("migration: a node being built makes phase 1 answer busy and take nothing") {
  quiesce_nodes();
  using Node = XArray::Node;
  auto array = std::make_unique<XArray>();
  std::vector<void*> building;
  detail::Slab* s = nullptr;
  unsigned long stored = 0;
  for (unsigned long i = 0; s == nullptr && i < 1000; ++i, ++stored) {
    // A writer's preallocated node: allocated, constructed, never linked.
    void* mem = SlabNodeAlloc::allocate(sizeof(Node));
    REQUIRE(mem != nullptr);
    building.push_back(new (mem) Node());
    REQUIRE(array->store(i * kLeaf, index_entry(i * kLeaf)).ok());
    if (nodes_in_slab(*array, detail::slab_of(mem)) > 0) s = detail::slab_of(mem);
  }
  REQUIRE(s != nullptr);
  const XaMigrationStats before = xa_migration_stats();
  {
    SlabDriver d;
    CHECK_FALSE(d.phase1(s));
    CHECK(d.listed > 1);
  }
  CHECK(delta(before).refused == 1);
  CHECK(node_slab_cache()->stats().slabs_isolated == 0);
  for (const void* n : nodes_of(*array)) CHECK(xa_detail::load_node_state(n) == XaNodeState::kInTree);

  // Once the writer gives its nodes back, the same slab is accepted.
  for (void* n : building) SlabNodeAlloc::free_now(n);
  detail::flush_thread_heap();
  {
    SlabDriver d;
    REQUIRE(d.phase1(s));
    d.phase2();
    CHECK(d.finish());
  }
  CHECK(delta(before).moved > 0);
  std::size_t n = 0;
  for (auto [index, e] : *array) {
    CHECK(e == index_entry(index));
    ++n;
  }
  CHECK(n == stored);
  array.reset();  // phase 1's refusal left no pin behind: the destructor does not wait
}

TEST_CASE("migration: an array destroyed between the phases stays valid until phase 2 lets go") {
  quiesce_nodes();
  auto* array = new XArray;
  for (unsigned long i = 0; i < 200; ++i) REQUIRE(array->store(i * kLeaf, index_entry(i)).ok());
  node_slab_cache()->flush_thread_cache();
  const detail::Slab* first = detail::slab_of(nodes_of(*array).back());
  auto* s = const_cast<detail::Slab*>(first);
  const std::size_t ours = nodes_in_slab(*array, s);
  REQUIRE(ours > 0);
  const XaMigrationStats before = xa_migration_stats();

  SlabDriver d;
  REQUIRE(d.phase1(s));
  std::atomic<bool> destroyed{false};
  std::thread owner([&] {
    delete array;  // clear(), a grace period, then waits for the pins
    destroyed.store(true);
  });
  // Wait until the destructor has cleared the array (the object stays valid:
  // phase 1's pins hold it), however late its thread gets a CPU.
  for (int waited = 0; !array->empty() && waited < 10000; ++waited) std::this_thread::sleep_for(1ms);
  REQUIRE(array->empty());
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(destroyed.load());  // held by phase 1's pins
  d.phase2();  // takes the (still valid) array's lock, finds the nodes gone
  owner.join();
  CHECK(destroyed.load());
  const XaMigrationStats moved = delta(before);
  CHECK(moved.gone == ours);
  CHECK(moved.moved == 0);
  CHECK(d.finish());  // the destroyed array's nodes are freed after their grace period
}

TEST_CASE("migration: a node erased between the phases is left to its grace period") {
  SharedSlab<2> f(200);
  XArray* arrays = f.arrays;
  const unsigned long per_array = f.per_array;
  const std::size_t erased = f.in_slab[0], kept = f.in_slab[1];
  const XaMigrationStats before = xa_migration_stats();

  SlabDriver d;
  REQUIRE(d.phase1(f.slab));
  for (unsigned long i = 0; i < per_array; ++i) CHECK(arrays[0].erase(i * kLeaf) == index_entry(i * kLeaf));
  CHECK(arrays[0].empty());
  d.phase2();
  const XaMigrationStats moved = delta(before);
  CHECK(moved.gone == erased);
  CHECK(moved.moved == kept);
  CHECK(d.finish());
  CHECK(faults(arrays[1], 1, per_array) == 0);
  // The emptied array is still an array.
  CHECK(arrays[0].store(5, index_entry(5)).ok());
  CHECK(arrays[0].load(5) == index_entry(5));
}

TEST_CASE("migration: a node waiting for RCU free needs only its grace period") {
  SharedSlab<2> f(200);
  XArray* arrays = f.arrays;
  const unsigned long per_array = f.per_array;
  const std::size_t retired = f.in_slab[0], kept = f.in_slab[1];

  // A reader holds a read section: the erased nodes cannot be freed yet.
  std::atomic<int> step{0};
  std::thread reader([&] {
    rcu::ReadGuard guard;
    step.store(1);
    while (step.load() != 2) std::this_thread::yield();
  });
  while (step.load() != 1) std::this_thread::yield();
  for (unsigned long i = 0; i < per_array; ++i) arrays[0].erase(i * kLeaf);
  const XaMigrationStats before = xa_migration_stats();

  SlabDriver d;
  REQUIRE(d.phase1(f.slab));
  CHECK(d.listed == retired + kept);  // still allocated, state "waiting for RCU free"
  d.phase2();
  const XaMigrationStats moved = delta(before);
  CHECK(moved.moved == kept);
  CHECK(moved.gone == 0);  // no pin was taken on them
  step.store(2);
  reader.join();
  CHECK(d.finish());  // the barrier lets their deferred frees land
  CHECK(faults(arrays[1], 1, per_array) == 0);
}

TEST_CASE("migration: readers iterating while nodes move see every entry exactly as stored") {
  quiesce_nodes();
  constexpr std::size_t kArrays = 2;
  const unsigned long per_array = scaled(3000);
  XArray arrays[kArrays];
  for (std::size_t k = 0; k < kArrays; ++k)
    for (unsigned long i = 0; i < per_array; ++i) REQUIRE(arrays[k].store(i * 5 + k, index_entry(i * 5 + k)).ok());
  node_slab_cache()->flush_thread_cache();

  std::atomic<bool> done{false};
  std::atomic<long> failures{0}, passes{0};
  auto reader = [&](unsigned seed) {
    std::mt19937_64 rng(seed);
    while (!done.load(std::memory_order_relaxed)) {
      const std::size_t k = rng() % kArrays;
      unsigned long expect = k, seen = 0;
      for (auto [index, e] : arrays[k]) {
        if (index != expect || e != index_entry(index)) failures.fetch_add(1);  // each present entry, in order
        expect = index + 5;
        ++seen;
      }
      if (seen != per_array) failures.fetch_add(1);
      const unsigned long i = rng() % per_array;
      if (arrays[k].load(i * 5 + k) != index_entry(i * 5 + k)) failures.fetch_add(1);
      passes.fetch_add(1);
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);

  defrag::CacheRef entry = node_cache_entry();
  REQUIRE(entry);
  std::vector<void*> scratch(node_slab_cache()->objects_per_slab());
  std::mt19937_64 rng(3);
  const XaMigrationStats before = xa_migration_stats();
  const int rounds = kSanitized ? 40 : 200;
  for (int round = 0; round < rounds; ++round) {
    const std::vector<const void*> nodes = nodes_of(arrays[round % kArrays]);
    evacuate_slab_of(*entry.get(), nodes[rng() % nodes.size()], scratch);
  }
  while (passes.load() < 20) std::this_thread::yield();
  done.store(true);
  r1.join();
  r2.join();
  MESSAGE("nodes moved " << delta(before).moved << ", reader passes " << passes.load());
  CHECK(delta(before).moved > 0);
  CHECK(failures.load() == 0);
  for (std::size_t k = 0; k < kArrays; ++k)
    for (unsigned long i = 0; i < per_array; ++i) CHECK(arrays[k].load(i * 5 + k) == index_entry(i * 5 + k));
}

TEST_CASE("migration: a Defragmenter pass over fragmented arrays frees order-9 blocks, entries intact") {
  quiesce_nodes();
  constexpr std::size_t kArrays = 4;
  // Three 2 MiB chunks of leaf nodes, one entry each, then a random 90 % erased.
  const unsigned long leaves = 3 * kChunkSize / sizeof(XArray::Node);
  std::vector<std::unique_ptr<XArray>> arrays;
  for (std::size_t k = 0; k < kArrays; ++k) arrays.push_back(std::make_unique<XArray>());
  for (unsigned long i = 0; i < leaves; ++i) REQUIRE(arrays[i % kArrays]->store(i * kLeaf, index_entry(i)).ok());
  std::mt19937_64 rng(11);
  std::vector<unsigned long> kept;
  for (unsigned long i = 0; i < leaves; ++i) {
    if (rng() % 10 != 0) arrays[i % kArrays]->erase(i * kLeaf);
    else kept.push_back(i);
  }
  quiesce_nodes();

  defrag::Defragmenter defrag(PageAllocator::global(), defrag::Registry::global());
  const XaMigrationStats before = xa_migration_stats();
  const defrag::Report r = defrag.run();
  MESSAGE("nodes moved " << delta(before).moved << " (report " << r.objects_moved << "), slabs freed "
                         << r.slabs_freed << ", chunks " << r.chunks_evacuated << ", free 2M " << r.free_2m_before
                         << " -> " << r.free_2m_after << ", max pause " << r.max_pause.count() / 1000 << " us");
  CHECK(r.free_2m_after > r.free_2m_before);
  CHECK(r.objects_moved > 0);
  CHECK(delta(before).moved > 0);
  CHECK(r.slabs_refused == 0);
  std::size_t present = 0;
  for (const auto& xa : arrays)
    for (auto [index, e] : *xa) {
      CHECK(e == index_entry(index / kLeaf));
      ++present;
    }
  CHECK(present == kept.size());
  for (unsigned long i : kept) CHECK(arrays[i % kArrays]->load(i * kLeaf) == index_entry(i));
}

TEST_CASE("migration: multi-index entries and an allocating array keep their shape when their nodes move") {
  quiesce_nodes();
  // Orders that put entries in inner slots (order ≥ Shift) and sibling runs
  // in leaves (0 < order < Shift).
  const unsigned big = XArray::kChunkShift, small = XArray::kChunkShift > 1 ? 1 : 0;
  XArray multi;
  XArray ids(XaFlags::kAlloc);
  std::vector<unsigned long> allocated;
  for (unsigned long i = 0; i < 100; ++i) {
    const unsigned long base = i << (big + 2);
    REQUIRE(multi.store_order(base, big, index_entry(base)).ok());
    REQUIRE(multi.store_order(base + (1ul << big), small, index_entry(base + 1)).ok());
    REQUIRE(multi.store(base + (2ul << big) + 1, index_entry(base + 2)).ok());
    const XaAllocResult r = ids.alloc(index_entry(i));
    REQUIRE(r.ok());
    allocated.push_back(r.id());
  }
  node_slab_cache()->flush_thread_cache();
  defrag::CacheRef entry = node_cache_entry();
  REQUIRE(entry);
  std::vector<void*> scratch(node_slab_cache()->objects_per_slab());
  const XaMigrationStats before = xa_migration_stats();
  for (const XArray* xa : {&multi, &ids}) {
    for (int round = 0; round < 8; ++round) {
      const std::vector<const void*> nodes = nodes_of(*xa);
      evacuate_slab_of(*entry.get(), nodes[static_cast<std::size_t>(round) * 7 % nodes.size()], scratch);
    }
  }
  CHECK(delta(before).moved > 0);
  for (unsigned long i = 0; i < 100; ++i) {
    const unsigned long base = i << (big + 2);
    CHECK(multi.load(base + (1ul << big) - 1) == index_entry(base));
    CHECK(multi.get_order(base) == big);
    CHECK(multi.load(base + (1ul << big) + (1ul << small) - 1) == index_entry(base + 1));
    CHECK(multi.get_order(base + (1ul << big)) == small);
    CHECK(multi.load(base + (2ul << big) + 1) == index_entry(base + 2));
    CHECK(ids.load(allocated[i]) == index_entry(i));
  }
  const XaAllocResult next = ids.alloc(index_entry(7));  // the free mark survived the moves
  CHECK(next.ok());
  CHECK(next.id() == allocated.back() + 1);
}
