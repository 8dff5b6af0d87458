// libFuzzer target for one whole HTTP exchange through the real connection layer: a
// kv::http::Server runs in this process (started once, in LLVMFuzzerInitialize, on a temp
// data dir with a product and keys), and every input is written as raw bytes to a fresh
// loopback TCP connection to its port, which is then half-closed; the answer is read to EOF.
//
// It goes through the bound socket only, never through the server's internals, so it keeps
// working while src/http/server.cc and conn_stream.* change. An input may hold any number of
// pipelined requests; the seed corpus has chunked, gzip, Expect: 100-continue, pipelined,
// admin (the token below) and notify requests. Checks besides "nothing crashed" (ASan,
// UBSan, leaks, in any server thread):
//  - the server closes the connection within kExchangeDeadline of the half-close (a request
//    the client has stopped sending can never hold a connection open);
//  - whatever it answers starts with an HTTP/1.1 status line, and never a 500 (bad input
//    gets a clear 4xx);
//  - every kHealthEvery inputs, GET /healthz on a new connection answers 200.
// KEYVEND_FUZZ_PRINT=1 prints every answer (to see what a corpus file gets):
//   KEYVEND_FUZZ_PRINT=1 build-fuzz/fuzz/http_server_fuzz fuzz/corpus/http_server_fuzz/*
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "base/clock.h"
#include "base/log.h"
#include "base/random.h"
#include "config/config.h"
#include "fuzz_check.h"
#include "http/server.h"
#include "shop/shop.h"

namespace {

using Clock = std::chrono::steady_clock;

// The admin token and payment secret of the fuzzed server (also in the corpus and the
// dictionary, so the fuzzer reaches the admin routes).
constexpr char kAdminToken[] = "fuzz-admin-token-0123456789abcdef0123456789";
constexpr char kPaymentSecret[] = "whsec_fuzz_0123456789abcdef";
// From the half-close to the server's EOF. The server's own deadlines are set far below it.
constexpr auto kExchangeDeadline = std::chrono::seconds(5);
// Most answer bytes kept per input (the rest is read and dropped).
constexpr size_t kAnswerBytesKept = 1 << 16;
constexpr uint64_t kHealthEvery = 64;

struct World {
  std::filesystem::path root;
  std::unique_ptr<kv::Shop> shop;
  std::unique_ptr<kv::http::Server> server;
  std::thread runner;
  int port = 0;
  uint64_t inputs = 0;
};
World* world = nullptr;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "http_server_fuzz: %s\n", what.c_str());
  std::abort();
}

// Connects to the server on loopback (blocking, TCP_NODELAY).
int Connect() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(world->port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    // libFuzzer's timers interrupt system calls (it ran 2,040 inputs in CI, then one
    // connect came back EINTR): the connection goes on in the background, so wait for it
    // and read how it ended instead of dying.
    if (errno != EINTR) Die(std::string("connect: ") + std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, 10'000);
    } while (rc < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof(err);
    if (rc != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      Die(std::string("connect (after EINTR): ") + std::strerror(err != 0 ? err : errno));
    }
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// Sends `bytes` (stopping quietly when the server has closed or reset: it may refuse early),
// half-closes, and reads until EOF or the deadline. Returns the first kAnswerBytesKept bytes
// read, or nullopt when the deadline passed first.
std::optional<std::string> Exchange(std::string_view bytes) {
  const int fd = Connect();
  const auto deadline = Clock::now() + kExchangeDeadline;
  size_t sent = 0;
  std::string answer;
  bool eof = false;
  char buf[16384];
  if (bytes.empty()) ::shutdown(fd, SHUT_WR);  // nothing to send: only the half-close
  // Write and read together: a server that answers (or refuses) before the whole input is
  // sent must not deadlock against a client that only writes.
  while (!eof) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (sent < bytes.size()) p.events |= POLLOUT;
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;  // a libFuzzer timer, not the server
      if (n <= 0) {
        eof = true;  // EOF, or a reset after a refusal: the server is done with us
        break;
      }
      if (answer.size() < kAnswerBytesKept) {
        answer.append(buf, std::min(static_cast<size_t>(n), kAnswerBytesKept - answer.size()));
      }
    }
    if (sent < bytes.size() && (p.revents & POLLOUT)) {
      const ssize_t n =
          ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        sent = bytes.size();  // the server closed its end: nothing more to send
      }
      if (sent == bytes.size()) ::shutdown(fd, SHUT_WR);
    }
  }
  ::close(fd);
  if (!eof) return std::nullopt;
  return answer;
}

void CheckHealthy() {
  const std::optional<std::string> a =
      Exchange("GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n");
  if (!a || a->rfind("HTTP/1.1 200", 0) != 0) {
    Die("GET /healthz did not answer 200: " + (a ? a->substr(0, 200) : "(no EOF)"));
  }
}

void TearDown() {
  if (world == nullptr) return;
  world->server->Stop();
  if (world->runner.joinable()) world->runner.join();
  world->server.reset();
  world->shop.reset();
  std::error_code ec;
  std::filesystem::remove_all(world->root, ec);
  delete world;
  world = nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  signal(SIGPIPE, SIG_IGN);
  kv::SetLogLevel(kv::LogLevel::kError);
  world = new World;
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/keyvend-fuzz-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
  world->root = tmpl;

  kv::ShopOptions so;
  so.data_dir = world->root / "data";
  so.master_key_file = world->root / "master.key";
  so.start_workers = false;  // no background threads besides the server's own
  so.block_cache_bytes = 8 << 20;
  auto shop = kv::Shop::Open(so);
  if (!shop.ok()) Die("Shop::Open: " + std::string(shop.status().message()));
  world->shop = std::move(*shop);
  kv::ProductSpec spec;
  spec.name = "Fuzz key";
  spec.price_cents = 500;
  spec.currency = "EUR";
  if (!world->shop->CreateProduct(spec).ok()) Die("CreateProduct failed");  // product 1
  spec.name = "Fuzz key, paid on payment";
  spec.stock_mode = kv::StockMode::kOnPayment;
  spec.allow_backorder = true;
  if (!world->shop->CreateProduct(spec).ok()) Die("CreateProduct failed");  // product 2
  std::string keys;
  for (int i = 0; i < 2000; ++i) keys += "FUZZ-KEY-" + std::to_string(i) + "\n";
  for (uint64_t product : {1, 2}) {
    if (!world->shop->ImportKeys(product, keys, kv::ParseOptions{}).ok()) Die("ImportKeys failed");
  }

  auto cfg = kv::LoadConfig({}, [](const std::string&) { return std::nullopt; });
  if (!cfg.ok()) Die(std::string(cfg.status().message()));
  cfg->listen = "127.0.0.1:0";
  cfg->payment_sandbox = true;
  cfg->data_dir = so.data_dir;
  cfg->master_key_file = so.master_key_file;
  cfg->log_level = "error";
  // Small limits and short deadlines: the fuzzer reaches every edge quickly, and nothing it
  // sends can hold a connection near kExchangeDeadline.
  cfg->max_connections = 32;
  cfg->max_connections_per_client = 0;
  cfg->header_timeout_ms = 1000;
  cfg->body_timeout_ms = 1000;
  cfg->read_timeout_ms = 1000;
  cfg->write_timeout_ms = 1000;
  cfg->keep_alive_timeout_seconds = 1;
  cfg->keep_alive_max_count = 100;
  cfg->header_bytes_max = 4096;
  cfg->header_count_max = 32;
  cfg->body_bytes_max = 8192;
  cfg->import_body_bytes_max = 65536;
  cfg->json_depth_max = 8;
  cfg->drain_timeout_ms = 200;
  // No rate limits or hoarding caps: every input from 127.0.0.1 reaches its handler.
  for (int64_t* per_second :
       {&cfg->rate_limit_order_per_second, &cfg->rate_limit_order_per_client_per_second,
        &cfg->rate_limit_read_per_second, &cfg->rate_limit_read_per_client_per_second,
        &cfg->rate_limit_notify_per_second, &cfg->rate_limit_notify_per_client_per_second,
        &cfg->rate_limit_admin_per_second, &cfg->rate_limit_admin_per_client_per_second,
        &cfg->rate_limit_page_per_second, &cfg->rate_limit_page_per_client_per_second}) {
    *per_second = 0;
  }
  cfg->pending_orders_per_contact_max = 0;
  cfg->pending_orders_per_client_max = 0;

  kv::http::ServerOptions ho;
  ho.config = *cfg;
  ho.shop = world->shop.get();
  ho.clock = kv::RealClock::Get();
  ho.random = kv::SecureRandom::Get();
  ho.admin_token = kAdminToken;
  ho.payment_secret = kPaymentSecret;
  auto server = kv::http::Server::Bind(std::move(ho));
  if (!server.ok()) Die("Server::Bind: " + std::string(server.status().message()));
  world->server = std::move(*server);
  world->port = world->server->port();
  world->runner = std::thread([] { world->server->Run(); });
  // Stopped and removed before static destructors run (atexit runs in reverse order of
  // registration, and this registration comes after the libraries' statics).
  std::atexit(TearDown);
  for (int i = 0; i < 100; ++i) {
    const std::optional<std::string> a =
        Exchange("GET /healthz HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n");
    if (a && a->rfind("HTTP/1.1 200", 0) == 0) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Die("the server never answered GET /healthz");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto start = Clock::now();
  const std::optional<std::string> answer = Exchange(input);
  if (!answer) Die("no EOF within the exchange deadline after the half-close");
  static const bool print = std::getenv("KEYVEND_FUZZ_PRINT") != nullptr;
  if (print) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    std::fprintf(stderr, "--- answer after %lld ms:\n%s\n", static_cast<long long>(ms),
                 answer->c_str());
    if (ms > 500) {
      std::string esc;
      for (char ch : input) {
        const unsigned char u = static_cast<unsigned char>(ch);
        char b[8];
        std::snprintf(b, sizeof(b), (u < 0x20 || u >= 0x7f) ? "\\x%02x" : "%c", u);
        esc += b;
      }
      std::fprintf(stderr, "--- slow input: %s\n", esc.c_str());
    }
  }
  if (!answer->empty()) {
    if (answer->rfind("HTTP/1.1 ", 0) != 0)
      Die("answer without a status line: " + answer->substr(0, 200));
    for (size_t at = answer->find("HTTP/1.1 500"); at != std::string::npos;
         at = answer->find("HTTP/1.1 500", at + 1)) {
      // Only a status line counts (a 500 inside a body is data).
      if (at == 0 || (*answer)[at - 1] == '\n') Die("a 500 answer:\n" + answer->substr(at, 400));
    }
  }
  if (++world->inputs % kHealthEvery == 0) CheckHealthy();
  return 0;
}
