// A flash sale over HTTP against the real `keyvend serve`: 1,000 keys, 64 keep-alive
// connections (one httplib::Client per thread) racing with 5,120 order attempts. Exactly
// 1,000 orders are created and every other attempt is refused out_of_stock (SPEC §2.1);
// then all 1,000 are paid with signed notifies from 64 threads at once, and every order
// holds one key, all distinct, exactly the imported set (§2.2). Ends with SIGTERM (exit 0)
// and `keyvend check` (exit 0).
#include <atomic>
#include <latch>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-conc-5d1e0c9b7a-0123456789abcdef0123";
constexpr char kPaymentSecret[] = "pay-conc-2f4a6c8e0b";
constexpr int kKeys = 1000;
constexpr int kThreads = 64;
constexpr int kAttemptsPerThread = 80;  // 5,120 attempts in all
constexpr int64_t kPrice = 199;

struct Created {
  std::string order_id;
  std::string token;
  int64_t amount_cents = 0;
};

TEST(HttpConcurrencyTest, FlashSaleSellsEveryKeyExactlyOnce) {
  const auto t0 = SteadyClock::now();
  ServerProcess server({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                        std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret});
  std::string error;
  ASSERT_TRUE(server.Start({"--max-connections", "256"}, &error)) << error;
  auto admin_api = std::make_unique<Api>(server.port(), kAdminToken);
  Api& admin = *admin_api;

  Reply r = admin.AdminPost("/api/v1/admin/products",
                            R"({"name":"Flash sale","price_cents":199,"currency":"EUR"})");
  ASSERT_EQ(r.status, 201) << r;
  const std::string pid = r.json()["id"].str();
  std::set<std::string> imported;
  std::string body;
  for (int i = 0; i < kKeys; ++i) {
    const std::string k =
        "FLASH-" + std::to_string(NowUnix() % 100000) + "-" + std::to_string(100000 + i) + "-X9";
    imported.insert(k);
    body += k + "\n";
  }
  ASSERT_EQ(imported.size(), static_cast<size_t>(kKeys));
  r = admin.AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
  ASSERT_EQ(r.status, 200) << r;
  ASSERT_EQ(r.json()["imported"].num(), kKeys) << r;

  // --- the race for the keys ---
  std::mutex mu;
  std::vector<Created> created;
  std::vector<std::string> unexpected;
  std::atomic<int> out_of_stock{0};
  const std::string order_prefix = "{\"product_id\":" + Quote(pid) + ",\"quantity\":1,\"contact\":";
  const auto race_start = SteadyClock::now();
  OnThreads(kThreads, server.port(), kAdminToken, [&](int t, Api& api) {
    std::vector<Created> mine;
    for (int i = 0; i < kAttemptsPerThread; ++i) {
      const std::string contact =
          "buyer-" + std::to_string(t) + "-" + std::to_string(i) + "@example.com";
      const Reply rep = api.Post("/api/v1/orders", order_prefix + Quote(contact) + "}");
      if (rep.status == 201) {
        const Json j = rep.json();
        mine.push_back({j["order_id"].str(), j["token"].str(), j["amount_cents"].num()});
      } else if (IsError(rep, 409, "out_of_stock")) {
        out_of_stock.fetch_add(1);
      } else {
        std::lock_guard<std::mutex> l(mu);
        std::ostringstream os;
        os << rep;
        unexpected.push_back(os.str());
      }
    }
    std::lock_guard<std::mutex> l(mu);
    created.insert(created.end(), mine.begin(), mine.end());
  });
  const auto race_ms =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - race_start).count();
  EXPECT_TRUE(unexpected.empty()) << unexpected.size()
                                  << " unexpected answers, first: " << unexpected.front();
  ASSERT_EQ(created.size(), static_cast<size_t>(kKeys)) << "oversold or undersold";
  EXPECT_EQ(out_of_stock.load(), kThreads * kAttemptsPerThread - kKeys);
  std::set<std::string> ids;
  for (const Created& c : created) {
    ids.insert(c.order_id);
    EXPECT_EQ(c.amount_cents, kPrice);
  }
  EXPECT_EQ(ids.size(), created.size()) << "an order id given twice";
  r = admin.Get("/api/v1/products/" + pid);
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["stock"].num(), 0) << r;

  // --- every order paid at once ---
  std::atomic<int> next{0}, paid{0};
  std::vector<std::string> pay_errors;
  const auto pay_start = SteadyClock::now();
  OnThreads(kThreads, server.port(), kAdminToken, [&](int, Api& api) {
    for (int i = next.fetch_add(1); i < kKeys; i = next.fetch_add(1)) {
      const Created& c = created[static_cast<size_t>(i)];
      const Reply rep = SendNotify(
          api, kPaymentSecret,
          NotifyBody(c.order_id, "flash-pay-" + std::to_string(i), c.amount_cents, "EUR"));
      const Json j = rep.json();
      if (rep.status == 200 && j["received"].boolean()) {
        paid.fetch_add(1);
      } else {
        std::lock_guard<std::mutex> l(mu);
        std::ostringstream os;
        os << rep;
        pay_errors.push_back(os.str());
      }
    }
  });
  const auto pay_ms =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - pay_start).count();
  EXPECT_EQ(paid.load(), kKeys) << (pay_errors.empty() ? "" : pay_errors.front());

  // --- read every order back with its token ---
  std::multiset<std::string> delivered;
  std::vector<std::string> read_errors;
  next = 0;
  OnThreads(kThreads, server.port(), kAdminToken, [&](int, Api& api) {
    for (int i = next.fetch_add(1); i < kKeys; i = next.fetch_add(1)) {
      const Created& c = created[static_cast<size_t>(i)];
      const Reply rep = api.Get("/api/v1/orders/" + c.order_id + "?token=" + c.token);
      const Json j = rep.json();
      std::lock_guard<std::mutex> l(mu);
      if (rep.status != 200 || j["status"].str() != "delivered" || j["keys"].size() != 1) {
        std::ostringstream os;
        os << c.order_id << ": " << rep;
        read_errors.push_back(os.str());
        continue;
      }
      delivered.insert(j["keys"][0].str());
    }
  });
  EXPECT_TRUE(read_errors.empty())
      << read_errors.size() << " orders not delivered, first: " << read_errors.front();
  const std::set<std::string> distinct(delivered.begin(), delivered.end());
  EXPECT_EQ(delivered.size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(distinct.size(), delivered.size()) << "a key delivered to two orders";
  EXPECT_TRUE(distinct == imported) << "the delivered keys are not exactly the imported set";

  r = admin.AdminGet("/api/v1/admin/products");
  ASSERT_EQ(r.status, 200) << r;
  // The one product of this test (items(1) asserts the list holds exactly it).
  for (const Json& p : r.json()["products"].items(1)) {
    EXPECT_EQ(p["id"].str(), pid) << r;
    EXPECT_EQ(p["counts"]["delivered"].num(), kKeys) << r;
    EXPECT_EQ(p["counts"]["held"].num(), 0) << r;
    EXPECT_EQ(p["counts"]["pool"].num(), 0) << r;
    EXPECT_EQ(p["stock"].num(), 0) << r;
  }
  r = admin.AdminGet("/api/v1/admin/payments?state=refund_due");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["payments"].size(), 0u) << r;

  // --- drain, exit 0, check ---
  admin_api.reset();  // no idle keep-alive connection left (the drain waits for them)
  ExpectCleanStop(server, std::vector<std::string>(imported.begin(), imported.end()));
  std::printf(
      "http_concurrency_test: %d attempts on %d connections in %lld ms (%zu created, %d "
      "out_of_stock); %d notifies in %lld ms; total %lld ms\n",
      kThreads * kAttemptsPerThread, kThreads, static_cast<long long>(race_ms), created.size(),
      out_of_stock.load(), kKeys, static_cast<long long>(pay_ms),
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count()));
}

}  // namespace
}  // namespace kv::httptest
