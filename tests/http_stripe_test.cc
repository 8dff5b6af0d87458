// Black-box tests of the Stripe Checkout gateway (issue 13) against the real `keyvend serve`
// and the loopback fake Stripe (tests/fakes/fake_stripe.py, which signs its webhooks with
// Stripe's real scheme):
//  - the buyer's path: order with "gateway":"stripe" -> GET /pay/{id}/stripe (303 to the
//    session's checkout page; the session was created with the secret key, the order's
//    amount, currency and id) -> the fake "pays" -> the signed checkout.session.completed
//    webhook -> 200 {"received":true} -> the keys;
//  - forged, stale, future and malformed-signature webhooks: 400, nothing recorded; a
//    replayed webhook: 200 and nothing changes; wrong amount or currency: recorded
//    refund_due (amount_mismatch) exactly as keyvend's own notify records them;
//  - a webhook the fake drops: reconciliation (session retrieve) delivers the keys;
//  - kill -9 of keyvend between the payment and the webhook: reconciliation after restart.
// Every test ends with SIGTERM (exit 0) and `keyvend check` (exit 0) on the stopped dir.
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/exposition.h"
#include "kit/poll.h"
#include "kit/process.h"
#include "kit/served_shop_test.h"

namespace kv::httptest {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kAdminToken[] = "adm-stripe-test-7c1d9e3b5a4f2e6d8c0b";
constexpr char kPaymentSecret[] = "pay-secret-stripe-test-2e4d6c8b0a";
constexpr char kStripeKey[] = "sk_test_keyvend_blackbox_51Hx";
constexpr char kWebhookSecret[] = "whsec_keyvend_blackbox_9f8e7d";

bool IsReceived(const Json& delivery) {
  if (!delivery["status"].is_int() || delivery["status"].num() != 200) return false;
  const Json j = Json::Parse(delivery["body"].str());
  return j.is_object() && j["received"].is_bool() && j["received"].boolean();
}

class HttpStripeTest : public ServedShopTest {
 protected:
  HttpStripeTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  void SetUp() override {
    ServedShopTest::SetUp();
    server_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "KEYVEND_ADMIN_TOKEN=" + admin_token_, "KEYVEND_PAYMENT_SECRET=" + payment_secret_,
        std::string("KEYVEND_STRIPE_SECRET_KEY=") + kStripeKey,
        std::string("KEYVEND_STRIPE_WEBHOOK_SECRET=") + kWebhookSecret});
    ASSERT_NO_FATAL_FAILURE(StartFake());
  }

  void TearDown() override {
    fake_client_.reset();
    ServedShopTest::TearDown();
    fake_.Kill9();
  }

  // fake_stripe.py on 127.0.0.1:<port 0>; its "PORT <n>" line gives the port.
  void StartFake() {
    kv::testing::ChildOptions o;
    o.out = kv::testing::Output::Pipe();
    o.err = kv::testing::Output::AppendTo(server_->root() + "/fake_stripe.stderr");
    std::string error;
    ASSERT_TRUE(fake_.Start(
        {KV_PYTHON, FAKE_STRIPE, "--secret-key", kStripeKey, "--webhook-secret", kWebhookSecret}, o,
        &error))
        << error;
    std::string line;
    char c;
    while (line.size() < 64 && ::read(fake_.stdout_fd(), &c, 1) == 1 && c != '\n') line += c;
    ASSERT_EQ(line.rfind("PORT ", 0), 0u) << "fake_stripe.py said: " << line;
    fake_port_ = std::stoi(line.substr(5));
    fake_client_ = std::make_unique<httplib::Client>("127.0.0.1", fake_port_);
    fake_client_->set_read_timeout(30, 0);
  }

  // keyvend with Stripe as its gateway, talking to the fake; the fake's webhooks then go to
  // this keyvend's notify route.
  void StartShop(std::vector<std::string> flags = {}) {
    flags.insert(flags.begin(), {"--payment-gateways=stripe",
                                 "--stripe-api-base=http://127.0.0.1:" + std::to_string(fake_port_),
                                 // Far enough that only the tests that lower it see reconciliation.
                                 "--reconcile-after-seconds=3600", "--reconcile-tick-seconds=1"});
    Start(flags);
    PointWebhookHere();
  }

  void PointWebhookHere() {
    // No character of it needs escaping in a query.
    const std::string url =
        "http://127.0.0.1:" + std::to_string(server_->port()) + "/api/v1/payments/stripe/notify";
    auto r = fake_client_->Post(("/_control/webhook?url=" + url).c_str(), "", "text/plain");
    ASSERT_TRUE(r && r->status == 200);
  }

  Json FakePost(const std::string& path) {
    auto r = fake_client_->Post(path.c_str(), "", "text/plain");
    EXPECT_TRUE(r) << path;
    if (!r) return Json();
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return Json::Parse(r->body);
  }

  Json FakeLog() {
    auto r = fake_client_->Get("/_control/log");
    EXPECT_TRUE(r && r->status == 200);
    return r ? Json::Parse(r->body) : Json();
  }

  std::string ProductWithKeys(int n, int64_t price_cents = 1234, const std::string& cur = "USD") {
    const Reply p =
        api_->AdminPost("/api/v1/admin/products",
                        "{\"name\":\"Stripe card\",\"price_cents\":" + std::to_string(price_cents) +
                            ",\"currency\":\"" + cur + "\"}");
    EXPECT_EQ(p.status, 201) << p;
    const std::string pid = p.json()["id"].str();
    std::string body;
    for (int i = 0; i < n; ++i) {
      imported_.push_back("KV-STRIPE-" + tag_ + "-" + std::to_string(imported_.size()) + "-Q7");
      body += imported_.back() + "\n";
    }
    const Reply r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(r.status, 200) << r;
    return pid;
  }

  Json CreateOrder(const std::string& pid) {
    const Reply r = api_->Post("/api/v1/orders", "{\"product_id\":" + Quote(pid) +
                                                     R"(,"quantity":1,"contact":"s@example.com",)"
                                                     R"("gateway":"stripe"})");
    EXPECT_EQ(r.status, 201) << r;
    return r.json();
  }

  Json GetOrder(const Json& order) {
    const Reply r =
        api_->Get("/api/v1/orders/" + order["order_id"].str() + "?token=" + order["token"].str());
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }

  // GET /pay/{id}/stripe: the 303 to the fake's checkout page; returns the session id.
  std::string StartPaying(const Json& order) {
    const std::string oid = order["order_id"].str();
    const std::string pay_url = order["pay_url"].str();
    const std::string path = "/pay/" + oid + "/stripe";
    EXPECT_NE(pay_url.find(path), std::string::npos) << pay_url;
    const Reply r = api_->Get(path);
    EXPECT_EQ(r.status, 303) << r;
    const std::string loc = r.header("Location");
    const std::string prefix = "http://127.0.0.1:" + std::to_string(fake_port_) + "/c/pay/";
    EXPECT_EQ(loc.rfind(prefix, 0), 0u) << loc;
    return loc.rfind(prefix, 0) == 0 ? loc.substr(prefix.size()) : "";
  }

  // Payments recorded for `payment_id` (0 or 1; the admin list by state when given).
  std::vector<Json> PaymentsOf(const std::string& payment_id, const std::string& state = "") {
    const Reply r =
        api_->AdminGet("/api/v1/admin/payments" + (state.empty() ? "" : "?state=" + state));
    EXPECT_EQ(r.status, 200) << r;
    std::vector<Json> out;
    for (const Json& p : r.json()["payments"].items()) {
      if (p["payment_id"].str() == payment_id) out.push_back(p);
    }
    return out;
  }

  size_t AllPayments() {
    const Reply r = api_->AdminGet("/api/v1/admin/payments");
    EXPECT_EQ(r.status, 200) << r;
    return r.json()["payments"].size();
  }

  bool Delivered(const Json& order) {
    const Json o = GetOrder(order);
    return o["status"].str() == "delivered" && o["keys"].size() == 1;
  }

  std::optional<double> Metric(const std::string& name, const kv::testing::Labels& labels) {
    const Reply r = api_->Get("/metrics");
    EXPECT_EQ(r.status, 200) << r;
    return kv::testing::MetricValue(r.body, name, labels);
  }

  kv::testing::Child fake_;
  int fake_port_ = 0;
  std::unique_ptr<httplib::Client> fake_client_;
};

TEST_F(HttpStripeTest, BuyerPathCheckoutWebhookKeys) {
  ASSERT_NO_FATAL_FAILURE(StartShop());
  const std::string pid = ProductWithKeys(1);
  const Json order = CreateOrder(pid);
  const std::string oid = order["order_id"].str();
  const std::string sid = StartPaying(order);
  ASSERT_FALSE(sid.empty());

  // The session: created once, with the secret key, the order's amount, currency and id.
  const Json log = FakeLog();
  int creates = 0;
  for (const Json& call : log["api_calls"].items()) {
    if (call["method"].str() == "POST" && call["path"].str() == "/v1/checkout/sessions") {
      ++creates;
      EXPECT_TRUE(call["authorized"].boolean());
      EXPECT_EQ(call["idempotency_key"].str().rfind("keyvend-" + oid, 0), 0u);
    }
  }
  EXPECT_EQ(creates, 1);
  auto s = fake_client_->Get(("/v1/checkout/sessions/" + sid).c_str(),
                             {{"Authorization", std::string("Bearer ") + kStripeKey}});
  ASSERT_TRUE(s && s->status == 200);
  const Json session = Json::Parse(s->body);
  EXPECT_EQ(session["amount_total"].num(), 1234);
  EXPECT_EQ(session["currency"].str(), "usd");
  EXPECT_EQ(session["metadata"]["order_id"].str(), oid);
  EXPECT_EQ(session["client_reference_id"].str(), oid);
  EXPECT_NE(session["success_url"].str().find("/order/" + oid), std::string::npos);

  // A second visit to the pay page reuses the attempt: the buyer lands on the same session.
  EXPECT_EQ(StartPaying(order), sid);
  EXPECT_FALSE(Delivered(order));

  // The buyer pays; the fake sends the signed webhook; keyvend answers as Stripe expects.
  const Json d = FakePost("/_control/pay?session=" + sid + "&drop_notify=0");
  EXPECT_TRUE(IsReceived(d)) << d["status"].num() << " " << d["body"].str();
  EXPECT_TRUE(Delivered(order));
  const std::vector<Json> paid = PaymentsOf("stripe:" + sid);
  ASSERT_EQ(paid.size(), 1u);
  EXPECT_EQ(paid[0]["order_id"].str(), oid);
  EXPECT_EQ(paid[0]["amount_cents"].num(), 1234);
  EXPECT_EQ(
      Metric("keyvend_gateway_notifies_total", {{"gateway", "stripe"}, {"result", "applied"}}),
      1.0);
  // The paid order's pay page goes back to the order.
  const Reply again = api_->Get("/pay/" + oid + "/stripe");
  EXPECT_EQ(again.status, 303) << again;
  EXPECT_NE(again.header("Location").find("/order/" + oid), std::string::npos);
}

TEST_F(HttpStripeTest, ForgedStaleFutureAndMalformedSignaturesAreRefusedReplaysChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(StartShop());
  const std::string pid = ProductWithKeys(1);
  const Json order = CreateOrder(pid);
  const std::string sid = StartPaying(order);
  ASSERT_FALSE(sid.empty());
  // The session paid at "Stripe" but the webhook dropped, so only the bad ones arrive.
  FakePost("/_control/pay?session=" + sid + "&drop_notify=1");
  const size_t before = AllPayments();
  for (const std::string& q : {
           std::string("&secret=whsec_forged"),  // another secret
           std::string("&t_offset=-301"),        // stale
           std::string("&t_offset=400"),         // from the future
           std::string("&sig=t%3D1%2Cv1%3Dzz"),  // malformed
           std::string("&sig="),                 // empty
       }) {
    const Json d = FakePost("/_control/send?session=" + sid + q);
    EXPECT_EQ(d["status"].num(), 400) << q << ": " << d["body"].str();
    EXPECT_FALSE(Delivered(order)) << q;
  }
  EXPECT_EQ(AllPayments(), before);
  EXPECT_EQ(
      Metric("keyvend_gateway_notifies_total", {{"gateway", "stripe"}, {"result", "rejected"}}),
      5.0);

  // The genuine webhook, then Stripe's retry of it (the same event, a new timestamp).
  const Json first = FakePost("/_control/send?session=" + sid + "&event_id=evt_same");
  EXPECT_TRUE(IsReceived(first)) << first["body"].str();
  ASSERT_TRUE(Delivered(order));
  const std::vector<std::string> keys = {GetOrder(order)["keys"][0].str()};
  const Json retry = FakePost("/_control/send?session=" + sid + "&event_id=evt_same");
  EXPECT_TRUE(IsReceived(retry)) << retry["body"].str();
  // Another event for the same session (async_payment_succeeded after completed): a replay.
  const Json other =
      FakePost("/_control/send?session=" + sid + "&type=checkout.session.async_payment_succeeded");
  EXPECT_TRUE(IsReceived(other)) << other["body"].str();
  EXPECT_EQ(AllPayments(), before + 1);
  EXPECT_EQ(PaymentsOf("stripe:" + sid).size(), 1u);
  EXPECT_EQ(GetOrder(order)["keys"].size(), 1u);
  EXPECT_EQ(GetOrder(order)["keys"][0].str(), keys[0]);
  EXPECT_EQ(Metric("keyvend_gateway_notifies_total", {{"gateway", "stripe"}, {"result", "replay"}}),
            2.0);
  // An event keyvend does not act on: acknowledged, nothing recorded.
  const Json expired = FakePost("/_control/send?session=" + sid + "&type=checkout.session.expired");
  EXPECT_TRUE(IsReceived(expired)) << expired["body"].str();
  EXPECT_EQ(AllPayments(), before + 1);
}

TEST_F(HttpStripeTest, WrongAmountOrCurrencyIsRecordedRefundDue) {
  ASSERT_NO_FATAL_FAILURE(StartShop());
  const std::string pid = ProductWithKeys(2);
  for (const std::string& paid_as : {std::string("&amount=1"), std::string("&currency=eur")}) {
    const Json order = CreateOrder(pid);
    const std::string sid = StartPaying(order);
    ASSERT_FALSE(sid.empty());
    const Json d = FakePost("/_control/pay?session=" + sid + "&drop_notify=0" + paid_as);
    EXPECT_TRUE(IsReceived(d)) << paid_as << ": " << d["body"].str();
    EXPECT_FALSE(Delivered(order)) << paid_as;
    EXPECT_EQ(GetOrder(order)["status"].str(), "pending_payment") << paid_as;
    const std::vector<Json> due = PaymentsOf("stripe:" + sid, "refund_due");
    ASSERT_EQ(due.size(), 1u) << paid_as;
    EXPECT_EQ(due[0]["reason"].str(), "amount_mismatch") << paid_as;
    EXPECT_EQ(due[0]["order_id"].str(), order["order_id"].str());
  }
}

TEST_F(HttpStripeTest, DroppedWebhookIsReconciled) {
  ASSERT_NO_FATAL_FAILURE(StartShop({"--reconcile-after-seconds=1"}));
  const std::string pid = ProductWithKeys(1);
  const Json order = CreateOrder(pid);
  const std::string sid = StartPaying(order);
  ASSERT_FALSE(sid.empty());
  const Json d = FakePost("/_control/pay?session=" + sid + "&drop_notify=1");
  EXPECT_FALSE(d["sent"].boolean());
  ASSERT_TRUE(kv::testing::PollUntil([&] { return Delivered(order); }, milliseconds(60000),
                                     milliseconds(100)))
      << "the dropped webhook was not reconciled";
  EXPECT_EQ(PaymentsOf("stripe:" + sid).size(), 1u);
  bool retrieved = false;
  for (const Json& call : FakeLog()["api_calls"].items()) {
    retrieved |= call["method"].str() == "GET" &&
                 call["path"].str() == "/v1/checkout/sessions/" + sid &&
                 call["authorized"].boolean();
  }
  EXPECT_TRUE(retrieved);
  EXPECT_EQ(Metric("keyvend_gateway_reconciled_total", {{"gateway", "stripe"}}), 1.0);
  // The webhook arriving late is a replay.
  const Json late = FakePost("/_control/send?session=" + sid);
  EXPECT_TRUE(IsReceived(late)) << late["body"].str();
  EXPECT_EQ(PaymentsOf("stripe:" + sid).size(), 1u);
}

TEST_F(HttpStripeTest, KilledBetweenPaymentAndWebhookIsReconciledAfterRestart) {
  ASSERT_NO_FATAL_FAILURE(StartShop());
  const std::string pid = ProductWithKeys(1);
  const Json order = CreateOrder(pid);
  const std::string sid = StartPaying(order);
  ASSERT_FALSE(sid.empty());
  // kill -9 right after the redirect: the attempt must already be on disk.
  api_.reset();
  server_->Kill9();
  // The buyer pays; the webhook finds nobody (delivery fails: no status).
  const Json d = FakePost("/_control/pay?session=" + sid + "&drop_notify=0");
  EXPECT_TRUE(d["status"].is_null()) << d["status"].num();
  ASSERT_NO_FATAL_FAILURE(StartShop({"--reconcile-after-seconds=1"}));
  ASSERT_TRUE(kv::testing::PollUntil([&] { return Delivered(order); }, milliseconds(60000),
                                     milliseconds(100)))
      << "the payment was not reconciled after the restart";
  EXPECT_EQ(PaymentsOf("stripe:" + sid).size(), 1u);
}

}  // namespace
}  // namespace kv::httptest
