// flood_bench's latency histogram: log-linear (HdrHistogram-like), exact below 64 µs, then
// 64 sub-buckets per power of two (≤ 1.6 % relative error); the max is exact. Not thread
// safe: one per thread, merged at the end.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace kv::flood {

class Histogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  void Record(uint64_t us) {
    ++counts_[Index(us)];
    ++n_;
    max_ = std::max(max_, us);
  }
  void Merge(const Histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return n_; }
  uint64_t max() const { return max_; }
  // The smallest recorded bucket's upper bound with at least q·n values at or below it
  // (never above the exact max); 0 when empty.
  uint64_t Quantile(double q) const {
    if (n_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, n_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(UpperBound(i), max_);
    }
    return max_;
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int msb = 63 - __builtin_clzll(v);     // >= kSubBits
    const uint64_t sub = v >> (msb - kSubBits);  // in [kSub, 2·kSub)
    return static_cast<size_t>((msb - kSubBits + 1) * kSub + (sub - kSub));
  }
  static uint64_t UpperBound(size_t i) {
    if (i < kSub) return i;
    const int msb = static_cast<int>(i / kSub) + kSubBits - 1;
    const uint64_t sub = kSub + i % kSub;
    return ((sub + 1) << (msb - kSubBits)) - 1;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t n_ = 0;
  uint64_t max_ = 0;
};

// Microseconds as milliseconds, for reports.
inline double Ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

}  // namespace kv::flood
