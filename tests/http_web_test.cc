// Black-box tests of the storefront's and admin console's serving (issue 12) against the
// real `keyvend serve`: the page shells in the language Accept-Language asks for, the strict
// headers on every page and file, files from memory byte for byte (every file under
// src/web/assets and Debian's Chart.js), gzip, ETag revalidation (304 on a kept-alive
// connection), HEAD, hostile paths, and the static class's own rate limit beside orders.
// What the pages do in a browser is tests/browser (label "browser").
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/gunzip.h"
#include "kit/raw_http.h"
#include "kit/served_shop_test.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-web-5e1d2c3b4a5968778695a4b3-0123";
constexpr char kPaymentSecret[] = "pay-web-secret-7a6b5c4d3e2f1a0b";
constexpr char kCsp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string AssetsDir() { return std::string(KEYVEND_SOURCE_DIR) + "/src/web/assets"; }

// A shell as the server must render it: the source file with {{lang}} filled in.
std::string Shell(const std::string& file, const std::string& lang) {
  std::string s = ReadFile(AssetsDir() + "/" + file);
  for (size_t at; (at = s.find("{{lang}}")) != std::string::npos;) s.replace(at, 8, lang);
  return s;
}

using testkit::Gunzip;

class HttpWebTest : public ServedShopTest {
 protected:
  HttpWebTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  HttpMessage Exchange(RawConnection& c, const std::string& method, const std::string& target,
                       const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    EXPECT_TRUE(c.Send(RawRequest(method, target, headers)));
    return c.ReadResponse(std::chrono::seconds(30));  // generous: ctest -j2 beside Chromium
  }
  HttpMessage Fetch(const std::string& target,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    RawConnection c(server_->port());
    EXPECT_TRUE(c.connected());
    return Exchange(c, "GET", target, headers);
  }
  static std::string H(const HttpMessage& m, const std::string& name) {
    auto it = m.headers.find(name);
    return it == m.headers.end() ? std::string() : it->second;
  }
  static void ExpectStrictHeaders(const HttpMessage& m) {
    EXPECT_EQ(H(m, "Content-Security-Policy"), kCsp);
    EXPECT_EQ(H(m, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(H(m, "Referrer-Policy"), "no-referrer");
    EXPECT_EQ(H(m, "X-Frame-Options"), "DENY");
  }
};

TEST_F(HttpWebTest, ShellsComeInTheAskedLanguageWithStrictHeadersAndAreNeverStored) {
  ASSERT_NO_FATAL_FAILURE(Start());
  struct Case {
    const char* path;
    const char* accept_language;
    const char* file;
    const char* lang;
  };
  const Case cases[] = {
      {"/", "zh-CN,zh;q=0.9,en;q=0.8", "shop.html", "zh-CN"},
      {"/", "en-US,en;q=0.9", "shop.html", "en"},
      {"/", "", "shop.html", "en"},
      {"/p/12", "fr, zh-TW;q=0.5", "shop.html", "zh-CN"},
      {"/order/0123abcd?x=1", "de", "shop.html", "en"},
      {"/lookup", "zh", "shop.html", "zh-CN"},
      {"/admin", "en", "admin.html", "en"},
      {"/admin/orders", "zh-CN", "admin.html", "zh-CN"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(std::string(k.path) + " " + k.accept_language);
    std::vector<std::pair<std::string, std::string>> h;
    if (*k.accept_language != '\0') h.emplace_back("Accept-Language", k.accept_language);
    const HttpMessage m = Fetch(k.path, h);
    ASSERT_TRUE(m.complete) << m;
    EXPECT_EQ(m.status, 200);
    EXPECT_EQ(m.body, Shell(k.file, k.lang));
    EXPECT_NE(m.body.find(std::string("lang=\"") + k.lang + "\""), std::string::npos);
    EXPECT_EQ(H(m, "Content-Type"), "text/html; charset=utf-8");
    EXPECT_EQ(H(m, "Cache-Control"), "no-store");
    EXPECT_EQ(H(m, "Vary"), "Accept-Encoding, Accept-Language");
    ExpectStrictHeaders(m);
  }
}

TEST_F(HttpWebTest, EveryFileIsServedByteForByteWithItsTypeAndStrictHeaders) {
  ASSERT_NO_FATAL_FAILURE(Start());
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(AssetsDir())) {
    if (!e.is_regular_file()) continue;
    const std::string rel = std::filesystem::relative(e.path(), AssetsDir()).string();
    if (rel == "shop.html" || rel == "admin.html") continue;  // pages, not files
    SCOPED_TRACE(rel);
    const HttpMessage m = Fetch("/assets/" + rel);
    ASSERT_TRUE(m.complete) << m;
    EXPECT_EQ(m.status, 200);
    EXPECT_EQ(m.body, ReadFile(e.path().string()));
    EXPECT_FALSE(H(m, "Content-Type").empty());
    EXPECT_EQ(H(m, "Cache-Control"), "no-cache");
    ExpectStrictHeaders(m);
    ++files;
  }
  const HttpMessage chart = Fetch("/assets/vendor/chart.min.js");
  ASSERT_TRUE(chart.complete) << chart;
  EXPECT_EQ(chart.status, 200);
  EXPECT_EQ(chart.body, ReadFile("/usr/share/javascript/chart.js/chart.min.js"));
  EXPECT_EQ(H(chart, "Content-Type"), "text/javascript; charset=utf-8");
  RecordProperty("files", files);
}

TEST_F(HttpWebTest, GzipWhenAcceptedAndRevalidationByEtagOnOneConnection) {
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string chart = ReadFile("/usr/share/javascript/chart.js/chart.min.js");
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  const HttpMessage gz = Exchange(c, "GET", "/assets/vendor/chart.min.js",
                                  {{"Accept-Encoding", "br;q=1, gzip;q=0.8"}});
  ASSERT_TRUE(gz.complete) << gz;
  EXPECT_EQ(H(gz, "Content-Encoding"), "gzip");
  EXPECT_LT(gz.body.size(), chart.size() / 2);
  EXPECT_EQ(Gunzip(gz.body), chart);
  const std::string etag = H(gz, "ETag");
  ASSERT_EQ(etag.rfind("W/\"", 0), 0u) << etag;
  // gzip;q=0 is a refusal of gzip.
  const HttpMessage plain =
      Exchange(c, "GET", "/assets/vendor/chart.min.js", {{"Accept-Encoding", "gzip;q=0"}});
  ASSERT_TRUE(plain.complete) << plain;
  EXPECT_EQ(H(plain, "Content-Encoding"), "");
  EXPECT_EQ(plain.body, chart);
  EXPECT_EQ(H(plain, "ETag"), etag);
  // The tag the browser holds: 304, no body, and the connection goes on.
  const HttpMessage same =
      Exchange(c, "GET", "/assets/vendor/chart.min.js", {{"If-None-Match", "W/\"0000\", " + etag}});
  ASSERT_TRUE(same.complete) << same;
  EXPECT_EQ(same.status, 304);
  EXPECT_TRUE(same.body.empty());
  EXPECT_EQ(H(same, "ETag"), etag);
  EXPECT_EQ(H(same, "Content-Length"), "");
  const HttpMessage other =
      Exchange(c, "GET", "/assets/vendor/chart.min.js", {{"If-None-Match", "W/\"0000\""}});
  ASSERT_TRUE(other.complete) << other;
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, chart);
  const HttpMessage after = Exchange(c, "GET", "/assets/vendor/chart.min.js", {});
  ASSERT_TRUE(after.complete) << after;  // the 304 left nothing behind on the wire
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, chart);
  // HEAD: the headers of the GET and no body (read to the close this time: the kit's
  // reader would wait for Content-Length bytes that never come).
  RawConnection h(server_->port());
  ASSERT_TRUE(h.connected());
  ASSERT_TRUE(h.Send(RawRequest("HEAD", "/", {{"Connection", "close"}})));
  std::string head;
  ASSERT_TRUE(h.ReadToEof(std::chrono::seconds(10), &head));
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_NE(
      head.find("Content-Length: " + std::to_string(Shell("shop.html", "en").size()) + "\r\n"),
      std::string::npos)
      << head;
  EXPECT_EQ(head.size(), head.find("\r\n\r\n") + 4) << head;  // nothing after the head
}

TEST_F(HttpWebTest, UnknownOrHostilePathsAreNotFoundAndNothingElseIsServed) {
  ASSERT_NO_FATAL_FAILURE(Start());
  for (const char* path :
       {"/assets/nope.js", "/assets/../CMakeLists.txt", "/assets/%2e%2e/CMakeLists.txt",
        "/assets/..%2fCMakeLists.txt", "/assets/shop.html", "/assets/admin.html",
        "/assets/i18n/../../../../etc/passwd", "/assets/a/b/c", "/assets/", "/shop.js",
        "/assets/vendor/chart.min.js%00.txt"}) {
    SCOPED_TRACE(path);
    const HttpMessage m = Fetch(path);
    ASSERT_TRUE(m.complete) << m;
    EXPECT_TRUE(m.status == 404 || m.status == 400) << m;
    EXPECT_EQ(m.body.find("Chart.js"), std::string::npos);
  }
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(RawRequest("POST", "/assets/vendor/chart.min.js", {}, "x")));
  const HttpMessage post = c.ReadResponse(std::chrono::seconds(10));
  ASSERT_TRUE(post.complete) << post;
  EXPECT_NE(post.status, 200);
  EXPECT_GE(post.status, 400);
}

TEST_F(HttpWebTest, PagesHaveARateLimitOfTheirOwnThatLeavesOrdersAlone) {
  ASSERT_NO_FATAL_FAILURE(Start(
      {"--rate-limit-static-per-client-per-second=1", "--rate-limit-static-per-client-burst=2"}));
  int ok = 0, limited = 0;
  std::string retry_after;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    const HttpMessage m = Fetch(i % 2 == 0 ? "/" : "/assets/vendor/chart.min.js");
    ASSERT_TRUE(m.complete) << m;
    if (m.status == 200) ++ok;
    if (m.status == 429) {
      ++limited;
      retry_after = H(m, "Retry-After");
    }
  }
  // A burst of 2, plus the tokens (1/s) the six fetches' own time refilled — a loaded
  // machine makes that more than the usual few milliseconds.
  const int refilled =
      1 + static_cast<int>(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  EXPECT_LE(ok, 2 + refilled);
  EXPECT_EQ(ok + limited, 6);
  EXPECT_GE(limited, 1);
  EXPECT_FALSE(retry_after.empty());
  // Another class's budget is untouched: the catalogue and an order go through.
  const Reply products = api_->Get("/api/v1/products");
  EXPECT_EQ(products.status, 200) << products;
  const Reply created = api_->AdminPost("/api/v1/admin/products",
                                        R"({"name":"web","price_cents":100,"currency":"EUR"})");
  ASSERT_EQ(created.status, 201) << created;
  const std::string pid = created.json()["id"].str();
  const Reply order =
      api_->Post("/api/v1/orders",
                 R"({"product_id":")" + pid + R"(","quantity":1,"contact":"web@example.com"})");
  EXPECT_TRUE(order.status == 201 || order.status == 409) << order;  // no keys: out of stock
  EXPECT_NE(order.status, 429);
  EXPECT_EQ(order.header("Cache-Control"), "no-store");  // a 201 carries the order's token
  const Reply missing = api_->Get("/api/v1/orders/00000000000000000000000000000000?token=x");
  EXPECT_EQ(missing.status, 404) << missing;
  EXPECT_EQ(missing.header("Cache-Control"), "no-store");  // errors too
}

}  // namespace
}  // namespace kv::httptest
