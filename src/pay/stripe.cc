// The Stripe Checkout adapter (pay/stripe.h). Protocol: Stripe's API reference for
// Checkout Sessions (create: POST /v1/checkout/sessions; retrieve: GET
// /v1/checkout/sessions/{id}), form-encoded requests with a Bearer secret key, API version
// pinned by the Stripe-Version header (kApiVersion); webhooks as "Check the webhook
// signatures" documents them: Stripe-Signature `t=<unix>,v1=<hex>[,v1=...][,v0=...]`,
// HMAC-SHA256(webhook secret, "<t>.<raw body>"), which is exactly keyvend's own notify
// scheme, so the one constant-time verifier (http/signature.h) serves both.
#include "pay/stripe.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "http/signature.h"
#include "limits/limits.h"

// The adapters take httplib::Request; its layout depends on cpp-httplib's pkg-config
// macros, which this target is compiled with.
#include <httplib.h>

namespace kv::pay {
namespace {

// The API version the request and response shapes below were written against. The
// webhook's event shape follows the version set on the webhook endpoint in the Stripe
// dashboard (set it to this one); the fields read here are the same in every version
// since 2020.
constexpr char kApiVersion[] = "2024-06-20";
// Stripe's minimum Checkout Session lifetime is 30 minutes, its maximum 24 hours; a
// minute of margin each side for the clocks' difference.
constexpr int64_t kSessionLifetimeMinSeconds = 31 * 60;
constexpr int64_t kSessionLifetimeMaxSeconds = 23 * 3600 + 59 * 60 - 60;
// A session lifetime clamped up to the minimum is rounded up to a multiple of this, so
// that a repeated Start within that window sends the same parameters (and the same
// Idempotency-Key: Stripe answers it with the session it already made).
constexpr int64_t kExpiresAtStepSeconds = 600;
// Stripe's largest amount: 8 digits of the currency's smallest unit.
constexpr int64_t kAmountMax = 99'999'999;
constexpr size_t kProductNameBytesMax = 250;
constexpr size_t kSessionIdBytesMax = 120;  // "stripe:" + id fits kPaymentIdBytesMax
static_assert(7 + kSessionIdBytesMax <= limits::kPaymentIdBytesMax);
constexpr size_t kCheckoutUrlBytesMax = 4096;
constexpr size_t kJsonDepthMax = 64;  // Stripe's objects nest a handful of levels

bool IsHex32(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsCurrency(std::string_view s) {
  return s.size() == 3 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// Stripe's ids: "cs_test_a1B2...", "cs_live_...": letters, digits and '_'.
bool IsSessionId(std::string_view s) {
  return !s.empty() && s.size() <= kSessionIdBytesMax &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
         });
}

// Stripe's three-decimal currencies: amounts in thousandths whose last digit must be 0.
bool IsThreeDecimal(std::string_view c) {
  return c == "BHD" || c == "JOD" || c == "KWD" || c == "OMR" || c == "TND";
}

// application/x-www-form-urlencoded, everything but the unreserved characters escaped.
void AppendEscaped(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

class Form {
 public:
  Form& Add(std::string_view key, std::string_view value) {
    if (!body_.empty()) body_.push_back('&');
    AppendEscaped(&body_, key);
    body_.push_back('=');
    AppendEscaped(&body_, value);
    return *this;
  }
  std::string Take() { return std::move(body_); }

 private:
  std::string body_;
};

// The product's name as Stripe shows it: control characters become spaces, cut at a UTF-8
// boundary to kProductNameBytesMax bytes, never empty.
std::string ProductName(std::string_view name, std::string_view order_id) {
  std::string out;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  if (out.size() > kProductNameBytesMax) {
    size_t cut = kProductNameBytesMax;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  if (out.find_first_not_of(' ') == std::string::npos)
    out = absl::StrCat("Order ", std::string(order_id));
  return out;
}

// A URL Stripe gave us to send the buyer to (a Location header): https, or http when the
// configured API base is itself http (the tests' loopback fake); printable ASCII only.
bool IsRedirectUrl(std::string_view url, bool allow_http) {
  if (url.empty() || url.size() > kCheckoutUrlBytesMax) return false;
  if (url.substr(0, 8) != "https://" && !(allow_http && url.substr(0, 7) == "http://")) {
    return false;
  }
  return std::all_of(url.begin(), url.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// An error code or type from Stripe, kept only if it looks like one (it goes into logs).
std::string Token(std::string_view s) {
  if (s.size() > 64 || !std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
      })) {
    return "?";
  }
  return std::string(s);
}

// What keyvend reads of a Checkout Session object (webhook data.object, or the retrieve
// answer). Each field is read on its own; `problem` names the first one missing or of the
// wrong type (never its value).
struct Session {
  std::optional<std::string> id, order_id, payment_status, currency;
  std::optional<int64_t> amount_total;
  std::string problem;
};

std::optional<std::string> Str(simdjson::dom::object o, std::string_view key) {
  std::string_view v;
  if (o[key].get_string().get(v) != simdjson::SUCCESS) return std::nullopt;
  return std::string(v);
}

Session ReadSession(simdjson::dom::object o) {
  Session s;
  auto note = [&s](std::string_view p) {
    if (s.problem.empty()) s.problem = std::string(p);
  };
  s.id = Str(o, "id");
  if (!s.id) note("data.object.id must be a string");
  s.payment_status = Str(o, "payment_status");
  if (!s.payment_status) note("data.object.payment_status must be a string");
  simdjson::dom::object meta;
  if (o["metadata"].get_object().get(meta) == simdjson::SUCCESS) s.order_id = Str(meta, "order_id");
  if (!s.order_id) s.order_id = Str(o, "client_reference_id");
  if (!s.order_id) note("data.object.metadata.order_id (or client_reference_id) must be a string");
  int64_t amount = 0;
  if (o["amount_total"].get_int64().get(amount) == simdjson::SUCCESS) {
    s.amount_total = amount;
  } else {
    note("data.object.amount_total must be an integer");
  }
  s.currency = Str(o, "currency");
  if (!s.currency) note("data.object.currency must be a string");
  if (s.problem.empty() && !IsSessionId(*s.id)) {
    note(absl::StrCat("data.object.id must be 1..", kSessionIdBytesMax,
                      " letters, digits or underscores"));
  }
  return s;
}

std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  }
  return s;
}

PaymentNotice NoticeOf(const Session& s) {
  return PaymentNotice{*s.order_id, "stripe:" + *s.id, *s.amount_total, Upper(*s.currency)};
}

class JsonDoc {
 public:
  // False when `body` is not a JSON object (or nests deeper than kJsonDepthMax).
  bool Parse(std::string_view body) {
    if (parser_.allocate(std::max<size_t>(body.size(), 64), kJsonDepthMax) != simdjson::SUCCESS) {
      return false;
    }
    simdjson::padded_string padded(body);
    simdjson::dom::element root;
    if (parser_.parse(padded).get(root) != simdjson::SUCCESS) return false;
    return root.get_object().get(root_) == simdjson::SUCCESS;
  }
  simdjson::dom::object root() const { return root_; }

 private:
  simdjson::dom::parser parser_;
  simdjson::dom::object root_;
};

class StripeGateway final : public Gateway {
 public:
  StripeGateway(StripeOptions opts, net::HttpClient* http, const Clock* clock)
      : opts_(std::move(opts)), http_(http), clock_(clock) {}

  std::string_view name() const override { return "stripe"; }
  std::vector<std::string> methods() const override { return {}; }
  bool SupportsCurrency(std::string_view currency) const override { return IsCurrency(currency); }

  absl::StatusOr<PayStart> Start(const PayOrder& order) override {
    if (!IsHex32(order.order_id)) return absl::InvalidArgumentError("order_id must be 32 hex");
    if (!IsCurrency(order.currency)) {
      return absl::InvalidArgumentError("currency must be 3 upper-case letters");
    }
    if (order.amount_cents <= 0 || order.amount_cents > kAmountMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("amount must be 1..", kAmountMax, " minor units for Stripe"));
    }
    if (IsThreeDecimal(order.currency) && order.amount_cents % 10 != 0) {
      return absl::InvalidArgumentError(
          "Stripe takes amounts in three-decimal currencies only as multiples of 10");
    }
    const int64_t now = absl::ToUnixSeconds(clock_->WallNow());
    int64_t expires_at = absl::ToUnixSeconds(order.expires_at);
    if (expires_at < now + kSessionLifetimeMinSeconds) {
      const int64_t min = now + kSessionLifetimeMinSeconds;
      expires_at =
          (min + kExpiresAtStepSeconds - 1) / kExpiresAtStepSeconds * kExpiresAtStepSeconds;
    }
    // A hold longer than Stripe's maximum: the maximum, on the same step (same parameters
    // for a repeat within it).
    expires_at = std::min(expires_at, (now + kSessionLifetimeMaxSeconds) / kExpiresAtStepSeconds *
                                          kExpiresAtStepSeconds);
    // Stripe's amounts are in the currency's smallest unit, as keyvend's amount_cents is:
    // cents for USD, whole yen for JPY and the other zero-decimal currencies. Passed through.
    std::string currency = order.currency;
    for (char& c : currency) c = static_cast<char>(c + 32);
    Form form;
    form.Add("mode", "payment")
        .Add("line_items[0][price_data][currency]", currency)
        .Add("line_items[0][price_data][unit_amount]", absl::StrCat(order.amount_cents))
        .Add("line_items[0][price_data][product_data][name]",
             ProductName(order.product_name, order.order_id))
        .Add("line_items[0][quantity]", "1")
        .Add("success_url", order.return_url)
        .Add("cancel_url", order.cancel_url.empty() ? order.return_url : order.cancel_url)
        .Add("client_reference_id", order.order_id)
        .Add("metadata[order_id]", order.order_id)
        .Add("payment_intent_data[metadata][order_id]", order.order_id)
        .Add("expires_at", absl::StrCat(expires_at));
    net::HttpRequest req;
    req.method = "POST";
    req.url = opts_.api_base + "/v1/checkout/sessions";
    req.headers = Headers();
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    // The same order with the same session lifetime is the same request: a retry (the
    // buyer's second click after a timeout) gets the session Stripe already made.
    req.headers.emplace_back("Idempotency-Key",
                             absl::StrCat("keyvend-", order.order_id, "-", expires_at));
    req.body = form.Take();
    auto res = http_->Do(req, opts_.limits);
    if (!res.ok()) return res.status();
    JsonDoc doc;
    const bool json = doc.Parse(res->body);
    if (res->status != 200) {
      std::string what = absl::StrCat("stripe answered HTTP ", res->status);
      if (json) {
        simdjson::dom::object err;
        if (doc.root()["error"].get_object().get(err) == simdjson::SUCCESS) {
          absl::StrAppend(&what, " (", Token(Str(err, "type").value_or("")), ": ",
                          Token(Str(err, "code").value_or("")), ")");
        }
      }
      // 400: Stripe refused these parameters (e.g. an amount under its minimum): trying
      // again will not help. Anything else (401 bad key, 429, 5xx) may pass.
      return res->status == 400 ? absl::InvalidArgumentError(what) : absl::UnavailableError(what);
    }
    if (!json) return absl::UnavailableError("stripe's answer is not a JSON object");
    auto id = Str(doc.root(), "id");
    auto url = Str(doc.root(), "url");
    if (!id || !IsSessionId(*id)) return absl::UnavailableError("stripe's answer has no valid id");
    if (!url || !IsRedirectUrl(*url, opts_.api_base.substr(0, 7) == "http://")) {
      return absl::UnavailableError("stripe's answer has no valid url");
    }
    return PayStart{std::move(*url), std::move(*id)};
  }

  NotifyVerdict ParseNotify(const httplib::Request& req, absl::Time now) const override {
    NotifyVerdict v;
    // The signature first: until it holds, the body is a stranger's and is not read.
    if (req.get_header_value_count("Stripe-Signature") != 1 ||
        !http::VerifyNotify(req.get_header_value("Stripe-Signature"), req.body,
                            opts_.webhook_secret, absl::ToUnixSeconds(now),
                            opts_.tolerance_seconds)) {
      v.kind = NotifyKind::kRejected;
      v.reason = "missing, malformed, stale or wrong Stripe-Signature";
      return v;
    }
    auto malformed = [&](std::string problem, const Session* s) {
      v.kind = NotifyKind::kMalformed;
      v.malformed.raw_body = req.body;
      v.malformed.problem = std::move(problem);
      if (s != nullptr) {
        if (s->id) v.malformed.payment_id = "stripe:" + *s->id;
        v.malformed.order_id = s->order_id.value_or("");
        v.malformed.amount_cents = s->amount_total.value_or(0);
        v.malformed.currency = s->currency.value_or("");
      }
      return v;
    };
    JsonDoc doc;
    if (!doc.Parse(req.body)) return malformed("body is not a JSON object", nullptr);
    auto type = Str(doc.root(), "type");
    if (!type) return malformed("type must be a string", nullptr);
    if (*type != "checkout.session.completed" &&
        *type != "checkout.session.async_payment_succeeded") {
      v.kind = NotifyKind::kIgnored;
      v.reason = "an event type other than a completed or succeeded checkout session";
      return v;
    }
    simdjson::dom::object obj;
    if (doc.root()["data"]["object"].get_object().get(obj) != simdjson::SUCCESS) {
      return malformed("data.object must be an object", nullptr);
    }
    const Session s = ReadSession(obj);
    if (s.payment_status && *s.payment_status != "paid") {
      // "unpaid" (an asynchronous method still pending: async_payment_succeeded follows)
      // or "no_payment_required": no money received.
      v.kind = NotifyKind::kIgnored;
      v.reason = "checkout session payment_status is not paid";
      return v;
    }
    if (!s.problem.empty()) return malformed(s.problem, &s);
    v.kind = NotifyKind::kPayment;
    v.notice = NoticeOf(s);
    return v;
  }

  NotifyReply Reply(bool accepted) const override {
    if (accepted) return {200, "application/json", "{\"received\":true}"};
    return {400, "application/json", "{\"received\":false}"};
  }

  QueryResult Query(std::string_view order_id, std::string_view ref) override {
    QueryResult q;
    if (!IsSessionId(ref)) {
      q.error = "no Stripe checkout session id recorded for this attempt";
      return q;
    }
    net::HttpRequest req;
    req.url = absl::StrCat(opts_.api_base, "/v1/checkout/sessions/", std::string(ref));
    req.headers = Headers();
    auto res = http_->Do(req, opts_.limits);
    if (!res.ok()) {
      q.error = res.status().ToString();
      return q;
    }
    if (res->status == 404) {
      q.error = "stripe does not know the checkout session";
      return q;
    }
    if (res->status != 200) {
      q.error = absl::StrCat("stripe answered HTTP ", res->status);
      return q;
    }
    JsonDoc doc;
    if (!doc.Parse(res->body)) {
      q.error = "stripe's answer is not a JSON object";
      return q;
    }
    const Session s = ReadSession(doc.root());
    if (!s.id || *s.id != ref) {
      q.error = "stripe's answer is for another checkout session";
      return q;
    }
    if (!s.order_id || *s.order_id != order_id) {
      q.error = "the checkout session is for another order";
      return q;
    }
    if (!s.payment_status) {
      q.error = "stripe's answer has no payment_status";
      return q;
    }
    if (*s.payment_status != "paid") {
      q.state = QueryState::kNotPaid;
      return q;
    }
    if (!s.problem.empty()) {
      q.error = s.problem;
      return q;
    }
    q.state = QueryState::kPaid;
    q.notice = NoticeOf(s);
    return q;
  }

 private:
  std::vector<std::pair<std::string, std::string>> Headers() const {
    return {{"Authorization", "Bearer " + opts_.secret_key}, {"Stripe-Version", kApiVersion}};
  }

  const StripeOptions opts_;
  net::HttpClient* const http_;
  const Clock* const clock_;
};

}  // namespace

std::unique_ptr<Gateway> MakeStripeGateway(StripeOptions opts, net::HttpClient* http,
                                           const Clock* clock) {
  return std::make_unique<StripeGateway>(std::move(opts), http, clock);
}

}  // namespace kv::pay
