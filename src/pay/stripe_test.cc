// The Stripe adapter against an in-process fake net::HttpClient and a FakeClock: the
// session create request, the webhook's signature and event parsing, the session retrieve.
#include "pay/stripe.h"

#include <httplib.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "http/signature.h"

namespace kv::pay {
namespace {

constexpr char kOrder[] = "0123456789abcdef0123456789abcdef";
constexpr char kSecret[] = "whsec_test_secret";

class FakeHttp final : public net::HttpClient {
 public:
  absl::StatusOr<net::HttpResponse> Do(const net::HttpRequest& req,
                                       const net::HttpLimits&) override {
    requests.push_back(req);
    if (!next.ok()) return next.status();
    return *next;
  }
  void Answer(int status, std::string body) {
    next = net::HttpResponse{status, "application/json", std::move(body)};
  }
  std::string Header(size_t i, const std::string& name) const {
    for (const auto& [k, v] : requests.at(i).headers) {
      if (k == name) return v;
    }
    return "<none>";
  }
  absl::StatusOr<net::HttpResponse> next = absl::UnavailableError("no answer scripted");
  std::vector<net::HttpRequest> requests;
};

// A form body decoded (the test's own decoder: '%XX' and '+').
std::map<std::string, std::string> DecodeForm(const std::string& body) {
  auto unescape = [](std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
        i += 2;
      } else {
        out.push_back(s[i] == '+' ? ' ' : s[i]);
      }
    }
    return out;
  };
  std::map<std::string, std::string> m;
  for (std::string_view rest = body; !rest.empty();) {
    const size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const size_t eq = pair.find('=');
    m[unescape(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : unescape(pair.substr(eq + 1));
  }
  return m;
}

class StripeTest : public ::testing::Test {
 protected:
  StripeTest() {
    StripeOptions o;
    o.api_base = "https://api.stripe.test";
    o.secret_key = "sk_test_123";
    o.webhook_secret = kSecret;
    gw_ = MakeStripeGateway(o, &http_, &clock_);
  }

  PayOrder Order() const {
    PayOrder o;
    o.order_id = kOrder;
    o.amount_cents = 1234;
    o.currency = "USD";
    o.product_name = "Game key";
    o.return_url = absl::StrCat("https://shop.example/order/", kOrder);
    o.cancel_url = o.return_url;
    o.notify_url = "https://shop.example/api/v1/payments/stripe/notify";
    o.expires_at = clock_.WallNow() + absl::Minutes(15);
    return o;
  }

  int64_t Now() const { return absl::ToUnixSeconds(clock_.WallNow()); }

  httplib::Request Webhook(const std::string& body, int64_t t,
                           const std::string& secret = kSecret) {
    httplib::Request r;
    r.method = "POST";
    r.body = body;
    r.headers.emplace("Stripe-Signature", http::SignNotify(secret, t, body));
    return r;
  }

  static std::string Event(const std::string& type, const std::string& session_fields) {
    return absl::StrCat(R"({"id":"evt_1","object":"event","type":")", type,
                        R"(","data":{"object":{"object":"checkout.session",)", session_fields,
                        "}}}");
  }
  static std::string PaidSession(const std::string& extra = "") {
    return absl::StrCat(R"("id":"cs_test_abc","payment_status":"paid","status":"complete",)",
                        R"("amount_total":1234,"currency":"usd",)",
                        R"("client_reference_id":"0123456789abcdef0123456789abcdef",)",
                        R"("metadata":{"order_id":"0123456789abcdef0123456789abcdef"})", extra);
  }

  FakeClock clock_;
  FakeHttp http_;
  std::unique_ptr<Gateway> gw_;
};

TEST_F(StripeTest, Basics) {
  EXPECT_EQ(gw_->name(), "stripe");
  EXPECT_TRUE(gw_->methods().empty());
  EXPECT_TRUE(gw_->SupportsCurrency("USD"));
  EXPECT_TRUE(gw_->SupportsCurrency("JPY"));
  EXPECT_FALSE(gw_->SupportsCurrency("usd"));
  EXPECT_FALSE(gw_->SupportsCurrency("US"));
  NotifyReply ok = gw_->Reply(true), no = gw_->Reply(false);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.content_type, "application/json");
  EXPECT_EQ(ok.body, R"({"received":true})");
  EXPECT_EQ(no.status, 400);
}

TEST_F(StripeTest, StartCreatesACheckoutSession) {
  http_.Answer(200, R"({"id":"cs_test_abc","object":"checkout.session",)"
                    R"("url":"https://checkout.stripe.com/c/pay/cs_test_abc#frag"})");
  auto s = gw_->Start(Order());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ref, "cs_test_abc");
  EXPECT_EQ(s->redirect_url, "https://checkout.stripe.com/c/pay/cs_test_abc#frag");
  ASSERT_EQ(http_.requests.size(), 1u);
  const auto& req = http_.requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "https://api.stripe.test/v1/checkout/sessions");
  EXPECT_EQ(http_.Header(0, "Authorization"), "Bearer sk_test_123");
  EXPECT_EQ(http_.Header(0, "Content-Type"), "application/x-www-form-urlencoded");
  EXPECT_NE(http_.Header(0, "Stripe-Version"), "<none>");
  auto f = DecodeForm(req.body);
  EXPECT_EQ(f["mode"], "payment");
  EXPECT_EQ(f["line_items[0][price_data][currency]"], "usd");
  EXPECT_EQ(f["line_items[0][price_data][unit_amount]"], "1234");
  EXPECT_EQ(f["line_items[0][price_data][product_data][name]"], "Game key");
  EXPECT_EQ(f["line_items[0][quantity]"], "1");
  EXPECT_EQ(f["success_url"], Order().return_url);
  EXPECT_EQ(f["cancel_url"], Order().cancel_url);
  EXPECT_EQ(f["client_reference_id"], kOrder);
  EXPECT_EQ(f["metadata[order_id]"], kOrder);
  // A 15-minute hold is shorter than Stripe's 30-minute minimum session: at least 30 min
  // from now, on a 10-minute step, and the Idempotency-Key names the order and it.
  const int64_t expires_at = std::stoll(f["expires_at"]);
  EXPECT_GE(expires_at, Now() + 30 * 60);
  EXPECT_LE(expires_at, Now() + 24 * 3600);
  EXPECT_EQ(expires_at % 600, 0);
  EXPECT_EQ(http_.Header(0, "Idempotency-Key"), absl::StrCat("keyvend-", kOrder, "-", expires_at));
  // The form escapes what it must: '[' and ']' are not sent raw, nor spaces.
  EXPECT_FALSE(absl::StrContains(req.body, "[")) << req.body;
  EXPECT_FALSE(absl::StrContains(req.body, " ")) << req.body;
}

TEST_F(StripeTest, ARepeatedStartSendsTheSameRequest) {
  http_.Answer(200, R"({"id":"cs_test_abc","url":"https://checkout.stripe.com/c/pay/x"})");
  PayOrder o = Order();
  o.expires_at = clock_.WallNow() + absl::Minutes(5);
  clock_.Advance(absl::Seconds(600 - Now() % 600));  // a step boundary
  ASSERT_TRUE(gw_->Start(o).ok());
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(gw_->Start(o).ok());
  ASSERT_EQ(http_.requests.size(), 2u);
  EXPECT_EQ(http_.requests[0].body, http_.requests[1].body);
  EXPECT_EQ(http_.Header(0, "Idempotency-Key"), http_.Header(1, "Idempotency-Key"));
}

TEST_F(StripeTest, ALongHoldIsTheSessionsLifetime) {
  http_.Answer(200, R"({"id":"cs_test_abc","url":"https://checkout.stripe.com/c/pay/x"})");
  PayOrder o = Order();
  o.expires_at = clock_.WallNow() + absl::Hours(2);
  ASSERT_TRUE(gw_->Start(o).ok());
  EXPECT_EQ(DecodeForm(http_.requests[0].body)["expires_at"], absl::StrCat(Now() + 7200));
  o.expires_at = clock_.WallNow() + absl::Hours(48);  // capped under Stripe's 24 h
  ASSERT_TRUE(gw_->Start(o).ok());
  const int64_t capped = std::stoll(DecodeForm(http_.requests[1].body)["expires_at"]);
  EXPECT_LT(capped, Now() + 24 * 3600);
  EXPECT_GT(capped, Now() + 23 * 3600);
  EXPECT_EQ(capped % 600, 0);  // on the step: a repeat sends the same parameters
}

TEST_F(StripeTest, ZeroDecimalCurrencyAmountIsPassedThrough) {
  // JPY has no minor unit: keyvend's amount_cents for JPY is whole yen, as Stripe wants.
  http_.Answer(200, R"({"id":"cs_test_abc","url":"https://checkout.stripe.com/c/pay/x"})");
  PayOrder o = Order();
  o.currency = "JPY";
  o.amount_cents = 500;
  ASSERT_TRUE(gw_->Start(o).ok());
  auto f = DecodeForm(http_.requests[0].body);
  EXPECT_EQ(f["line_items[0][price_data][currency]"], "jpy");
  EXPECT_EQ(f["line_items[0][price_data][unit_amount]"], "500");
}

TEST_F(StripeTest, StartRefusesWhatStripeWouldRefuseWithoutAsking) {
  for (auto mutate : std::vector<void (*)(PayOrder*)>{
           [](PayOrder* o) { o->amount_cents = 0; },
           [](PayOrder* o) { o->amount_cents = -5; },
           [](PayOrder* o) { o->amount_cents = 100'000'000; },
           [](PayOrder* o) { o->currency = "usd"; },
           [](PayOrder* o) { o->currency = "US"; },
           [](PayOrder* o) { o->order_id = "../../v1/charges"; },
           [](PayOrder* o) {
             o->currency = "KWD";  // three decimals: Stripe wants a multiple of 10
             o->amount_cents = 1005;
           },
       }) {
    PayOrder o = Order();
    mutate(&o);
    EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(http_.requests.empty());
}

TEST_F(StripeTest, ProductNameIsBoundedAndCleaned) {
  http_.Answer(200, R"({"id":"cs_test_abc","url":"https://checkout.stripe.com/c/pay/x"})");
  PayOrder o = Order();
  o.product_name = "a\r\nb";
  for (int i = 0; i < 200; ++i) o.product_name += "\xE5\x8D\xA1";  // 卡, 3 bytes each
  ASSERT_TRUE(gw_->Start(o).ok());
  const std::string name =
      DecodeForm(http_.requests[0].body)["line_items[0][price_data][product_data][name]"];
  EXPECT_EQ(name.substr(0, 4), "a  b");
  EXPECT_LE(name.size(), 250u);
  EXPECT_EQ((name.size() - 4) % 3, 0u) << "cut inside a UTF-8 sequence";
  o.product_name = "";
  ASSERT_TRUE(gw_->Start(o).ok());
  EXPECT_EQ(DecodeForm(http_.requests[1].body)["line_items[0][price_data][product_data][name]"],
            absl::StrCat("Order ", kOrder));
}

TEST_F(StripeTest, StartErrors) {
  http_.next = absl::DeadlineExceededError("timeout");
  EXPECT_EQ(gw_->Start(Order()).status().code(), absl::StatusCode::kDeadlineExceeded);
  http_.Answer(400, R"({"error":{"type":"invalid_request_error","code":"amount_too_small",)"
                    R"("message":"Amount must be at least $0.50 usd"}})");
  auto s = gw_->Start(Order());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.status().message(), "amount_too_small")) << s.status();
  http_.Answer(401, R"({"error":{"type":"invalid_request_error","message":"Invalid API Key"}})");
  EXPECT_EQ(gw_->Start(Order()).status().code(), absl::StatusCode::kUnavailable);
  http_.Answer(500, "<html>oops</html>");
  EXPECT_EQ(gw_->Start(Order()).status().code(), absl::StatusCode::kUnavailable);
  for (const char* body : {
           "not json",
           "[1,2]",
           R"({"id":"cs_test_abc"})",
           R"({"url":"https://checkout.stripe.com/x"})",
           R"({"id":"cs test","url":"https://checkout.stripe.com/x"})",
           R"x({"id":"cs_test_abc","url":"javascript:alert(1)"})x",
           R"({"id":"cs_test_abc","url":"http://checkout.stripe.com/x"})",  // not https
           R"({"id":"cs_test_abc","url":"https://x.test/a\r\nSet-Cookie: a=b"})",
           R"({"id":"cs_test_abc","url":7})",
       }) {
    http_.Answer(200, body);
    EXPECT_EQ(gw_->Start(Order()).status().code(), absl::StatusCode::kUnavailable) << body;
  }
}

TEST_F(StripeTest, WebhookSignature) {
  const std::string body = Event("checkout.session.completed", PaidSession());
  const absl::Time now = clock_.WallNow();
  EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now()), now).kind, NotifyKind::kPayment);
  EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now() - 300), now).kind, NotifyKind::kPayment);
  EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now() + 300), now).kind, NotifyKind::kPayment);
  // Wrong secret, stale, from the future.
  EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now(), "whsec_other"), now).kind, NotifyKind::kRejected);
  EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now() - 301), now).kind, NotifyKind::kRejected);
  EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now() + 301), now).kind, NotifyKind::kRejected);
  // A body changed after signing.
  httplib::Request tampered = Webhook(body, Now());
  tampered.body =
      Event("checkout.session.completed", PaidSession()).replace(body.find("1234"), 4, "9999");
  EXPECT_EQ(gw_->ParseNotify(tampered, now).kind, NotifyKind::kRejected);
  // Two v1 values (Stripe during a secret roll), one good; and a v0 (Stripe's test scheme)
  // that is ignored.
  const std::string good = http::SignNotify(kSecret, Now(), body);  // "t=..,v1=<hex>"
  const std::string good_v1 = good.substr(good.find("v1="));
  const std::string bad_v1 = "v1=" + std::string(64, '0');
  const std::string t = "t=" + std::to_string(Now());
  auto with_header = [&](const std::string& value) {
    httplib::Request r;
    r.method = "POST";
    r.body = body;
    r.headers.emplace("Stripe-Signature", value);
    return gw_->ParseNotify(r, now).kind;
  };
  EXPECT_EQ(with_header(t + "," + bad_v1 + "," + good_v1), NotifyKind::kPayment);
  EXPECT_EQ(with_header(t + "," + good_v1 + "," + bad_v1 + ",v0=abc"), NotifyKind::kPayment);
  EXPECT_EQ(with_header(t + "," + bad_v1), NotifyKind::kRejected);
  // Malformed headers.
  for (const std::string& h :
       {std::string(""), good_v1, t, "t=abc," + good_v1, t + "," + t + "," + good_v1,
        std::string("garbage"), std::string(5000, 'v'), t + ",v0=" + good_v1.substr(3)}) {
    EXPECT_EQ(with_header(h), NotifyKind::kRejected) << h;
  }
  // Missing header; the header twice.
  httplib::Request none;
  none.body = body;
  EXPECT_EQ(gw_->ParseNotify(none, now).kind, NotifyKind::kRejected);
  httplib::Request twice = Webhook(body, Now());
  twice.headers.emplace("Stripe-Signature", "t=1,v1=00");
  EXPECT_EQ(gw_->ParseNotify(twice, now).kind, NotifyKind::kRejected);
  // The rejection says why without any secret or value.
  NotifyVerdict v = gw_->ParseNotify(Webhook(body, Now(), "whsec_other"), now);
  EXPECT_FALSE(absl::StrContains(v.reason, kSecret));
}

TEST_F(StripeTest, WebhookCompletedAndPaidIsAPayment) {
  const absl::Time now = clock_.WallNow();
  for (const char* type :
       {"checkout.session.completed", "checkout.session.async_payment_succeeded"}) {
    NotifyVerdict v = gw_->ParseNotify(Webhook(Event(type, PaidSession()), Now()), now);
    ASSERT_EQ(v.kind, NotifyKind::kPayment) << type << " " << v.malformed.problem;
    EXPECT_EQ(v.notice.payment_id, "stripe:cs_test_abc");
    EXPECT_EQ(v.notice.order_id, kOrder);
    EXPECT_EQ(v.notice.amount_cents, 1234);
    EXPECT_EQ(v.notice.currency, "USD");
  }
  // Wrong amount or currency are still payments: the shop records them refund_due.
  std::string s = PaidSession();
  s.replace(s.find("1234"), 4, "1");
  s.replace(s.find("usd"), 3, "eur");
  NotifyVerdict v = gw_->ParseNotify(Webhook(Event("checkout.session.completed", s), Now()), now);
  ASSERT_EQ(v.kind, NotifyKind::kPayment);
  EXPECT_EQ(v.notice.amount_cents, 1);
  EXPECT_EQ(v.notice.currency, "EUR");
  // Without metadata, client_reference_id names the order.
  v = gw_->ParseNotify(
      Webhook(Event("checkout.session.completed",
                    R"("id":"cs_1","payment_status":"paid","amount_total":5,"currency":"jpy",)"
                    R"("client_reference_id":"ffffffffffffffffffffffffffffffff")"),
              Now()),
      now);
  ASSERT_EQ(v.kind, NotifyKind::kPayment);
  EXPECT_EQ(v.notice.order_id, "ffffffffffffffffffffffffffffffff");
  EXPECT_EQ(v.notice.amount_cents, 5);
  EXPECT_EQ(v.notice.currency, "JPY");
}

TEST_F(StripeTest, WebhookOtherEventsAreIgnored) {
  const absl::Time now = clock_.WallNow();
  std::string unpaid = PaidSession();
  unpaid.replace(unpaid.find("\"paid\""), 6, "\"unpaid\"");
  for (const std::string& body : {
           Event("checkout.session.completed", unpaid),  // async method still pending
           Event("checkout.session.expired", PaidSession()),
           Event("checkout.session.async_payment_failed", PaidSession()),
           Event("payment_intent.succeeded", PaidSession()),
           std::string(R"({"type":"customer.created","data":{"object":{}}})"),
       }) {
    EXPECT_EQ(gw_->ParseNotify(Webhook(body, Now()), now).kind, NotifyKind::kIgnored) << body;
  }
}

TEST_F(StripeTest, WebhookAuthenticButUnusableIsMalformed) {
  const absl::Time now = clock_.WallNow();
  struct Case {
    std::string body, problem_names;
  };
  std::string str_amount = PaidSession();
  str_amount.replace(str_amount.find("1234"), 4, "\"1234\"");
  std::string float_amount = PaidSession();
  float_amount.replace(float_amount.find("1234"), 4, "12.5");
  std::string no_order = R"("id":"cs_1","payment_status":"paid","amount_total":5,"currency":"usd")";
  std::string bad_id = PaidSession();
  bad_id.replace(bad_id.find("cs_test_abc"), 11, "cs test/../x");
  std::string deep(5000, '[');
  for (const Case& c : std::vector<Case>{
           {"not json at all", "JSON"},
           {"[1]", "JSON"},
           {R"({"type":7})", "type"},
           {R"({"type":"checkout.session.completed","data":{"object":"x"}})", "data.object"},
           {Event("checkout.session.completed", str_amount), "amount_total"},
           {Event("checkout.session.completed", float_amount), "amount_total"},
           {Event("checkout.session.completed", no_order), "order_id"},
           {Event("checkout.session.completed", bad_id), "data.object.id"},
           {R"({"type":"checkout.session.completed","data":{"object":)" + deep, "JSON"},
       }) {
    NotifyVerdict v = gw_->ParseNotify(Webhook(c.body, Now()), now);
    ASSERT_EQ(v.kind, NotifyKind::kMalformed) << c.body.substr(0, 100);
    EXPECT_TRUE(absl::StrContains(v.malformed.problem, c.problem_names)) << v.malformed.problem;
    EXPECT_EQ(v.malformed.raw_body, c.body);
    EXPECT_FALSE(absl::StrContains(v.malformed.problem, "1234"));  // never a value
  }
  // What could be read is kept for the merchant.
  NotifyVerdict v =
      gw_->ParseNotify(Webhook(Event("checkout.session.completed", str_amount), Now()), now);
  EXPECT_EQ(v.malformed.payment_id, "stripe:cs_test_abc");
  EXPECT_EQ(v.malformed.order_id, kOrder);
  EXPECT_EQ(v.malformed.currency, "usd");
}

TEST_F(StripeTest, QueryRetrievesTheSession) {
  http_.Answer(200, absl::StrCat("{", PaidSession(), "}"));
  QueryResult q = gw_->Query(kOrder, "cs_test_abc");
  ASSERT_EQ(q.state, QueryState::kPaid) << q.error;
  ASSERT_EQ(http_.requests.size(), 1u);
  EXPECT_EQ(http_.requests[0].method, "GET");
  EXPECT_EQ(http_.requests[0].url, "https://api.stripe.test/v1/checkout/sessions/cs_test_abc");
  EXPECT_EQ(http_.Header(0, "Authorization"), "Bearer sk_test_123");
  // The same payment_id as the webhook's: whichever comes second is a replay.
  NotifyVerdict v = gw_->ParseNotify(
      Webhook(Event("checkout.session.completed", PaidSession()), Now()), clock_.WallNow());
  EXPECT_EQ(q.notice.payment_id, v.notice.payment_id);
  EXPECT_EQ(q.notice.order_id, v.notice.order_id);
  EXPECT_EQ(q.notice.amount_cents, v.notice.amount_cents);
  EXPECT_EQ(q.notice.currency, v.notice.currency);

  std::string open = PaidSession();
  open.replace(open.find("\"paid\""), 6, "\"unpaid\"");
  http_.Answer(200, absl::StrCat("{", open, "}"));
  EXPECT_EQ(gw_->Query(kOrder, "cs_test_abc").state, QueryState::kNotPaid);
}

TEST_F(StripeTest, QueryUnknown) {
  // No session id recorded (or a hostile one): nothing is asked.
  for (const char* ref : {"", "cs/../../v1/charges", "cs_1?expand=x"}) {
    EXPECT_EQ(gw_->Query(kOrder, ref).state, QueryState::kUnknown);
  }
  EXPECT_TRUE(http_.requests.empty());
  http_.Answer(404, R"({"error":{"type":"invalid_request_error","code":"resource_missing"}})");
  EXPECT_EQ(gw_->Query(kOrder, "cs_test_abc").state, QueryState::kUnknown);
  http_.next = absl::UnavailableError("refused");
  QueryResult q = gw_->Query(kOrder, "cs_test_abc");
  EXPECT_EQ(q.state, QueryState::kUnknown);
  EXPECT_FALSE(q.error.empty());
  http_.Answer(500, "oops");
  EXPECT_EQ(gw_->Query(kOrder, "cs_test_abc").state, QueryState::kUnknown);
  http_.Answer(200, "not json");
  EXPECT_EQ(gw_->Query(kOrder, "cs_test_abc").state, QueryState::kUnknown);
  // A paid session of another order, or another session, is not this order's payment.
  http_.Answer(200, absl::StrCat("{", PaidSession(), "}"));
  EXPECT_EQ(gw_->Query("ffffffffffffffffffffffffffffffff", "cs_test_abc").state,
            QueryState::kUnknown);
  EXPECT_EQ(gw_->Query(kOrder, "cs_test_other").state, QueryState::kUnknown);
  // Paid but unusable amount: unknown (the merchant looks), never a guess.
  std::string bad = PaidSession();
  bad.replace(bad.find("1234"), 4, "null");
  http_.Answer(200, absl::StrCat("{", bad, "}"));
  EXPECT_EQ(gw_->Query(kOrder, "cs_test_abc").state, QueryState::kUnknown);
}

}  // namespace
}  // namespace kv::pay
