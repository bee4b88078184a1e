// mslab-xarray-bench: the containers under test, behind one small shape so
// that the workloads (xarray_bench_run.cpp) are written once:
//   void store(u64 key, u64 value);  u64 load(u64 key) const;  (0 = absent)
//   void erase(u64 key);  bool find_next(u64* key) const;  (first key >= *key)
//   template <F> void for_each(F f) const;  (f(key, value) for every entry)
//   static constexpr bool kOrdered;  static constexpr const char* kName;
// Thread-safety of every adapter: one writer and any number of readers at
// a time. The XArray and rculfhash give that themselves (RCU readers);
// std::map, absl::btree_map and JudyL are behind a std::shared_mutex
// (readers shared, the writer exclusive), in single-threaded runs too, so
// that all five pay for their synchronisation. Values are below 2^63 (the
// XArray stores them as value entries).
#pragma once

#include <Judy.h>

#include <absl/container/btree_map.h>

#ifndef _LGPL_SOURCE
#define _LGPL_SOURCE 1  // liburcu's inlined read side, as rcu/rcu.h
#endif
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "rcu/deferred_free.h"
#include "rcu/rcu.h"
#include "xarray/xarray.h"

namespace mslab::bench::xb {

using u64 = std::uint64_t;

class XArrayAdapter {
 public:
  static constexpr const char* kName = "xarray";
  static constexpr bool kOrdered = true;
  void store(u64 k, u64 v) { xa_.store(k, Entry::value(v)); }
  u64 load(u64 k) const {
    const Entry e = xa_.load(k);
    return e.is_value() ? e.to_value() : 0;
  }
  void erase(u64 k) { xa_.erase(k); }
  bool find_next(u64* k) const {
    unsigned long i = *k;
    if (xa_.find(&i, ~0UL).empty()) return false;
    *k = i;
    return true;
  }
  template <class F>
  void for_each(F f) const {
    for (auto [i, e] : xa_) f(i, e.to_value());
  }
  /// Node memory: nodes × their slab stride (64-byte aligned).
  std::size_t own_bytes() const {
    return xa_.stats().nodes * ((sizeof(XArray::Node) + 63) / 64 * 64);
  }

 private:
  XArray xa_;
};

// std::map and absl::btree_map share everything but the map type.
template <class Map, const char* const* Name>
class LockedMapAdapter {
 public:
  static constexpr const char* kName = *Name;
  static constexpr bool kOrdered = true;
  void store(u64 k, u64 v) {
    std::unique_lock g(lock_);
    map_[k] = v;
  }
  u64 load(u64 k) const {
    std::shared_lock g(lock_);
    auto it = map_.find(k);
    return it == map_.end() ? 0 : it->second;
  }
  void erase(u64 k) {
    std::unique_lock g(lock_);
    map_.erase(k);
  }
  bool find_next(u64* k) const {
    std::shared_lock g(lock_);
    auto it = map_.lower_bound(*k);
    if (it == map_.end()) return false;
    *k = it->first;
    return true;
  }
  template <class F>
  void for_each(F f) const {
    std::shared_lock g(lock_);
    for (const auto& [k, v] : map_) f(k, v);
  }

 private:
  mutable std::shared_mutex lock_;
  Map map_;
};

inline constexpr const char* kStdMapName = "std::map";
inline constexpr const char* kBtreeName = "absl::btree_map";
using StdMapAdapter = LockedMapAdapter<std::map<u64, u64>, &kStdMapName>;
using BtreeAdapter = LockedMapAdapter<absl::btree_map<u64, u64>, &kBtreeName>;

class JudyAdapter {
 public:
  static constexpr const char* kName = "JudyL";
  static constexpr bool kOrdered = true;
  JudyAdapter() = default;
  JudyAdapter(const JudyAdapter&) = delete;
  JudyAdapter& operator=(const JudyAdapter&) = delete;
  ~JudyAdapter() { JudyLFreeArray(&array_, PJE0); }
  void store(u64 k, u64 v) {
    std::unique_lock g(lock_);
    PWord_t slot = reinterpret_cast<PWord_t>(JudyLIns(&array_, k, PJE0));
    if (slot == nullptr || slot == PJERR) std::abort();  // Judy out of memory
    *slot = v;
  }
  u64 load(u64 k) const {
    std::shared_lock g(lock_);
    PWord_t slot = reinterpret_cast<PWord_t>(JudyLGet(array_, k, PJE0));
    return slot == nullptr ? 0 : *slot;
  }
  void erase(u64 k) {
    std::unique_lock g(lock_);
    JudyLDel(&array_, k, PJE0);
  }
  bool find_next(u64* k) const {
    std::shared_lock g(lock_);
    Word_t i = *k;
    if (JudyLFirst(array_, &i, PJE0) == nullptr) return false;
    *k = i;
    return true;
  }
  template <class F>
  void for_each(F f) const {
    std::shared_lock g(lock_);
    Word_t i = 0;
    for (PWord_t v = reinterpret_cast<PWord_t>(JudyLFirst(array_, &i, PJE0)); v != nullptr;
         v = reinterpret_cast<PWord_t>(JudyLNext(array_, &i, PJE0)))
      f(i, *v);
  }

 private:
  mutable std::shared_mutex lock_;
  Pvoid_t array_ = nullptr;
};

// liburcu's lock-free resizable hash table on the urcu-memb flavor (the one
// mslab's RCU layer uses), sized for the entries up front (no resize while
// measuring). Unordered: find_next is not supported; for_each visits the
// entries in hash order. Removed nodes are freed after a grace period
// through mslab's deferred free.
class LfHashAdapter {
 public:
  static constexpr const char* kName = "rculfhash";
  static constexpr bool kOrdered = false;
  explicit LfHashAdapter(std::size_t expected) {
    unsigned long size = 1;
    while (size < expected) size <<= 1;
    ht_ = cds_lfht_new_flavor(size, size, 0, 0, &urcu_memb_flavor, nullptr);
    if (ht_ == nullptr) std::abort();
  }
  LfHashAdapter(const LfHashAdapter&) = delete;
  LfHashAdapter& operator=(const LfHashAdapter&) = delete;
  ~LfHashAdapter() {
    {
      rcu::ReadGuard guard;
      cds_lfht_iter it;
      cds_lfht_first(ht_, &it);
      for (cds_lfht_node* n; (n = cds_lfht_iter_get_node(&it)) != nullptr; cds_lfht_next(ht_, &it))
        if (cds_lfht_del(ht_, n) == 0) rcu::defer_free(node_of(n), &free_node);
    }
    rcu::barrier();
    cds_lfht_destroy(ht_, nullptr);
  }
  void store(u64 k, u64 v) {
    auto* n = static_cast<Node*>(std::malloc(sizeof(Node)));
    if (n == nullptr) std::abort();
    cds_lfht_node_init(&n->node);
    n->key = k;
    n->value = v;
    rcu::ReadGuard guard;
    cds_lfht_node* old = cds_lfht_add_replace(ht_, hash(k), match, &n->key, &n->node);
    if (old != nullptr) rcu::defer_free(node_of(old), &free_node);
  }
  u64 load(u64 k) const {
    rcu::ReadGuard guard;
    cds_lfht_iter it;
    cds_lfht_lookup(ht_, hash(k), match, &k, &it);
    cds_lfht_node* n = cds_lfht_iter_get_node(&it);
    return n == nullptr ? 0 : node_of(n)->value;
  }
  void erase(u64 k) {
    rcu::ReadGuard guard;
    cds_lfht_iter it;
    cds_lfht_lookup(ht_, hash(k), match, &k, &it);
    cds_lfht_node* n = cds_lfht_iter_get_node(&it);
    if (n != nullptr && cds_lfht_del(ht_, n) == 0) rcu::defer_free(node_of(n), &free_node);
  }
  bool find_next(u64*) const { return false; }
  template <class F>
  void for_each(F f) const {
    rcu::ReadGuard guard;
    cds_lfht_iter it;
    cds_lfht_first(ht_, &it);
    for (cds_lfht_node* n; (n = cds_lfht_iter_get_node(&it)) != nullptr; cds_lfht_next(ht_, &it))
      f(node_of(n)->key, node_of(n)->value);
  }

 private:
  struct Node {
    cds_lfht_node node;  // first: node_of() casts back
    u64 key;
    u64 value;
  };
  static Node* node_of(cds_lfht_node* n) { return reinterpret_cast<Node*>(n); }
  static void free_node(void* p) noexcept { std::free(p); }
  static unsigned long hash(u64 k) {  // a 64-bit finaliser (splitmix64)
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    return k ^ (k >> 31);
  }
  static int match(cds_lfht_node* n, const void* key) { return node_of(n)->key == *static_cast<const u64*>(key); }
  cds_lfht* ht_ = nullptr;
};

}  // namespace mslab::bench::xb
