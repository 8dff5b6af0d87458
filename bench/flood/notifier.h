// flood_bench's notifier: pays a sample of the accepted orders with signed payment
// notifies (SPEC §4), one at a time on one keep-alive connection, while the flood runs.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "base/mutex.h"
#include "flood/histogram.h"
#include "flood/http_client.h"

namespace kv::flood {

// What one order was sold for, to pay it.
struct Sold {
  std::string order_id;
  int64_t amount_cents = 0;
  std::string currency;
};

// Notify work handed from buyer threads to the notifier: bounded (a full queue drops and
// counts), thread safe.
class NotifyQueue {
 public:
  static constexpr size_t kMax = 100000;
  void Push(Sold s);
  // Waits for an item (true), or returns false once the queue is closed and empty.
  bool Pop(Sold* out);
  // No more items will come; Pop drains what is queued.
  void Close();
  // Empties and closes the queue; returns how many items were never popped.
  size_t Abandon();
  uint64_t dropped();

 private:
  Mutex mu_;
  CondVar cv_;
  std::deque<Sold> q_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

struct NotifyStats {
  Histogram latency;  // 200 answers only
  uint64_t sent = 0;
  uint64_t ok = 0;                        // 200
  uint64_t other = 0;                     // answered, not 200
  uint64_t failed = 0;                    // transport failure / 10 s timeout
  uint64_t unsent = 0;                    // sampled but not sent before the drain ended
  std::map<std::string, uint64_t> codes;  // "409 invalid_state" -> n
  std::string last_failure;
};

// The notify body for `s`: a succeeded payment with the given payment id, fields in the
// order keyvend's sandbox writes them.
std::string NotifyBody(const Sold& s, const std::string& payment_id);
// The whole POST /api/v1/payments/notify request for `body`, signed under `secret` at unix
// time t.
std::string NotifyRequest(const std::string& host_header, const std::string& secret, int64_t t,
                          const std::string& body);

// Sends one notify per popped item until the queue is closed and empty (or abandoned);
// each exchange waits at most 10 s. Results go to *out, which only this thread touches
// until it returns.
void RunNotifier(const Endpoint& ep, const std::string& secret, NotifyQueue* queue,
                 NotifyStats* out);

}  // namespace kv::flood
