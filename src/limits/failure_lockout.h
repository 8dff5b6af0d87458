// Lockout after repeated failures, per key (SPEC §4: order lookups are locked per contact,
// and token reads per order id, whatever the source address). Time comes from an injected
// Clock (monotonic), so tests move a FakeClock instead of sleeping.
//
// In memory only: a restart forgets every count and lock. Persisting them would cost a
// synced write per failed try — an attacker's failures would drive the disk — and a restart
// is not something a buyer-side client can cause; each one gives a key at most
// failures_max fresh tries.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "base/clock.h"
#include "base/mutex.h"

namespace kv {

struct LockoutPolicy {
  // Failed tries within window_seconds that lock a key; 0 = no lockout (nothing is kept).
  // Default: 10.
  uint32_t failures_max = 10;
  // The window, counted from the first failure of a key's current count. Default: 600.
  int64_t window_seconds = 600;
  // The first lock of a key lasts lockout_seconds; each further lock of the same key lasts
  // twice the one before, up to lockout_seconds_max. Defaults: 60 and 86400 (one day).
  int64_t lockout_seconds = 60;
  int64_t lockout_seconds_max = 86'400;
  // Keys whose state is kept (the memory bound: about 100 bytes each). Default: 100000.
  size_t keys_max = 100'000;
};

// Counts failed tries per key and locks a key after failures_max of them within the window,
// for a time that doubles with each further lock. Successes reset nothing (a success proves
// one secret, not that the other tries were the owner's).
//
// A try is Begin, then Finish. Begin refuses while the key is locked — the right secret
// included, or the lock would be an oracle — and counts the try as pending, so that
// concurrent tries cannot overshoot failures_max: a try is refused while
// failures + pending tries reach failures_max.
//
// Memory is bounded: at most keys_max keys (in 16 shards). A new key in a full shard evicts
// one of kEvictionSamples keys of the shard drawn at random: the one whose state is worth
// least — lapsed (no lock, no failure in the window, no lock within lockout_seconds_max),
// else the fewest locks, then the fewest failures, then the oldest count; never a locked
// key or one with a try in flight. So spraying new keys evicts other spray: a key with a
// real count goes only if every key drawn with it counts as much. When no key drawn can
// go (a shard full of locks), the new key is refused (fail closed: an uncounted try would
// be a free guess). The cost of a new key is O(kEvictionSamples), whatever keys_max.
// Thread-safe.
class FailureLockout {
 public:
  // Keys are tags or ids of exactly this size (a shorter key is zero-padded, a longer one
  // cut: callers pass 16-byte values).
  static constexpr size_t kKeyBytes = 16;
  // Keys drawn (with replacement) to choose one to evict from a full shard.
  static constexpr size_t kEvictionSamples = 32;

  FailureLockout(Clock* clock, const LockoutPolicy& policy);

  // Begins a try of `key`. 0: go ahead, then call Finish exactly once. Otherwise the
  // nanoseconds to wait (until the key's lock ends; about a second when the refusal is
  // only for the count of pending tries or for room in the table) and nothing is recorded.
  int64_t Begin(std::string_view key);
  // Ends a try that Begin let through; failed = the secret was wrong (counts toward the
  // lock). Returns the length of the lock in nanoseconds when this failure locked the key,
  // else 0.
  int64_t Finish(std::string_view key, bool failed);

  // Keys currently kept (for tests and metrics).
  size_t keys() const;
  const LockoutPolicy& policy() const { return policy_; }

 private:
  using Key = std::array<char, kKeyBytes>;
  struct Entry {
    int64_t window_start_ns = 0;  // first failure of the current count
    int64_t locked_until_ns = 0;  // 0: never locked
    uint32_t failures = 0;        // in the current window
    uint32_t pending = 0;         // tries begun and not finished
    uint32_t locks = 0;           // locks so far (the next one doubles)
  };
  struct Slot {
    Key key;
    Entry entry;
  };
  static constexpr size_t kShards = 16;
  // Keys in a dense vector (so that eviction can draw one at random) and an index to it.
  struct Shard {
    mutable Mutex mu;
    absl::flat_hash_map<Key, uint32_t> index ABSL_GUARDED_BY(mu);  // key -> slots position
    std::vector<Slot> slots ABSL_GUARDED_BY(mu);
    uint64_t rng ABSL_GUARDED_BY(mu) = 0x9e3779b97f4a7c15;  // xorshift64 state
  };
  static Key KeyOf(std::string_view key);
  Shard& ShardFor(const Key& k);
  // Failures still counting at now (0 once the window has passed).
  uint32_t LiveFailures(const Entry& e, int64_t now) const;
  // Forgets a count whose window has passed and a doubling lockout_seconds_max old.
  void Refresh(Entry& e, int64_t now) const;
  // The entry behaves exactly like a fresh one (can be dropped).
  bool Lapsed(const Entry& e, int64_t now) const;
  // The entry of key, or a new one (nullptr when the shard is full and no key drawn could
  // be evicted: then *wait_ns says until when to wait).
  Entry* FindOrAdd(Shard& s, const Key& k, int64_t now, int64_t* wait_ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  void Erase(Shard& s, uint32_t pos) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu);
  int64_t LockNs(uint32_t locks) const;

  Clock* clock_;
  const LockoutPolicy policy_;
  const size_t max_per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace kv
