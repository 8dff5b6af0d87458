// The HTTP benchmark's baseline: cpp-httplib with exactly keyvend's server settings
// (ApplyServerSettings + RaiseBacklog) and a do-nothing handler that answers every POST
// with a small 201 JSON body. tools/bench-http.sh runs it beside `keyvend serve`.
//   http_baseline [--listen HOST:PORT] [--max-connections N] [other keyvend serve options]
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "http/server_internal.h"

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
  kv::http::ApplyServerSettings(svr, *cfg, open, &listen_fd);
  const std::string body = R"({"order_id":"00000000000000000000000000000000","status":"pending_payment"})";
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
  kv::http::RaiseBacklog(listen_fd, *cfg);
  std::printf("keyvend listening on http://%s:%d\n", host.c_str(), port);
  std::fflush(stdout);
  return svr.listen_after_bind() ? 0 : 1;
}
