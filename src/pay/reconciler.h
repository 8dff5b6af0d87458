// Reconciliation of lost payment notifies (issue 13): "paid but no key" costs minutes,
// never a key. Every attempt a buyer started (GET /pay/{id}/{gateway}, stored synced in CF
// pay_attempts) is kept in memory; a thread looks at them every `tick`, and an attempt
// whose order is still pending_payment (or expired: a late payment is still money) and that
// started at least `after` ago is queried (Gateway::Query). kPaid is applied exactly as a
// notify (Shop::ApplyPayment with the same payment_id: whichever comes second is a replay).
// Queries back off per attempt: after, 2*after, 4*after... at most backoff_max apart. An
// attempt is dropped (deleted) once its order is no longer pending/expired (or gone), or
// `window` after it started.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "metrics/metrics.h"
#include "pay/gateway.h"
#include "pay/registry.h"
#include "shop/shop.h"

namespace kv::pay {

struct ReconcilerOptions {
  // First query this long after the attempt started. Default 120 s.
  absl::Duration after = absl::Seconds(120);
  // Between looks at the attempts. Default 5 s.
  absl::Duration tick = absl::Seconds(5);
  // An attempt is dropped this long after it started. Default 24 h.
  absl::Duration window = absl::Hours(24);
  // Longest interval between two queries of one attempt. Default 1 h.
  absl::Duration backoff_max = absl::Hours(1);
};

// What one query of one attempt found (the admin's "check payment now").
struct CheckedAttempt {
  std::string gateway;
  QueryState state = QueryState::kUnknown;
  bool applied = false;  // kPaid and ApplyPayment recorded it now (not a replay)
  std::string error;     // kUnknown: why (never a secret)
};

std::string_view QueryStateName(QueryState s);  // "paid" | "not_paid" | "unknown"

class Reconciler {
 public:
  // shop, gateways and clock must outlive the reconciler; metrics may be null.
  Reconciler(Shop* shop, const Gateways* gateways, const Clock* clock, ReconcilerOptions opts,
             Registry* metrics);
  ~Reconciler();  // Stop()
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // Loads the stored attempts into memory (before Start). Errors: those of
  // Shop::ListPayAttempts.
  [[nodiscard]] absl::Status Load();
  // Starts the thread (once). Thread-safe.
  void Start();
  // Stops the thread and waits for it (a query in progress finishes first: at most the
  // gateway's timeout). Idempotent; thread-safe.
  void Stop();

  // The attempt of (order_id, gateway) in memory, if any (for reusing its ref).
  std::optional<PayAttempt> Find(std::string_view order_id, std::string_view gateway) const;
  // Stores the attempt (synced: Shop::RecordPayAttempt) and then tracks it; an attempt of
  // the same order and gateway is replaced (its backoff starts over). Errors: those of
  // RecordPayAttempt (nothing tracked).
  [[nodiscard]] absl::Status Track(PayAttempt attempt);

  // One look at every attempt (the thread's tick; tests call it with a FakeClock).
  // Returns how many gateway queries it made.
  size_t RunOnce();
  // Queries every attempt of the order now, whatever their backoff, and applies a kPaid.
  // Errors: only a malformed order id (InvalidArgument).
  absl::StatusOr<std::vector<CheckedAttempt>> CheckNow(std::string_view order_id);

  // Attempts in memory.
  size_t size() const;

 private:
  struct Entry {
    PayAttempt attempt;
    int64_t next_ms = 0;      // wall ms of the next query
    int64_t interval_ms = 0;  // current backoff interval (0 = not queried yet)
  };
  static std::string KeyOf(std::string_view order_id, std::string_view gateway);
  // Queries one attempt and applies a kPaid; counts the metrics.
  CheckedAttempt QueryOne(const PayAttempt& a);
  // Deletes the attempt from storage and memory (a storage error keeps it for next time).
  void Drop(const PayAttempt& a);
  int64_t NowMs() const;
  void Loop();

  Shop* const shop_;
  const Gateways* const gateways_;
  const Clock* const clock_;
  const ReconcilerOptions opts_;
  // Per gateway name: queries by state, payments applied by a query (not replays).
  struct GatewayCounters {
    Counter* paid = nullptr;
    Counter* not_paid = nullptr;
    Counter* unknown = nullptr;
    Counter* reconciled = nullptr;
  };
  absl::flat_hash_map<std::string, GatewayCounters> counters_;  // fixed after construction

  mutable Mutex mu_;
  CondVar cv_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace kv::pay
