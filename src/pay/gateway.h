// A payment gateway adapter (issue 13): the three jobs a gateway asks of a shop, behind one
// seam. An adapter knows its gateway's protocol only; the shop's payment path
// (Shop::ApplyPayment / RecordMalformedPayment: synced before the reply, idempotent per
// payment_id, amount and currency checked, SPEC §2/§4) is the same for all of them.
//
//   start   the buyer's way to pay an order: a signed redirect (EPay), or an API call that
//           returns one (Stripe Checkout); runs on a worker thread, may do outbound I/O.
//   notify  verify the gateway's own callback (its signature, in constant time, BEFORE
//           reading anything else) and turn it into keyvend's payment notice; pure, no I/O.
//   query   ask the gateway whether an order was paid (reconciliation of a lost notify);
//           outbound I/O, worker or reconciler thread.
//
// payment_id: each adapter namespaces the gateway's trade number ("epay:<trade_no>",
// "stripe:<checkout session id>") and its notify and its query produce the SAME payment_id
// for the same payment, so whichever arrives second is a replay (nothing changes).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shop/shop.h"

namespace httplib {
struct Request;
}

namespace kv::pay {

// What a gateway needs to know to start paying for an order.
struct PayOrder {
  std::string order_id;      // 32 hex chars
  int64_t amount_cents = 0;  // minor units of currency
  std::string currency;      // ISO 4217, upper case
  std::string product_name;  // shown on the gateway's page (the adapter bounds/escapes it)
  std::string method;        // a sub-method the adapter offers (EPay "alipay"); may be empty
  std::string return_url;    // {public_url}/order/{order_id}: where the buyer comes back
  std::string cancel_url;    // same page; Stripe's cancel_url
  std::string notify_url;    // {public_url}/api/v1/payments/{gateway}/notify
  absl::Time expires_at;     // the order's hold ends then (Stripe's expires_at is >= 30 min)
};

struct PayStart {
  std::string redirect_url;  // where the buyer's browser goes now
  std::string ref;           // the gateway's id of this attempt (Stripe session id), "" if none;
                             // stored with the attempt and given back to Query
};

enum class NotifyKind {
  kRejected,   // signature missing/wrong/stale, or not this merchant: change nothing
  kIgnored,    // authentic but not money received (e.g. a failed or pending trade)
  kPayment,    // authentic, money received, well-formed: notice
  kMalformed,  // authentic, money received, but unusable (e.g. money "1,00"): malformed
};

struct NotifyVerdict {
  NotifyKind kind = NotifyKind::kRejected;
  std::string reason;  // kRejected/kIgnored: why, for the log; never a secret or a value
  PaymentNotice notice;
  MalformedPaymentNotice malformed;
};

// What the HTTP layer answers the gateway.
struct NotifyReply {
  int status = 200;
  std::string content_type;
  std::string body;
};

enum class QueryState {
  kPaid,     // notice is filled: apply it exactly as a notify would
  kNotPaid,  // the gateway knows the attempt and it is not paid (yet)
  kUnknown,  // the gateway does not know it, or could not be asked (error says why)
};

struct QueryResult {
  QueryState state = QueryState::kUnknown;
  PaymentNotice notice;  // kPaid
  std::string error;     // kUnknown
};

class Gateway {
 public:
  virtual ~Gateway() = default;
  // The configured name ("sandbox", "epay", "stripe"): in URLs, metrics and the API.
  virtual std::string_view name() const = 0;
  // Sub-methods the buyer chooses among (EPay: "alipay", "wxpay", ...); empty if none.
  virtual std::vector<std::string> methods() const = 0;
  // Whether orders in this currency can be paid here (EPay: CNY only).
  virtual bool SupportsCurrency(std::string_view currency) const = 0;
  // Errors: InvalidArgument (unsupported method or currency, amount out of the gateway's
  // range), Unavailable / DeadlineExceeded (the gateway could not be reached).
  virtual absl::StatusOr<PayStart> Start(const PayOrder& order) = 0;
  // Verifies then parses a notify request (its method, headers, query params and body are
  // as the edge bounded them). Thread-safe, no I/O.
  virtual NotifyVerdict ParseNotify(const httplib::Request& req, absl::Time now) const = 0;
  // The answer the gateway expects: accepted = the notify was verified and recorded (or
  // was a replay, or ignored); false = rejected (the gateway should retry or give up).
  virtual NotifyReply Reply(bool accepted) const = 0;
  // Asks the gateway about an order's attempt (ref = PayStart::ref). Thread-safe.
  virtual QueryResult Query(std::string_view order_id, std::string_view ref) = 0;
};

}  // namespace kv::pay
