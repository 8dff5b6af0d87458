// Observability, black-box: the access log (one valid JSON line per answered request, the
// route pattern and never the path, query, body, keys or secrets; flushed by the drain;
// request ids matching X-Request-Id) and the process log's level.
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-obs-51c0d7e2a9f34b86-0123456789abcde";
constexpr char kPaymentSecret[] = "pay-obs-9e8d7c6b5a4f3e2d1c0b";

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsHex16(const std::string& s) {
  if (s.size() != 16) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

TEST(HttpObservabilityTest, AccessLogHasOneJsonLinePerRequestWithTheRouteAndNoSecrets) {
  ServerProcess server({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                        std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret});
  const std::string log_path = server.root() + "/access.log";
  std::string error;
  ASSERT_TRUE(server.Start({"--access-log=" + log_path}, &error)) << error;
  Api api(server.port(), kAdminToken);

  Reply r = api.AdminPost("/api/v1/admin/products",
                          R"({"name":"Observed","price_cents":300,"currency":"EUR"})");
  ASSERT_EQ(r.status, 201) << r;
  const std::string product = r.json()["id"].str();
  const std::vector<std::string> keys = {"OBS-KEY-7c1e-0001-ZZ", "OBS-KEY-7c1e-0002-ZZ"};
  r = api.AdminPost("/api/v1/admin/products/" + product + "/keys", keys[0] + "\n" + keys[1] + "\n",
                    "text/plain");
  ASSERT_EQ(r.status, 200) << r;
  const std::string contact = "observer-3141@example.test";
  const std::string password = "qp-obs-2718-secret";
  r = api.Post("/api/v1/orders", "{\"product_id\":" + Quote(product) +
                                     ",\"quantity\":1,\"contact\":" + Quote(contact) +
                                     ",\"query_password\":" + Quote(password) + "}");
  ASSERT_EQ(r.status, 201) << r;
  const std::string order_id = r.json()["order_id"].str();
  const std::string token = r.json()["token"].str();
  const std::string order_request_id = r.header("X-Request-Id");
  EXPECT_TRUE(IsHex16(order_request_id)) << order_request_id;
  r = SendNotify(api, kPaymentSecret,
                 NotifyBody(order_id, "pay-obs-1", r.json()["amount_cents"].num(), "EUR"));
  ASSERT_EQ(r.status, 200) << r;
  r = api.Get("/api/v1/orders/" + order_id + "?token=" + token);
  ASSERT_EQ(r.status, 200) << r;
  ASSERT_EQ(r.json()["keys"].size(), 1u) << r;
  const std::string delivered = r.json()["keys"][size_t{0}].str();
  r = api.Get("/no/such/path/" + token);
  ASSERT_EQ(r.status, 404) << r;
  r = api.Post("/api/v1/orders/lookup",
               "{\"contact\":" + Quote(contact) + ",\"query_password\":" + Quote(password) + "}");
  ASSERT_EQ(r.status, 200) << r;
  const size_t requests = 7;

  // The drain flushes the log before the process exits.
  const int status = server.Terminate();
  ASSERT_TRUE(ExitedZero(status)) << DescribeWait(status);

  const std::string text = ReadFile(log_path);
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  const std::vector<std::string> lines = Lines(text);
  ASSERT_EQ(lines.size(), requests) << text;
  const std::set<std::string> want_fields = {"ts",       "request_id", "listener",   "method",
                                             "route",    "status",     "latency_ms", "client_ip",
                                             "bytes_in", "bytes_out"};
  std::set<std::string> ids, routes;
  bool order_line_found = false;
  for (const std::string& line : lines) {
    std::string parse_error;
    const Json j = Json::Parse(line, &parse_error);
    ASSERT_TRUE(j.is_object()) << parse_error << ": " << line;
    const std::vector<std::string> k = j.keys();
    EXPECT_EQ(std::set<std::string>(k.begin(), k.end()), want_fields) << line;
    EXPECT_TRUE(IsHex16(j["request_id"].str())) << line;
    ids.insert(j["request_id"].str());
    routes.insert(j["route"].str());
    EXPECT_EQ(j["listener"].str(), "main");
    EXPECT_EQ(j["client_ip"].str(), "127.0.0.1");
    EXPECT_TRUE(j["status"].is_int()) << line;
    EXPECT_EQ(j["ts"].str().size(), std::string("2026-11-21T15:04:05.123Z").size()) << line;
    if (j["request_id"].str() == order_request_id) {
      order_line_found = true;
      EXPECT_EQ(j["route"].str(), "POST /api/v1/orders");
      EXPECT_EQ(j["status"].num(), 201);
      EXPECT_EQ(j["method"].str(), "POST");
      EXPECT_GT(j["bytes_in"].num(), 0);
      EXPECT_GT(j["bytes_out"].num(), 0);
    }
  }
  EXPECT_TRUE(order_line_found) << "the 201's X-Request-Id names its log line";
  EXPECT_EQ(ids.size(), requests) << "request ids are unique";
  EXPECT_TRUE(routes.count("GET /api/v1/orders/{order_id}")) << "the pattern, not the path";
  EXPECT_TRUE(routes.count("unmatched"));
  EXPECT_TRUE(routes.count("POST /api/v1/payments/notify"));
  // SPEC §2.6: nothing secret or identifying beyond the client address.
  for (const std::string& secret :
       {keys[0], keys[1], delivered, token, order_id, contact, password, std::string(kAdminToken),
        std::string(kPaymentSecret), product + "/keys"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << "the access log holds " << secret;
  }
  const RunResult check = RunKeyvendCheck(server.data_dir(), server.key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

TEST(HttpObservabilityTest, LogLevelFiltersTheProcessLog) {
  // No admin token: the server warns at start. At warn the warning shows and the info
  // lines (draining, stopped) do not; at the default (info) both show.
  for (const std::string level : {"warn", "info"}) {
    SCOPED_TRACE(level);
    ServerProcess server({std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret});
    std::string error;
    ASSERT_TRUE(server.Start({"--log-level=" + level}, &error)) << error;
    const int status = server.Terminate();
    ASSERT_TRUE(ExitedZero(status)) << DescribeWait(status);
    const std::string err = ReadFile(server.stderr_path());
    EXPECT_NE(err.find(" warn keyvend: KEYVEND_ADMIN_TOKEN is not set"), std::string::npos) << err;
    const bool info_shown = err.find(" info keyvend: stopped") != std::string::npos;
    EXPECT_EQ(info_shown, level == "info") << err;
  }
}

}  // namespace
}  // namespace kv::httptest
