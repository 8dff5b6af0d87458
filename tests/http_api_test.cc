// Black-box tests of keyvend's HTTP API (SPEC §4) against the real `keyvend serve` binary:
// the buyer flow, the signed payment notify, the sandbox page, idempotent order creation,
// every error code of §4's table the server implements today, the merchant routes, the
// operations endpoints and the refusal of an oversized body before it is read.
//
// Every test runs its own server (127.0.0.1:0, a temp data dir) and ends in TearDown with
// SIGTERM (exit 0 expected), `keyvend check` on the stopped dir (exit 0) and a grep of
// everything the server printed for every card key the test imported (SPEC §2.6).
//
// The last four tests pin behaviour the server gets wrong today (reported with the tests):
// the connection after a 413 is kept open and its next bytes are served as a request; a
// bodyless POST without Content-Length waits for the read timeout and gets a 400; a
// correctly signed notify with a lower-case currency is refused (400) instead of recorded
// and flagged; SIGTERM waits for idle keep-alive connections to time out.
#include <time.h>

#include <algorithm>
#include <ctime>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/exposition.h"
#include "kit/served_shop_test.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-7f3c9e21b0d84a56a1c2e3f4-0123456789a";
constexpr char kPaymentSecret[] = "pay-secret-4b2d8e6f1a3c5e7d9b0a";

bool IsReceived(const Reply& r);

class HttpApiTest : public ServedShopTest {
 protected:
  HttpApiTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  // TearDown (ServedShopTest): SIGTERM (exit 0), `keyvend check` (exit 0) and SPEC §2.6: no
  // key in a log line, ever (stdout and stderr of every run, and check's).
  void SetUp() override {
    ServedShopTest::SetUp();
    Start();
  }

  // A card key unique to this test run.
  std::string NewKey(const std::string& what) {
    return "KV-" + what + "-" + tag_ + "-" + std::to_string(++key_counter_) + "-Q7Z";
  }
  std::vector<std::string> NewKeys(int n, const std::string& what) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(NewKey(what));
    return out;
  }

  // Creates a product; `extra` is appended to the JSON object (e.g. ,"max_per_order":2).
  std::string CreateProduct(const std::string& name, int64_t price_cents = 250,
                            const std::string& extra = "") {
    const Reply r = api_->AdminPost("/api/v1/admin/products",
                                    "{\"name\":" + Quote(name) +
                                        ",\"price_cents\":" + std::to_string(price_cents) +
                                        ",\"currency\":\"EUR\"" + extra + "}");
    EXPECT_EQ(r.status, 201) << r;
    const Json j = r.json();
    EXPECT_TRUE(j["id"].is_string()) << r;
    EXPECT_EQ(j["name"].str(), name);
    EXPECT_EQ(j["price_cents"].num(), price_cents);
    return j["id"].str();
  }

  // Imports keys as text/plain; expects them all imported.
  Json ImportKeys(const std::string& pid, const std::vector<std::string>& keys) {
    std::string body;
    for (const std::string& k : keys) body += k + "\n";
    imported_.insert(imported_.end(), keys.begin(), keys.end());
    const Reply r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(r.status, 200) << r;
    const Json j = r.json();
    EXPECT_EQ(j["imported"].num(), static_cast<int64_t>(keys.size())) << r;
    EXPECT_EQ(j["duplicates"].num(), 0) << r;
    EXPECT_TRUE(j["batch_id"].is_string()) << r;
    EXPECT_TRUE(j["rejected"].is_array() && j["rejected"].size() == 0) << r;
    return j;
  }

  // The product's live stock as buyers see it (GET /api/v1/products/{id}).
  int64_t Stock(const std::string& pid) {
    const Reply r = api_->Get("/api/v1/products/" + pid);
    EXPECT_EQ(r.status, 200) << r;
    const Json j = r.json();
    EXPECT_TRUE(j["stock"].is_int()) << r;
    return j["stock"].num();
  }

  Reply OrderRaw(const std::string& pid, int64_t qty, const std::string& contact,
                 const std::string& password = "", const httplib::Headers& h = {}) {
    std::string body = "{\"product_id\":" + Quote(pid) + ",\"quantity\":" + std::to_string(qty) +
                       ",\"contact\":" + Quote(contact);
    if (!password.empty()) body += ",\"query_password\":" + Quote(password);
    body += "}";
    return api_->Post("/api/v1/orders", body, "application/json", h);
  }

  // Creates an order; expects 201 with SPEC §4's shape.
  Json CreateOrder(const std::string& pid, int64_t qty, const std::string& contact,
                   const std::string& password = "") {
    const Reply r = OrderRaw(pid, qty, contact, password);
    EXPECT_EQ(r.status, 201) << r;
    const Json j = r.json();
    EXPECT_TRUE(j["order_id"].is_string() && !j["order_id"].str().empty()) << r;
    EXPECT_TRUE(j["token"].is_string() && !j["token"].str().empty()) << r;
    EXPECT_EQ(j["status"].str(), "pending_payment") << r;
    return j;
  }

  Reply GetOrderRaw(const std::string& id, const std::string& token) {
    return api_->Get("/api/v1/orders/" + id + "?token=" + token);
  }
  Json GetOrder(const std::string& id, const std::string& token) {
    const Reply r = GetOrderRaw(id, token);
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }
  Json AdminOrder(const std::string& id) {
    const Reply r = api_->AdminGet("/api/v1/admin/orders/" + id);
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }

  // Pays an order with a correctly signed notify matching its amount and currency.
  Reply Pay(const Json& order, const std::string& payment_id) {
    return SendNotify(*api_, kPaymentSecret,
                      NotifyBody(order["order_id"].str(), payment_id, order["amount_cents"].num(),
                                 order["currency"].str()));
  }

  Json Payments(const std::string& state = "") {
    const Reply r =
        api_->AdminGet("/api/v1/admin/payments" + (state.empty() ? "" : "?state=" + state));
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }

  // The buyer flow's paid order: product "Game card 25" (250 cents) with 7 keys, an order
  // of 2 by buyer@example.com with query password "open-sesame-1", paid by the signed
  // notify "pay-<tag>-1" and delivered (asserted on the way).
  struct Paid {
    std::string pid;
    Json order;
    std::string oid, token;
    std::vector<std::string> keys;
  };
  Paid BuyAndPay() {
    Paid p;
    p.pid = CreateProduct("Game card 25", 250);
    ImportKeys(p.pid, NewKeys(7, "buy"));
    p.order = CreateOrder(p.pid, 2, "buyer@example.com", "open-sesame-1");
    p.oid = p.order["order_id"].str();
    p.token = p.order["token"].str();
    EXPECT_TRUE(IsReceived(Pay(p.order, "pay-" + tag_ + "-1")));
    const Json got = GetOrder(p.oid, p.token);
    EXPECT_EQ(got["status"].str(), "delivered");
    p.keys = Keys(got);
    EXPECT_EQ(p.keys.size(), 2u);
    EXPECT_EQ(Stock(p.pid), 5);
    return p;
  }

  // The merchant tests' shop: product "Admin card" (300 cents) with 10 keys, 5 pending
  // orders of 1 (admin-buyer-<i>@example.com), orders[0] and orders[1] paid.
  struct AdminScene {
    std::string pid;
    std::vector<std::string> keys;
    std::vector<Json> orders;
    std::set<std::string> all_ids;
    std::string o0;  // orders[0]'s id
  };
  AdminScene MakeAdminScene() {
    AdminScene s;
    s.pid = CreateProduct("Admin card", 300);
    s.keys = NewKeys(10, "adm");
    ImportKeys(s.pid, s.keys);
    for (int i = 0; i < 5; ++i) {
      s.orders.push_back(
          CreateOrder(s.pid, 1, "admin-buyer-" + std::to_string(i) + "@example.com"));
    }
    for (const Json& o : s.orders) s.all_ids.insert(o["order_id"].str());
    EXPECT_TRUE(IsReceived(Pay(s.orders[0], "pay-adm-0-" + tag_)));
    EXPECT_TRUE(IsReceived(Pay(s.orders[1], "pay-adm-1-" + tag_)));
    s.o0 = s.orders[0]["order_id"].str();
    return s;
  }
  // The merchant's actions on the scene: orders[2] cancelled and then paid (refund_due),
  // orders[0] refunded.
  void CancelPayRefund(const AdminScene& s) {
    const std::string o2 = s.orders[2]["order_id"].str();
    Reply r = api_->AdminPost("/api/v1/admin/orders/" + o2 + "/cancel", "");
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_TRUE(IsReceived(Pay(s.orders[2], "pay-adm-2-" + tag_)));
    r = api_->AdminPost("/api/v1/admin/orders/" + s.o0 + "/refund", "");
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.json()["status"].str(), "refunded") << r;
  }
  // A second product "Backorder card" (on_payment, backorders allowed) whose one order is
  // paid with no stock, then served by an import of one key. Its id.
  std::string ServeABackorder() {
    const std::string bo = CreateProduct("Backorder card", 700,
                                         R"(,"stock_mode":"on_payment","allow_backorder":true)");
    const Json o = CreateOrder(bo, 1, "patient@example.com");
    EXPECT_TRUE(IsReceived(Pay(o, "pay-bo-" + tag_)));
    EXPECT_EQ(ImportKeys(bo, NewKeys(1, "bo"))["backorders_served"].num(), 1);
    EXPECT_EQ(GetOrder(o["order_id"].str(), o["token"].str())["status"].str(), "delivered");
    return bo;
  }

  static std::vector<std::string> Keys(const Json& order) {
    std::vector<std::string> out;
    for (const Json& k : order["keys"].items()) out.push_back(k.str());
    return out;
  }

  bool Imported(const std::string& key) const {
    return std::find(imported_.begin(), imported_.end(), key) != imported_.end();
  }

  int key_counter_ = 0;
};

bool IsReceived(const Reply& r) {
  const Json j = r.json();
  return r.status == 200 && j.is_object() && j.size() == 1 && j["received"].is_bool() &&
         j["received"].boolean();
}

const std::regex& Rfc3339Utc() {
  static const std::regex* re = new std::regex(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$)");
  return *re;
}

int64_t ParseUtc(const std::string& s) {
  std::tm tm{};
  if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// --- the buyer flow -------------------------------------------------------------------------

TEST_F(HttpApiTest, BuyerFlowImportsTextAndCsvKeys) {
  const std::string pid = CreateProduct("Game card 25", 250);

  // Keys as text/plain (with an empty line, a repeated key and an overlong line reported
  // by line number), then as CSV with a `key` column.
  const std::vector<std::string> text_keys = NewKeys(4, "txt");
  imported_.insert(imported_.end(), text_keys.begin(), text_keys.end());
  const std::string body = text_keys[0] + "\n" + text_keys[1] + "\n\n" + text_keys[0] + "\n" +
                           std::string(300, 'x') + "\n" + text_keys[2] + "\r\n" + text_keys[3] +
                           "\n";
  Reply r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
  ASSERT_EQ(r.status, 200) << r;
  Json j = r.json();
  EXPECT_TRUE(j["batch_id"].is_string()) << r;
  EXPECT_EQ(j["imported"].num(), 4) << r;
  EXPECT_EQ(j["duplicates"].num(), 1) << r;
  bool empty_line3 = false, too_long_line5 = false;
  for (const Json& rej : j["rejected"].items(2)) {
    empty_line3 |= rej["line"].num() == 3 && rej["reason"].str() == "empty";
    too_long_line5 |= rej["line"].num() == 5 && rej["reason"].str() == "too_long";
  }
  EXPECT_TRUE(empty_line3 && too_long_line5) << r;

  const std::vector<std::string> csv_keys = NewKeys(3, "csv");
  imported_.insert(imported_.end(), csv_keys.begin(), csv_keys.end());
  const std::string csv = "serial,key,note\r\n1," + csv_keys[0] + ",a\r\n2,\"" + csv_keys[1] +
                          "\",b\r\n3," + csv_keys[2] + ",\"c, d\"\r\n";
  r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", csv, "text/csv");
  ASSERT_EQ(r.status, 200) << r;
  j = r.json();
  EXPECT_EQ(j["imported"].num(), 3) << r;
  EXPECT_EQ(j["duplicates"].num(), 0) << r;
  EXPECT_EQ(j["rejected"].size(), 0u) << r;
  EXPECT_NE(j["batch_id"].str(), "") << r;

  // The catalogue shows the live stock.
  r = api_->Get("/api/v1/products");
  ASSERT_EQ(r.status, 200) << r;
  j = r.json();
  ASSERT_TRUE(j["products"].is_array()) << r;
  bool listed = false;
  for (const Json& p : j["products"].items(1)) {  // the test's one product
    if (p["id"].str() != pid) continue;
    listed = true;
    EXPECT_EQ(p["stock"].num(), 7) << r;
    EXPECT_EQ(p["price_cents"].num(), 250);
    EXPECT_EQ(p["currency"].str(), "EUR");
  }
  EXPECT_TRUE(listed) << r;
}

TEST_F(HttpApiTest, BuyerFlowOrderPayRead) {
  const std::string pid = CreateProduct("Game card 25", 250);
  ImportKeys(pid, NewKeys(7, "buy"));

  // Order: 201 with exactly SPEC §4's fields.
  const int64_t before = NowUnix();
  Reply r = OrderRaw(pid, 2, "buyer@example.com", "open-sesame-1");
  ASSERT_EQ(r.status, 201) << r;
  const Json order = r.json();
  std::vector<std::string> fields = order.keys();
  std::sort(fields.begin(), fields.end());
  EXPECT_EQ(fields, (std::vector<std::string>{"amount_cents", "currency", "expires_at", "order_id",
                                              "pay_url", "status", "token"}))
      << r;
  const std::string oid = order["order_id"].str();
  const std::string token = order["token"].str();
  EXPECT_TRUE(std::regex_match(oid, std::regex("^[0-9a-f]{32}$"))) << oid;
  EXPECT_GE(token.size(), 16u);
  EXPECT_EQ(order["status"].str(), "pending_payment");
  EXPECT_EQ(order["amount_cents"].num(), 500);
  EXPECT_EQ(order["currency"].str(), "EUR");
  const std::string expires = order["expires_at"].str();
  EXPECT_TRUE(std::regex_match(expires, Rfc3339Utc())) << expires;
  ASSERT_FALSE(expires.empty());
  EXPECT_EQ(expires.back(), 'Z');
  const int64_t exp_unix = ParseUtc(expires);
  EXPECT_GE(exp_unix, before + 900 - 2) << expires;  // hold_seconds default 900
  EXPECT_LE(exp_unix, NowUnix() + 900 + 2) << expires;
  // The sandbox is an adapter (issue 13): its start goes through /pay/{id}/sandbox.
  EXPECT_EQ(order["pay_url"].str(), server_->url() + "/pay/" + oid + "/sandbox");
  EXPECT_EQ(Stock(pid), 5) << "the order holds its 2 keys";

  // Read before payment: no keys.
  Json got = GetOrder(oid, token);
  EXPECT_EQ(got["order_id"].str(), oid);
  EXPECT_EQ(got["status"].str(), "pending_payment");
  EXPECT_EQ(got["product_id"].str(), pid);
  EXPECT_EQ(got["quantity"].num(), 2);
  EXPECT_EQ(got["amount_cents"].num(), 500);
  EXPECT_EQ(got["currency"].str(), "EUR");
  EXPECT_TRUE(std::regex_match(got["created_at"].str(), Rfc3339Utc())) << got["created_at"].str();
  EXPECT_EQ(got["expires_at"].str(), expires);
  ASSERT_TRUE(got["keys"].is_array());
  EXPECT_EQ(got["keys"].size(), 0u);

  // The signed notify pays it: {"received":true}, then the keys on every read.
  r = Pay(order, "pay-" + tag_ + "-1");
  EXPECT_TRUE(IsReceived(r)) << r;
  EXPECT_EQ(r.header("Content-Type").rfind("application/json", 0), 0u) << r.header("Content-Type");
  got = GetOrder(oid, token);
  EXPECT_EQ(got["status"].str(), "delivered");
  const std::vector<std::string> keys = Keys(got);
  ASSERT_EQ(keys.size(), 2u) << got["keys"].size();
  EXPECT_NE(keys[0], keys[1]);
  for (const std::string& k : keys) EXPECT_TRUE(Imported(k)) << "a key that was never imported";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Keys(GetOrder(oid, token)), keys) << "read " << i;
  EXPECT_EQ(Stock(pid), 5);
  const size_t payments_after_pay = Payments()["payments"].size();
  EXPECT_EQ(payments_after_pay, 1u);

  // The same notify again (the gateway retries): same answer, nothing changes.
  for (int i = 0; i < 2; ++i) {
    r = Pay(order, "pay-" + tag_ + "-1");
    EXPECT_TRUE(IsReceived(r)) << r;
  }
  EXPECT_EQ(Keys(GetOrder(oid, token)), keys);
  EXPECT_EQ(Stock(pid), 5);
  EXPECT_EQ(Payments()["payments"].size(), payments_after_pay);
  EXPECT_EQ(Payments("refund_due")["payments"].size(), 0u);
}

// A second payment, a wrong amount or currency, an unknown order and a failed attempt:
// acknowledged, recorded (flagged for refund) or ignored, never paying anything.
TEST_F(HttpApiTest, PaymentsThatCannotPayAreFlaggedOrIgnored) {
  const Paid paid = BuyAndPay();
  const std::string& pid = paid.pid;
  const Json& order = paid.order;
  const std::string& oid = paid.oid;
  const std::string& token = paid.token;
  const std::vector<std::string>& keys = paid.keys;
  Reply r;
  Json got;

  // A second, different payment for the paid order: recorded for refund, no new keys.
  const std::string second = "pay-" + tag_ + "-2";
  r = Pay(order, second);
  EXPECT_TRUE(IsReceived(r)) << r;
  EXPECT_EQ(Keys(GetOrder(oid, token)), keys);
  EXPECT_EQ(GetOrder(oid, token)["status"].str(), "delivered");
  EXPECT_EQ(Stock(pid), 5);
  Json due = Payments("refund_due");
  bool flagged_second = false;
  for (const Json& p : due["payments"].items()) {
    if (p["payment_id"].str() == second) {
      flagged_second = p["order_id"].str() == oid && p["reason"].str() == "second_payment" &&
                       p["state"].str() == "refund_due" && p["amount_cents"].num() == 500;
    }
  }
  EXPECT_TRUE(flagged_second) << due["payments"].size() << " refund_due payments";
  EXPECT_EQ(AdminOrder(oid)["payment_id"].str(), "pay-" + tag_ + "-1");

  // Amount mismatch: acknowledged, flagged, the order is not paid.
  const Json order2 = CreateOrder(pid, 1, "other@example.com");
  const std::string oid2 = order2["order_id"].str();
  const std::string mismatch = "pay-" + tag_ + "-3";
  r = SendNotify(*api_, kPaymentSecret, NotifyBody(oid2, mismatch, 1, "EUR"));
  EXPECT_TRUE(IsReceived(r)) << r;
  got = GetOrder(oid2, order2["token"].str());
  EXPECT_EQ(got["status"].str(), "pending_payment");
  EXPECT_EQ(got["keys"].size(), 0u);
  due = Payments("refund_due");
  bool flagged_mismatch = false;
  for (const Json& p : due["payments"].items()) {
    if (p["payment_id"].str() == mismatch) {
      flagged_mismatch = p["reason"].str() == "amount_mismatch" && p["order_id"].str() == oid2;
    }
  }
  EXPECT_TRUE(flagged_mismatch);
  // A wrong currency is a mismatch too.
  r = SendNotify(*api_, kPaymentSecret, NotifyBody(oid2, mismatch + "-usd", 250, "USD"));
  EXPECT_TRUE(IsReceived(r)) << r;
  EXPECT_EQ(GetOrder(oid2, order2["token"].str())["status"].str(), "pending_payment");

  // A payment for an order that does not exist: money received, recorded and flagged.
  const std::string stray = "pay-" + tag_ + "-stray";
  r = SendNotify(*api_, kPaymentSecret,
                 NotifyBody("0123456789abcdef0123456789abcdef", stray, 250, "EUR"));
  EXPECT_TRUE(IsReceived(r)) << r;
  bool flagged_unknown = false;
  for (const Json& p : Payments("refund_due")["payments"].items()) {
    if (p["payment_id"].str() == stray) flagged_unknown = p["reason"].str() == "unknown_order";
  }
  EXPECT_TRUE(flagged_unknown);
  // status other than "succeeded" (e.g. a failed attempt): acknowledged, nothing recorded.
  const size_t before_failed = Payments()["payments"].size();
  r = SendNotify(*api_, kPaymentSecret,
                 NotifyBody(oid2, "pay-" + tag_ + "-failed", 250, "EUR", "failed"));
  EXPECT_TRUE(IsReceived(r)) << r;
  EXPECT_EQ(Payments()["payments"].size(), before_failed);
  EXPECT_EQ(GetOrder(oid2, order2["token"].str())["status"].str(), "pending_payment");
}

TEST_F(HttpApiTest, BadSignaturesChangeNothing) {
  const Paid paid = BuyAndPay();
  const std::string& pid = paid.pid;
  const Json order2 = CreateOrder(pid, 1, "other@example.com");
  const std::string oid2 = order2["order_id"].str();
  Json got;

  // Forged, stale, future and missing signatures: 401 bad_signature, nothing changes.
  const int64_t stock2 = Stock(pid);
  const size_t payments_before = Payments()["payments"].size();
  const std::string good = NotifyBody(oid2, "pay-" + tag_ + "-4", 250, "EUR");
  const std::string sig_header = "Keyvend-Signature";
  auto post_notify = [&](const httplib::Headers& h, const std::string& b) {
    return api_->Post("/api/v1/payments/notify", b, "application/json", h);
  };
  EXPECT_TRUE(IsError(
      post_notify({{sig_header, http::SignNotify("not-the-secret", NowUnix(), good)}}, good), 401,
      "bad_signature"));
  EXPECT_TRUE(IsError(
      post_notify({{sig_header, http::SignNotify(kPaymentSecret, NowUnix(), good + " ")}}, good),
      401, "bad_signature"))
      << "a signature over another body";
  EXPECT_TRUE(IsError(
      post_notify({{sig_header, http::SignNotify(kPaymentSecret, NowUnix() - 301, good)}}, good),
      401, "bad_signature"))
      << "stale";
  AlignToFreshSecond();  // so the server's "now" is the second computed here
  EXPECT_TRUE(IsError(
      post_notify({{sig_header, http::SignNotify(kPaymentSecret, NowUnix() + 301, good)}}, good),
      401, "bad_signature"))
      << "future";
  EXPECT_TRUE(IsError(post_notify({}, good), 401, "bad_signature")) << "missing header";
  EXPECT_TRUE(IsError(post_notify({{sig_header, "t=1,v1=00"}}, good), 401, "bad_signature"));
  EXPECT_TRUE(IsError(post_notify({{sig_header, ""}}, good), 401, "bad_signature"));
  got = GetOrder(oid2, order2["token"].str());
  EXPECT_EQ(got["status"].str(), "pending_payment");
  EXPECT_EQ(got["keys"].size(), 0u);
  EXPECT_EQ(Stock(pid), stock2);
  EXPECT_EQ(Payments()["payments"].size(), payments_before);
}

TEST_F(HttpApiTest, WrongTokenAndLookupByContact) {
  const Paid paid = BuyAndPay();
  const std::string& oid = paid.oid;
  const std::string& token = paid.token;
  const std::vector<std::string>& keys = paid.keys;
  CreateOrder(paid.pid, 1, "other@example.com");  // without a query password
  Reply r;
  Json j;

  // A wrong token answers exactly as an unknown order does.
  const Reply wrong_token = GetOrderRaw(oid, std::string(token.size(), '0'));
  const Reply unknown = GetOrderRaw("0123456789abcdef0123456789abcdef", token);
  const Reply no_token = api_->Get("/api/v1/orders/" + oid);
  EXPECT_TRUE(IsError(wrong_token, 404, "order_not_found"));
  EXPECT_TRUE(IsError(unknown, 404, "order_not_found"));
  EXPECT_EQ(wrong_token.body, unknown.body) << "ids must not be probeable";
  EXPECT_EQ(no_token.body, unknown.body);
  EXPECT_EQ(no_token.status, 404);

  // Lookup by contact + query password: the order with its token (and keys).
  r = api_->Post("/api/v1/orders/lookup",
                 R"({"contact":"buyer@example.com","query_password":"open-sesame-1"})");
  ASSERT_EQ(r.status, 200) << r;
  j = r.json();
  ASSERT_TRUE(j["orders"].is_array()) << r;
  ASSERT_EQ(j["orders"].size(), 1u) << r;
  EXPECT_EQ(j["orders"][0]["order_id"].str(), oid);
  EXPECT_EQ(j["orders"][0]["token"].str(), token);
  EXPECT_EQ(j["orders"][0]["status"].str(), "delivered");
  EXPECT_EQ(Keys(j["orders"][0]), keys);
  r = api_->Post("/api/v1/orders/lookup",
                 R"({"contact":"buyer@example.com","query_password":"open-sesame-2"})");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_TRUE(r.json()["orders"].is_array() && r.json()["orders"].size() == 0) << r;
  // The order created without a password is not found by any password.
  r = api_->Post("/api/v1/orders/lookup", R"({"contact":"other@example.com","query_password":""})");
  EXPECT_TRUE(r.status == 200 ? r.json()["orders"].size() == 0 : IsError(r, 400, "bad_request"))
      << r;
}

// --- the sandbox gateway ----------------------------------------------------------------------

TEST_F(HttpApiTest, SandboxPagePaysTheOrder) {
  const std::string pid = CreateProduct("Sandbox card", 990);
  ImportKeys(pid, NewKeys(2, "sbx"));
  const Json order = CreateOrder(pid, 1, "sandbox@example.com");
  const std::string pay_url = order["pay_url"].str();
  ASSERT_EQ(pay_url.rfind(server_->url(), 0), 0u) << pay_url;
  // /pay/{id}/sandbox records the attempt and sends the buyer on to the sandbox's page.
  Reply start = api_->Get(pay_url.substr(server_->url().size()));
  ASSERT_EQ(start.status, 303) << start;
  const std::string path = start.header("Location");
  ASSERT_EQ(path, "/sandbox/pay/" + order["order_id"].str());

  Reply r = api_->Get(path);
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.header("Content-Type").rfind("text/html", 0), 0u) << r.header("Content-Type");
  EXPECT_NE(r.body.find("<button"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<form method=post"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(order["order_id"].str()), std::string::npos);
  EXPECT_EQ(GetOrder(order["order_id"].str(), order["token"].str())["status"].str(),
            "pending_payment")
      << "showing the page must not pay";

  // The button: a POST with an empty body.
  r = api_->Post(path, "", "application/x-www-form-urlencoded", {{"Content-Length", "0"}});
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_NE(r.body.find("delivered"), std::string::npos) << r.body;
  // A gateway's return: back to the shop's order page (which holds the token), under the
  // storefront's strict headers.
  EXPECT_NE(r.body.find("href=\"/order/" + order["order_id"].str() + "\""), std::string::npos)
      << r.body;
  EXPECT_EQ(r.header("Content-Security-Policy").rfind("default-src 'none'", 0), 0u);
  EXPECT_EQ(r.header("Referrer-Policy"), "no-referrer");
  const Json got = GetOrder(order["order_id"].str(), order["token"].str());
  EXPECT_EQ(got["status"].str(), "delivered");
  ASSERT_EQ(got["keys"].size(), 1u);
  EXPECT_TRUE(Imported(got["keys"][0].str()));
  EXPECT_EQ(r.body.find(got["keys"][0].str()), std::string::npos) << "the page shows no key";
  EXPECT_EQ(Payments()["payments"].size(), 1u);
  EXPECT_EQ(Payments("refund_due")["payments"].size(), 0u);

  r = api_->Get("/sandbox/pay/0123456789abcdef0123456789abcdef");
  EXPECT_EQ(r.status, 404) << r;
}

// --- Idempotency-Key --------------------------------------------------------------------------

TEST_F(HttpApiTest, IdempotencyKeyReplaysTheFirst201) {
  const std::string pid = CreateProduct("Idem card", 100);
  ImportKeys(pid, NewKeys(5, "idem"));
  const std::string body =
      "{\"product_id\":" + Quote(pid) + ",\"quantity\":1,\"contact\":\"idem@example.com\"}";
  const httplib::Headers k1 = {{"Idempotency-Key", "idem-" + tag_ + "-1"}};

  const Reply first = api_->Post("/api/v1/orders", body, "application/json", k1);
  ASSERT_EQ(first.status, 201) << first;
  EXPECT_EQ(Stock(pid), 4);
  for (int i = 0; i < 2; ++i) {
    const Reply again = api_->Post("/api/v1/orders", body, "application/json", k1);
    EXPECT_EQ(again.status, 201) << again;
    EXPECT_EQ(again.body, first.body) << "the same 201 (same order_id and token)";
  }
  EXPECT_EQ(Stock(pid), 4) << "no second order";
  Reply list = api_->AdminGet("/api/v1/admin/orders");
  ASSERT_EQ(list.status, 200) << list;
  EXPECT_EQ(list.json()["orders"].size(), 1u) << list;

  // Same key, different body: 409, nothing created.
  const std::string body2 =
      "{\"product_id\":" + Quote(pid) + ",\"quantity\":2,\"contact\":\"idem@example.com\"}";
  EXPECT_TRUE(IsError(api_->Post("/api/v1/orders", body2, "application/json", k1), 409,
                      "idempotency_conflict"));
  EXPECT_EQ(Stock(pid), 4);

  // Another key with the same body is another order.
  const Reply other = api_->Post("/api/v1/orders", body, "application/json",
                                 {{"Idempotency-Key", "idem-" + tag_ + "-2"}});
  ASSERT_EQ(other.status, 201) << other;
  EXPECT_NE(other.json()["order_id"].str(), first.json()["order_id"].str());
  EXPECT_EQ(Stock(pid), 3);

  // A refused attempt is not stored: the retry with a valid body is judged afresh.
  const httplib::Headers k3 = {{"Idempotency-Key", "idem-" + tag_ + "-3"}};
  const std::string bad =
      "{\"product_id\":" + Quote(pid) + ",\"quantity\":0,\"contact\":\"idem@example.com\"}";
  EXPECT_TRUE(
      IsError(api_->Post("/api/v1/orders", bad, "application/json", k3), 400, "invalid_quantity"));
  const Reply retried = api_->Post("/api/v1/orders", body, "application/json", k3);
  EXPECT_EQ(retried.status, 201) << retried;
  EXPECT_EQ(Stock(pid), 2);

  // The replayed order is a real one: it pays and delivers.
  const Json o = first.json();
  EXPECT_TRUE(IsReceived(Pay(o, "pay-idem-" + tag_)));
  EXPECT_EQ(GetOrder(o["order_id"].str(), o["token"].str())["keys"].size(), 1u);
}

// --- every error code of SPEC §4's table --------------------------------------------------------

TEST_F(HttpApiTest, EveryErrorCodeWithItsShape) {
  const std::string pid = CreateProduct("Error card", 100, ",\"max_per_order\":2");
  ImportKeys(pid, NewKeys(3, "err"));
  const std::string order_path = "/api/v1/orders";
  auto post_order = [&](const std::string& b) { return api_->Post(order_path, b); };
  const std::string p = "\"product_id\":" + Quote(pid);

  // 400 bad_request: malformed JSON, wrong type, missing field, not an object.
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":1,"), 400, "bad_request"));
  EXPECT_TRUE(
      IsError(post_order("{" + p + ",\"quantity\":1,\"contact\":\"a@b.c\"} x"), 400, "bad_request"))
      << "trailing content";
  EXPECT_TRUE(IsError(post_order(""), 400, "bad_request")) << "empty body";
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":\"1\",\"contact\":\"a@b.c\"}"), 400,
                      "bad_request"))
      << "quantity as a string";
  EXPECT_TRUE(
      IsError(post_order("{" + p + ",\"quantity\":1.5,\"contact\":\"a@b.c\"}"), 400, "bad_request"))
      << "quantity as a float";
  EXPECT_TRUE(IsError(post_order("{\"product_id\":7,\"quantity\":1,\"contact\":\"a@b.c\"}"), 400,
                      "bad_request"))
      << "product_id as a number";
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":1}"), 400, "bad_request"))
      << "missing contact";
  EXPECT_TRUE(IsError(post_order("[1,2]"), 400, "bad_request"));
  EXPECT_TRUE(IsError(api_->AdminPost("/api/v1/admin/products",
                                      R"({"name":"x","price_cents":"100","currency":"EUR"})"),
                      400, "bad_request"))
      << "price_cents as a string";
  EXPECT_TRUE(
      IsError(api_->Post("/api/v1/orders/lookup", R"({"contact":"a@b.c"})"), 400, "bad_request"));
  // unknown_field, in a buyer body and a merchant body.
  EXPECT_TRUE(
      IsError(post_order("{" + p + ",\"quantity\":1,\"contact\":\"a@b.c\",\"coupon\":\"x\"}"), 400,
              "unknown_field"));
  EXPECT_TRUE(
      IsError(api_->AdminPost("/api/v1/admin/products",
                              R"({"name":"x","price_cents":1,"currency":"EUR","colour":1})"),
              400, "unknown_field"));
  // invalid_quantity: 0 and negative.
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":0,\"contact\":\"a@b.c\"}"), 400,
                      "invalid_quantity"));
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":-1,\"contact\":\"a@b.c\"}"), 400,
                      "invalid_quantity"));
  // invalid_key_line: a CSV without a key column.
  const std::string no_col_key = NewKey("nocol");
  imported_.push_back(no_col_key);  // never stored, but must never be printed either
  EXPECT_TRUE(IsError(api_->AdminPost("/api/v1/admin/products/" + pid + "/keys",
                                      "serial,code\n1," + no_col_key + "\n", "text/csv"),
                      400, "invalid_key_line"));
  EXPECT_EQ(Stock(pid), 3) << "the refused import stored nothing";

  // 401 unauthorized: no token, wrong token, another scheme.
  EXPECT_TRUE(IsError(api_->Get("/api/v1/admin/orders"), 401, "unauthorized"));
  EXPECT_TRUE(IsError(api_->Get("/api/v1/admin/orders",
                                {{"Authorization", std::string("Bearer ") + kAdminToken + "x"}}),
                      401, "unauthorized"));
  EXPECT_TRUE(IsError(
      api_->Get("/api/v1/admin/orders", {{"Authorization", std::string("Basic ") + kAdminToken}}),
      401, "unauthorized"));
  EXPECT_TRUE(IsError(
      api_->Post("/api/v1/admin/products", R"({"name":"x","price_cents":1,"currency":"EUR"})"), 401,
      "unauthorized"));
  // 401 bad_signature.
  EXPECT_TRUE(IsError(api_->Post("/api/v1/payments/notify",
                                 NotifyBody("0123456789abcdef0123456789abcdef", "p", 1, "EUR")),
                      401, "bad_signature"));

  // 404 not_found (route), product_not_found, order_not_found.
  EXPECT_TRUE(IsError(api_->Get("/api/v1/no-such-route"), 404, "not_found"));
  EXPECT_TRUE(IsError(api_->Get("/nothing/here"), 404, "not_found"));
  EXPECT_TRUE(IsError(api_->Get("/api/v1/products/999999"), 404, "product_not_found"));
  EXPECT_TRUE(IsError(api_->Get("/api/v1/products/abc"), 404, "product_not_found"));
  EXPECT_TRUE(IsError(post_order(R"({"product_id":"999999","quantity":1,"contact":"a@b.c"})"), 404,
                      "product_not_found"));
  EXPECT_TRUE(IsError(api_->AdminPatch("/api/v1/admin/products/999999", R"({"active":false})"), 404,
                      "product_not_found"));
  EXPECT_TRUE(
      IsError(GetOrderRaw("0123456789abcdef0123456789abcdef", "t"), 404, "order_not_found"));
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/orders/0123456789abcdef0123456789abcdef"), 404,
                      "order_not_found"));
  EXPECT_TRUE(
      IsError(api_->AdminPost("/api/v1/admin/orders/0123456789abcdef0123456789abcdef/cancel", ""),
              404, "order_not_found"));

  // 409 out_of_stock, quantity_limit, product_inactive, invalid_state, idempotency_conflict.
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":3,\"contact\":\"a@b.c\"}"), 409,
                      "quantity_limit"))
      << "max_per_order is 2";
  const Json held = CreateOrder(pid, 2, "holder@example.com");  // 1 key left
  EXPECT_TRUE(
      IsError(post_order("{" + p + ",\"quantity\":2,\"contact\":\"a@b.c\"}"), 409, "out_of_stock"))
      << "filled whole or not at all";
  EXPECT_EQ(Stock(pid), 1);
  Reply r = api_->AdminPatch("/api/v1/admin/products/" + pid, R"({"active":false})");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_FALSE(r.json()["active"].boolean()) << r;
  EXPECT_TRUE(IsError(post_order("{" + p + ",\"quantity\":1,\"contact\":\"a@b.c\"}"), 409,
                      "product_inactive"));
  r = api_->Get("/api/v1/products");
  ASSERT_EQ(r.status, 200) << r;
  // The test's only product is inactive: the buyers' list is empty.
  for (const Json& prod : r.json()["products"].items(0)) {
    EXPECT_NE(prod["id"].str(), pid) << "an inactive product is not listed to buyers";
  }
  r = api_->AdminPatch("/api/v1/admin/products/" + pid, R"({"active":true})");
  ASSERT_EQ(r.status, 200) << r;
  ASSERT_TRUE(IsReceived(Pay(held, "pay-err-" + tag_)));
  ASSERT_EQ(GetOrder(held["order_id"].str(), held["token"].str())["status"].str(), "delivered");
  EXPECT_TRUE(
      IsError(api_->AdminPost("/api/v1/admin/orders/" + held["order_id"].str() + "/cancel", ""),
              409, "invalid_state"))
      << "cancel a delivered order";
  const httplib::Headers idem = {{"Idempotency-Key", "err-idem-" + tag_}};
  ASSERT_EQ(api_->Post(order_path, "{" + p + ",\"quantity\":1,\"contact\":\"a@b.c\"}",
                       "application/json", idem)
                .status,
            201);
  EXPECT_TRUE(IsError(api_->Post(order_path, "{" + p + ",\"quantity\":1,\"contact\":\"b@b.c\"}",
                                 "application/json", idem),
                      409, "idempotency_conflict"));
  EXPECT_TRUE(
      IsError(post_order("{" + p + ",\"quantity\":1,\"contact\":\"a@b.c\"}"), 409, "out_of_stock"));

  // 413 payload_too_large: a JSON body over body_bytes_max (64 KiB by default).
  const std::string big =
      "{" + p + ",\"quantity\":1,\"contact\":\"" + std::string(70000, 'a') + "\"}";
  EXPECT_TRUE(IsError(post_order(big), 413, "payload_too_large"));

  // Nothing the refusals did changed the shop.
  EXPECT_EQ(Stock(pid), 0);
  r = api_->AdminGet("/api/v1/admin/orders");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["orders"].size(), 2u) << r;

  // Provoked elsewhere: 429 rate_limited and 429 pending_limit by HttpRateLimitTest below
  // (these tests run with the limits off). Not provoked yet: 503 overloaded (the in-flight
  // cap is still to come, issue 4); 503 not_ready is answered by /readyz only while the
  // server drains, RocksDB stops writes or the delivery backlog is over its limit, and 503
  // storage_unavailable only when RocksDB fails; neither can be caused from outside
  // without faking it.
}

// --- the merchant -------------------------------------------------------------------------------

TEST_F(HttpApiTest, AdminOrdersPageAndFilterByStatus) {
  const AdminScene scene = MakeAdminScene();
  const std::string& pid = scene.pid;
  const std::vector<Json>& orders = scene.orders;
  const std::set<std::string>& all_ids = scene.all_ids;

  // Paging: limit 2 gives 3 pages, next_cursor null at the end, every order once.
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;;) {
    const Reply r = api_->AdminGet("/api/v1/admin/orders?limit=2" +
                                   (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r;
    const Json j = r.json();
    ASSERT_TRUE(j["orders"].is_array()) << r;
    ASSERT_TRUE(j.has("next_cursor")) << r;
    EXPECT_LE(j["orders"].size(), 2u);
    for (const Json& o : j["orders"].items()) {
      EXPECT_TRUE(seen.insert(o["order_id"].str()).second) << "an order on two pages";
      EXPECT_EQ(o["product_id"].str(), pid);
      EXPECT_TRUE(o["contact"].is_string()) << r;
    }
    ++pages;
    ASSERT_LE(pages, 10) << "paging does not end";
    if (j["next_cursor"].is_null()) break;
    ASSERT_TRUE(j["next_cursor"].is_string() && !j["next_cursor"].str().empty()) << r;
    cursor = j["next_cursor"].str();
  }
  EXPECT_EQ(seen, all_ids);
  EXPECT_EQ(pages, 3);

  // Status filter (with paging too).
  auto ids_with_status = [&](const std::string& status, int limit) {
    std::set<std::string> ids;
    std::string cur;
    for (int guard = 0; guard < 20; ++guard) {
      const Reply r = api_->AdminGet("/api/v1/admin/orders?status=" + status + "&limit=" +
                                     std::to_string(limit) + (cur.empty() ? "" : "&cursor=" + cur));
      EXPECT_EQ(r.status, 200) << r;
      const Json j = r.json();
      for (const Json& o : j["orders"].items()) {
        EXPECT_EQ(o["status"].str(), status);
        ids.insert(o["order_id"].str());
      }
      if (!j["next_cursor"].is_string()) break;
      cur = j["next_cursor"].str();
    }
    return ids;
  };
  EXPECT_EQ(ids_with_status("delivered", 1),
            (std::set<std::string>{orders[0]["order_id"].str(), orders[1]["order_id"].str()}));
  EXPECT_EQ(ids_with_status("pending_payment", 2).size(), 3u);
  EXPECT_TRUE(ids_with_status("refunded", 5).empty());
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/orders?status=bogus"), 400, "bad_request"));
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/orders?limit=0"), 400, "bad_request"));
}

TEST_F(HttpApiTest, AdminOrderViewCancelRefund) {
  const AdminScene scene = MakeAdminScene();
  const std::string& pid = scene.pid;
  const std::vector<Json>& orders = scene.orders;

  // One order, with its keys, contact and payment.
  const std::string o0 = orders[0]["order_id"].str();
  Json a0 = AdminOrder(o0);
  EXPECT_EQ(a0["status"].str(), "delivered");
  ASSERT_EQ(a0["keys"].size(), 1u);
  EXPECT_TRUE(Imported(a0["keys"][0].str()));
  EXPECT_EQ(a0["contact"].str(), "admin-buyer-0@example.com");
  EXPECT_EQ(a0["payment_id"].str(), "pay-adm-0-" + tag_);
  EXPECT_TRUE(AdminOrder(orders[2]["order_id"].str())["payment_id"].is_null());

  // cancel (pending -> cancelled, hold released), refund.
  const int64_t stock_before_cancel = Stock(pid);
  Reply r = api_->AdminPost("/api/v1/admin/orders/" + orders[2]["order_id"].str() + "/cancel", "");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["status"].str(), "cancelled");
  EXPECT_EQ(Stock(pid), stock_before_cancel + 1);
  EXPECT_TRUE(IsError(
      api_->AdminPost("/api/v1/admin/orders/" + orders[2]["order_id"].str() + "/cancel", ""), 409,
      "invalid_state"));
  // A payment for a cancelled order is money received: recorded, flagged, never delivered.
  EXPECT_TRUE(IsReceived(Pay(orders[2], "pay-adm-2-" + tag_)));
  EXPECT_EQ(AdminOrder(orders[2]["order_id"].str())["status"].str(), "cancelled");
  EXPECT_EQ(AdminOrder(orders[2]["order_id"].str())["keys"].size(), 0u);
  bool closed_flagged = false;
  for (const Json& p : Payments("refund_due")["payments"].items()) {
    closed_flagged |= p["payment_id"].str() == "pay-adm-2-" + tag_;
  }
  EXPECT_TRUE(closed_flagged);

  // Keys are assigned in the payment's batch: there is no delivery to redo.
  EXPECT_TRUE(
      IsError(api_->AdminPost("/api/v1/admin/orders/" + o0 + "/redeliver", ""), 404, "not_found"));
  EXPECT_EQ(Keys(AdminOrder(o0)), Keys(a0));
  r = api_->AdminPost("/api/v1/admin/orders/" + o0 + "/refund", "");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["status"].str(), "refunded");
  EXPECT_TRUE(
      IsError(api_->AdminPost("/api/v1/admin/orders/" + o0 + "/refund", ""), 409, "invalid_state"));
}

TEST_F(HttpApiTest, AdminOrdersExportAsCsvWithoutKeys) {
  const AdminScene scene = MakeAdminScene();
  const std::vector<std::string>& keys = scene.keys;
  const std::vector<Json>& orders = scene.orders;
  const std::set<std::string>& all_ids = scene.all_ids;
  const std::string& o0 = scene.o0;
  CancelPayRefund(scene);
  Reply r;

  // Export: a CSV with a header line and one line per order, no keys.
  r = api_->AdminGet("/api/v1/admin/orders/export");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.header("Content-Type").rfind("text/csv", 0), 0u) << r.header("Content-Type");
  std::vector<std::string> lines;
  {
    size_t start = 0;
    while (start < r.body.size()) {
      size_t nl = r.body.find('\n', start);
      if (nl == std::string::npos) nl = r.body.size();
      std::string line = r.body.substr(start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) lines.push_back(line);
      start = nl + 1;
    }
  }
  ASSERT_EQ(lines.size(), 1u + orders.size()) << r.body;
  EXPECT_EQ(lines[0].rfind("order_id,status,", 0), 0u) << lines[0];
  std::set<std::string> exported;
  for (size_t i = 1; i < lines.size(); ++i) exported.insert(lines[i].substr(0, lines[i].find(',')));
  EXPECT_EQ(exported, all_ids);
  EXPECT_NE(r.body.find(o0 + ",refunded,"), std::string::npos) << r.body;
  for (const std::string& k : keys) EXPECT_EQ(r.body.find(k), std::string::npos);
}

TEST_F(HttpApiTest, AdminDeliveriesBackorderWaitsAndImportServesIt) {
  Reply r;
  // Deliveries: a backorder waits in the log, an import serves it.
  const std::string bo =
      CreateProduct("Backorder card", 700, R"(,"stock_mode":"on_payment","allow_backorder":true)");
  const Json bo_order = CreateOrder(bo, 1, "patient@example.com");
  ASSERT_TRUE(IsReceived(Pay(bo_order, "pay-bo-" + tag_)));
  EXPECT_EQ(AdminOrder(bo_order["order_id"].str())["status"].str(), "backordered");
  r = api_->AdminGet("/api/v1/admin/deliveries?state=backordered");
  ASSERT_EQ(r.status, 200) << r;
  ASSERT_EQ(r.json()["deliveries"].size(), 1u) << r;
  EXPECT_EQ(r.json()["deliveries"][0]["order_id"].str(), bo_order["order_id"].str());
  EXPECT_EQ(r.json()["deliveries"][0]["state"].str(), "backordered");
  r = api_->AdminGet("/api/v1/admin/deliveries?state=failed");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["deliveries"].size(), 0u) << r;
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/deliveries?state=bogus"), 400, "bad_request"));
  const std::vector<std::string> bo_keys = NewKeys(1, "bo");
  const Json imp = ImportKeys(bo, bo_keys);
  EXPECT_EQ(imp["backorders_served"].num(), 1);
  Json bo_got = GetOrder(bo_order["order_id"].str(), bo_order["token"].str());
  EXPECT_EQ(bo_got["status"].str(), "delivered");
  EXPECT_EQ(Keys(bo_got), bo_keys);
  r = api_->AdminGet("/api/v1/admin/deliveries");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["deliveries"].size(), 0u) << r;
  // The write-ahead path's replay is gone (outbound events have their own: /events/replay).
  EXPECT_TRUE(IsError(api_->AdminPost("/api/v1/admin/deliveries/replay", ""), 404, "not_found"));
}

// The counts after the merchant's actions (CancelPayRefund) and a served backorder.
TEST_F(HttpApiTest, AdminStatsAndMaskedKeysListing) {
  const AdminScene scene = MakeAdminScene();
  const std::string& pid = scene.pid;
  CancelPayRefund(scene);
  ServeABackorder();
  Reply r;

  // Stats.
  r = api_->AdminGet("/api/v1/admin/stats");
  ASSERT_EQ(r.status, 200) << r;
  Json st = r.json();
  EXPECT_EQ(st["orders"]["delivered"].num(), 2) << r;  // orders[1] and the backorder
  EXPECT_EQ(st["orders"]["refunded"].num(), 1) << r;
  EXPECT_EQ(st["orders"]["cancelled"].num(), 1) << r;
  EXPECT_EQ(st["orders"]["pending_payment"].num(), 2) << r;
  EXPECT_EQ(st["sales"]["keys_delivered"].num(), 3) << r;
  EXPECT_EQ(st["payments"]["refund_due"].num(), 1) << r;
  EXPECT_TRUE(st["products"].is_array() && st["products"].size() == 2) << r;

  // Keys listing: counts, batches, masked keys, never a whole key.
  r = api_->AdminGet("/api/v1/admin/products/" + pid + "/keys");
  ASSERT_EQ(r.status, 200) << r;
  Json kl = r.json();
  EXPECT_EQ(kl["counts"]["imported"].num(), 10) << r;
  EXPECT_EQ(kl["counts"]["delivered"].num(), 2) << r;
  EXPECT_EQ(kl["counts"]["pool"].num(), 8) << r;
  EXPECT_EQ(kl["counts"]["held"].num(), 2) << r;
  EXPECT_EQ(kl["keys"].size(), 8u) << r;
  EXPECT_EQ(kl["batches"].size(), 1u) << r;
  for (const Json& k : kl["keys"].items()) {
    EXPECT_NE(k["key"].str().find('*'), std::string::npos) << "not masked";
    EXPECT_FALSE(Imported(k["key"].str()));
  }
  for (const std::string& k : imported_) {
    EXPECT_EQ(r.body.find(k), std::string::npos) << "a whole key in the listing";
    // No substring long enough to identify a key either (the unique middle part).
    EXPECT_EQ(r.body.find(k.substr(3, k.size() - 6)), std::string::npos);
  }
}

TEST_F(HttpApiTest, AdminKeyIsUniqueAcrossProducts) {
  const AdminScene scene = MakeAdminScene();
  const std::vector<std::string>& keys = scene.keys;
  Reply r;

  // A key is unique across the whole shop: the same code cannot be stocked in another
  // product (SPEC §2.6).
  const std::string dup_product = CreateProduct("Duplicate card", 100);
  const std::string fresh = NewKey("fresh");
  imported_.push_back(fresh);
  r = api_->AdminPost("/api/v1/admin/products/" + dup_product + "/keys",
                      keys[9] + "\n" + fresh + "\n", "text/plain");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["imported"].num(), 1) << r;
  EXPECT_EQ(r.json()["duplicates"].num(), 1) << r;
  EXPECT_EQ(Stock(dup_product), 1);
}

TEST_F(HttpApiTest, AdminRetiredBatchIsNeverSold) {
  Reply r;
  Json kl;

  // Retire a bad batch: its unsold keys are never sold afterwards.
  const std::string rp = CreateProduct("Retire card", 100);
  const std::vector<std::string> bad_batch = NewKeys(3, "bad");
  const std::vector<std::string> good_batch = NewKeys(2, "good");
  const std::string bad_id = ImportKeys(rp, bad_batch)["batch_id"].str();
  ImportKeys(rp, good_batch);
  EXPECT_EQ(Stock(rp), 5);
  r = api_->AdminPost("/api/v1/admin/products/" + rp + "/keys/retire",
                      "{\"batch_id\":" + Quote(bad_id) + "}");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["retired"].num(), 3) << r;
  EXPECT_EQ(r.json()["batch_id"].str(), bad_id) << r;
  EXPECT_EQ(Stock(rp), 2);
  EXPECT_TRUE(IsError(OrderRaw(rp, 3, "late@example.com"), 409, "out_of_stock"));
  const Json ro = CreateOrder(rp, 2, "late@example.com");
  ASSERT_TRUE(IsReceived(Pay(ro, "pay-retire-" + tag_)));
  std::vector<std::string> got_keys = Keys(GetOrder(ro["order_id"].str(), ro["token"].str()));
  std::sort(got_keys.begin(), got_keys.end());
  std::vector<std::string> want = good_batch;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got_keys, want) << "only the good batch's keys are sold";
  r = api_->AdminGet("/api/v1/admin/products/" + rp + "/keys");
  ASSERT_EQ(r.status, 200) << r;
  kl = r.json();
  EXPECT_EQ(kl["counts"]["retired"].num(), 3) << r;
  bool flagged = false;
  for (const Json& b : kl["batches"].items()) {
    if (b["batch_id"].str() == bad_id) flagged = b["retired_batch"].boolean();
  }
  EXPECT_TRUE(flagged) << r;
  EXPECT_TRUE(IsError(
      api_->AdminPost("/api/v1/admin/products/" + rp + "/keys/retire", R"({"batch_id":"999"})"),
      404, "not_found"));
}

// --- operations ----------------------------------------------------------------------------------

TEST_F(HttpApiTest, HealthReadinessAndMetrics) {
  Reply r = api_->Get("/healthz");
  EXPECT_EQ(r.status, 200) << r;
  r = api_->Get("/readyz");
  EXPECT_EQ(r.status, 200) << r;

  const std::string pid = CreateProduct("Metrics card", 100);
  ImportKeys(pid, NewKeys(2, "met"));
  const Json o = CreateOrder(pid, 1, "metrics@example.com");
  ASSERT_TRUE(IsReceived(Pay(o, "pay-met-" + tag_)));
  EXPECT_TRUE(IsError(api_->Get("/api/v1/nope"), 404, "not_found"));

  r = api_->Get("/metrics");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.header("Content-Type").rfind("text/plain", 0), 0u) << r.header("Content-Type");
  const absl::StatusOr<testing::Exposition> metrics = testing::ParseExposition(r.body);
  ASSERT_TRUE(metrics.ok()) << metrics.status() << "\n" << r.body.substr(0, 4000);

  // keyvend_http_requests_total{route="POST /api/v1/orders",code="201",...} >= 1
  const testing::MetricFamily* requests = metrics->Family("keyvend_http_requests_total");
  ASSERT_NE(requests, nullptr) << r.body.substr(0, 20000);
  bool order_201 = false;
  for (const testing::Sample& sample : requests->samples) {
    const auto has = [&](const std::string& name, const std::string& value) {
      return std::find(sample.labels.begin(), sample.labels.end(), std::pair(name, value)) !=
             sample.labels.end();
    };
    if (has("route", "POST /api/v1/orders") && has("code", "201")) {
      order_201 = sample.value >= 1;
    }
  }
  EXPECT_TRUE(order_201) << r.body.substr(0, 20000);
  EXPECT_EQ(metrics->Value("keyvend_stock_available", {{"product", pid}}), 1.0)
      << r.body.substr(0, 20000);
  for (const std::string& k : imported_) EXPECT_EQ(r.body.find(k), std::string::npos);
}

// --- an oversized body is refused before it is read ---------------------------------------------

TEST_F(HttpApiTest, EightMebibyteBodyRefusedBeforeItIsSent) {
  // Only the request line and headers go out; the 8 MiB body is never sent. The 413 must
  // arrive anyway (the server refuses on the declared length).
  const std::string head =
      "POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 8388608\r\n\r\n";
  const auto t0 = SteadyClock::now();
  RawResponse raw = RawExchange(server_->port(), head, milliseconds(10000));
  const auto ms = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count();
  ASSERT_TRUE(raw.connected);
  ASSERT_TRUE(raw.complete) << "no complete response within 10 s without the body: " << raw.data;
  EXPECT_EQ(raw.status, 413) << raw.data;
  Reply as_reply;
  as_reply.status = raw.status;
  as_reply.body = raw.body;
  as_reply.headers.emplace("Content-Type",
                           raw.data.find("Content-Type: application/json") != std::string::npos
                               ? "application/json"
                               : "?");
  EXPECT_TRUE(IsError(as_reply, 413, "payload_too_large")) << raw.data;
  EXPECT_LT(ms, 5000) << "the refusal waited for a body";

  // The import route has its own, larger cap (64 MiB by default): over it, the same.
  const std::string import_head =
      std::string("POST /api/v1/admin/products/1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n") +
      "Authorization: Bearer " + kAdminToken +
      "\r\nContent-Type: text/plain\r\nContent-Length: 134217728\r\n\r\n";
  raw = RawExchange(server_->port(), import_head, milliseconds(10000));
  ASSERT_TRUE(raw.complete) << raw.data;
  EXPECT_EQ(raw.status, 413) << raw.data;
  EXPECT_NE(raw.body.find("\"payload_too_large\""), std::string::npos) << raw.data;

  // Expect: 100-continue gets the 413 instead of "100 Continue".
  raw = RawExchange(server_->port(),
                    "POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                    "Content-Type: application/json\r\nContent-Length: 8388608\r\n\r\n",
                    milliseconds(10000));
  ASSERT_TRUE(raw.complete) << raw.data;
  EXPECT_EQ(raw.status, 413) << raw.data;

  // The server is fine afterwards.
  EXPECT_EQ(api_->Get("/healthz").status, 200);
}

// The 413 says "Connection: close" (the unread body would follow): the server must then
// close the connection (RFC 9112 §9.6), never read the body's bytes as the next request.
TEST_F(HttpApiTest, OversizedBodyConnectionIsClosedAfterThe413) {
  RawConnection conn(server_->port());
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Send(
      "POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 8388608\r\n\r\n"));
  RawResponse raw;
  conn.Read(milliseconds(5000), /*read_to_eof=*/false, &raw);
  ASSERT_TRUE(raw.complete) << raw.data;
  EXPECT_EQ(raw.status, 413) << raw.data;
  EXPECT_NE(raw.data.find("Connection: close"), std::string::npos) << raw.data;
  EXPECT_EQ(raw.data.find("Keep-Alive:"), std::string::npos)
      << "the 413 says both close and keep-alive:\n"
      << raw.data;
  // What a client sends next on this connection is the refused request's body: here it
  // happens to be a request of its own, as a smuggled one would be. It must never be
  // served; the server closes (read to EOF, at most 3 s: below the 5 s keep-alive).
  conn.Send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  RawResponse rest;
  conn.Read(milliseconds(3000), /*read_to_eof=*/true, &rest);
  EXPECT_EQ(rest.data.find("HTTP/1.1 200"), std::string::npos)
      << "bytes sent after the refused request's headers were served as a new request:\n"
      << rest.data;
  EXPECT_TRUE(rest.peer_closed) << "the connection stayed open after \"Connection: close\"";
}

// The merchant's actions (cancel, refund, replay) take no body. A POST without
// Content-Length and Transfer-Encoding has a zero-length body (RFC 9112 §6.3), as
// `curl -X POST URL` sends it: it must be served at once, not held until the read timeout.
TEST_F(HttpApiTest, BodylessPostWithoutContentLengthIsServedAtOnce) {
  const auto t0 = SteadyClock::now();
  const RawResponse raw =
      RawExchange(server_->port(),
                  std::string("POST /api/v1/admin/events/replay HTTP/1.1\r\nHost: 127.0.0.1\r\n") +
                      "Authorization: Bearer " + kAdminToken + "\r\n\r\n",
                  milliseconds(4000));
  const auto ms = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count();
  ASSERT_TRUE(raw.complete) << "no answer within 4 s: " << raw.data;
  EXPECT_EQ(raw.status, 200) << "after " << ms << " ms:\n" << raw.data;
  EXPECT_LT(ms, 2000) << raw.data;
}

// SPEC §4: "A correctly signed notify is money received, so it is always recorded and
// answered 2xx"; one whose currency does not match the order's is recorded and flagged.
// (A lowercase code names the same currency — gateways send "eur" — and pays the order;
// a malformed code is a mismatch.)
TEST_F(HttpApiTest, SignedNotifyWithAForeignCurrencyCodeIsRecordedAndFlagged) {
  const std::string pid = CreateProduct("Currency card", 250);
  ImportKeys(pid, NewKeys(2, "cur"));
  const Json lower = CreateOrder(pid, 1, "lower@example.com");
  EXPECT_TRUE(IsReceived(SendNotify(
      *api_, kPaymentSecret, NotifyBody(lower["order_id"].str(), "pay-low-" + tag_, 250, "eur"))));
  EXPECT_EQ(GetOrder(lower["order_id"].str(), lower["token"].str())["status"].str(), "delivered");
  const Json order = CreateOrder(pid, 1, "currency@example.com");
  const std::string payment = "pay-cur-" + tag_;
  const Reply r =
      SendNotify(*api_, kPaymentSecret, NotifyBody(order["order_id"].str(), payment, 250, "e1r"));
  EXPECT_TRUE(IsReceived(r)) << "a correctly signed notify must be acknowledged: " << r;
  bool flagged = false;
  for (const Json& p : Payments("refund_due")["payments"].items()) {
    flagged |= p["payment_id"].str() == payment && p["reason"].str() == "amount_mismatch";
  }
  EXPECT_TRUE(flagged) << "the payment was not recorded for refund";
  EXPECT_EQ(GetOrder(order["order_id"].str(), order["token"].str())["status"].str(),
            "pending_payment");
}

// SPEC §5: graceful drain on SIGTERM = stop accepting, finish in-flight, flush, exit 0. An
// idle keep-alive connection has nothing in flight; it must not hold the exit back until
// its keep-alive timeout (60 s here; the option allows up to 3600 s; default 5 s).
TEST_F(HttpApiTest, SigtermDrainsPromptlyDespiteAnIdleKeepAliveConnection) {
  api_.reset();
  int status = server_->Terminate();
  ASSERT_TRUE(ExitedZero(status)) << DescribeWait(status);
  std::string error;
  ASSERT_TRUE(server_->Start({"--keep-alive-timeout-seconds", "60"}, &error)) << error;
  api_ = std::make_unique<Api>(server_->port(), kAdminToken);
  ASSERT_EQ(api_->Get("/healthz").status, 200);  // the connection stays open, idle
  const auto t0 = SteadyClock::now();
  status = server_->Terminate(milliseconds(12000));  // SIGKILL after 12 s
  const auto ms = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count();
  EXPECT_TRUE(ExitedZero(status)) << DescribeWait(status) << " after " << ms << " ms";
  EXPECT_LT(ms, 10000) << "SIGTERM waited for an idle keep-alive connection";
}

}  // namespace
}  // namespace kv::httptest

namespace kv {
namespace {

// SPEC §5: token buckets per route class, global and per client IP, 429 + Retry-After;
// the client IP comes from X-Forwarded-For only when the peer is a trusted proxy.
TEST(HttpRateLimitTest, PerClientBucketsAnswer429WithRetryAfterAndIsolateClients) {
  httptest::ServerProcess server(
      {"KEYVEND_ADMIN_TOKEN=adm-ratelimit-0123456789abcdef0123456789", "KEYVEND_PAYMENT_SECRET=s"});
  std::string error;
  ASSERT_TRUE(
      server.Start({"--rate-limit-read-per-client-per-second", "1",
                    "--rate-limit-read-per-client-burst", "3", "--trusted-proxies", "127.0.0.1"},
                   &error))
      << error;
  httplib::Client cli("127.0.0.1", server.port());
  auto get = [&](const std::string& forwarded_for) {
    httplib::Headers h = {{"X-Forwarded-For", forwarded_for}};
    return cli.Get("/api/v1/orders/00000000000000000000000000000000?token=x", h);
  };
  // Client A: the burst of 3, then 429 with a Retry-After.
  for (int i = 0; i < 3; ++i) {
    auto r = get("203.0.113.7");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404) << i;
  }
  auto limited = get("203.0.113.7");
  ASSERT_TRUE(limited);
  EXPECT_EQ(limited->status, 429);
  EXPECT_NE(limited->body.find("\"rate_limited\""), std::string::npos) << limited->body;
  ASSERT_TRUE(limited->has_header("Retry-After"));
  EXPECT_GE(std::stoi(limited->get_header_value("Retry-After")), 1);
  // Client B behind the same proxy is not starved by A.
  auto other = get("198.51.100.9");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
  // A spoofed hop in front of a real one does not help: the rightmost untrusted hop counts.
  auto spoofed = get("192.0.2.1, 203.0.113.7");
  ASSERT_TRUE(spoofed);
  EXPECT_EQ(spoofed->status, 429);
  // Health and metrics are never limited, and the refusals are counted.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(cli.Get("/healthz")->status, 200);
  auto metrics = cli.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(
      metrics->body.find("keyvend_http_rejected_total{class=\"read\",reason=\"rate_limited\"} 2"),
      std::string::npos)
      << metrics->body.substr(0, 2000);
  EXPECT_EQ(server.Terminate(), 0);
}

}  // namespace
}  // namespace kv

namespace kv {
namespace {

// SPEC §3 hoarding guard over HTTP: 429 pending_limit with Retry-After.
TEST(HttpRateLimitTest, HoardingGuardAnswers429PendingLimit) {
  httptest::ServerProcess server(
      {"KEYVEND_ADMIN_TOKEN=adm-ratelimit-0123456789abcdef0123456789", "KEYVEND_PAYMENT_SECRET=s"});
  std::string error;
  ASSERT_TRUE(server.Start({"--pending-orders-per-contact-max", "1"}, &error)) << error;
  httplib::Client cli("127.0.0.1", server.port());
  const httplib::Headers admin = {
      {"Authorization", "Bearer adm-ratelimit-0123456789abcdef0123456789"}};
  auto p = cli.Post("/api/v1/admin/products", admin,
                    R"({"name":"Hoard","price_cents":100,"currency":"EUR"})", "application/json");
  ASSERT_TRUE(p && p->status == 201);
  auto k = cli.Post("/api/v1/admin/products/1/keys", admin, "H-1\nH-2\nH-3\n", "text/plain");
  ASSERT_TRUE(k && k->status == 200);
  const std::string body = R"({"product_id":"1","quantity":1,"contact":"hoarder@example.com"})";
  auto first = cli.Post("/api/v1/orders", body, "application/json");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 201);
  auto second = cli.Post("/api/v1/orders", body, "application/json");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 429);
  EXPECT_NE(second->body.find("\"pending_limit\""), std::string::npos) << second->body;
  EXPECT_TRUE(second->has_header("Retry-After"));
  // Another buyer is not affected, and stock held only the first order.
  auto other =
      cli.Post("/api/v1/orders", R"({"product_id":"1","quantity":1,"contact":"other@example.com"})",
               "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 201);
  auto products = cli.Get("/api/v1/products");
  ASSERT_TRUE(products);
  EXPECT_NE(products->body.find("\"stock\":1"), std::string::npos) << products->body;
  EXPECT_EQ(server.Terminate(), 0);
}

}  // namespace
}  // namespace kv
