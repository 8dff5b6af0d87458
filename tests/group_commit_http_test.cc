// The group committer seen over HTTP (issue 11): an in-process http::Server (its public
// API, real sockets) over a shop whose synced writes fail on demand. While they fail,
// every order and import from concurrent clients is answered 503 storage_unavailable and
// stock and holds stay as they were; once they succeed again, orders are created and
// counted. Ends with the offline check of the data dir.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/random.h"
#include "config/config.h"
#include "gtest/gtest.h"
#include "http/server.h"
#include "kit/exposition.h"
#include "kit/files.h"
#include "kit/http_client.h"
#include "shop/check.h"
#include "shop/shop.h"
#include "storage/data_dir.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-group-commit-7c1f0e9d2b-0123456789abcdef";
constexpr int kKeys = 500;
constexpr int kClients = 16;
constexpr int kOrdersPerClient = 6;

struct Counts {
  int64_t available = 0, pool = 0, held = 0, imported = 0;
  bool operator==(const Counts&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Counts& c) {
  return os << "{available " << c.available << ", pool " << c.pool << ", held " << c.held
            << ", imported " << c.imported << "}";
}

class GroupCommitHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ShopOptions so;
    so.data_dir = tmp_.Sub("data");
    so.master_key_file = tmp_.Sub("master.key");
    so.block_cache_bytes = 8 << 20;
    so.start_workers = false;
    so.write_fault = [this]() -> absl::Status {
      if (failing_.load()) return absl::UnavailableError("injected write error");
      return absl::OkStatus();
    };
    auto shop = Shop::Open(so);
    ASSERT_TRUE(shop.ok()) << shop.status();
    shop_ = std::move(*shop);

    http::ServerOptions ho;
    ho.config.listen = "127.0.0.1:0";
    ho.config.payment_sandbox = true;
    // Every limit that could answer before the shop does is off: the answers below are
    // the committer's.
    ho.config.inflight_order_max = 0;
    ho.config.inflight_admin_max = 0;
    ho.config.max_connections_per_client = 0;
    ho.config.rate_limit_order_per_second = 0;
    ho.config.rate_limit_order_per_client_per_second = 0;
    ho.config.rate_limit_admin_per_second = 0;
    ho.config.rate_limit_admin_per_client_per_second = 0;
    ho.config.rate_limit_page_per_client_per_second = 0;
    ho.config.pending_orders_per_contact_max = 0;
    ho.config.pending_orders_per_client_max = 0;
    ho.shop = shop_.get();
    ho.clock = RealClock::Get();
    ho.random = SecureRandom::Get();
    ho.admin_token = kAdminToken;
    auto server = http::Server::Bind(std::move(ho));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    runner_ = std::thread([this] { server_->Run(); });
    admin_ = std::make_unique<Api>(server_->port(), kAdminToken);
  }

  void TearDown() override {
    admin_.reset();
    if (server_ != nullptr) server_->Stop();
    if (runner_.joinable()) runner_.join();
    server_.reset();
    shop_.reset();
    // Nothing half-applied on disk.
    auto d = storage::OpenExistingDataDir(tmp_.Sub("data"), tmp_.Sub("master.key"));
    ASSERT_TRUE(d.ok()) << d.status();
    auto rep = CheckShop(*d->db, *d->cipher);
    ASSERT_TRUE(rep.ok()) << rep.status();
    for (const std::string& v : rep->violations) ADD_FAILURE() << "check: " << v;
  }

  Counts CountsOf(const std::string& pid) {
    Reply r = admin_->AdminGet("/api/v1/admin/products/" + pid + "/keys");
    EXPECT_EQ(r.status, 200) << r;
    if (r.status != 200) return {};
    const Json c = r.json()["counts"];
    return Counts{c["available"].num(), c["pool"].num(), c["held"].num(), c["imported"].num()};
  }
  int64_t PublicStock(const std::string& pid) {
    Reply r = admin_->Get("/api/v1/products/" + pid);
    EXPECT_EQ(r.status, 200) << r;
    return r.status == 200 ? r.json()["stock"].num() : -1;
  }
  int64_t OrdersListed() {
    Reply r = admin_->AdminGet("/api/v1/admin/orders?limit=500");
    EXPECT_EQ(r.status, 200) << r;
    return r.status == 200 ? static_cast<int64_t>(r.json()["orders"].size()) : -1;
  }
  static std::string Keys(const std::string& tag, int n) {
    std::string body;
    for (int i = 0; i < n; ++i) absl::StrAppend(&body, "GC-", tag, "-", 100000 + i, "-KEY\n");
    return body;
  }
  // kClients clients at once, each POSTing kOrdersPerClient orders; their answers.
  std::vector<Reply> OrderFromEveryClient(const std::string& pid) {
    std::vector<Reply> replies(kClients * kOrdersPerClient);
    OnThreads(kClients, server_->port(), kAdminToken, [&](int t, Api& api) {
      for (int i = 0; i < kOrdersPerClient; ++i) {
        replies[t * kOrdersPerClient + i] =
            api.Post("/api/v1/orders", absl::StrCat(R"({"product_id":")", pid, R"(","quantity":1,)",
                                                    R"("contact":"buyer)", t, R"(@example.com"})"));
      }
    });
    return replies;
  }

  testing::TempDir tmp_;
  std::atomic<bool> failing_{false};
  std::unique_ptr<Shop> shop_;
  // One sample of the server's /metrics (-1 when it is missing).
  double Metric(std::string_view name) {
    const Reply r = admin_->Get("/metrics");
    EXPECT_EQ(r.status, 200) << r;
    return kv::testing::MetricValue(r.body, name, {}).value_or(-1);
  }

  std::unique_ptr<http::Server> server_;
  std::thread runner_;
  std::unique_ptr<Api> admin_;
};

TEST_F(GroupCommitHttpTest, FailingCommitsAnswer503AndChangeNothingThenOrdersSucceed) {
  Reply r = admin_->AdminPost("/api/v1/admin/products",
                              R"({"name":"Hot","price_cents":100,"currency":"EUR"})");
  ASSERT_EQ(r.status, 201) << r;
  const std::string pid = r.json()["id"].str();
  r = admin_->AdminPost("/api/v1/admin/products/" + pid + "/keys", Keys("a", kKeys), "text/plain");
  ASSERT_EQ(r.status, 200) << r;
  const Counts before = CountsOf(pid);
  ASSERT_EQ(before, (Counts{kKeys, kKeys, 0, kKeys}));
  const double groups0 = Metric("keyvend_commit_groups_total");
  const double batches0 = Metric("keyvend_commit_batches_total");
  ASSERT_GE(groups0, 2);  // the product and the import, at least
  ASSERT_GE(batches0, groups0);

  // --- the disk fails: every state change is answered 503, none of it happened ---
  failing_ = true;
  for (const Reply& o : OrderFromEveryClient(pid)) {
    EXPECT_TRUE(IsError(o, 503, "storage_unavailable")) << o;
  }
  r = admin_->AdminPost("/api/v1/admin/products/" + pid + "/keys", Keys("b", 50), "text/plain");
  EXPECT_TRUE(IsError(r, 503, "storage_unavailable")) << r;
  EXPECT_EQ(CountsOf(pid), before);  // reads never wait for (nor fail with) the committer
  EXPECT_EQ(PublicStock(pid), kKeys);
  EXPECT_EQ(OrdersListed(), 0);

  // --- it works again: every order is created and held ---
  failing_ = false;
  for (const Reply& o : OrderFromEveryClient(pid)) EXPECT_EQ(o.status, 201) << o;
  constexpr int kOrders = kClients * kOrdersPerClient;
  EXPECT_EQ(CountsOf(pid), (Counts{kKeys - kOrders, kKeys, kOrders, kKeys}));
  EXPECT_EQ(PublicStock(pid), kKeys - kOrders);
  EXPECT_EQ(OrdersListed(), kOrders);
  // The committer's totals in /metrics count every batch once, failed groups included, and
  // nothing waits for a group at rest.
  const double groups = Metric("keyvend_commit_groups_total") - groups0;
  const double batches = Metric("keyvend_commit_batches_total") - batches0;
  EXPECT_GE(batches, 2 * kOrders + 1) << "refused and created orders and the refused import";
  EXPECT_GE(groups, 1);
  EXPECT_LE(groups, batches);
  EXPECT_EQ(Metric("keyvend_commit_queued"), 0);
  // The import refused while failing can be sent again (nothing of it was kept).
  r = admin_->AdminPost("/api/v1/admin/products/" + pid + "/keys", Keys("b", 50), "text/plain");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.json()["imported"].num(), 50) << r;
}

}  // namespace
}  // namespace kv::httptest
