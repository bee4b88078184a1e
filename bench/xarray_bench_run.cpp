// mslab-xarray-bench measurements: the single-thread operations over a
// dense and a sparse key pattern, memory per entry, and one reader against
// one writer. Every container runs the same template code (the adapters in
// xarray_bench_adapters.h); answers are checked (sums of loaded values,
// entries iterated, find-next results) so that a wrong container fails the
// run instead of looking fast.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <thread>

#include "bench/xarray_bench.h"
#include "bench/xarray_bench_adapters.h"

namespace mslab::bench::xb {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::size_t malloc_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

struct Pattern {
  std::string name;
  std::vector<u64> keys;    // store / load / erase order (shuffled)
  std::vector<u64> probes;  // find-next start points, random over the key range
  u64 value_sum = 0;        // Σ value(key) over the keys
  u64 next_sum = 0;         // Σ over probes of the first key ≥ probe (0 if none)
};

u64 value_of(u64 k) { return (k * 7 + 1) & 0x7fffffffffffffffULL; }

Pattern make_pattern(std::string name, std::vector<u64> keys, std::mt19937_64& rng) {
  Pattern p;
  p.name = std::move(name);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  const u64 top = keys.back();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const u64 probe = rng() % (top + 2);
    p.probes.push_back(probe);
    auto it = std::lower_bound(keys.begin(), keys.end(), probe);
    if (it != keys.end()) p.next_sum += *it;
  }
  for (u64 k : keys) p.value_sum += value_of(k);
  std::shuffle(keys.begin(), keys.end(), rng);
  p.keys = std::move(keys);
  return p;
}

template <class A>
std::unique_ptr<A> make_adapter(std::size_t n) {
  if constexpr (std::is_constructible_v<A, std::size_t>) return std::make_unique<A>(n);
  else return std::make_unique<A>();
}

template <class A>
void run_pattern(const Pattern& p, Results& out) {
  const std::string name = A::kName;
  auto record = [&](const char* op, double seconds, std::size_t count) {
    out.ops.push_back({p.name, op, name, seconds * 1e9 / static_cast<double>(count)});
  };
  auto fail = [&](const char* what) {
    if (out.error.empty()) out.error = name + ": wrong " + what + " on the " + p.name + " pattern";
  };
  const std::size_t n = p.keys.size();
  const std::size_t before = malloc_bytes();
  auto a = make_adapter<A>(n);

  double t = now_s();
  for (u64 k : p.keys) a->store(k, value_of(k));
  record("store", now_s() - t, n);
  std::size_t bytes = malloc_bytes() - before;
  if constexpr (std::is_same_v<A, XArrayAdapter>) bytes = a->own_bytes();
  out.memory.push_back({p.name, name, n, bytes});

  t = now_s();
  u64 sum = 0;
  for (u64 k : p.keys) sum += a->load(k);
  record("load", now_s() - t, n);
  if (sum != p.value_sum) fail("load");

  std::size_t seen = 0;
  sum = 0;
  t = now_s();
  a->for_each([&](u64, u64 v) {
    ++seen;
    sum += v;
  });
  record("iterate", now_s() - t, n);  // rculfhash: in hash order
  if (seen != n || sum != p.value_sum) fail("iteration");

  if constexpr (A::kOrdered) {
    sum = 0;
    t = now_s();
    for (u64 probe : p.probes) {
      u64 k = probe;
      if (a->find_next(&k)) sum += k;
    }
    record("find-next", now_s() - t, p.probes.size());
    if (sum != p.next_sum) fail("find-next");
  } else {
    out.ops.push_back({p.name, "find-next", name, kNaN});
  }

  t = now_s();
  for (u64 k : p.keys) a->erase(k);
  record("erase", now_s() - t, n);
  if (a->load(p.keys.front()) != 0) fail("erase");
}

// Loads of random keys in [0, 2n) until `stop`; returns loads per second.
template <class A>
double reader_loop(const A& a, std::size_t n, const std::atomic<bool>& stop, u64 seed) {
  u64 x = seed | 1, ops = 0, sink = 0;
  const double t = now_s();
  while (!stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 256; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      sink += a.load(x % (2 * n));
    }
    ops += 256;
  }
  const double rate = static_cast<double>(ops) / (now_s() - t);
  return sink == 1 ? rate * 1.0000001 : rate;  // keeps the loads
}

template <class A>
void run_concurrent(const Options& o, Results& out) {
  const std::size_t n = o.n;
  auto a = make_adapter<A>(2 * n);
  for (u64 k = 0; k < n; ++k) a->store(k, value_of(k));
  auto timed_reader = [&](double seconds, double* rate) {
    std::atomic<bool> stop{false};
    std::thread reader([&] { *rate = reader_loop(*a, n, stop, 88172645463325252ULL); });
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    reader.join();
  };
  ConcResult r{A::kName, 0, 0, 0};
  timed_reader(o.seconds / 2, &r.reader_alone_mops);
  std::atomic<bool> stop{false};
  std::thread reader([&] { r.reader_mops = reader_loop(*a, n, stop, 0x9E3779B97F4A7C15ULL); });
  // The writer: stores and erases keys in [n, 2n), so half of the reader's
  // keys change under it; the prefill stays.
  std::mt19937_64 rng(3);
  u64 ops = 0;
  const double t = now_s(), end = t + o.seconds;
  while (now_s() < end) {
    for (int i = 0; i < 256; ++i) {
      const u64 k = n + rng() % n;
      if (i & 1) a->erase(k);
      else a->store(k, value_of(k));
    }
    ops += 256;
  }
  const double writer_s = now_s() - t;
  stop = true;
  reader.join();
  r.writer_mops = static_cast<double>(ops) / writer_s / 1e6;
  r.reader_alone_mops /= 1e6;
  r.reader_mops /= 1e6;
  out.concurrent.push_back(r);
}

bool selected(const Options& o, const char* name) {
  return o.containers.empty() || std::find(o.containers.begin(), o.containers.end(), name) != o.containers.end();
}

// Calls f.template operator()<Adapter>() for each selected container.
template <class F>
void for_each_container(const Options& o, F f) {
  if (selected(o, XArrayAdapter::kName)) f.template operator()<XArrayAdapter>();
  if (selected(o, StdMapAdapter::kName)) f.template operator()<StdMapAdapter>();
  if (selected(o, BtreeAdapter::kName)) f.template operator()<BtreeAdapter>();
  if (selected(o, JudyAdapter::kName)) f.template operator()<JudyAdapter>();
  if (selected(o, LfHashAdapter::kName)) f.template operator()<LfHashAdapter>();
}

}  // namespace

const std::vector<std::string>& container_names() {
  static const std::vector<std::string> names = {XArrayAdapter::kName, StdMapAdapter::kName, BtreeAdapter::kName,
                                                 JudyAdapter::kName, LfHashAdapter::kName};
  return names;
}

Results run_all(const Options& o) {
  Results out;
  std::mt19937_64 rng(20261130);
  std::vector<u64> dense(o.n);
  for (std::size_t i = 0; i < o.n; ++i) dense[i] = i;
  std::vector<u64> sparse;
  const std::size_t sparse_n = o.sparse_n != 0 ? o.sparse_n : std::max<std::size_t>(o.n / 8, 1);
  while (sparse.size() < sparse_n) sparse.push_back(rng() & 0xffffffffULL);
  const Pattern patterns[] = {make_pattern("dense", std::move(dense), rng),
                              make_pattern("sparse", std::move(sparse), rng)};
  for (const Pattern& p : patterns)
    for_each_container(o, [&]<class A>() { run_pattern<A>(p, out); });
  for_each_container(o, [&]<class A>() { run_concurrent<A>(o, out); });
  return out;
}

}  // namespace mslab::bench::xb
