#include "limits/failure_lockout.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#include "absl/hash/hash.h"

namespace kv {
namespace {

constexpr int64_t kSecondNs = 1'000'000'000;

}  // namespace

FailureLockout::FailureLockout(Clock* clock, const LockoutPolicy& policy)
    : clock_(clock),
      policy_(policy),
      max_per_shard_(std::max<size_t>(1, policy.keys_max / kShards)) {
  for (size_t i = 0; i < kShards; ++i) {
    MutexLock l(&shards_[i].mu);
    shards_[i].rng += i * 0x2545f4914f6cdd1d;  // distinct, never zero
  }
}

FailureLockout::Key FailureLockout::KeyOf(std::string_view key) {
  Key k{};
  std::memcpy(k.data(), key.data(), std::min(key.size(), k.size()));
  return k;
}

FailureLockout::Shard& FailureLockout::ShardFor(const Key& k) {
  return shards_[absl::Hash<Key>{}(k) % kShards];
}

uint32_t FailureLockout::LiveFailures(const Entry& e, int64_t now) const {
  if (e.failures == 0 || now - e.window_start_ns >= policy_.window_seconds * kSecondNs) return 0;
  return e.failures;
}

bool FailureLockout::Lapsed(const Entry& e, int64_t now) const {
  if (e.pending > 0 || now < e.locked_until_ns || LiveFailures(e, now) > 0) return false;
  // The doubling is remembered for lockout_seconds_max after a key's last lock ended.
  return e.locks == 0 || now - e.locked_until_ns >= policy_.lockout_seconds_max * kSecondNs;
}

void FailureLockout::Refresh(Entry& e, int64_t now) const {
  if (LiveFailures(e, now) == 0) e.failures = 0;
  if (e.locks > 0 && now >= e.locked_until_ns &&
      now - e.locked_until_ns >= policy_.lockout_seconds_max * kSecondNs) {
    e.locks = 0;
  }
}

int64_t FailureLockout::LockNs(uint32_t locks) const {
  const int64_t max_ns = policy_.lockout_seconds_max * kSecondNs;
  int64_t ns = policy_.lockout_seconds * kSecondNs;
  for (uint32_t i = 1; i < locks && ns < max_ns; ++i) ns *= 2;
  return std::min(ns, max_ns);
}

void FailureLockout::Erase(Shard& s, uint32_t pos) {
  s.index.erase(s.slots[pos].key);
  if (pos + 1 != s.slots.size()) {
    s.slots[pos] = s.slots.back();
    s.index[s.slots[pos].key] = pos;
  }
  s.slots.pop_back();
}

FailureLockout::Entry* FailureLockout::FindOrAdd(Shard& s, const Key& k, int64_t now,
                                                 int64_t* wait_ns) {
  if (auto it = s.index.find(k); it != s.index.end()) return &s.slots[it->second].entry;
  if (s.slots.size() >= max_per_shard_) {
    // Draw keys and evict the one worth least; a locked or busy key is never evicted.
    uint32_t victim = UINT32_MAX;
    std::tuple<bool, uint32_t, uint32_t, int64_t> best{};
    int64_t wait = std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < kEvictionSamples; ++i) {
      s.rng ^= s.rng << 13;
      s.rng ^= s.rng >> 7;
      s.rng ^= s.rng << 17;
      const uint32_t pos = static_cast<uint32_t>(s.rng % s.slots.size());
      const Entry& e = s.slots[pos].entry;
      if (e.pending > 0 || now < e.locked_until_ns) {
        wait = std::min(wait, now < e.locked_until_ns ? e.locked_until_ns - now : kSecondNs);
        continue;
      }
      const std::tuple<bool, uint32_t, uint32_t, int64_t> rank{
          !Lapsed(e, now), e.locks, LiveFailures(e, now), e.window_start_ns};
      if (victim == UINT32_MAX || rank < best) {
        victim = pos;
        best = rank;
      }
    }
    if (victim == UINT32_MAX) {
      *wait_ns = wait;  // refuse rather than grow, or let a try go uncounted
      return nullptr;
    }
    Erase(s, victim);
  }
  s.index.emplace(k, static_cast<uint32_t>(s.slots.size()));
  s.slots.push_back(Slot{k, Entry{}});
  return &s.slots.back().entry;
}

int64_t FailureLockout::Begin(std::string_view key) {
  if (policy_.failures_max == 0) return 0;
  const int64_t now = clock_->MonoNowNs();
  const Key k = KeyOf(key);
  Shard& s = ShardFor(k);
  MutexLock l(&s.mu);
  int64_t wait = 0;
  Entry* e = FindOrAdd(s, k, now, &wait);
  if (e == nullptr) return wait;
  if (now < e->locked_until_ns) return e->locked_until_ns - now;
  Refresh(*e, now);
  if (e->failures + e->pending >= policy_.failures_max) {
    return kSecondNs;  // the tries in flight would reach the lock: wait for their outcome
  }
  ++e->pending;
  return 0;
}

int64_t FailureLockout::Finish(std::string_view key, bool failed) {
  if (policy_.failures_max == 0) return 0;
  const int64_t now = clock_->MonoNowNs();
  const Key k = KeyOf(key);
  Shard& s = ShardFor(k);
  MutexLock l(&s.mu);
  Entry* e = nullptr;
  if (auto it = s.index.find(k); it != s.index.end()) {
    e = &s.slots[it->second].entry;
    if (e->pending > 0) --e->pending;
    if (!failed) {
      if (Lapsed(*e, now)) Erase(s, it->second);
      return 0;
    }
  } else {
    // Begin kept the entry (a key with a try in flight is never evicted); only a Finish
    // without its Begin gets here. Count a failure all the same when there is room.
    int64_t unused = 0;
    if (!failed || (e = FindOrAdd(s, k, now, &unused)) == nullptr) return 0;
  }
  if (now < e->locked_until_ns) return 0;  // a try begun before the lock: the lock stands
  Refresh(*e, now);
  if (e->failures == 0) e->window_start_ns = now;
  if (++e->failures < policy_.failures_max) return 0;
  ++e->locks;
  const int64_t lock_ns = LockNs(e->locks);
  e->locked_until_ns = now + lock_ns;
  e->failures = 0;
  return lock_ns;
}

size_t FailureLockout::keys() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    MutexLock l(&s.mu);
    n += s.slots.size();
  }
  return n;
}

}  // namespace kv
