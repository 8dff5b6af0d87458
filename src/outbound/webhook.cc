#include "outbound/webhook.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "base/time_format.h"
#include "http/signature.h"

namespace kv::outbound {
namespace {

// Event ids and types travel in a header and are what receivers dedupe on: a short,
// unambiguous alphabet.
constexpr size_t kEventIdBytesMax = 128;
// What a receiver may answer: only the status matters, so a short read is enough; a bigger
// body is a failed attempt (net::HttpClient's ResourceExhausted), not a buffered megabyte.
constexpr size_t kResponseBytesMax = 16 * 1024;

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

bool IsToken(std::string_view s) {
  return !s.empty() && s.size() <= kEventIdBytesMax && std::all_of(s.begin(), s.end(), IsTokenChar);
}

void AppendKey(std::string* out, std::string_view key) {
  AppendJsonString(out, key);
  out->push_back(':');
}

void AppendTime(std::string* out, absl::Time t) {
  if (t == absl::InfinitePast()) {
    out->append("null");
  } else {
    AppendJsonString(out, FormatRfc3339(t));
  }
}

}  // namespace

std::string WebhookBody(const WebhookEvent& e) {
  std::string b;
  b.reserve(512);
  b.push_back('{');
  AppendKey(&b, "id");
  AppendJsonString(&b, e.id);
  b.push_back(',');
  AppendKey(&b, "type");
  AppendJsonString(&b, e.type);
  b.push_back(',');
  AppendKey(&b, "created_at");
  AppendTime(&b, e.created_at);
  b.push_back(',');
  AppendKey(&b, "data");
  b.push_back('{');
  AppendKey(&b, "order_id");
  AppendJsonString(&b, e.order_id);
  b.push_back(',');
  AppendKey(&b, "status");
  AppendJsonString(&b, e.status);
  b.push_back(',');
  AppendKey(&b, "product_id");
  absl::StrAppend(&b, e.product_id, ",");
  AppendKey(&b, "quantity");
  absl::StrAppend(&b, e.quantity, ",");
  AppendKey(&b, "amount_cents");
  absl::StrAppend(&b, e.amount_cents, ",");
  AppendKey(&b, "currency");
  AppendJsonString(&b, e.currency);
  b.push_back(',');
  AppendKey(&b, "contact");
  AppendJsonString(&b, e.contact);
  b.push_back(',');
  AppendKey(&b, "payment_id");
  if (e.payment_id.empty()) {
    b.append("null");
  } else {
    AppendJsonString(&b, e.payment_id);
  }
  b.push_back(',');
  AppendKey(&b, "created_at");
  AppendTime(&b, e.order_created_at);
  b.push_back(',');
  AppendKey(&b, "paid_at");
  AppendTime(&b, e.paid_at);
  b.push_back(',');
  AppendKey(&b, "delivered_at");
  AppendTime(&b, e.delivered_at);
  b.append("}}");
  return b;
}

absl::Status ValidateWebhookOptions(const WebhookOptions& o) {
  if (o.url.empty()) return absl::InvalidArgumentError("webhook url: empty");
  if (o.secret.empty()) return absl::InvalidArgumentError("webhook secret: empty");
  if (o.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("webhook connect timeout: must be > 0");
  }
  if (o.total_timeout < o.connect_timeout) {
    return absl::InvalidArgumentError("webhook total timeout: must be >= the connect timeout");
  }
  if (o.breaker.failures_to_open < 1) {
    return absl::InvalidArgumentError("webhook breaker failures: must be >= 1");
  }
  if (o.breaker.cooldown <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("webhook breaker cooldown: must be > 0");
  }
  return absl::OkStatus();
}

const char* WebhookOutcomeName(WebhookOutcome o) {
  switch (o) {
    case WebhookOutcome::kDelivered:
      return "delivered";
    case WebhookOutcome::kRetry:
      return "retry";
    case WebhookOutcome::kBreakerOpen:
      return "breaker_open";
    case WebhookOutcome::kFailedPermanently:
      return "failed_permanently";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<WebhookSender>> WebhookSender::Create(const WebhookOptions& options,
                                                                     net::HttpClient* http,
                                                                     const Clock* clock) {
  if (absl::Status s = ValidateWebhookOptions(options); !s.ok()) return s;
  return std::unique_ptr<WebhookSender>(new WebhookSender(options, http, clock));
}

WebhookSender::WebhookSender(const WebhookOptions& options, net::HttpClient* http,
                             const Clock* clock)
    : options_(options), http_(http), clock_(clock), breaker_(options.breaker, clock) {}

WebhookResult WebhookSender::Send(const WebhookEvent& event) {
  WebhookResult r;
  if (!IsToken(event.id) || !IsToken(event.type)) {
    r.outcome = WebhookOutcome::kFailedPermanently;
    r.detail = "malformed event id or type";
    return r;
  }
  const CircuitBreaker::Permit permit = breaker_.Acquire();
  if (!permit.allowed) {
    r.outcome = WebhookOutcome::kBreakerOpen;
    r.retry_after = permit.retry_after;
    r.detail = "circuit breaker open";
    return r;
  }

  net::HttpRequest req;
  req.method = "POST";
  req.url = options_.url;
  req.body = WebhookBody(event);
  const int64_t t = absl::ToUnixSeconds(clock_->WallNow());
  req.headers = {{"Content-Type", "application/json"},
                 {"Keyvend-Event-Id", event.id},
                 {"Keyvend-Signature", http::SignNotify(options_.secret, t, req.body)}};
  net::HttpLimits limits;
  limits.connect_timeout = options_.connect_timeout;
  limits.total_timeout = options_.total_timeout;
  limits.max_response_bytes = kResponseBytesMax;

  const absl::StatusOr<net::HttpResponse> resp = http_->Do(req, limits);
  if (!resp.ok()) {
    // InvalidArgument: the client refuses this URL (plain http to a remote host, malformed):
    // configuration, not a passing failure. Everything else (timeout, connect, TLS, an
    // oversized answer) may pass.
    const bool permanent = resp.status().code() == absl::StatusCode::kInvalidArgument;
    r.outcome = permanent ? WebhookOutcome::kFailedPermanently : WebhookOutcome::kRetry;
    r.detail = std::string(resp.status().message());
    breaker_.Release(permit, permanent);
    return r;
  }
  const int st = resp->status;
  r.http_status = st;
  r.detail = absl::StrCat("HTTP ", st);
  if (st >= 200 && st <= 299) {
    r.outcome = WebhookOutcome::kDelivered;
  } else if (st >= 500 || st == 408 || st == 425 || st == 429) {
    r.outcome = WebhookOutcome::kRetry;
  } else {
    r.outcome = WebhookOutcome::kFailedPermanently;
  }
  breaker_.Release(permit, r.outcome != WebhookOutcome::kRetry);
  return r;
}

}  // namespace kv::outbound
