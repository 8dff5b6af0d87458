// Private to src/http: the server's state, the router and the handler context.
#pragma once

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "http/acceptor.h"
#include "http/access_log.h"
#include "http/conn_stream.h"
#include "http/json.h"
#include "limits/rate_limiter.h"
#include "http/server.h"
#include "httplib.h"
#include "metrics/metrics.h"

namespace kv::http {

struct HttpError {
  int status;
  std::string code;
  std::string message;
  int64_t retry_after_seconds = 1;  // sent with 429 and 503
};
HttpError ErrorFor(Refusal r, std::string message);
HttpError ErrorFor(const absl::Status& s);
void WriteError(httplib::Response& res, const HttpError& e);
void WriteJson(httplib::Response& res, int status, std::string body);

// Every cpp-httplib setting keyvend chooses (threads = max_connections with an
// open-connections gauge, TCP_NODELAY, keep-alive, timeouts, payload cap, SO_REUSEADDR and
// the listening socket's fd for RaiseBacklog). Shared with the HTTP baseline benchmark so
// both run with the same settings.
void ApplyServerSettings(httplib::Server& svr, const Config& c, Gauge* open_connections,
                         int* listen_fd);
// The engine's payload cap: the largest body any route accepts (unlimited when a route's
// limit is 0). Each route's own limit is checked from Content-Length before reading.
size_t GlobalBodyCap(const Config& c);
// Call after bind: raises the listen backlog to c.listen_backlog.
void RaiseBacklog(int listen_fd, const Config& c);

// cpp-httplib's request engine (parsing, routing to our handlers, response writing) run on
// keyvend's own connections: process_request is protected, the rest of httplib::Server's
// socket machinery (listen, accept, thread pool, its socket stream) is not used.
class Engine final : public httplib::Server {
 public:
  // cpp-httplib ends streamed (content-provider) responses when its listening socket is
  // invalid ("shutting down"); the engine has none, so it holds a placeholder descriptor
  // for as long as it lives.
  Engine() : placeholder_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) { svr_sock_ = placeholder_; }
  ~Engine() override {
    svr_sock_ = INVALID_SOCKET;
    if (placeholder_ >= 0) ::close(placeholder_);
  }
  bool Serve(httplib::Stream& s, bool close_connection, bool& connection_closed,
             const std::function<void(httplib::Request&)>& setup) {
    return process_request(s, close_connection, connection_closed, setup);
  }

 private:
  int placeholder_;
};

// The connection a request arrived on and what the request's plumbing learned about it.
// One per connection, on the thread serving it (CurrentConn()); null elsewhere.
struct ConnContext {
  const AcceptedConnection* conn = nullptr;
  ConnStream* stream = nullptr;
  bool ops = false;         // the ops listener: only ops and notify routes
  bool must_close = false;  // the response ends the connection (e.g. a refused, unread body)
  // The request being served.
  int64_t start_ns = 0;
  size_t route_index = 0;
  char request_id[17] = {};
};
ConnContext* CurrentConn();

struct Ctx {
  const httplib::Request& req;
  httplib::Response& res;
  const std::vector<std::string>& params;  // path parameters, in order
};

using Handler = std::function<void(Ctx&)>;

// Route classes share a rate limit (SPEC §5). kOps (health, readiness, metrics) is never
// limited.
enum class RouteClass { kOrder = 0, kRead, kNotify, kAdmin, kPage, kOps };
inline constexpr size_t kLimitedClasses = 5;
const char* RouteClassName(RouteClass c);

struct Route {
  RouteClass cls = RouteClass::kPage;
  std::string method;
  std::string name;  // "GET /api/v1/orders/{order_id}" (metrics label)
  std::vector<std::string> segments;
  bool admin = false;
  Handler handler;
};

// Exact-segment router: no regex on the hot path.
class Router {
 public:
  void Add(const char* method, const char* pattern, bool admin, Handler h);
  // The route for method + path, with its {parameters}; nullptr if none. path_known is set
  // when some route has this path (with another method).
  const Route* Match(const std::string& method, const std::string& path,
                     std::vector<std::string>* params, bool* path_known) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

struct Server::Impl {
  explicit Impl(ServerOptions o);
  // The acceptor's threads use everything below: they end first.
  ~Impl() { acceptor.reset(); }

  // Serves one admitted connection for its whole life (the keep-alive loop), on a pool
  // thread: idle wait, header deadline and limits, body deadline, then the engine.
  void ServeConnection(const AcceptedConnection& c);
  // A response written by the connection layer itself (408, 431), ending the connection.
  void WriteRaw(ConnStream& s, int status, const char* reason, const HttpError& e);

  httplib::Server::HandlerResponse PreRoute(const httplib::Request& req, httplib::Response& res);
  int Expect100(const httplib::Request& req, httplib::Response& res);
  // Writes a 413 and returns true when the declared Content-Length is over the route's
  // limit (decided before one byte of the body is read).
  bool RefuseOversized(const httplib::Request& req, httplib::Response& res);
  // After cpp-httplib wrote a response: the connection is no longer busy; a 413 or a drain
  // ends it.
  void AfterWrite(const httplib::Request& req, const httplib::Response& res);
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  bool AdminAuthorized(const httplib::Request& req) const;
  int64_t BodyLimitFor(const httplib::Request& req) const;
  void RegisterRoutes();  // api.cc

  // Parses a JSON body (strict); writes the 400 and returns nullopt on a problem.
  std::optional<Fields> Body(Ctx& c, std::initializer_list<std::string_view> allowed,
                             bool ignore_unknown = false);
  std::string PayUrl(const OrderView& o) const;
  // The notify's work, shared by the route and the sandbox page.
  // nullopt when the notice was taken (recorded, or acknowledged as not money received).
  std::optional<HttpError> Notify(const std::string& body, const std::string& signature,
                                  PaymentResult* out);

  ServerOptions opts;
  std::string host;
  int port = 0;  // as bound
  std::string ops_host;
  int ops_port = 0;  // 0: no ops listener
  Engine svr;
  std::unique_ptr<Acceptor> acceptor;
  Router router;
  Registry registry;
  std::unique_ptr<RequestMetrics> requests;
  size_t unmatched_route = 0;
  Gauge* in_flight = nullptr;
  // Admits a request of class `cls` from this client, or writes the 429 and returns false.
  bool Admit(RouteClass cls, const httplib::Request& req, httplib::Response& res);
  // The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
  // X-Forwarded-For address that is not a trusted proxy.
  std::string ClientIp(const httplib::Request& req) const;

  // Admits a request of class `cls` under its in-flight cap (notify and ops have none), or
  // writes the 503 overloaded and returns false. A true return must be paired with
  // EndInflight(cls).
  bool AdmitInflight(RouteClass cls, httplib::Response& res);
  void EndInflight(RouteClass cls);

  std::array<std::unique_ptr<RateLimiter>, kLimitedClasses> limiters;
  std::array<Counter*, kLimitedClasses> rate_limited{};
  std::array<int64_t, kLimitedClasses> inflight_max{};  // 0 = no cap
  std::array<std::atomic<int64_t>, kLimitedClasses> inflight{};
  std::array<Counter*, kLimitedClasses> overloaded{};
  Counter* header_timeouts = nullptr;
  Counter* body_timeouts = nullptr;
  Counter* header_too_large = nullptr;
  // The access log (null when access_log is ""); one line per answered request.
  std::unique_ptr<AccessLog> access_log;
  void LogAccess(const ConnContext& cc, const std::string& method, const std::string& client_ip,
                 int status, int64_t bytes_in, int64_t bytes_out);
  std::atomic<uint64_t> request_seq{0};
  uint64_t request_salt = 0;
  absl::flat_hash_set<std::string> trusted_proxies;
  std::atomic<bool> draining{false};
  std::atomic<bool> run_called{false};
  std::atomic<bool> run_done{false};
  std::atomic<uint64_t> orders_created{0};
  std::atomic<uint64_t> payments_received{0};
  int64_t started_mono_ns = 0;
};

}  // namespace kv::http
