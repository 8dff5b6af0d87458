// A circuit breaker for one outbound endpoint (the merchant's webhook URL): a dead or failing
// endpoint costs no I/O per event while it is open.
//
//   closed --(failures_to_open consecutive failures)--> open
//   open   --(cooldown elapsed; the next Acquire)-----> half-open: exactly one probe goes out
//   half-open --(the probe succeeds)--> closed;  --(the probe fails)--> open (a new cooldown)
//
// Time is the injected clock's monotonic time. Thread-safe.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/mutex.h"

namespace kv::outbound {

struct BreakerOptions {
  // Consecutive failures (in the closed state) that open the breaker. >= 1. Default 5.
  int failures_to_open = 5;
  // How long an open breaker refuses before it lets one probe through. > 0. Default 30 s.
  absl::Duration cooldown = absl::Seconds(30);
};

// Stable numbers: the lead's /metrics gauge exports them (0 closed, 1 open, 2 half-open).
enum class BreakerState : int { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
const char* BreakerStateName(BreakerState s);  // "closed", "open", "half_open"

// A snapshot for /metrics. Counters only grow.
struct BreakerStats {
  BreakerState state = BreakerState::kClosed;
  int consecutive_failures = 0;  // in the closed state; 0 after any success
  uint64_t opened_total = 0;     // transitions into open (from closed or from a failed probe)
  uint64_t closed_total = 0;     // successful probes (half-open -> closed)
  uint64_t refused_total = 0;    // Acquire calls refused without I/O
  uint64_t successes_total = 0;  // Release(ok = true)
  uint64_t failures_total = 0;   // Release(ok = false)
};

class CircuitBreaker {
 public:
  // What Acquire grants. Pass it back to Release exactly once when `allowed`.
  struct Permit {
    bool allowed = false;
    bool probe = false;          // the half-open probe: its outcome decides the state
    absl::Duration retry_after;  // when refused: the rest of the cooldown (or 0 while a probe runs)
  };

  // options must be valid (see BreakerOptions; ValidateBreakerOptions). clock outlives this.
  CircuitBreaker(const BreakerOptions& options, const Clock* clock);

  // Closed: allowed. Open: refused until the cooldown has passed, then this call becomes the
  // half-open probe. Half-open: refused while the probe is out.
  Permit Acquire();
  // The outcome of an allowed attempt. In the closed state a success resets the failure
  // count and a failure counts towards opening. The probe's outcome closes or re-opens.
  // An outcome of a non-probe attempt that started before the breaker opened is counted in
  // the totals but does not change the state (the probe decides).
  void Release(const Permit& permit, bool ok);

  BreakerStats Stats() const;

 private:
  const BreakerOptions options_;
  const Clock* const clock_;
  mutable Mutex mu_;
  BreakerStats stats_ ABSL_GUARDED_BY(mu_);
  int64_t open_until_ns_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kv::outbound
