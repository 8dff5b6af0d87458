// Disk full (issue 15, item 5) on a REAL small file system: the data dir is a 96 MiB tmpfs
// mounted for the test (CI runs as root; without root the test is skipped, saying so).
// The real `keyvend serve`:
//  - takes orders and payments; then the file system is filled by a file of the test's
//    until fewer than min_free_disk_mb (16 here) are free -> an import answers 503
//    storage_unavailable and adds nothing (the disk guard, storage/disk_space.h, refuses
//    writes before RocksDB would meet ENOSPC);
//  - while full: orders answer 503 storage_unavailable, the catalogue, an acknowledged
//    order's page, /healthz and /metrics are served, /readyz answers 503 naming the reason,
//    keyvend_storage_writable is 0;
//  - the filler is removed -> the shop becomes writable BY ITSELF (no request needed: RocksDB's
//    recovery; /readyz 200 again, keyvend_storage_recoveries_total 1), orders and payments
//    succeed;
//  - after a clean stop and a restart: every acknowledged payment's order is delivered with
//    its keys, the stock is exactly the imports that answered 200 minus what was sold, and
//    `keyvend check` passes (ExpectCleanStop).
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/exposition.h"
#include "kit/poll.h"
#include "kit/served_shop_test.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-disk-full-blackbox-7c2e9a4b1d3f5";
constexpr char kPaymentSecret[] = "pay-disk-full-blackbox-4a8c";
constexpr int kBigImportKeys = 100000;

struct Bought {
  std::string id;
  std::string token;
};

class HttpDiskFullTest : public ServedShopTest {
 protected:
  HttpDiskFullTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs (CI runs as root)";
    ServedShopTest::SetUp();
    mount_ = server_->data_dir();
    ASSERT_EQ(mkdir(mount_.c_str(), 0700), 0) << mount_;
    ASSERT_EQ(mount("tmpfs", mount_.c_str(), "tmpfs", 0, "size=96m,mode=0700"), 0)
        << "mount tmpfs on " << mount_ << ": " << strerror(errno);
    mounted_ = true;
  }

  void TearDown() override {
    if (mounted_) {
      std::remove(Filler().c_str());  // whatever happened, the clean stop has room
      ServedShopTest::TearDown();
      // Stopped (ExpectCleanStop): nothing holds the mount.
      EXPECT_EQ(umount2(mount_.c_str(), MNT_DETACH), 0) << strerror(errno);
    }
  }

  std::string Filler() const { return mount_ + "/filler"; }

  // Fills the file system but for `leave_kib`.
  void Fill(long leave_kib) {
    std::ofstream f(Filler(), std::ios::binary);
    const std::string block(1 << 20, 'f');
    std::string small(1024, 'f');
    for (;;) {
      const long free_kib = FreeKib();
      if (free_kib <= leave_kib) break;
      if (free_kib - leave_kib >= 1024 + 1) {
        f.write(block.data(), block.size());
      } else {
        f.write(small.data(), small.size());
      }
      f.flush();
      if (!f) break;
    }
  }

  long FreeKib() const {
    struct statvfs st {};
    if (statvfs(mount_.c_str(), &st) != 0) return -1;
    return static_cast<long>(static_cast<uint64_t>(st.f_bavail) * st.f_frsize / 1024);
  }

  std::string MakeProduct() {
    const Reply r =
        api_->AdminPost("/api/v1/admin/products",
                        R"({"name":"Disk full card","price_cents":250,"currency":"EUR"})");
    EXPECT_EQ(r.status, 201) << r;
    return r.json()["id"].str();
  }

  // Imports n keys named PREFIX-i; returns the reply. Every 1000th key is remembered for the
  // clean stop's "no key printed" check (all of them would make that check slow).
  Reply Import(const std::string& pid, const std::string& prefix, int n) {
    std::string body;
    body.reserve(static_cast<size_t>(n) * 40);
    for (int i = 0; i < n; ++i) {
      const std::string k = "DF-" + tag_ + "-" + prefix + "-" + std::to_string(i) + "-KEYBODY";
      if (i % 1000 == 0) imported_.push_back(k);
      body += k;
      body += '\n';
    }
    return api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
  }

  Reply Order(const std::string& pid, int i) {
    return api_->Post("/api/v1/orders",
                      "{\"product_id\":" + Quote(pid) + ",\"quantity\":1,\"contact\":\"full" +
                          std::to_string(i) + "@example.com\"}",
                      "application/json");
  }

  // Orders and pays n orders; all must be acknowledged.
  void BuyAndPay(const std::string& pid, int from, int n, std::vector<Bought>* out) {
    for (int i = from; i < from + n; ++i) {
      const Reply o = Order(pid, i);
      ASSERT_EQ(o.status, 201) << o;
      const Json j = o.json();
      const Reply p = SendNotify(*api_, kPaymentSecret,
                                 NotifyBody(j["order_id"].str(), "pay-" + j["order_id"].str(),
                                            j["amount_cents"].num(), j["currency"].str()));
      ASSERT_EQ(p.status, 200) << p;
      out->push_back(Bought{j["order_id"].str(), j["token"].str()});
    }
  }

  double Metric(std::string_view name) {
    const Reply r = api_->Get("/metrics");
    EXPECT_EQ(r.status, 200) << r;
    return kv::testing::MetricValue(r.body, name, {}).value_or(-1);
  }

  int64_t Stock(const std::string& pid) {
    const Reply r = api_->Get("/api/v1/products/" + pid);
    EXPECT_EQ(r.status, 200) << r;
    return static_cast<int64_t>(r.json()["stock"].num());
  }

  std::string mount_;
  bool mounted_ = false;
};

TEST_F(HttpDiskFullTest, WritesAnswer503ReadsGoOnAndItRecoversByItselfLosingNothing) {
  Start({"--min-free-disk-mb=16"});
  const std::string pid = MakeProduct();
  int64_t keys_in = 0;
  {
    const Reply r = Import(pid, "first", 2000);
    ASSERT_EQ(r.status, 200) << r;
    keys_in += 2000;
  }
  std::vector<Bought> acked;
  BuyAndPay(pid, 0, 20, &acked);

  // Nearly full: 8 MiB left, under the 16 MiB kept free. The import must add nothing.
  Fill(8 * 1024);
  ASSERT_TRUE(PollUntil([&] { return Metric("keyvend_storage_writable") == 0; },
                        std::chrono::milliseconds(10000), std::chrono::milliseconds(50)));
  {
    const Reply r = Import(pid, "refused", kBigImportKeys);
    ASSERT_EQ(r.status, 503) << r;
    EXPECT_EQ(r.json()["error"]["code"].str(), "storage_unavailable") << r;
  }

  // While full: writes 503, reads and probes served.
  for (int i = 0; i < 5; ++i) {
    const Reply o = Order(pid, 1000 + i);
    ASSERT_EQ(o.status, 503) << o;
    EXPECT_EQ(o.json()["error"]["code"].str(), "storage_unavailable") << o;
  }
  EXPECT_EQ(api_->Get("/healthz").status, 200);
  const Reply ready = api_->Get("/readyz");
  EXPECT_EQ(ready.status, 503) << ready;
  EXPECT_NE(ready.body.find("storage not writable"), std::string::npos) << ready;
  EXPECT_NE(ready.body.find("disk almost full"), std::string::npos) << ready;
  EXPECT_EQ(Metric("keyvend_storage_writable"), 0);
  EXPECT_LT(Metric("keyvend_storage_free_bytes"), 16 << 20);
  // The database itself never failed: the guard stopped the writes before it could.
  EXPECT_EQ(Metric("keyvend_storage_write_errors_total"), 0);
  EXPECT_EQ(Stock(pid), keys_in - 20);
  {
    const Reply page = api_->Get("/api/v1/orders/" + acked[0].id + "?token=" + acked[0].token);
    ASSERT_EQ(page.status, 200) << page;
    EXPECT_EQ(page.json()["status"].str(), "delivered") << page;
  }

  // Space returns: no request is needed for the shop to notice.
  ASSERT_EQ(std::remove(Filler().c_str()), 0);
  ASSERT_TRUE(PollUntil([&] { return api_->Get("/readyz").status == 200; },
                        std::chrono::milliseconds(60000), std::chrono::milliseconds(200)))
      << "the shop did not recover by itself once space returned";
  EXPECT_EQ(Metric("keyvend_storage_writable"), 1);
  BuyAndPay(pid, 20, 10, &acked);
  EXPECT_EQ(Stock(pid), keys_in - 30);

  // Nothing acknowledged lost, nothing refused half there, after a restart too.
  api_.reset();
  const int status = server_->Terminate();
  ASSERT_TRUE(ExitedZero(status)) << DescribeWait(status);
  Start({"--min-free-disk-mb=16"});
  EXPECT_EQ(Stock(pid), keys_in - 30);
  std::set<std::string> keys;
  for (const Bought& b : acked) {
    const Reply page = api_->Get("/api/v1/orders/" + b.id + "?token=" + b.token);
    ASSERT_EQ(page.status, 200) << page;
    const Json j = page.json();
    EXPECT_EQ(j["status"].str(), "delivered") << page;
    for (const Json& k : j["keys"].items(1)) {
      EXPECT_TRUE(keys.insert(k.str()).second) << "key in two orders: " << k.str();
    }
  }
  EXPECT_EQ(keys.size(), acked.size());
}

}  // namespace
}  // namespace kv::httptest
