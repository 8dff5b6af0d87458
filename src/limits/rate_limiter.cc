#include "limits/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace kv {

TokenBucket::TokenBucket(RateLimit limit, int64_t now_ns)
    : limit_(limit), tokens_(std::max(1.0, limit.burst)), last_ns_(now_ns) {
  limit_.burst = std::max(1.0, limit_.burst);
}

void TokenBucket::Refill(int64_t now_ns) {
  if (now_ns <= last_ns_) return;
  const double elapsed_s = static_cast<double>(now_ns - last_ns_) / 1e9;
  tokens_ = std::min(limit_.burst, tokens_ + elapsed_s * limit_.rate_per_second);
  last_ns_ = now_ns;
}

int64_t TokenBucket::Take(int64_t now_ns) {
  if (limit_.rate_per_second <= 0) return 0;
  Refill(now_ns);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return 0;
  }
  const double missing = 1.0 - tokens_;
  return std::max<int64_t>(1,
                           static_cast<int64_t>(std::ceil(missing / limit_.rate_per_second * 1e9)));
}

bool TokenBucket::FullAt(int64_t now_ns) const {
  if (limit_.rate_per_second <= 0) return true;
  const double elapsed_s = now_ns > last_ns_ ? static_cast<double>(now_ns - last_ns_) / 1e9 : 0;
  return tokens_ + elapsed_s * limit_.rate_per_second >= limit_.burst;
}

RateLimiter::RateLimiter(Clock* clock, RateLimit global, RateLimit per_client, size_t max_clients)
    : clock_(clock),
      per_client_(per_client),
      max_per_shard_(std::max<size_t>(1, max_clients / kShards)),
      global_(global, clock->MonoNowNs()),
      global_unlimited_(global.rate_per_second <= 0) {}

RateLimiter::Shard& RateLimiter::ShardFor(std::string_view client) {
  return shards_[std::hash<std::string_view>{}(client) % kShards];
}

int64_t RateLimiter::Admit(std::string_view client) {
  const int64_t now = clock_->MonoNowNs();
  if (per_client_.rate_per_second > 0) {
    Shard& s = ShardFor(client);
    MutexLock l(&s.mu);
    auto it = s.buckets.find(absl::string_view(client.data(), client.size()));
    if (it == s.buckets.end()) {
      if (s.buckets.size() >= max_per_shard_) {
        // Drop idle clients (full buckets): a fresh bucket would behave exactly the same.
        absl::erase_if(s.buckets, [now](const auto& kv) { return kv.second.FullAt(now); });
        if (s.buckets.size() >= max_per_shard_) {
          return 1'000'000'000;  // no room and nobody idle: refuse rather than grow
        }
      }
      it = s.buckets.emplace(std::string(client), TokenBucket(per_client_, now)).first;
    }
    const int64_t wait = it->second.Take(now);
    if (wait > 0) return wait;
  }
  if (global_unlimited_) return 0;
  MutexLock l(&global_mu_);
  return global_.Take(now);
}

size_t RateLimiter::clients() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    MutexLock l(&s.mu);
    n += s.buckets.size();
  }
  return n;
}

}  // namespace kv
