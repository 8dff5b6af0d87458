// The merchant's webhook (issue 14): one signed POST per event, over net::HttpClient, behind a
// circuit breaker. This is the sender only; the delivery log decides when to call it again.
//
// Wire format (what a receiver sees):
//   POST <url>
//   Content-Type: application/json
//   Keyvend-Event-Id: <event id>            (the same on every retry: dedupe on it)
//   Keyvend-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
//                                           (the notify's scheme, http/signature.h; t is the
//                                           time of this attempt, the body is the same bytes
//                                           on every attempt)
//   {"id":"...","type":"order.delivered","created_at":"2026-...Z","data":{...}}
// data = {"order_id","status","product_id","quantity","amount_cents","currency","contact",
//         "payment_id","created_at","paid_at","delivered_at"} (times RFC 3339 UTC or null).
// A key or the order's access token can never be in it: WebhookEvent has no field for them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "net/http_client.h"
#include "outbound/circuit_breaker.h"

namespace kv::outbound {

// One event as the merchant sees it. Built by the caller from the order record; there is
// deliberately no field for keys, the order token or the query password.
struct WebhookEvent {
  std::string id;    // stable across retries, [A-Za-z0-9_.-]{1,128}, e.g. "evt_<log seq>"
  std::string type;  // "order.delivered", "order.backordered", "order.refund_due", ...
  absl::Time created_at = absl::InfinitePast();  // when the state change committed
  std::string order_id;                          // hex, as in the API
  std::string status;                            // the order's status name after the change
  uint64_t product_id = 0;
  uint32_t quantity = 0;
  int64_t amount_cents = 0;
  std::string currency;
  std::string contact;
  std::string payment_id;  // empty: null
  // InfinitePast: null.
  absl::Time order_created_at = absl::InfinitePast();
  absl::Time paid_at = absl::InfinitePast();
  absl::Time delivered_at = absl::InfinitePast();
};

// The JSON body for `event` (deterministic: the same event gives the same bytes). Strings
// are escaped by AppendJsonString, so any contact text gives valid JSON.
std::string WebhookBody(const WebhookEvent& event);

struct WebhookOptions {
  // https://..., or http:// to a loopback host (the tests' receivers). Required.
  std::string url;
  // The HMAC key (KEYVEND_WEBHOOK_SECRET). Required, never logged.
  std::string secret;
  absl::Duration connect_timeout = absl::Seconds(5);  // > 0. Default 5 s.
  absl::Duration total_timeout = absl::Seconds(10);   // >= connect_timeout. Default 10 s.
  BreakerOptions breaker;                             // defaults: 5 failures, 30 s cooldown
};

// Why an options struct is unusable (names the field), or OK.
absl::Status ValidateWebhookOptions(const WebhookOptions& options);

// Stable numbers (the lead may store or export them).
enum class WebhookOutcome : int {
  // A 2xx: the event is settled.
  kDelivered = 0,
  // Worth trying again later (with backoff): a timeout, a connect/TLS/transfer error, a 5xx,
  // 408, 425 or 429, or a response larger than the cap. Counts as a breaker failure.
  kRetry = 1,
  // Refused without I/O: the breaker is open (or its probe is out). Not an attempt on the
  // endpoint: the caller should wait `retry_after` and not count it against max_attempts.
  kBreakerOpen = 2,
  // Retrying the same bytes cannot help: any other 4xx (the receiver understood and said no:
  // a wrong secret, a wrong path, a gone endpoint), a 1xx/3xx (redirects are never followed:
  // the URL is wrong), or a URL the client refuses. The merchant fixes their side, then an
  // admin replays the event. Not a breaker failure: the endpoint answered promptly.
  kFailedPermanently = 3,
};
const char* WebhookOutcomeName(WebhookOutcome o);  // "delivered", "retry", ...

struct WebhookResult {
  WebhookOutcome outcome = WebhookOutcome::kRetry;
  int http_status = 0;         // 0 when no response came back
  std::string detail;          // for the log and the admin API: status or error, never the secret
  absl::Duration retry_after;  // kBreakerOpen: the rest of the cooldown
};

class WebhookSender {
 public:
  // Errors: InvalidArgument (ValidateWebhookOptions). http and clock outlive the sender.
  static absl::StatusOr<std::unique_ptr<WebhookSender>> Create(const WebhookOptions& options,
                                                               net::HttpClient* http,
                                                               const Clock* clock);

  // Sends `event` once (no retry of its own), blocking for at most total_timeout.
  // Thread-safe: any number of workers may call it. An event whose id is malformed is
  // kFailedPermanently without I/O.
  WebhookResult Send(const WebhookEvent& event);

  // The endpoint's breaker, for /metrics.
  BreakerStats breaker_stats() const { return breaker_.Stats(); }
  const std::string& url() const { return options_.url; }

 private:
  WebhookSender(const WebhookOptions& options, net::HttpClient* http, const Clock* clock);

  const WebhookOptions options_;
  net::HttpClient* const http_;
  const Clock* const clock_;
  CircuitBreaker breaker_;
};

}  // namespace kv::outbound
