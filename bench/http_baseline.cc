// The HTTP benchmark's do-nothing baseline (tools/bench-http.sh runs it beside `keyvend
// serve`): cpp-httplib's own server — its accept loop and its thread pool, one thread per
// connection for the connection's life — answering every POST with a small 201 JSON body.
// It is NOT keyvend's connection layer (keyvend serves on its own epoll acceptor and
// deadline-bounded connection stream, with cpp-httplib only as the request engine): it is
// the cheapest HTTP/1.1 server this machine runs with the same library, so the ratio says
// what keyvend's connection handling, admission and domain cost on top of it. It reads the
// same options as `keyvend serve` and applies the ones that mean something here: threads =
// max_connections, keep-alive count and timeout, read/write timeouts, the order route's
// body cap, listen_backlog; plus TCP_NODELAY and SO_REUSEADDR.
//   http_baseline [--config FILE] [--listen HOST:PORT] [other keyvend serve options]
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "httplib.h"
#include "metrics/metrics.h"

namespace {

// cpp-httplib serves one connection per pool thread for the connection's whole life; the
// pool is sized to max_connections. Each task is one connection: counting them here gives
// the open-connections gauge.
class ConnectionPool final : public httplib::ThreadPool {
 public:
  ConnectionPool(size_t n, kv::Gauge* open) : httplib::ThreadPool(n), open_(open) {}
  void enqueue(std::function<void()> fn) override {
    kv::Gauge* g = open_;
    g->Inc();
    httplib::ThreadPool::enqueue([fn = std::move(fn), g] {
      fn();
      g->Dec();
    });
  }

 private:
  kv::Gauge* open_;
};

// The config's values applied to cpp-httplib's own server; *listen_fd receives the
// listening socket for RaiseBacklog.
void ApplyServerSettings(httplib::Server& svr, const kv::Config& c, kv::Gauge* open_connections,
                         int* listen_fd) {
  const size_t threads = static_cast<size_t>(c.max_connections);
  kv::Gauge* open = open_connections;
  svr.new_task_queue = [threads, open] { return new ConnectionPool(threads, open); };
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(static_cast<size_t>(c.keep_alive_max_count));
  svr.set_keep_alive_timeout(static_cast<time_t>(c.keep_alive_timeout_seconds));
  svr.set_read_timeout(c.read_timeout_ms / 1000, (c.read_timeout_ms % 1000) * 1000);
  svr.set_write_timeout(c.write_timeout_ms / 1000, (c.write_timeout_ms % 1000) * 1000);
  // The order route's body limit (0 = none), the only route the baseline stands in for.
  svr.set_payload_max_length(c.body_bytes_max == 0 ? std::numeric_limits<size_t>::max()
                                                   : static_cast<size_t>(c.body_bytes_max));
  svr.set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listen_fd = sock;
  });
}

// Call after bind: cpp-httplib 0.11 listens with a backlog of 5 and has no setter; listen()
// again on the same socket raises it to c.listen_backlog (DEPS.md item 2).
void RaiseBacklog(int listen_fd, const kv::Config& c) {
  if (listen_fd >= 0) ::listen(listen_fd, static_cast<int>(c.listen_backlog));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto cfg = kv::LoadConfig(args, [](const std::string&) { return std::optional<std::string>(); });
  if (!cfg.ok()) {
    std::fprintf(stderr, "http_baseline: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  std::string host;
  int port = 0;
  if (!kv::ParseHostPort(cfg->listen, &host, &port)) return 2;
  kv::Registry registry;
  kv::Gauge* open = registry.GetGauge("open_connections", "connections");
  httplib::Server svr;
  int listen_fd = -1;
  ApplyServerSettings(svr, *cfg, open, &listen_fd);
  const std::string body =
      R"({"order_id":"00000000000000000000000000000000","status":"pending_payment"})";
  svr.Post(".*", [&body](const httplib::Request&, httplib::Response& res) {
    res.status = 201;
    res.set_content(body, "application/json");
  });
  if (port == 0) {
    port = svr.bind_to_any_port(host);
  } else if (!svr.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) return 1;
  RaiseBacklog(listen_fd, *cfg);
  std::printf("keyvend listening on http://%s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  return svr.listen_after_bind() ? 0 : 1;
}
