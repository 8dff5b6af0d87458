// Black-box tests of the EPay gateway (issue 13) against the real `keyvend serve` and a
// loopback EPay (tests/fakes/fake_epay.py, started per test; it verifies keyvend's
// submit.php signature, signs its notifies with the merchant key and answers api.php):
//  - the buyer path: order with "gateway":"epay" -> /pay/{id}/epay 303s to a signed
//    submit.php the fake accepts -> the fake "pays" and notifies (GET query or POST form)
//    -> "success", keys delivered, the payment recorded as "epay:<trade_no>";
//  - forged sign, another merchant's pid, a state other than TRADE_SUCCESS: nothing
//    recorded ("fail" / "success" as EPay expects); a replayed notify changes nothing;
//  - a wrong amount and an unknown order are recorded refund_due exactly as the keyvend
//    notify's are (amount_mismatch, unknown_order); money edge cases over the wire
//    (0.01, 1.10, 99999.99, 1.1 exact; 1,00, -1, 1e3 recorded "malformed", never paid);
//  - a dropped notify is reconciled through api.php; so is a kill -9 between the
//    gateway's success and the notify, after the restart.
// Written against the lead's design contract (routes, config names) before the routes were
// merged. Every test ends with SIGTERM (exit 0) and `keyvend check`.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "httplib.h"
#include "kit/json.h"
#include "kit/poll.h"
#include "kit/raw_http.h"
#include "kit/served_shop_test.h"

#ifndef KV_PYTHON
#error "KV_PYTHON must name python3"
#endif
#ifndef FAKE_EPAY_PY
#error "FAKE_EPAY_PY must name tests/fakes/fake_epay.py"
#endif

namespace kv::httptest {
namespace {

using kv::testing::PollUntil;

constexpr char kAdminToken[] = "adm-epay-blackbox-7c2e9a4f1b3d5e6f8a0c";
constexpr char kPaymentSecret[] = "pay-secret-epay-blackbox-3b5d7f9e1c";
constexpr char kEpayPid[] = "1001";
constexpr char kEpayKey[] = "epay-merchant-key-5f3a1c9e7b2d4068";
constexpr milliseconds kReconcileWait{60000};

// The fake EPay as a child process.
class FakeEpay {
 public:
  ~FakeEpay() { child_.Kill9(); }

  bool Start(std::string* error) {
    ChildOptions o;
    o.out = Output::Pipe();
    o.err = Output::Null();
    if (!child_.Start({KV_PYTHON, FAKE_EPAY_PY, "--pid", kEpayPid, "--key", kEpayKey}, o, error)) {
      return false;
    }
    // One line: "fake_epay listening on http://127.0.0.1:PORT".
    std::string line;
    char c = 0;
    while (line.size() < 200 && ::read(child_.stdout_fd(), &c, 1) == 1 && c != '\n') {
      line.push_back(c);
    }
    const std::string prefix = "fake_epay listening on http://127.0.0.1:";
    if (line.rfind(prefix, 0) != 0) {
      *error = "fake_epay did not start: " + line;
      return false;
    }
    port_ = std::atoi(line.c_str() + prefix.size());
    client_ = MakeClient(port_);
    return port_ > 0;
  }

  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // GET of a URL on the fake (e.g. keyvend's submit.php redirect).
  Reply GetUrl(const std::string& url) {
    const std::string base = base_url();
    if (url.rfind(base + "/", 0) != 0) {
      ADD_FAILURE() << "not a URL of the fake EPay: " << url;
      return Reply{};
    }
    return ToReply(client_->Get(url.substr(base.size())));
  }

  // POST /_control/pay: the fake marks the order paid and sends (or drops) the notify.
  Json Pay(const std::string& order_id, const std::string& extra = "") {
    const Reply r =
        ToReply(client_->Post("/_control/pay?out_trade_no=" + order_id + extra, "", "text/plain"));
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }
  // Sends the order's last notify again (a replay).
  Json Resend(const std::string& order_id, const std::string& method = "GET") {
    const Reply r = ToReply(
        client_->Post("/_control/notify?out_trade_no=" + order_id + "&notify_method=" + method, "",
                      "text/plain"));
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }
  // Records an order as submit.php would have (for an order keyvend never started).
  void AddOrder(const std::string& order_id, const std::string& money,
                const std::string& notify_url) {
    const std::string body = "out_trade_no=" + order_id + "&money=" + money +
                             "&notify_url=" + httplib::detail::encode_query_param(notify_url);
    const Reply r =
        ToReply(client_->Post("/_control/order", body, "application/x-www-form-urlencoded"));
    EXPECT_EQ(r.status, 200) << r;
  }
  int64_t Queries() {
    const Reply r = ToReply(client_->Get("/_control/queries"));
    EXPECT_EQ(r.status, 200) << r;
    return r.json()["count"].num();
  }

 private:
  Child child_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

// The query parameters of a URL, decoded.
std::map<std::string, std::string> QueryOf(const std::string& url) {
  httplib::Params params;
  const size_t q = url.find('?');
  if (q != std::string::npos) httplib::detail::parse_query_text(url.substr(q + 1), params);
  return {params.begin(), params.end()};
}

class HttpEpayTest : public ServedShopTest {
 protected:
  HttpEpayTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  void SetUp() override {
    ServedShopTest::SetUp();
    std::string error;
    ASSERT_TRUE(epay_.Start(&error)) << error;
    server_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "KEYVEND_ADMIN_TOKEN=" + admin_token_, "KEYVEND_PAYMENT_SECRET=" + payment_secret_,
        std::string("KEYVEND_EPAY_KEY=") + kEpayKey});
  }

  // keyvend with the EPay gateway only; reconcile_after_seconds as given (3600: the
  // reconciler stays out of the way of a test about notifies).
  void StartWithEpay(int reconcile_after_seconds = 3600) {
    Start({"--payment-sandbox=false", "--payment-gateways=epay", "--epay-url=" + epay_.base_url(),
           std::string("--epay-pid=") + kEpayPid, "--epay-types=alipay,wxpay",
           "--reconcile-after-seconds=" + std::to_string(reconcile_after_seconds),
           "--reconcile-tick-seconds=1"});
  }

  // A CNY product at `price_cents` with n fresh keys; returns its id.
  std::string Product(int64_t price_cents, int n) {
    const Reply p = api_->AdminPost("/api/v1/admin/products",
                                    R"({"name":"EPay 卡 & card","price_cents":)" +
                                        std::to_string(price_cents) + R"(,"currency":"CNY"})");
    EXPECT_EQ(p.status, 201) << p;
    const std::string pid = p.json()["id"].str();
    std::string body;
    for (int i = 0; i < n; ++i) {
      imported_.push_back("KV-EPAY-" + tag_ + "-" + std::to_string(imported_.size()) + "-Q7");
      body += imported_.back() + "\n";
    }
    const Reply r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(r.status, 200) << r;
    return pid;
  }

  Json CreateOrder(const std::string& pid, const std::string& method = "alipay") {
    const Reply r = api_->Post(
        "/api/v1/orders", "{\"product_id\":" + Quote(pid) +
                              R"(,"quantity":1,"contact":"epay@example.com","gateway":"epay")" +
                              (method.empty() ? "" : ",\"method\":" + Quote(method)) + "}");
    EXPECT_EQ(r.status, 201) << r;
    return r.json();
  }

  // The buyer: follows the order's pay_url to keyvend's /pay/{id}/epay (303) and on to the
  // fake's submit.php (which checks keyvend's sign). Returns the submit.php URL.
  std::string StartPaying(const Json& order, const std::string& method = "alipay") {
    const std::string oid = order["order_id"].str();
    const std::string pay_url = order["pay_url"].str();
    const std::string path = "/pay/" + oid + "/epay";
    const size_t at = pay_url.find(path);
    EXPECT_NE(at, std::string::npos) << pay_url;
    if (at == std::string::npos) return "";
    // Over a raw connection: cpp-httplib's client percent-DEcodes a Location header as it
    // reads it, which would turn the signed URL's "%26" in a name back into a '&'.
    RawConnection raw(server_->port());
    EXPECT_TRUE(raw.Send(RawRequest("GET", pay_url.substr(at))));
    const HttpMessage r = raw.ReadResponse(std::chrono::milliseconds(10'000));
    EXPECT_EQ(r.status, 303) << r.raw;
    const std::string location = r.header("Location");
    EXPECT_EQ(location.rfind(epay_.base_url() + "/submit.php?", 0), 0u) << location;
    const auto q = QueryOf(location);
    EXPECT_EQ(q.count("pid") ? q.at("pid") : "", kEpayPid);
    EXPECT_EQ(q.count("out_trade_no") ? q.at("out_trade_no") : "", oid);
    EXPECT_EQ(q.count("type") ? q.at("type") : "", method);
    EXPECT_EQ(q.count("notify_url") ? q.at("notify_url") : "",
              server_->url() + "/api/v1/payments/epay/notify");
    EXPECT_EQ(q.count("sign_type") ? q.at("sign_type") : "", "MD5");
    const Reply s = epay_.GetUrl(location);
    EXPECT_EQ(s.status, 200) << "the fake refused keyvend's submit: " << s << " for " << location;
    return location;
  }

  Json GetOrder(const Json& order) {
    const Reply r =
        api_->Get("/api/v1/orders/" + order["order_id"].str() + "?token=" + order["token"].str());
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }
  std::string Status(const Json& order) { return GetOrder(order)["status"].str(); }

  // Every recorded payment by payment_id.
  std::map<std::string, Json> Payments() {
    const Reply r = api_->AdminGet("/api/v1/admin/payments");
    EXPECT_EQ(r.status, 200) << r;
    std::map<std::string, Json> out;
    for (const Json& p : r.json()["payments"].items()) out.emplace(p["payment_id"].str(), p);
    return out;
  }

  static void ExpectSuccess(const Json& sent, const char* what) {
    EXPECT_TRUE(sent["sent"].boolean()) << what;
    EXPECT_EQ(sent["status"].num(), 200) << what;
    EXPECT_EQ(sent["body"].str(), "success") << what;
  }

  FakeEpay epay_;
};

TEST_F(HttpEpayTest, BuyerPathByGetAndByPostDeliversTheKeys) {
  ASSERT_NO_FATAL_FAILURE(StartWithEpay());
  const std::string pid = Product(1234, 2);
  for (const char* method : {"GET", "POST"}) {
    const Json order = CreateOrder(pid);
    const std::string oid = order["order_id"].str();
    EXPECT_NE(order["pay_url"].str().find("/pay/" + oid + "/epay?method=alipay"), std::string::npos)
        << order["pay_url"].str();
    const std::string submit = StartPaying(order);
    EXPECT_EQ(QueryOf(submit)["money"], "12.34");
    EXPECT_EQ(Status(order), "pending_payment");
    const Json sent = epay_.Pay(oid, std::string("&notify_method=") + method);
    ExpectSuccess(sent, method);
    const Json got = GetOrder(order);
    EXPECT_EQ(got["status"].str(), "delivered") << method;
    EXPECT_EQ(got["keys"].size(), 1u) << method;
    const auto pays = Payments();
    const auto it = pays.find("epay:" + sent["trade_no"].str());
    ASSERT_NE(it, pays.end()) << method;
    EXPECT_EQ(it->second["state"].str(), "applied");
    EXPECT_EQ(it->second["order_id"].str(), oid);
    EXPECT_EQ(it->second["amount_cents"].num(), 1234);
    EXPECT_EQ(it->second["currency"].str(), "CNY");
  }
  EXPECT_EQ(Payments().size(), 2u);
}

TEST_F(HttpEpayTest, ForgedOtherMerchantAndUnpaidNotifiesChangeNothing) {
  ASSERT_NO_FATAL_FAILURE(StartWithEpay());
  const std::string pid = Product(500, 1);
  const Json order = CreateOrder(pid);
  const std::string oid = order["order_id"].str();
  StartPaying(order);

  Json sent = epay_.Pay(oid, "&forge=1");
  EXPECT_EQ(sent["status"].num(), 400) << "forged sign";
  EXPECT_EQ(sent["body"].str(), "fail");
  sent = epay_.Pay(oid, "&forge=1&notify_method=POST");
  EXPECT_EQ(sent["status"].num(), 400) << "forged sign by POST";
  sent = epay_.Pay(oid, "&pid=1002");
  EXPECT_EQ(sent["status"].num(), 400) << "another merchant's pid";
  EXPECT_EQ(sent["body"].str(), "fail");
  for (const char* st : {"WAIT_BUYER_PAY", "TRADE_CLOSED"}) {
    sent = epay_.Pay(oid, std::string("&trade_status=") + st);
    ExpectSuccess(sent, st);  // authentic: acknowledged, but no money
  }
  // No sign at all, an empty request, garbage: refused before anything is read.
  for (const std::string& q :
       {std::string(""), "?pid=1001&out_trade_no=" + oid + "&money=5.00&trade_status=TRADE_SUCCESS",
        std::string("?sign=zz&sign_type=MD5")}) {
    const Reply r = api_->Get("/api/v1/payments/epay/notify" + q);
    EXPECT_EQ(r.status, 400) << q << ": " << r;
    EXPECT_EQ(r.body, "fail") << q;
  }
  EXPECT_TRUE(Payments().empty());
  EXPECT_EQ(Status(order), "pending_payment");
  EXPECT_EQ(GetOrder(order)["keys"].size(), 0u);

  // The real notify still pays.
  ExpectSuccess(epay_.Pay(oid), "genuine");
  EXPECT_EQ(Status(order), "delivered");
  EXPECT_EQ(Payments().size(), 1u);
}

TEST_F(HttpEpayTest, AReplayedNotifyChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(StartWithEpay());
  const std::string pid = Product(700, 2);
  const Json order = CreateOrder(pid);
  const std::string oid = order["order_id"].str();
  StartPaying(order);
  ExpectSuccess(epay_.Pay(oid), "first");
  const Json first = GetOrder(order);
  ASSERT_EQ(first["status"].str(), "delivered");
  const auto before = Payments();
  ASSERT_EQ(before.size(), 1u);
  ExpectSuccess(epay_.Resend(oid, "GET"), "replay by GET");
  ExpectSuccess(epay_.Resend(oid, "POST"), "replay by POST");
  const Json again = GetOrder(order);
  EXPECT_EQ(again["keys"][0].str(), first["keys"][0].str());
  EXPECT_EQ(again["keys"].size(), 1u);
  const auto after = Payments();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after.begin()->second["received_at"].str(),
            before.begin()->second["received_at"].str());
}

TEST_F(HttpEpayTest, WrongAmountAndUnknownOrderAreRecordedForRefund) {
  ASSERT_NO_FATAL_FAILURE(StartWithEpay());
  const std::string pid = Product(1000, 1);
  const Json order = CreateOrder(pid);
  const std::string oid = order["order_id"].str();
  StartPaying(order);
  const Json sent = epay_.Pay(oid, "&money=0.01");
  ExpectSuccess(sent, "wrong amount");
  EXPECT_EQ(Status(order), "pending_payment");
  auto pays = Payments();
  auto it = pays.find("epay:" + sent["trade_no"].str());
  ASSERT_NE(it, pays.end());
  EXPECT_EQ(it->second["state"].str(), "refund_due");
  EXPECT_EQ(it->second["reason"].str(), "amount_mismatch");
  EXPECT_EQ(it->second["amount_cents"].num(), 1);
  EXPECT_EQ(it->second["order_id"].str(), oid);

  const std::string stray = "0123456789abcdef0123456789abcdef";
  epay_.AddOrder(stray, "1.00", server_->url() + "/api/v1/payments/epay/notify");
  const Json sent2 = epay_.Pay(stray);
  ExpectSuccess(sent2, "unknown order");
  pays = Payments();
  it = pays.find("epay:" + sent2["trade_no"].str());
  ASSERT_NE(it, pays.end());
  EXPECT_EQ(it->second["state"].str(), "refund_due");
  EXPECT_EQ(it->second["reason"].str(), "unknown_order");
}

TEST_F(HttpEpayTest, MoneyEdgeCasesOverTheWire) {
  ASSERT_NO_FATAL_FAILURE(StartWithEpay());
  // Exact: the order's price and the gateway's money text.
  struct Exact {
    int64_t price_cents;
    const char* money;
  };
  for (const Exact& e :
       {Exact{1, "0.01"}, Exact{110, "1.10"}, Exact{9'999'999, "99999.99"}, Exact{110, "1.1"}}) {
    const Json order = CreateOrder(Product(e.price_cents, 1));
    const std::string oid = order["order_id"].str();
    StartPaying(order);
    const Json sent = epay_.Pay(oid, std::string("&money=") + e.money);
    ExpectSuccess(sent, e.money);
    EXPECT_EQ(Status(order), "delivered") << e.money;
    const auto pays = Payments();
    const auto it = pays.find("epay:" + sent["trade_no"].str());
    ASSERT_NE(it, pays.end()) << e.money;
    EXPECT_EQ(it->second["amount_cents"].num(), e.price_cents) << e.money;
    EXPECT_EQ(it->second["state"].str(), "applied") << e.money;
  }
  // Authentic money received that is not an amount: recorded "malformed", never paid.
  for (const char* money : {"1%2C00", "-1", "1e3"}) {  // "1,00" url-encoded for the control URL
    const Json order = CreateOrder(Product(100, 1));
    const std::string oid = order["order_id"].str();
    StartPaying(order);
    const Json sent = epay_.Pay(oid, std::string("&money=") + money);
    ExpectSuccess(sent, money);
    EXPECT_EQ(Status(order), "pending_payment") << money;
    EXPECT_EQ(GetOrder(order)["keys"].size(), 0u) << money;
    const auto pays = Payments();
    const auto it = pays.find("epay:" + sent["trade_no"].str());
    ASSERT_NE(it, pays.end()) << money;
    EXPECT_EQ(it->second["state"].str(), "refund_due") << money;
    EXPECT_EQ(it->second["reason"].str(), "malformed") << money;
    EXPECT_EQ(it->second["order_id"].str(), oid) << money;
    EXPECT_FALSE(it->second["problem"].str().empty()) << money;
    // A retry of the same notify is the same record.
    ExpectSuccess(epay_.Resend(oid), money);
    EXPECT_EQ(Payments().size(), pays.size()) << money;
  }
}

TEST_F(HttpEpayTest, ADroppedNotifyIsReconciledThroughTheQueryApi) {
  ASSERT_NO_FATAL_FAILURE(StartWithEpay(/*reconcile_after_seconds=*/1));
  const std::string pid = Product(1234, 1);
  const Json order = CreateOrder(pid, "wxpay");
  const std::string oid = order["order_id"].str();
  StartPaying(order, "wxpay");
  const Json sent = epay_.Pay(oid, "&drop_notify=1");
  EXPECT_FALSE(sent["sent"].boolean());
  EXPECT_TRUE(
      PollUntil([&] { return Status(order) == "delivered"; }, kReconcileWait, milliseconds(200)))
      << Status(order);
  EXPECT_GE(epay_.Queries(), 1);
  const auto pays = Payments();
  ASSERT_EQ(pays.size(), 1u);
  EXPECT_EQ(pays.begin()->first, "epay:" + sent["trade_no"].str());
  EXPECT_EQ(pays.begin()->second["state"].str(), "applied");
  EXPECT_EQ(pays.begin()->second["amount_cents"].num(), 1234);
  // The notify arrives late after all: a replay.
  ExpectSuccess(epay_.Resend(oid), "late notify");
  EXPECT_EQ(Payments().size(), 1u);
  EXPECT_EQ(GetOrder(order)["keys"].size(), 1u);
}

TEST_F(HttpEpayTest, AKill9BetweenThePaymentAndTheNotifyIsReconciledAfterTheRestart) {
  // The reconciler waits an hour in this first run: nothing is reconciled before the kill.
  ASSERT_NO_FATAL_FAILURE(StartWithEpay());
  const std::string pid = Product(4321, 1);
  const Json order = CreateOrder(pid);
  const std::string oid = order["order_id"].str();
  StartPaying(order);
  EXPECT_FALSE(epay_.Pay(oid, "&drop_notify=1")["sent"].boolean());
  EXPECT_EQ(Status(order), "pending_payment");
  EXPECT_EQ(epay_.Queries(), 0);
  server_->Kill9();
  api_.reset();

  ASSERT_NO_FATAL_FAILURE(StartWithEpay(/*reconcile_after_seconds=*/1));
  EXPECT_TRUE(
      PollUntil([&] { return Status(order) == "delivered"; }, kReconcileWait, milliseconds(200)))
      << Status(order);
  const auto pays = Payments();
  ASSERT_EQ(pays.size(), 1u);
  EXPECT_EQ(pays.begin()->second["state"].str(), "applied");
  EXPECT_EQ(pays.begin()->second["amount_cents"].num(), 4321);
  EXPECT_EQ(GetOrder(order)["keys"].size(), 1u);
}

}  // namespace
}  // namespace kv::httptest
