// Black-box tests of the payment notify's edges (issue 9 item 6; review findings 5 and 8)
// against the real `keyvend serve`:
//  - a correctly signed body the shop cannot use (a bad payment_id, a string or fractional
//    amount, an order_id that is a number, missing fields, not a JSON object, not JSON) is
//    money received: answered 200 {"received":true}, recorded once as a "malformed"
//    refund_due payment the merchant sees, never delivered; a repeat changes nothing;
//  - a signature header with several v1 values is valid when any of them matches;
//  - without a valid signature nothing is read: 401, never 400, nothing recorded.
// Every test ends with SIGTERM (exit 0) and `keyvend check` (exit 0) on the stopped dir.
#include <openssl/evp.h>

#include <map>
#include <string>
#include <vector>

#include "base/coding.h"
#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/served_shop_test.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-notify-edge-5d1e7c3b9a2f4e6d8c0b";
constexpr char kPaymentSecret[] = "pay-secret-notify-edge-1f3e5d7c9b";
constexpr char kOldSecret[] = "pay-secret-before-the-rotation-0a2c";

std::string Sha256Id(const std::string& body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(body.data(), body.size(), md, &n, EVP_sha256(), nullptr);
  return "sha256:" + HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
}

bool IsReceived(const Reply& r) {
  const Json j = r.json();
  return r.status == 200 && j.is_object() && j.size() == 1 && j["received"].is_bool() &&
         j["received"].boolean();
}

class HttpNotifyEdgeTest : public ServedShopTest {
 protected:
  HttpNotifyEdgeTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  void SetUp() override {
    ServedShopTest::SetUp();
    Start();
  }

  // A product at 250 EUR with n fresh keys; returns its id.
  std::string ProductWithKeys(int n) {
    const Reply p =
        api_->AdminPost("/api/v1/admin/products", R"({"name":"Notify edge card","price_cents":250,)"
                                                  R"("currency":"EUR"})");
    EXPECT_EQ(p.status, 201) << p;
    const std::string pid = p.json()["id"].str();
    std::string body;
    for (int i = 0; i < n; ++i) {
      imported_.push_back("KV-NOTIFY-EDGE-" + std::to_string(imported_.size()) + "-Z9Q");
      body += imported_.back() + "\n";
    }
    const Reply r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.json()["imported"].num(), n) << r;
    return pid;
  }

  Json CreateOrder(const std::string& pid) {
    const Reply r =
        api_->Post("/api/v1/orders", "{\"product_id\":" + Quote(pid) +
                                         R"(,"quantity":1,"contact":"edge@example.com"})");
    EXPECT_EQ(r.status, 201) << r;
    return r.json();
  }

  Json Order(const Json& order) {
    const Reply r =
        api_->Get("/api/v1/orders/" + order["order_id"].str() + "?token=" + order["token"].str());
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }

  int64_t Stock(const std::string& pid) {
    const Reply r = api_->Get("/api/v1/products/" + pid);
    EXPECT_EQ(r.status, 200) << r;
    return r.json()["stock"].num();
  }

  // Every recorded payment (or those in `state`), by payment_id; a payment_id listed twice
  // is a test failure.
  std::map<std::string, Json> Payments(const std::string& state = "") {
    const Reply r =
        api_->AdminGet("/api/v1/admin/payments" + (state.empty() ? "" : "?state=" + state));
    EXPECT_EQ(r.status, 200) << r;
    std::map<std::string, Json> out;
    for (const Json& p : r.json()["payments"].items()) {
      EXPECT_TRUE(out.emplace(p["payment_id"].str(), p).second)
          << "payment " << p["payment_id"].str() << " listed twice";
    }
    return out;
  }

  Reply PostNotify(const std::string& body, const std::string& signature) {
    httplib::Headers h;
    if (!signature.empty()) h.emplace("Keyvend-Signature", signature);
    return api_->Post("/api/v1/payments/notify", body, "application/json", h);
  }
};

// Review finding 5: each of these got 400 and left no record (money taken, nothing stored).
TEST_F(HttpNotifyEdgeTest, SignedButUnusableBodiesAreRecordedFlaggedOnceAndNeverDelivered) {
  const std::string pid = ProductWithKeys(2);
  const Json order = CreateOrder(pid);
  const std::string oid = order["order_id"].str();
  const int64_t stock = Stock(pid);
  const std::string oid_q = Quote(oid);
  auto body = [&](const std::string& payment_id_json, const std::string& amount_json,
                  const std::string& order_json) {
    return "{\"order_id\":" + order_json + ",\"payment_id\":" + payment_id_json +
           ",\"amount_cents\":" + amount_json + R"(,"currency":"EUR","status":"succeeded"})";
  };
  struct Case {
    std::string what;
    std::string body;
    std::string record_id;  // the payment_id the record is listed under
    std::string order_id;   // the order the record names ("" when none could be read)
  };
  std::vector<Case> cases;
  auto digest_case = [&](const std::string& what, const std::string& b, const std::string& o) {
    cases.push_back({what, b, Sha256Id(b), o});
  };
  digest_case("payment_id with a space", body(Quote("ch 123"), "250", oid_q), oid);
  digest_case("non-ASCII payment_id", body(Quote("支付-1"), "250", oid_q), oid);
  digest_case("129-byte payment_id", body(Quote(std::string(129, 'p')), "250", oid_q), oid);
  cases.push_back({"amount as a string", body(Quote("pay-edge-str"), Quote("250"), oid_q),
                   "pay-edge-str", oid});
  cases.push_back(
      {"fractional amount", body(Quote("pay-edge-float"), "250.0", oid_q), "pay-edge-float", oid});
  cases.push_back(
      {"order_id as a number", body(Quote("pay-edge-num"), "250", "12345"), "pay-edge-num", ""});
  digest_case("missing payment_id and amount",
              "{\"order_id\":" + oid_q + R"(,"currency":"EUR","status":"succeeded"})", oid);
  cases.push_back({"missing status, unknown field",
                   "{\"order_id\":" + oid_q +
                       R"(,"payment_id":"pay-edge-nostatus",)"
                       R"("amount_cents":250,"currency":"EUR","gateway_extra":{"a":[1]}})",
                   "pay-edge-nostatus", oid});
  digest_case("a JSON array, not an object", "[" + oid_q + ",\"pay-edge-arr\",250]", "");
  digest_case("not JSON at all", "order_id=" + oid + "&amount=250&status=succeeded", "");

  for (const Case& c : cases) {
    const Reply r = PostNotify(c.body, http::SignNotify(kPaymentSecret, NowUnix(), c.body));
    EXPECT_TRUE(IsReceived(r)) << c.what << ": " << r;
  }
  auto check_records = [&](const char* when) {
    const std::map<std::string, Json> due = Payments("refund_due");
    EXPECT_EQ(due.size(), cases.size()) << when;
    for (const Case& c : cases) {
      auto it = due.find(c.record_id);
      if (it == due.end()) {
        ADD_FAILURE() << when << ": " << c.what << " is not recorded as " << c.record_id;
        continue;
      }
      const Json& p = it->second;
      EXPECT_EQ(p["state"].str(), "refund_due") << c.what;
      EXPECT_EQ(p["reason"].str(), "malformed") << c.what;
      EXPECT_EQ(p["order_id"].str(), c.order_id) << c.what;
      EXPECT_EQ(p["body_excerpt"].str(), c.body) << c.what;
      EXPECT_EQ(p["body_bytes"].num(), static_cast<int64_t>(c.body.size())) << c.what;
      EXPECT_FALSE(p["problem"].str().empty()) << c.what;
    }
    EXPECT_EQ(Payments().size(), cases.size()) << when << ": nothing else recorded";
    const Json got = Order(order);
    EXPECT_EQ(got["status"].str(), "pending_payment") << when;
    EXPECT_EQ(got["keys"].size(), 0u) << when;
    EXPECT_EQ(Stock(pid), stock) << when;
  };
  check_records("after the first delivery");

  // The gateway retries each one (a new timestamp, so a new signature over the same body):
  // acknowledged again, nothing changes.
  const std::map<std::string, Json> before = Payments();
  for (const Case& c : cases) {
    const Reply r = PostNotify(c.body, http::SignNotify(kPaymentSecret, NowUnix() - 7, c.body));
    EXPECT_TRUE(IsReceived(r)) << "retry of " << c.what << ": " << r;
  }
  check_records("after the retries");
  const std::map<std::string, Json> after = Payments();
  for (const auto& [id, p] : before) {
    auto it = after.find(id);
    ASSERT_NE(it, after.end()) << id;
    EXPECT_EQ(it->second["received_at"].str(), p["received_at"].str()) << id;
  }

  // A status other than "succeeded" is no money: acknowledged, recorded nowhere — even
  // when the rest of the body is unusable.
  const std::string failed = "{\"order_id\":" + oid_q +
                             R"(,"payment_id":"pay-edge-failed","amount_cents":"250",)"
                             R"("currency":"EUR","status":"failed"})";
  EXPECT_TRUE(IsReceived(PostNotify(failed, http::SignNotify(kPaymentSecret, NowUnix(), failed))));
  EXPECT_EQ(Payments().size(), cases.size());

  // The operator is told, by the problem alone: no value from a body reaches the log.
  const std::string printed = server_->AllOutput();
  EXPECT_NE(printed.find("recorded for refund review"), std::string::npos) << printed;
  for (const char* value : {"ch 123", "支付-1", "pay-edge-str", "pay-edge-num"}) {
    EXPECT_EQ(printed.find(value), std::string::npos) << value << " in the server's output";
  }

  // The order can still be paid properly afterwards.
  const std::string good = NotifyBody(oid, "pay-edge-good", 250, "EUR");
  EXPECT_TRUE(IsReceived(PostNotify(good, http::SignNotify(kPaymentSecret, NowUnix(), good))));
  EXPECT_EQ(Order(order)["status"].str(), "delivered");
  EXPECT_EQ(Payments("applied").size(), 1u);
}

// Review finding 8: only the last v1 value was checked, so a rotating gateway that listed
// the matching signature first was refused.
TEST_F(HttpNotifyEdgeTest, SeveralV1ValuesAreValidWhenAnyMatches) {
  const std::string pid = ProductWithKeys(3);
  auto v1 = [](const std::string& secret, int64_t t, const std::string& b) {
    const std::string h = http::SignNotify(secret, t, b);
    return h.substr(h.find(",v1=") + 4);
  };
  const Json first = CreateOrder(pid);
  const Json last = CreateOrder(pid);
  const Json none = CreateOrder(pid);
  const int64_t t = NowUnix();

  const std::string b1 = NotifyBody(first["order_id"].str(), "pay-rot-first", 250, "EUR");
  EXPECT_TRUE(
      IsReceived(PostNotify(b1, "t=" + std::to_string(t) + ",v1=" + v1(kPaymentSecret, t, b1) +
                                    ",v1=" + v1(kOldSecret, t, b1))))
      << "the good signature first";
  EXPECT_EQ(Order(first)["status"].str(), "delivered");

  const std::string b2 = NotifyBody(last["order_id"].str(), "pay-rot-last", 250, "EUR");
  EXPECT_TRUE(IsReceived(PostNotify(b2, "t=" + std::to_string(t) + ",v1=" + v1(kOldSecret, t, b2) +
                                            ",v1=" + v1(kPaymentSecret, t, b2))))
      << "the good signature last";
  EXPECT_EQ(Order(last)["status"].str(), "delivered");

  const std::string b3 = NotifyBody(none["order_id"].str(), "pay-rot-none", 250, "EUR");
  EXPECT_TRUE(IsError(PostNotify(b3, "t=" + std::to_string(t) + ",v1=" + v1(kOldSecret, t, b3) +
                                         ",v1=" + v1("a-third-secret", t, b3)),
                      401, "bad_signature"));
  EXPECT_EQ(Order(none)["status"].str(), "pending_payment");
  const std::map<std::string, Json> all = Payments();
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(all.count("pay-rot-none"), 0u);
}

// The signature is checked before anything of the body is read: an unsigned or wrongly
// signed body, however malformed, is 401 bad_signature (never 400) and leaves no record.
TEST_F(HttpNotifyEdgeTest, UnsignedUnusableBodyIs401AndRecordsNothing) {
  const std::string pid = ProductWithKeys(1);
  const Json order = CreateOrder(pid);
  for (const std::string& b :
       {std::string(R"({"order_id":12345,"payment_id":"ch 123","amount_cents":"250"})"),
        std::string("not json"), std::string("[1,2]"), std::string()}) {
    EXPECT_TRUE(IsError(PostNotify(b, ""), 401, "bad_signature")) << b;
    EXPECT_TRUE(
        IsError(PostNotify(b, http::SignNotify(kOldSecret, NowUnix(), b)), 401, "bad_signature"))
        << b;
    EXPECT_TRUE(
        IsError(PostNotify(b, "t=" + std::to_string(NowUnix()) + ",v1=zz"), 401, "bad_signature"))
        << b;
  }
  EXPECT_TRUE(Payments().empty());
  EXPECT_EQ(Order(order)["status"].str(), "pending_payment");
}

}  // namespace
}  // namespace kv::httptest
