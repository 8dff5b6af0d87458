// keyvend-preload end to end with the real server: a product made over the admin API,
// the shop stopped, keys preloaded into its data dir, the shop started again — it shows the
// stock, sells exactly the preloaded keys (each once) and `keyvend check` passes. While
// the shop runs, the preload is refused and points at the admin import endpoint.
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"

#ifndef PRELOAD_BIN
#error "PRELOAD_BIN must name the keyvend-preload binary"
#endif

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-preload-serve-4e1f-0123456789abcdef0";
constexpr char kPaymentSecret[] = "pay-preload-serve-8a2c";

TEST(PreloadServeTest, PreloadedKeysAreSoldOnceEachByTheRestartedShop) {
  ServerProcess server({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                        std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret});
  std::string error;
  ASSERT_TRUE(server.Start({}, &error)) << error;
  std::string product;
  {
    Api api(server.port(), kAdminToken);
    Reply r = api.AdminPost("/api/v1/admin/products",
                            R"({"name":"Preloaded","price_cents":500,"currency":"EUR"})");
    ASSERT_EQ(r.status, 201) << r;
    product = r.json()["id"].str();
  }
  const int kKeys = 20;
  std::set<std::string> keys;
  const std::string file = server.root() + "/codes.txt";
  {
    std::ofstream out(file);
    for (int i = 0; i < kKeys; ++i) {
      const std::string k = "PRELOAD-SERVE-" + std::to_string(1000 + i) + "-QX";
      keys.insert(k);
      out << k << "\n";
    }
  }
  const std::vector<std::string> preload = {
      PRELOAD_BIN,       "--data-dir", server.data_dir(), "--master-key-file",
      server.key_file(), "--product",  product,           file};
  // A running shop locks its data dir: refused, nothing changed, the endpoint named.
  RunResult busy = RunCommand(preload);
  EXPECT_EQ(busy.exit_code, 1) << busy.out;
  EXPECT_NE(busy.out.find("/api/v1/admin/products/"), std::string::npos) << busy.out;

  ASSERT_TRUE(ExitedZero(server.Terminate()));
  RunResult loaded = RunCommand(preload);
  ASSERT_EQ(loaded.exit_code, 0) << loaded.out;
  for (const std::string& k : keys) {
    EXPECT_EQ(loaded.out.find(k), std::string::npos) << "a key in the preload's output";
  }

  ASSERT_TRUE(server.Start({}, &error)) << error;
  Api api(server.port(), kAdminToken);
  Reply p = api.Get("/api/v1/products/" + product);
  ASSERT_EQ(p.status, 200) << p;
  EXPECT_EQ(p.json()["stock"].num(), kKeys);
  std::set<std::string> sold;
  for (int i = 0; i < kKeys; ++i) {
    Reply o = api.Post("/api/v1/orders", "{\"product_id\":" + Quote(product) +
                                             ",\"quantity\":1,\"contact\":\"b" + std::to_string(i) +
                                             "@example.test\"}");
    ASSERT_EQ(o.status, 201) << o;
    const std::string id = o.json()["order_id"].str();
    const std::string token = o.json()["token"].str();
    Reply n =
        SendNotify(api, kPaymentSecret, NotifyBody(id, "pay-pre-" + std::to_string(i), 500, "EUR"));
    ASSERT_EQ(n.status, 200) << n;
    Reply g = api.Get("/api/v1/orders/" + id + "?token=" + token);
    ASSERT_EQ(g.status, 200) << g;
    ASSERT_EQ(g.json()["keys"].size(), 1u) << g;
    const std::string key = g.json()["keys"][size_t{0}].str();
    EXPECT_TRUE(keys.count(key)) << "a key that was not preloaded was sold";
    EXPECT_TRUE(sold.insert(key).second) << "a key sold twice";
  }
  EXPECT_EQ(sold, keys);
  Reply over = api.Post("/api/v1/orders", "{\"product_id\":" + Quote(product) +
                                              ",\"quantity\":1,\"contact\":\"late@example.test\"}");
  EXPECT_TRUE(IsError(over, 409, "out_of_stock")) << over;
  ASSERT_TRUE(ExitedZero(server.Terminate()));
  const RunResult check = RunKeyvendCheck(server.data_dir(), server.key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

}  // namespace
}  // namespace kv::httptest
