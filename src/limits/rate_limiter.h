// Token buckets for load protection (SPEC §5): a global bucket and one bucket per client IP
// for a route class. Time comes from an injected Clock (monotonic), so tests move a
// FakeClock instead of sleeping (Envoy's token_bucket style).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "base/clock.h"
#include "base/mutex.h"

namespace kv {

// Rate and burst of one bucket. rate_per_second == 0 means no limit.
struct RateLimit {
  double rate_per_second = 0;
  double burst = 1;  // tokens the bucket holds when full; >= 1
};

// One bucket. Not thread-safe: the owner serializes calls.
class TokenBucket {
 public:
  // Starts full at monotonic time now_ns.
  TokenBucket(RateLimit limit, int64_t now_ns);
  // Takes one token. Returns 0 when granted, else the nanoseconds until a token will be
  // available (nothing is taken then). Time going backwards is treated as no time passing.
  int64_t Take(int64_t now_ns);
  // True when the bucket would be full at now_ns (an idle client: its state can be dropped,
  // a fresh bucket behaves the same).
  bool FullAt(int64_t now_ns) const;

 private:
  void Refill(int64_t now_ns);
  RateLimit limit_;
  double tokens_;
  int64_t last_ns_;
};

// A route class's limiter: a request passes when both the global bucket and its client's
// bucket grant a token (the client's is checked first, so one abusive client drains only
// its own bucket; a request the global bucket refuses has still used its client's token).
// Memory is bounded: at most max_clients buckets are kept; when a shard is
// full, clients whose buckets are full again (idle) are evicted, and if none is idle the
// newcomer is refused rather than growing the table. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(Clock* clock, RateLimit global, RateLimit per_client, size_t max_clients);

  // 0: admitted. Otherwise the nanoseconds the client should wait (Retry-After).
  int64_t Admit(std::string_view client);

  size_t clients() const;  // buckets currently kept (for tests and metrics)

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable Mutex mu;
    absl::flat_hash_map<std::string, TokenBucket> buckets ABSL_GUARDED_BY(mu);
  };
  Shard& ShardFor(std::string_view client);

  Clock* clock_;
  const RateLimit per_client_;
  const size_t max_per_shard_;
  Mutex global_mu_;
  TokenBucket global_ ABSL_GUARDED_BY(global_mu_);
  const bool global_unlimited_;
  std::array<Shard, kShards> shards_;
};

}  // namespace kv
