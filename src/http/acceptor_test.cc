// Acceptor: connection caps answered with the canned 503 and a close, the per-client cap
// and its exemptions, a freed slot admitting again, silent connections waiting without a
// slot (their own caps, eviction, deadline), the probe/notify reserve, and the drain (stop
// accepting, wait, then cut what is left).
#include "http/acceptor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "metrics/metrics.h"

namespace kv::http {
namespace {

// A client socket connected to 127.0.0.1:port from `source` (127.0.0.x) that has begun a
// request (sent `first`; "" = stays silent). Admission to a slot happens once a connection
// has sent something: a silent one waits without a slot.
int Connect(int port, const char* source = "127.0.0.1", const std::string& first = "G") {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  inet_pton(AF_INET, source, &src.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    close(fd);
    return -1;
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    close(fd);
    return -1;
  }
  if (!first.empty()) (void)!send(fd, first.data(), first.size(), MSG_NOSIGNAL);
  return fd;
}

int Silent(int port, const char* source = "127.0.0.1") { return Connect(port, source, ""); }

// Everything the peer sends until it closes (or 5 s pass).
std::string ReadToEof(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return out + "<timeout>";
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// One byte from the peer, or '\0' after 5 s.
char ReadByte(int fd) {
  pollfd p{fd, POLLIN, 0};
  char c = 0;
  if (poll(&p, 1, 5000) <= 0 || recv(fd, &c, 1, 0) != 1) return 0;
  return c;
}

// True when the peer closed without sending anything (within 5 s).
bool ClosedWithoutAnswer(int fd) { return ReadToEof(fd).empty(); }

// Nothing arrives within 100 ms and the connection is still open.
bool StillWaiting(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 100) == 0;
}

// A serve function that says "A" (admitted), then echoes until the client closes or the
// socket is shut down; it never looks at the drain fd (it plays a busy request).
void EchoUntilClosed(const AcceptedConnection& c, std::atomic<int>* served) {
  ++*served;
  (void)!send(c.fd, "A", 1, MSG_NOSIGNAL);
  char buf[256];
  while (true) {
    pollfd p{c.fd, POLLIN, 0};
    if (poll(&p, 1, 10'000) <= 0) return;
    const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n <= 0) return;
  }
}

// A listener on 127.0.0.1:0 with these caps (the rest at their defaults).
ListenerSpec Spec(size_t max_connections, size_t per_client) {
  ListenerSpec spec;
  spec.name = "t";
  spec.host = "127.0.0.1";
  spec.backlog = 64;
  spec.max_connections = max_connections;
  spec.max_connections_per_client = per_client;
  return spec;
}

struct Running {
  Registry registry;
  std::atomic<int> served{0};
  std::unique_ptr<Acceptor> acceptor;
  std::thread runner;
  int port = 0;
  // The serve function must not block the acceptor: each admitted connection gets a thread
  // of the test's own (the server hands it to an I/O loop instead), which gives it back.
  Mutex mu;
  std::vector<std::thread> servers ABSL_GUARDED_BY(mu);

  Running(size_t max_conns, size_t per_client, absl::flat_hash_set<std::string> exempt = {})
      : Running(Spec(max_conns, per_client), std::move(exempt)) {}
  explicit Running(const ListenerSpec& spec, absl::flat_hash_set<std::string> exempt = {}) {
    acceptor = std::make_unique<Acceptor>(
        &registry,
        [this](const AcceptedConnection& c) {
          MutexLock l(&mu);
          servers.emplace_back([this, c] {
            EchoUntilClosed(c, &served);
            acceptor->Release(c);
          });
        },
        std::move(exempt));
    auto idx = acceptor->AddListener(spec);
    EXPECT_TRUE(idx.ok()) << idx.status();
    port = acceptor->port(*idx);
    runner = std::thread([this] { acceptor->Run(); });
  }
  ~Running() {
    acceptor->BeginDrain(0);
    runner.join();
    MutexLock l(&mu);
    for (auto& t : servers) t.join();
  }
  std::string Metrics() const { return registry.Render(); }
};

bool Refused503(int fd) {
  const std::string got = ReadToEof(fd);
  return got.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0 &&
         got.find("Retry-After: 1\r\n") != std::string::npos &&
         got.find("Connection: close\r\n") != std::string::npos &&
         got.find("\"code\":\"overloaded\"") != std::string::npos;
}

TEST(Acceptor, OverTheCapAConnectionGetsA503AndIsClosedAndAFreedSlotAdmitsAgain) {
  Running r(/*max_conns=*/2, /*per_client=*/0);
  const int a = Connect(r.port), b = Connect(r.port);
  ASSERT_EQ(ReadByte(a), 'A');
  ASSERT_EQ(ReadByte(b), 'A');
  const int c = Connect(r.port);
  ASSERT_GE(c, 0);
  EXPECT_TRUE(Refused503(c));
  close(c);
  EXPECT_NE(
      r.Metrics().find(
          "keyvend_http_connections_rejected_total{listener=\"t\",reason=\"max_connections\"} 1"),
      std::string::npos)
      << r.Metrics();
  close(a);
  // The slot is freed when a's serve function has returned: retry until admitted.
  bool admitted = false;
  for (int i = 0; i < 200 && !admitted; ++i) {
    const int d = Connect(r.port);
    char first = ReadByte(d);
    admitted = first == 'A';
    close(d);
    if (!admitted) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(admitted);
  close(b);
}

TEST(Acceptor, PerClientCapCountsPeerAddressesAndExemptsTrustedProxies) {
  Running r(/*max_conns=*/100, /*per_client=*/1, {"127.0.0.3"});
  const int a = Connect(r.port, "127.0.0.1");
  ASSERT_EQ(ReadByte(a), 'A');
  const int a2 = Connect(r.port, "127.0.0.1");
  EXPECT_TRUE(Refused503(a2));
  const int b = Connect(r.port, "127.0.0.2");
  EXPECT_EQ(ReadByte(b), 'A') << "another address has its own allowance";
  int proxies[3];
  for (int& p : proxies) {
    p = Connect(r.port, "127.0.0.3");
    EXPECT_EQ(ReadByte(p), 'A') << "a trusted proxy carries many clients";
  }
  EXPECT_NE(r.Metrics().find("reason=\"max_connections_per_client\"} 1"), std::string::npos);
  for (int fd : {a, a2, b, proxies[0], proxies[1], proxies[2]}) close(fd);
}

TEST(Acceptor, SilentConnectionsWaitWithoutASlotAndAreClosedAtTheirDeadline) {
  ListenerSpec spec = Spec(/*max_connections=*/1, 0);
  spec.waiting_timeout_ms = 300;
  Running r(spec);
  std::vector<int> silent;
  for (int i = 0; i < 10; ++i) silent.push_back(Silent(r.port));
  // The one slot is free for a client that speaks.
  const int speaker = Connect(r.port);
  EXPECT_EQ(ReadByte(speaker), 'A');
  EXPECT_EQ(r.served.load(), 1);
  // Each silent connection is closed, unanswered, at its deadline.
  for (int fd : silent) {
    EXPECT_TRUE(ClosedWithoutAnswer(fd));
    close(fd);
  }
  EXPECT_EQ(r.acceptor->waiting_connections(), 0u);
  EXPECT_NE(r.Metrics().find("keyvend_http_connections_dropped_total{listener=\"t\",reason="
                             "\"silent_timeout\"} 10"),
            std::string::npos)
      << r.Metrics();
  close(speaker);
}

TEST(Acceptor, APerClientCapOnWaitingConnectionsAnswers503) {
  ListenerSpec spec = Spec(10, 0);
  spec.waiting_per_client_max = 2;
  Running r(spec, {"127.0.0.3"});
  const int a = Silent(r.port, "127.0.0.1"), b = Silent(r.port, "127.0.0.1");
  const int c = Silent(r.port, "127.0.0.1");
  EXPECT_TRUE(Refused503(c));
  EXPECT_TRUE(StillWaiting(a));
  EXPECT_TRUE(StillWaiting(b));
  const int other = Silent(r.port, "127.0.0.2");
  EXPECT_TRUE(StillWaiting(other)) << "another address has its own allowance";
  int proxies[3];
  for (int& p : proxies) {
    p = Silent(r.port, "127.0.0.3");
    EXPECT_TRUE(StillWaiting(p)) << "exempt addresses are not capped";
  }
  // A waiting connection that speaks is served.
  (void)!send(a, "G", 1, MSG_NOSIGNAL);
  EXPECT_EQ(ReadByte(a), 'A');
  EXPECT_NE(r.Metrics().find("reason=\"waiting_per_client\"} 1"), std::string::npos) << r.Metrics();
  for (int fd : {a, b, c, other, proxies[0], proxies[1], proxies[2]}) close(fd);
}

// A connection that waited and then spoke gives its waiting place back: a client that
// always connects first and sends later is never refused for it.
TEST(Acceptor, AConnectionThatSpeaksGivesItsWaitingPlaceBack) {
  ListenerSpec spec = Spec(10, 0);
  spec.waiting_per_client_max = 2;
  Running r(spec);
  for (int i = 0; i < 10; ++i) {
    const int fd = Silent(r.port);
    ASSERT_TRUE(StillWaiting(fd)) << i;
    (void)!send(fd, "G", 1, MSG_NOSIGNAL);
    ASSERT_EQ(ReadByte(fd), 'A') << "round " << i;
    close(fd);
  }
  EXPECT_EQ(r.served.load(), 10);
  EXPECT_NE(r.Metrics().find("reason=\"waiting_per_client\"} 0"), std::string::npos) << r.Metrics();
}

TEST(Acceptor, AFullWaitingSetClosesTheConnectionWaitingLongest) {
  ListenerSpec spec = Spec(10, 0);
  spec.waiting_max = 3;
  Running r(spec);
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    fds.push_back(Silent(r.port));
    // Accepted in this order (the acceptor takes them as they come).
    ASSERT_TRUE(StillWaiting(fds.back()));
  }
  const int newest = Silent(r.port);
  EXPECT_TRUE(ClosedWithoutAnswer(fds[0])) << "the oldest makes room";
  EXPECT_TRUE(StillWaiting(fds[1]));
  EXPECT_TRUE(StillWaiting(fds[2]));
  (void)!send(newest, "G", 1, MSG_NOSIGNAL);
  EXPECT_EQ(ReadByte(newest), 'A');
  EXPECT_NE(r.Metrics().find("reason=\"evicted\"} 1"), std::string::npos) << r.Metrics();
  for (int fd : fds) close(fd);
  close(newest);
}

TEST(Acceptor, TheReserveAdmitsTheGatewaysNotifiesToo) {
  ListenerSpec spec = Spec(/*max_connections=*/1, 0);
  spec.reserve = 3;
  Running r(spec);
  const int buyer = Connect(r.port);
  ASSERT_EQ(ReadByte(buyer), 'A');
  const int epay_get =
      Connect(r.port, "127.0.0.1", "GET /api/v1/payments/epay/notify?pid=1 HTTP/1.1\r\n");
  EXPECT_EQ(ReadByte(epay_get), 'A');
  const int epay_post =
      Connect(r.port, "127.0.0.1", "POST /api/v1/payments/epay/notify HTTP/1.1\r\n");
  EXPECT_EQ(ReadByte(epay_post), 'A');
  const int stripe =
      Connect(r.port, "127.0.0.1", "POST /api/v1/payments/stripe/notify HTTP/1.1\r\n");
  EXPECT_EQ(ReadByte(stripe), 'A');
  // A lookalike path is not a notify.
  const int other = Connect(r.port, "127.0.0.1", "GET /api/v1/payments/epay/notifyx HTTP/1.1\r\n");
  EXPECT_TRUE(Refused503(other));
  for (int fd : {buyer, epay_get, epay_post, stripe, other}) close(fd);
}

TEST(Acceptor, TheReserveAdmitsOneProbeOrNotifyAboveTheCap) {
  ListenerSpec spec = Spec(/*max_connections=*/1, 0);
  spec.reserve = 2;
  Running r(spec);
  const int buyer = Connect(r.port);
  ASSERT_EQ(ReadByte(buyer), 'A');
  // Full: another buyer request is refused; a probe and a notify use the reserve.
  const int buyer2 = Connect(r.port, "127.0.0.1", "POST /api/v1/orders HTTP/1.1\r\n");
  EXPECT_TRUE(Refused503(buyer2));
  const int probe = Connect(r.port, "127.0.0.1", "GET /healthz HTTP/1.1\r\n");
  EXPECT_EQ(ReadByte(probe), 'A');
  const int notify = Connect(r.port, "127.0.0.1", "POST /api/v1/payments/notify HTTP/1.1\r\n");
  EXPECT_EQ(ReadByte(notify), 'A');
  // The reserve is full too.
  const int probe2 = Connect(r.port, "127.0.0.1", "GET /readyz HTTP/1.1\r\n");
  EXPECT_TRUE(Refused503(probe2));
  EXPECT_NE(r.Metrics().find("keyvend_http_connections_reserve_total{listener=\"t\"} 2"),
            std::string::npos)
      << r.Metrics();
  for (int fd : {buyer, buyer2, probe, notify, probe2}) close(fd);
}

TEST(Acceptor, DrainStopsAcceptingWaitsThenCutsWhatIsLeft) {
  Registry registry;
  std::atomic<int> served{0};
  std::vector<std::thread> servers;  // only the acceptor thread adds to it
  Acceptor* accp = nullptr;
  Acceptor acc(&registry,
               [&](const AcceptedConnection& c) {
                 servers.emplace_back([&, c] {
                   EchoUntilClosed(c, &served);
                   accp->Release(c);
                 });
               },
               {});
  accp = &acc;
  auto idx = acc.AddListener(Spec(10, 0));
  ASSERT_TRUE(idx.ok());
  const int port = acc.port(*idx);
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    acc.Run();
    returned = true;
  });
  const int busy = Connect(port);
  ASSERT_EQ(ReadByte(busy), 'A');
  ASSERT_EQ(acc.open_connections(), 1u);
  acc.BeginDrain(/*drain_timeout_ms=*/300);
  // The drain fd is readable for idle connections to notice.
  pollfd p{acc.drain_fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1);
  // New connections are refused once the listener is closed.
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    const int fd = Connect(port);
    refused = fd < 0;
    if (fd >= 0) close(fd);
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(refused);
  // The busy connection never ends by itself: after the deadline it is shut down, which
  // its serve function sees as EOF, and Run returns.
  runner.join();
  EXPECT_TRUE(returned);
  EXPECT_EQ(acc.open_connections(), 0u);
  EXPECT_EQ(ReadToEof(busy), "") << "the client sees the connection end";
  close(busy);
  for (auto& t : servers) t.join();
}

}  // namespace
}  // namespace kv::http
