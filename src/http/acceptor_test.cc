// Acceptor: connection caps answered at accept with the canned 503 and a close, the
// per-client cap and its exemptions, a freed slot admitting again, and the drain (stop
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

#include "gtest/gtest.h"
#include "metrics/metrics.h"

namespace kv::http {
namespace {

// A client socket connected to 127.0.0.1:port from `source` (127.0.0.x).
int Connect(int port, const char* source = "127.0.0.1") {
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
  return fd;
}

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

struct Running {
  Registry registry;
  std::atomic<int> served{0};
  std::unique_ptr<Acceptor> acceptor;
  std::thread runner;
  int port = 0;

  Running(size_t max_conns, size_t per_client, absl::flat_hash_set<std::string> exempt = {}) {
    acceptor = std::make_unique<Acceptor>(
        &registry, [this](const AcceptedConnection& c) { EchoUntilClosed(c, &served); },
        std::move(exempt));
    auto idx = acceptor->AddListener(ListenerSpec{"t", "127.0.0.1", 0, 64, max_conns, per_client});
    EXPECT_TRUE(idx.ok()) << idx.status();
    port = acceptor->port(*idx);
    runner = std::thread([this] { acceptor->Run(); });
  }
  ~Running() {
    acceptor->BeginDrain(0);
    runner.join();
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
  EXPECT_NE(r.Metrics().find(
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

TEST(Acceptor, DrainStopsAcceptingWaitsThenCutsWhatIsLeft) {
  Registry registry;
  std::atomic<int> served{0};
  Acceptor acc(&registry, [&](const AcceptedConnection& c) { EchoUntilClosed(c, &served); }, {});
  auto idx = acc.AddListener(ListenerSpec{"t", "127.0.0.1", 0, 64, 10, 0});
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
}

}  // namespace
}  // namespace kv::http
