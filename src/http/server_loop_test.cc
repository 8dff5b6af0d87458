// The event-driven edge in one process (issue 11), so that ThreadSanitizer sees the I/O
// loops, the workers and the acceptor together: keep-alive and pipelined requests from many
// threads, bodies that arrive in pieces (Content-Length and chunked, with
// `Expect: 100-continue`), a slow drip cut off with 408 while others are served, and a
// drain with idle and busy connections. Label "concurrency": TSan runs it.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/random.h"
#include "gtest/gtest.h"
#include "http/server.h"
#include "kit/raw_http.h"
#include "kit/shop_fixture.h"

namespace kv::http {
namespace {

using httptest::HttpMessage;
using httptest::RawConnection;
using httptest::RawRequest;
using std::chrono::milliseconds;

class ServerLoopTest : public kv::testing::ShopTest {
 protected:
  // A server over the fixture's shop on 127.0.0.1:0, every rate limit and cap off, two I/O
  // loops; `tweak` adjusts the config first.
  void Start(const std::function<void(Config&)>& tweak = nullptr) {
    Config c;
    c.listen = "127.0.0.1:0";
    c.payment_sandbox = true;
    c.io_threads = 2;
    c.worker_threads_max = 8;
    c.max_connections_per_client = 0;
    c.waiting_connections_per_client = 0;
    for (int64_t* r : {&c.rate_limit_order_per_second, &c.rate_limit_order_per_client_per_second,
                       &c.rate_limit_read_per_second, &c.rate_limit_read_per_client_per_second,
                       &c.rate_limit_page_per_second, &c.rate_limit_page_per_client_per_second,
                       &c.rate_limit_admin_per_second, &c.rate_limit_admin_per_client_per_second}) {
      *r = 0;
    }
    c.inflight_order_max = c.inflight_read_max = c.inflight_admin_max = c.inflight_page_max = 0;
    if (tweak) tweak(c);
    ServerOptions o;
    o.config = c;
    o.shop = shop_.get();
    o.clock = RealClock::Get();
    o.random = SecureRandom::Get();
    auto s = Server::Bind(std::move(o));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    runner_ = std::thread([this] { ran_ok_ = server_->Run(); });
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Stop();
    if (runner_.joinable()) runner_.join();
    server_.reset();
  }
  int port() const { return server_->port(); }
  static std::string OrderBody(uint64_t pid, const std::string& contact) {
    return absl::StrCat(R"({"product_id":")", pid, R"(","quantity":1,"contact":")", contact,
                        R"("})");
  }

  std::unique_ptr<Server> server_;
  std::thread runner_;
  std::atomic<bool> ran_ok_{false};
};

TEST_F(ServerLoopTest, ManyThreadsKeepAliveAndPipelineOrdersAndReads) {
  const uint64_t pid = MakeProduct();
  constexpr int kThreads = 8, kOrders = 10;
  Import(pid, kThreads * kOrders);
  ASSERT_NO_FATAL_FAILURE(Start());
  std::atomic<int> created{0}, healthy{0}, bad{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      RawConnection c(port());
      if (!c.connected()) {
        ++bad;
        return;
      }
      for (int i = 0; i < kOrders; ++i) {
        // An order and a probe in one write: two answers, in order, on one connection.
        const std::string two =
            RawRequest("POST", "/api/v1/orders", {{"Content-Type", "application/json"}},
                       OrderBody(pid, absl::StrCat("b", t, "-", i, "@example.com"))) +
            RawRequest("GET", "/healthz");
        if (!c.Send(two)) {
          ++bad;
          return;
        }
        const HttpMessage a = c.ReadResponse(milliseconds(10'000));
        const HttpMessage b = c.ReadResponse(milliseconds(10'000));
        (a.complete && a.status == 201 ? created : bad)++;
        (b.complete && b.status == 200 ? healthy : bad)++;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(created.load(), kThreads * kOrders);
  EXPECT_EQ(healthy.load(), kThreads * kOrders);
  EXPECT_EQ(shop_->Stock(pid).available, 0);
}

TEST_F(ServerLoopTest, SoldOutAndInvalidOrdersAreAnsweredOnTheLoopAsCreateOrderWould) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  ASSERT_NO_FATAL_FAILURE(Start());
  RawConnection c(port());
  const auto post = [&](const std::string& body,
                        std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Content-Type", "application/json");
    EXPECT_TRUE(c.Send(RawRequest("POST", "/api/v1/orders", headers, body)));
    return c.ReadResponse(milliseconds(10'000));
  };
  // The last key, with an Idempotency-Key.
  const HttpMessage first = post(OrderBody(pid, "last@example.com"), {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(first.status, 201) << first;
  // Sold out now: the loop's answer is CreateOrder's, word for word.
  const HttpMessage sold = post(OrderBody(pid, "late@example.com"));
  ASSERT_EQ(sold.status, 409) << sold;
  auto direct = shop_->CreateOrder(OrderRequest(pid, 1, "late@example.com", "", "127.0.0.1"));
  ASSERT_TRUE(direct.refused());
  EXPECT_EQ(direct.refusal(), Refusal::kOutOfStock);
  EXPECT_NE(sold.body.find(direct.message()), std::string::npos) << sold;
  // A refusal that comes before the stock in CreateOrder's order still comes first.
  const HttpMessage too_many =
      post(absl::StrCat(R"({"product_id":")", pid, R"(","quantity":0,"contact":"x@example.com"})"));
  EXPECT_EQ(too_many.status, 400) << too_many;
  EXPECT_NE(too_many.body.find("invalid_quantity"), std::string::npos) << too_many;
  // The replay of the first request is not "sold out": it answers the same order again.
  const HttpMessage replay = post(OrderBody(pid, "last@example.com"), {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(replay.status, 201) << replay;
  EXPECT_EQ(replay.body, first.body);
  EXPECT_EQ(shop_->Stock(pid).held, 1);
}

TEST_F(ServerLoopTest, BodiesArrivingInPiecesAreReadByTheLoop) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  ASSERT_NO_FATAL_FAILURE(Start());
  const std::string body = OrderBody(pid, "pieces@example.com");
  // Content-Length, the body dripped a few bytes at a time.
  {
    RawConnection c(port());
    const std::string head = "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    ASSERT_TRUE(c.Send(head));
    c.SendSlowly(body, milliseconds(2));
    const HttpMessage m = c.ReadResponse(milliseconds(10'000));
    ASSERT_TRUE(m.complete) << m;
    EXPECT_EQ(m.status, 201) << m;
  }
  // Chunked, with Expect: 100-continue: the loop answers 100 before the body is sent.
  {
    RawConnection c(port());
    ASSERT_TRUE(
        c.Send("POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               "Expect: 100-continue\r\n\r\n"));
    const HttpMessage cont = c.ReadResponse(milliseconds(10'000));
    EXPECT_EQ(cont.status, 100) << cont;
    const std::string half = body.substr(0, body.size() / 2);
    const std::string rest = body.substr(body.size() / 2);
    std::string chunked = absl::StrCat(absl::Hex(half.size()), "\r\n", half, "\r\n",
                                       absl::Hex(rest.size()), "\r\n", rest, "\r\n0\r\n\r\n");
    c.SendSlowly(chunked, milliseconds(1));
    const HttpMessage m = c.ReadResponse(milliseconds(10'000));
    ASSERT_TRUE(m.complete) << m;
    EXPECT_EQ(m.status, 201) << m;
    EXPECT_EQ(m.header("Connection"), "") << "the connection stays open";
    // And the next request on it is served.
    ASSERT_TRUE(c.Send(RawRequest("GET", "/healthz")));
    EXPECT_EQ(c.ReadResponse(milliseconds(10'000)).status, 200);
  }
}

TEST_F(ServerLoopTest, ASlowDripGets408WhileOthersAreServed) {
  ASSERT_NO_FATAL_FAILURE(Start([](Config& c) { c.header_timeout_ms = 600; }));
  RawConnection drip(port());
  ASSERT_TRUE(drip.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
  std::atomic<bool> stop{false};
  std::thread dripper([&] {
    while (!stop) {
      if (!drip.Send("X")) break;
      std::this_thread::sleep_for(milliseconds(50));
    }
  });
  int served = 0;
  for (int i = 0; i < 10; ++i) {
    RawConnection c(port());
    ASSERT_TRUE(c.Send(RawRequest("GET", "/healthz")));
    served += c.ReadResponse(milliseconds(10'000)).status == 200 ? 1 : 0;
  }
  const HttpMessage cut = drip.ReadResponse(milliseconds(10'000));
  stop = true;
  dripper.join();
  EXPECT_EQ(served, 10);
  ASSERT_TRUE(cut.complete) << cut;
  EXPECT_EQ(cut.status, 408) << cut;
}

TEST_F(ServerLoopTest, DrainClosesIdleConnectionsFinishesTheBusyOneAndRunReturns) {
  ASSERT_NO_FATAL_FAILURE(Start([](Config& c) { c.keep_alive_timeout_seconds = 600; }));
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(std::make_unique<RawConnection>(port()));
    ASSERT_TRUE(idle.back()->Send(RawRequest("GET", "/healthz")));
    ASSERT_EQ(idle.back()->ReadResponse(milliseconds(10'000)).status, 200);
  }
  // A request half sent: it is still being read when the drain starts.
  RawConnection busy(port());
  ASSERT_TRUE(busy.Send("GET /healthz HTTP/1.1\r\n"));
  std::thread stopper([this] { server_->Stop(); });
  for (auto& c : idle) EXPECT_TRUE(c->ReadToEof(milliseconds(10'000)));
  // The half-sent request is finished and answered, with the connection's end.
  ASSERT_TRUE(busy.Send("Host: x\r\n\r\n"));
  const HttpMessage m = busy.ReadResponse(milliseconds(10'000));
  EXPECT_TRUE(m.status == 200 || m.eof) << m;
  stopper.join();
  runner_.join();
  EXPECT_TRUE(ran_ok_.load());
}

}  // namespace
}  // namespace kv::http
