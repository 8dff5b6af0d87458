// The curl client against cpp-httplib servers on loopback (plain and TLS, port 0): round
// trips, timeouts, the body and header caps, refused URLs, no redirects, a closed port, and
// certificate verification with a throwaway self-signed certificate made by the openssl CLI.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "net/http_client.h"

namespace kv::net {
namespace {

// A cpp-httplib server on 127.0.0.1:<port 0> in a thread; stopped (and joined) on
// destruction. Slow handlers poll `stopping` so that the stop never waits long for them.
class LocalServer {
 public:
  explicit LocalServer(std::unique_ptr<httplib::Server> srv = std::make_unique<httplib::Server>())
      : srv_(std::move(srv)) {}
  ~LocalServer() {
    stopping = true;
    srv_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Server& srv() { return *srv_; }
  // Binds and starts serving; returns the port.
  int Start() {
    port_ = srv_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_->listen_after_bind(); });
    while (!srv_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return port_;
  }
  std::string Url(const std::string& scheme, const std::string& path) const {
    return absl::StrCat(scheme, "://127.0.0.1:", port_, path);
  }
  std::atomic<bool> stopping{false};

 private:
  std::unique_ptr<httplib::Server> srv_;
  std::thread thread_;
  int port_ = 0;
};

class CurlClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = server_.srv();
    s.Get("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Seen", req.get_header_value("X-Test"));
      res.set_content("got " + req.get_header_value("Authorization"), "text/plain");
    });
    s.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 201;
      res.set_content(req.get_header_value("Content-Type") + "|" + req.body, "application/json");
    });
    s.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 500 && !server_.stopping; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      res.set_content("late", "text/plain");
    });
    s.Get("/huge", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(3 << 20, 'x'), "text/plain");  // with Content-Length
    });
    s.Get("/huge-chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/plain", [](size_t offset, httplib::DataSink& sink) {
        if (offset >= (size_t{3} << 20)) {
          sink.done();
          return true;
        }
        const std::string chunk(64 * 1024, 'y');
        return sink.write(chunk.data(), chunk.size());
      });
    });
    s.Get("/fat-headers", [](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 10; ++i)
        res.set_header(absl::StrCat("X-Fat-", i), std::string(8000, 'h'));
      res.set_content("ok", "text/plain");
    });
    s.Get("/redirect", [this](const httplib::Request&, httplib::Response& res) {
      res.set_redirect(server_.Url("http", "/target"), 302);
      res.set_content("moved", "text/plain");
    });
    s.Get("/target", [this](const httplib::Request&, httplib::Response& res) {
      ++target_hits_;
      res.set_content("target", "text/plain");
    });
    s.Get("/peer", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.remote_port), "text/plain");  // one per connection
    });
    s.set_keep_alive_max_count(1000);  // cpp-httplib closes after 5 requests by default
    server_.Start();
  }

  std::string Url(const std::string& path) const { return server_.Url("http", path); }

  LocalServer server_;
  std::atomic<int> target_hits_{0};
  std::unique_ptr<HttpClient> client_ = MakeCurlHttpClient({});
  HttpLimits limits_;
};

TEST_F(CurlClientTest, GetRoundTripWithHeaders) {
  HttpRequest req;
  req.url = Url("/echo");
  req.headers = {{"X-Test", "hello"}, {"Authorization", "Bearer sk_test_1"}};
  auto r = client_->Do(req, limits_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "got Bearer sk_test_1");
  EXPECT_EQ(r->content_type, "text/plain");
}

TEST_F(CurlClientTest, PostRoundTrip) {
  HttpRequest req;
  req.method = "POST";
  req.url = Url("/echo");
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  req.body = "a=1&b=%20x";
  auto r = client_->Do(req, limits_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "application/x-www-form-urlencoded|a=1&b=%20x");
  EXPECT_EQ(r->content_type, "application/json");
}

TEST_F(CurlClientTest, LocalhostNameIsLoopback) {
  HttpRequest req;
  req.url = Url("/echo");
  req.url.replace(req.url.find("127.0.0.1"), 9, "localhost");
  auto r = client_->Do(req, limits_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
}

TEST_F(CurlClientTest, SlowServerIsDeadlineExceeded) {
  HttpRequest req;
  req.url = Url("/slow");
  limits_.total_timeout = absl::Milliseconds(300);
  auto r = client_->Do(req, limits_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
}

TEST_F(CurlClientTest, HugeBodyIsResourceExhausted) {
  limits_.max_response_bytes = 1 << 20;
  for (const char* path : {"/huge", "/huge-chunked"}) {
    HttpRequest req;
    req.url = Url(path);
    auto r = client_->Do(req, limits_);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
        << path << ": " << r.status();
  }
  // Exactly at the cap is fine.
  limits_.max_response_bytes = 3 << 20;
  HttpRequest req;
  req.url = Url("/huge");
  auto r = client_->Do(req, limits_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body.size(), size_t{3} << 20);
}

TEST_F(CurlClientTest, FatHeadersAreResourceExhausted) {
  HttpRequest req;
  req.url = Url("/fat-headers");
  auto r = client_->Do(req, limits_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
}

TEST_F(CurlClientTest, RedirectIsNotFollowed) {
  HttpRequest req;
  req.url = Url("/redirect");
  auto r = client_->Do(req, limits_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->body, "moved");
  EXPECT_EQ(target_hits_.load(), 0);
}

TEST_F(CurlClientTest, RefusedUrls) {
  const std::string port = Url("").substr(std::string("http://127.0.0.1:").size());
  for (const std::string& url : {
           std::string("http://example.com/"),
           "http://127.0.0.1.example.com:" + port + "/echo",  // "127.0.0.1" is a substring only
           "http://localhost.example.com:" + port + "/echo",
           "http://127.0.0.1@example.com:" + port + "/echo",  // userinfo, not the host
           std::string("http://example.com/?host=127.0.0.1"),
           "http://[::2]:" + port + "/echo",
           "http://10.0.0.1:" + port + "/echo",
           std::string("ftp://127.0.0.1/x"),
           std::string("file:///etc/passwd"),
           std::string("gopher://127.0.0.1/"),
           std::string("not a url"),
           std::string(""),
           "http://127.0.0.1:" + port + "/echo\r\nX-Injected: 1",
       }) {
    HttpRequest req;
    req.url = url;
    auto r = client_->Do(req, limits_);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << url << ": " << r.status();
  }
  // The other spellings of loopback are allowed (nothing listens on [::1] here: refused).
  for (const std::string& url :
       {"http://[::1]:" + port + "/echo", "http://127.9.8.7:" + port + "/"}) {
    HttpRequest req;
    req.url = url;
    limits_.connect_timeout = absl::Seconds(2);
    auto r = client_->Do(req, limits_);
    EXPECT_NE(r.status().code(), absl::StatusCode::kInvalidArgument) << url << ": " << r.status();
  }
  // A header that would split the request is refused, not sent.
  HttpRequest req;
  req.url = Url("/echo");
  req.headers = {{"X-Test", "a\r\nX-Injected: 1"}};
  EXPECT_EQ(client_->Do(req, limits_).status().code(), absl::StatusCode::kInvalidArgument);
  // Only GET and POST.
  req.headers.clear();
  req.method = "DELETE";
  EXPECT_EQ(client_->Do(req, limits_).status().code(), absl::StatusCode::kInvalidArgument);
  // Loopback http refused when not allowed.
  auto strict = MakeCurlHttpClient({.ca_file = "", .allow_http_loopback = false});
  req.method = "GET";
  EXPECT_EQ(strict->Do(req, limits_).status().code(), absl::StatusCode::kInvalidArgument);
}

// Keep-alive: sequential calls from one client reuse one connection (the server sees one
// client port), and concurrent callers hold at most one connection each.
TEST_F(CurlClientTest, CallsReuseTheirConnection) {
  HttpRequest req;
  req.url = Url("/peer");
  std::set<std::string> ports;
  for (int i = 0; i < 20; ++i) {
    auto r = client_->Do(req, limits_);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200);
    ports.insert(r->body);
  }
  EXPECT_EQ(ports.size(), 1u);

  // A failed transfer (the body over the cap) closes its connection: the next call opens a
  // new one, and then keeps it.
  HttpLimits small = limits_;
  small.max_response_bytes = 1;
  EXPECT_EQ(client_->Do(req, small).status().code(), absl::StatusCode::kResourceExhausted);
  std::set<std::string> after;
  for (int i = 0; i < 5; ++i) {
    auto r = client_->Do(req, limits_);
    ASSERT_TRUE(r.ok()) << r.status();
    after.insert(r->body);
  }
  EXPECT_EQ(after.size(), 1u);
  EXPECT_EQ(ports.count(*after.begin()), 0u);

  Mutex mu;
  std::set<std::string> concurrent;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 30; ++i) {
        auto r = client_->Do(req, limits_);
        ASSERT_TRUE(r.ok()) << r.status();
        MutexLock l(&mu);
        concurrent.insert(r->body);
      }
    });
  }
  for (auto& t : threads) t.join();
  // One connection per handle; at most one handle per concurrent caller (plus the idle one
  // of the calls above).
  EXPECT_LE(concurrent.size(), 4u);
}

TEST_F(CurlClientTest, ClosedPortIsUnavailable) {
  // A port that was just free: bound then closed, nothing listens on it.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  close(fd);
  HttpRequest req;
  req.url = absl::StrCat("http://127.0.0.1:", ntohs(a.sin_port), "/");
  auto r = client_->Do(req, limits_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

// TLS: self-signed certificates made now with the openssl CLI (true when it worked).
bool MakeCert(const std::string& cert, const std::string& key, const std::string& san) {
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=keyvend-test",
      " -addext subjectAltName=", san, " -keyout ", key, " -out ", cert, " >/dev/null 2>&1");
  return std::system(cmd.c_str()) == 0;
}

TEST(CurlClientTlsTest, HttpsRoundTripWithCaFile) {
  kv::testing::TempDir dir;
  const std::string cert = dir.Sub("cert.pem"), key = dir.Sub("key.pem");
  ASSERT_TRUE(MakeCert(cert, key, "DNS:localhost,IP:127.0.0.1")) << "needs the openssl CLI";
  LocalServer server(std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str()));
  ASSERT_TRUE(server.srv().is_valid());
  server.srv().Post("/v1/x", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content("tls " + req.body, "application/json");
  });
  server.Start();
  HttpRequest req;
  req.method = "POST";
  req.url = server.Url("https", "/v1/x");
  req.body = "ping";
  auto verified = MakeCurlHttpClient({.ca_file = cert, .allow_http_loopback = false});
  auto r = verified->Do(req, HttpLimits{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "tls ping");
  // The same server with the system's CAs: its certificate is not trusted, nothing sent.
  auto system_cas = MakeCurlHttpClient({});
  EXPECT_EQ(system_cas->Do(req, HttpLimits{}).status().code(), absl::StatusCode::kUnavailable);
  // Plain http to a TLS port is not a way around it either (and is loopback-only anyway).
  req.url = server.Url("http", "/v1/x");
  EXPECT_FALSE(verified->Do(req, HttpLimits{}).ok());
}

TEST(CurlClientTlsTest, TrustedCertificateForAnotherNameIsRefused) {
  kv::testing::TempDir dir;
  const std::string cert = dir.Sub("cert.pem"), key = dir.Sub("key.pem");
  ASSERT_TRUE(MakeCert(cert, key, "DNS:other.invalid")) << "needs the openssl CLI";
  LocalServer server(std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str()));
  ASSERT_TRUE(server.srv().is_valid());
  server.srv().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("should not be read", "text/plain");
  });
  server.Start();
  HttpRequest req;
  req.url = server.Url("https", "/");
  auto client = MakeCurlHttpClient({.ca_file = cert, .allow_http_loopback = false});
  EXPECT_EQ(client->Do(req, HttpLimits{}).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kv::net
