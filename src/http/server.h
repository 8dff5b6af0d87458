// The HTTP face of the shop (SPEC §4): cpp-httplib with every setting chosen explicitly
// (DEPS.md items 1-3), an own router, strict JSON, error mapping, metrics.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "pay/registry.h"
#include "shop/shop.h"

namespace kv::outbound {
class Dispatcher;
}

namespace kv::http {

struct ServerOptions {
  Config config;
  Shop* shop = nullptr;        // not owned; outlives the server
  Clock* clock = nullptr;      // not owned
  Random* random = nullptr;    // not owned (sandbox payment ids)
  std::string admin_token;     // empty: admin routes always answer 401
  std::string payment_secret;  // empty: every notify is refused (401)
  // The payment gateways (issue 13; not owned, outlives the server). Null: the server builds
  // them from the config without secrets or an outbound client (enough for the sandbox).
  pay::Gateways* gateways = nullptr;
  // The outbound workers (issue 14; not owned, outlives the server; null: none). Bind
  // exports their metrics, gives them the public URL and starts them; Stop() stops them
  // after the drain, before the shop closes.
  outbound::Dispatcher* outbound = nullptr;
};

class Server {
 public:
  // Builds the server and binds the listen address (port 0 picks one). Errors: the address
  // is malformed or cannot be bound; no way to pay (no gateway, sandbox nor
  // pay_url_template); the gateways cannot be built (null opts.gateways) or the stored payment
  // attempts cannot be read. Starts the payment reconciler (src/pay/reconciler.h), which
  // Stop() ends after the drain.
  static absl::StatusOr<std::unique_ptr<Server>> Bind(ServerOptions opts);
  ~Server();

  // "http://HOST:PORT" as bound.
  std::string url() const;
  int port() const { return port_; }
  // The ops listener's "http://HOST:PORT", or "" when ops_listen is not set.
  std::string ops_url() const;
  // Serves until Stop() and the drain that follows are over; returns false if the
  // listener failed.
  bool Run();
  // Drains (SPEC §5): /readyz answers 503 at once, the listeners close, idle keep-alive
  // connections close, in-flight requests finish within drain_timeout_ms (then their
  // connections are cut); returns when Run() has returned (at once if Run never started).
  // Thread-safe, idempotent.
  void Stop();
  // Starts the drain and returns at once (e.g. from a signal-waiting thread). Thread-safe.
  void RequestStop();

  struct Impl;

 private:
  Server() = default;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace kv::http
