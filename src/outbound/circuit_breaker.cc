#include "outbound/circuit_breaker.h"

namespace kv::outbound {

const char* BreakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(const BreakerOptions& options, const Clock* clock)
    : options_(options), clock_(clock) {}

CircuitBreaker::Permit CircuitBreaker::Acquire() {
  MutexLock l(&mu_);
  Permit p;
  switch (stats_.state) {
    case BreakerState::kClosed:
      p.allowed = true;
      return p;
    case BreakerState::kOpen: {
      const int64_t now = clock_->MonoNowNs();
      if (now >= open_until_ns_) {
        stats_.state = BreakerState::kHalfOpen;
        p.allowed = true;
        p.probe = true;
        return p;
      }
      p.retry_after = absl::Nanoseconds(open_until_ns_ - now);
      break;
    }
    case BreakerState::kHalfOpen:
      break;  // the probe is out; everyone else waits for its verdict
  }
  ++stats_.refused_total;
  return p;
}

void CircuitBreaker::Release(const Permit& permit, bool ok) {
  if (!permit.allowed) return;
  MutexLock l(&mu_);
  if (ok) {
    ++stats_.successes_total;
  } else {
    ++stats_.failures_total;
  }
  if (permit.probe) {
    if (ok) {
      stats_.state = BreakerState::kClosed;
      stats_.consecutive_failures = 0;
      ++stats_.closed_total;
    } else {
      stats_.state = BreakerState::kOpen;
      open_until_ns_ = clock_->MonoNowNs() + absl::ToInt64Nanoseconds(options_.cooldown);
      ++stats_.opened_total;
    }
    return;
  }
  if (stats_.state != BreakerState::kClosed) return;  // a straggler from before the opening
  if (ok) {
    stats_.consecutive_failures = 0;
    return;
  }
  if (++stats_.consecutive_failures >= options_.failures_to_open) {
    stats_.state = BreakerState::kOpen;
    stats_.consecutive_failures = 0;
    open_until_ns_ = clock_->MonoNowNs() + absl::ToInt64Nanoseconds(options_.cooldown);
    ++stats_.opened_total;
  }
}

BreakerStats CircuitBreaker::Stats() const {
  MutexLock l(&mu_);
  return stats_;
}

}  // namespace kv::outbound
