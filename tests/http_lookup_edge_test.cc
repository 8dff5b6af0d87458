// Black-box tests of issue 9 items 7 and 8 (review findings 6, 7 and 9b) against the real
// `keyvend serve` binary on 127.0.0.1:0, with raw sockets bound to chosen loopback source
// addresses (any 127.0.0.x is local on Linux) so that each client is a different address:
//
//  1. failed lookups of one contact from ten addresses lock that contact: the right password
//     is then refused 429 `rate_limited` with Retry-After, from any address; another contact
//     is unaffected;
//  2. wrong tokens for one order id from ten addresses lock that order's reads, the right
//     token included; another order is unaffected;
//  3. a query password shorter than 6 characters is refused at order creation (400
//     `bad_request`) and creates nothing;
//  4. an Idempotency-Key replayed from another client gets 409 `idempotency_conflict` with
//     neither the order id nor the token, and the original client's replay still gets its
//     201 with the token (also behind a trusted proxy, by X-Forwarded-For).
//
// The harness turns the per-client rate limits off, so every refusal here is the lockout's.
// No assertion is about time. Every test ends with SIGTERM (exit 0), `keyvend check` (exit 0)
// and a grep of everything the server printed for the card keys it imported.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/served_shop_test.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-lookup-edge-5c1f9a7e3b2d4c6a8e0f";
constexpr char kPaymentSecret[] = "pay-lookup-edge-2b4d6f8a0c1e";
constexpr milliseconds kLiveness(20000);

class LookupEdgeTest : public ServedShopTest {
 protected:
  LookupEdgeTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  // A product with n fresh keys; returns its id.
  std::string ProductWithKeys(int n) {
    Reply r = api_->AdminPost("/api/v1/admin/products",
                              R"({"name":"Edge card","price_cents":500,"currency":"EUR"})");
    EXPECT_EQ(r.status, 201) << r;
    const std::string pid = r.json()["id"].str();
    std::string body;
    for (int i = 0; i < n; ++i) {
      imported_.push_back("KV-EDGE-" + pid + "-" + std::to_string(i) + "-Q7Z");
      body += imported_.back() + "\n";
    }
    r = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(r.status, 200) << r;
    return pid;
  }

  // One request from source address `ip` on a fresh connection; the whole response.
  Reply From(const std::string& ip, const std::string& method, const std::string& target,
             const std::string& body = "",
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    RawConnection c(server_->port(), ip);
    if (!c.connected()) {
      Reply r;
      r.error = "cannot connect from " + ip;
      return r;
    }
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    (void)c.Send(RawRequest(method, target, headers, body));
    return c.ReadResponse(kLiveness).AsReply();
  }

  static std::string OrderBody(const std::string& pid, const std::string& contact,
                               const std::string& password) {
    std::string b =
        "{\"product_id\":" + Quote(pid) + ",\"quantity\":1,\"contact\":" + Quote(contact);
    if (!password.empty()) b += ",\"query_password\":" + Quote(password);
    return b + "}";
  }
  static std::string LookupBody(const std::string& contact, const std::string& password) {
    return "{\"contact\":" + Quote(contact) + ",\"query_password\":" + Quote(password) + "}";
  }

  size_t OrdersInShop() {
    const Reply r = api_->AdminGet("/api/v1/admin/orders");
    EXPECT_EQ(r.status, 200) << r;
    return r.json()["orders"].size();
  }
};

// A 429 whose Retry-After is a whole number of seconds in 1..max.
::testing::AssertionResult IsLockedOut(const Reply& r, int max_seconds) {
  ::testing::AssertionResult shape = IsError(r, 429, "rate_limited");
  if (!shape) return shape;
  const int retry = std::atoi(r.header("Retry-After").c_str());
  if (retry < 1 || retry > max_seconds) {
    return ::testing::AssertionFailure() << "Retry-After " << r.header("Retry-After")
                                         << " not in 1.." << max_seconds << ": " << r;
  }
  return ::testing::AssertionSuccess();
}

TEST_F(LookupEdgeTest, FailedLookupsFromTenAddressesLockTheContactRightPasswordIncluded) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string pid = ProductWithKeys(4);
  Reply r = api_->Post("/api/v1/orders", OrderBody(pid, "victim@example.com", "correct-horse-1"));
  ASSERT_EQ(r.status, 201) << r;
  r = api_->Post("/api/v1/orders", OrderBody(pid, "bystander@example.com", "battery-staple-2"));
  ASSERT_EQ(r.status, 201) << r;
  // The right password works before any failure.
  r = From("127.0.0.12", "POST", "/api/v1/orders/lookup",
           LookupBody("victim@example.com", "correct-horse-1"));
  ASSERT_EQ(r.status, 200) << r;
  ASSERT_EQ(r.json()["orders"].size(), 1u) << r;

  // Ten wrong passwords, each from its own address (127.0.0.2 .. 127.0.0.11): no per-client
  // limit sees more than one.
  for (int i = 2; i <= 11; ++i) {
    const std::string ip = "127.0.0." + std::to_string(i);
    r = From(ip, "POST", "/api/v1/orders/lookup",
             LookupBody("victim@example.com", "guess-" + std::to_string(1000 + i)));
    ASSERT_EQ(r.status, 200) << ip << " " << r;
    ASSERT_EQ(r.json()["orders"].size(), 0u) << r;
  }
  // Locked: the right password from yet another address is refused, with Retry-After; and
  // from the first client too.
  r = From("127.0.0.12", "POST", "/api/v1/orders/lookup",
           LookupBody("victim@example.com", "correct-horse-1"));
  EXPECT_TRUE(IsLockedOut(r, 60)) << r;
  EXPECT_EQ(r.body.find("correct-horse"), std::string::npos);
  r = api_->Post("/api/v1/orders/lookup", LookupBody("Victim@Example.com", "correct-horse-1"));
  EXPECT_TRUE(IsLockedOut(r, 60)) << "the count is on the contact, whatever its case: " << r;
  // Another contact is not affected, from the same addresses.
  r = From("127.0.0.12", "POST", "/api/v1/orders/lookup",
           LookupBody("bystander@example.com", "battery-staple-2"));
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["orders"].size(), 1u) << r;
  // The token link of the locked contact's order still works (reads lock per order id).
  r = api_->Post("/api/v1/orders",
                 OrderBody(pid, "victim@example.com", "another-pw-3"));  // ordering is not locked
  ASSERT_EQ(r.status, 201) << r;
  r = api_->Get("/api/v1/orders/" + r.json()["order_id"].str() +
                "?token=" + r.json()["token"].str());
  EXPECT_EQ(r.status, 200) << r;
}

TEST_F(LookupEdgeTest, WrongTokensFromTenAddressesLockThatOrdersReads) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string pid = ProductWithKeys(3);
  Reply r = api_->Post("/api/v1/orders", OrderBody(pid, "reader@example.com", ""));
  ASSERT_EQ(r.status, 201) << r;
  const std::string oid = r.json()["order_id"].str(), token = r.json()["token"].str();
  r = api_->Post("/api/v1/orders", OrderBody(pid, "reader@example.com", ""));
  ASSERT_EQ(r.status, 201) << r;
  const std::string other = r.json()["order_id"].str(), other_token = r.json()["token"].str();

  const std::string wrong(token.size(), '0');
  for (int i = 2; i <= 11; ++i) {
    const std::string ip = "127.0.0." + std::to_string(i);
    r = From(ip, "GET", "/api/v1/orders/" + oid + "?token=" + wrong);
    ASSERT_TRUE(IsError(r, 404, "order_not_found")) << ip << " " << r;
  }
  r = From("127.0.0.12", "GET", "/api/v1/orders/" + oid + "?token=" + token);
  EXPECT_TRUE(IsLockedOut(r, 60)) << r;
  r = From("127.0.0.12", "GET", "/api/v1/orders/" + other + "?token=" + other_token);
  EXPECT_EQ(r.status, 200) << "another order is readable: " << r;
  // The merchant still sees the order.
  EXPECT_EQ(api_->AdminGet("/api/v1/admin/orders/" + oid).status, 200);
}

TEST_F(LookupEdgeTest, AQueryPasswordShorterThanSixCharactersIsRefusedAndCreatesNothing) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string pid = ProductWithKeys(2);
  for (const std::string pw : {"12345", "pw", "\xC3\xA4\xC3\xA4\xC3\xA4" /* 3 characters */}) {
    const Reply r = api_->Post("/api/v1/orders", OrderBody(pid, "short@example.com", pw));
    EXPECT_TRUE(IsError(r, 400, "bad_request")) << pw << " " << r;
    EXPECT_NE(r.json()["error"]["message"].str().find("query_password"), std::string::npos) << r;
  }
  EXPECT_EQ(OrdersInShop(), 0u);
  Reply r = api_->Get("/api/v1/products/" + pid);
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["stock"].num(), 2) << "no stock held: " << r;
  // Six characters, or none, are accepted.
  EXPECT_EQ(api_->Post("/api/v1/orders", OrderBody(pid, "six@example.com", "123456")).status, 201);
  EXPECT_EQ(api_->Post("/api/v1/orders", OrderBody(pid, "none@example.com", "")).status, 201);
  EXPECT_EQ(OrdersInShop(), 2u);
}

TEST_F(LookupEdgeTest, AnIdempotencyReplayFromAnotherClientGetsNoToken) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string pid = ProductWithKeys(3);
  // A predictable key and a guessable body (no query password: the key is the only secret).
  const std::string body = OrderBody(pid, "buyer@example.com", "");
  const std::vector<std::pair<std::string, std::string>> key = {{"Idempotency-Key", "checkout-42"}};

  const Reply first = From("127.0.0.2", "POST", "/api/v1/orders", body, key);
  ASSERT_EQ(first.status, 201) << first;
  const std::string oid = first.json()["order_id"].str(), token = first.json()["token"].str();
  ASSERT_EQ(token.size(), 32u) << first;

  const Reply stolen = From("127.0.0.3", "POST", "/api/v1/orders", body, key);
  EXPECT_TRUE(IsError(stolen, 409, "idempotency_conflict")) << stolen;
  EXPECT_EQ(stolen.body.find(token), std::string::npos) << "the token leaked: " << stolen;
  EXPECT_EQ(stolen.body.find(oid), std::string::npos) << "the order id leaked: " << stolen;

  // The original client's retry still gets its 201, token included, and nothing new exists.
  const Reply again = From("127.0.0.2", "POST", "/api/v1/orders", body, key);
  ASSERT_EQ(again.status, 201) << again;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(OrdersInShop(), 1u);
}

TEST_F(LookupEdgeTest, BehindATrustedProxyTheIdempotencyScopeIsTheForwardedClient) {
  ASSERT_NO_FATAL_FAILURE(Start({"--trusted-proxies=127.0.0.5"}));
  const std::string pid = ProductWithKeys(3);
  const std::string body = OrderBody(pid, "proxied@example.com", "a-long-password");
  auto via = [&](const std::string& client) {
    return From("127.0.0.5", "POST", "/api/v1/orders", body,
                {{"Idempotency-Key", "k-7"}, {"X-Forwarded-For", client}});
  };
  const Reply first = via("203.0.113.10");
  ASSERT_EQ(first.status, 201) << first;
  const Reply other = via("203.0.113.99");
  EXPECT_TRUE(IsError(other, 409, "idempotency_conflict")) << other;
  EXPECT_EQ(other.body.find(first.json()["token"].str()), std::string::npos) << other;
  const Reply again = via("203.0.113.10");
  EXPECT_EQ(again.status, 201) << again;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(OrdersInShop(), 1u);
}

}  // namespace
}  // namespace kv::httptest
