// A fixed-size latency histogram (log-linear buckets, 8 per power of two:
// about 12 % resolution) for the kv readers: no allocation while
// recording, so a reader's timing never touches the allocator under test.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace mslab::bench {

class LatencyHistogram {
 public:
  void add(std::uint64_t ns) noexcept {
    ++buckets_[index(ns)];
    ++count_;
  }
  void merge(const LatencyHistogram& other) noexcept {
    for (std::size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
  }
  std::uint64_t count() const noexcept { return count_; }

  /// The q-quantile (0 < q ≤ 1) in ns: the upper bound of its bucket; 0 if empty.
  std::uint64_t quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i)
      if ((seen += buckets_[i]) >= rank) return upper(i);
    return upper(kBuckets - 1);
  }

 private:
  static constexpr unsigned kSub = 3;  // 2^3 buckets per power of two
  static constexpr std::size_t kBuckets = (64 - kSub + 1) << kSub;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < (1u << kSub)) return static_cast<std::size_t>(v);
    const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;  // ≥ kSub
    return ((e - kSub + 1) << kSub) + ((v >> (e - kSub)) & ((1u << kSub) - 1));
  }
  static std::uint64_t upper(std::size_t i) noexcept {
    if (i < (1u << kSub)) return i;
    const unsigned e = static_cast<unsigned>(i >> kSub) + kSub - 1;
    const std::uint64_t sub = i & ((1u << kSub) - 1);
    return ((std::uint64_t{1} << kSub) + sub + 1) << (e - kSub);
  }

  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
};

}  // namespace mslab::bench
