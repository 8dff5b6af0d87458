// slowdrip_bench against the real `keyvend serve` for about a second per mode: it runs,
// exits 0 and prints numbers (a smoke test of the load generator, not of the server: the
// kit's server has the admission caps off, and nothing here is timed).
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kit/served_shop_test.h"

#ifndef SLOWDRIP_BIN
#error "SLOWDRIP_BIN must name slowdrip_bench"
#endif

namespace kv::httptest {
namespace {

// The key=value fields of the output's RESULT line (empty when there is none).
std::map<std::string, std::string> ResultFields(const std::string& out) {
  std::map<std::string, std::string> f;
  const size_t at = out.rfind("RESULT ");
  if (at == std::string::npos) return f;
  std::istringstream line(out.substr(at + 7, out.find('\n', at) - at - 7));
  std::string kv;
  while (line >> kv) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) f[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return f;
}

class SlowdripSmokeTest : public ServedShopTest {
 protected:
  SlowdripSmokeTest() : ServedShopTest("slowdrip-admin-0123456789abcdef0123", "slowdrip-secret") {}
};

TEST_F(SlowdripSmokeTest, SlowdripModeMeasuresDripsBuyerAndProbe) {
  Start();
  const Reply p = api_->AdminPost("/api/v1/admin/products",
                                  R"({"name":"smoke","price_cents":100,"currency":"EUR"})");
  ASSERT_EQ(p.status, 201) << p;
  const std::string pid = p.json()["id"].str();
  std::string keys;
  for (int i = 0; i < 100; ++i) {
    const std::string k = "SMOKE-" + tag_ + "-" + std::to_string(i);
    keys += k + "\n";
    imported_.push_back(k);
  }
  ASSERT_EQ(api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", keys, "text/plain").status,
            200);
  const RunResult r = RunCommand({SLOWDRIP_BIN,
                                  "--url",
                                  server_->url(),
                                  "--product",
                                  pid,
                                  "--connections",
                                  "40",
                                  "--per-address",
                                  "10",
                                  "--seconds",
                                  "1",
                                  "--warmup-seconds",
                                  "0.3",
                                  "--drip-ms",
                                  "50",
                                  "--buyer-interval-ms",
                                  "50",
                                  "--probe-interval-ms",
                                  "20",
                                  "--server-pid",
                                  std::to_string(server_->pid())});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << r.error;
  auto f = ResultFields(r.out);
  ASSERT_EQ(f["mode"], "slowdrip") << r.out;
  EXPECT_GE(std::stoi(f["drips_established"]), 40) << r.out;
  EXPECT_GT(std::stod(f["drips_open_avg"]), 0) << r.out;
  EXPECT_GT(std::stoi(f["buyer_orders"]), 0) << r.out;
  EXPECT_GT(std::stoi(f["buyer_ok"]), 0) << r.out;
  EXPECT_GT(std::stod(f["buyer_p99_ms"]), 0) << r.out;
  EXPECT_GT(std::stoi(f["probe_ok"]), 0) << r.out;
  EXPECT_GT(std::stoi(f["server_threads"]), 0) << r.out;
}

TEST_F(SlowdripSmokeTest, IdleModeHoldsReusesAndWeighsConnections) {
  Start({"--keep-alive-timeout-seconds=600"});
  const RunResult r = RunCommand({SLOWDRIP_BIN, "--mode", "idle", "--url", server_->url(),
                                  "--connections", "100", "--per-address", "10", "--hold-seconds",
                                  "0.2", "--server-pid", std::to_string(server_->pid())});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << r.error;
  auto f = ResultFields(r.out);
  ASSERT_EQ(f["mode"], "idle") << r.out;
  EXPECT_EQ(f["ready"], "100") << r.out;
  EXPECT_EQ(f["failures"], "none") << r.out;
  EXPECT_EQ(f["resend_ok"], "100") << r.out;
  EXPECT_GT(std::stoll(f["rss_after_kib"]), 0) << r.out;
}

}  // namespace
}  // namespace kv::httptest
