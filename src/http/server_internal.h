// Private to src/http: the server's state, the router and the handler context.
#pragma once

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "base/mutex.h"
#include "http/acceptor.h"
#include "http/access_log.h"
#include "http/conn.h"
#include "http/io_loop.h"
#include "http/json.h"
#include "http/server.h"
#include "http/wire_errors.h"
#include "http/worker_pool.h"
#include "httplib.h"
#include "limits/rate_limiter.h"
#include "metrics/metrics.h"
#include "pay/reconciler.h"
#include "pay/registry.h"
#include "web/assets.h"

namespace kv::http {

// A refusal as its wire row (wire_errors.h). `bad_request_as`: the row a kBadRequest travels
// as on this route (the key import's is SPEC's invalid_key_line).
HttpError ErrorFor(Refusal r, std::string message, Wire bad_request_as = Wire::kBadRequest);
// An infrastructure failure: Unavailable -> storage_unavailable, else internal (logged).
HttpError ErrorFor(const absl::Status& s);
void WriteError(httplib::Response& res, const HttpError& e);
// Makes cpp-httplib answer "Connection: close" and end the connection after this request.
void AnswerCloses(const httplib::Request& req);
// A JSON answer (and WriteError's): always `Cache-Control: no-store` — many carry an order's
// token or its keys.
void WriteJson(httplib::Response& res, int status, std::string body);

// The engine's payload cap: the largest body any route accepts (unlimited when a route's
// limit is 0). Each route's own limit is checked from Content-Length before reading.
size_t GlobalBodyCap(const Config& c);

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

struct Route;

// The request context of the thread serving a request (a worker, or an I/O loop while it
// screens a head); null elsewhere.
ConnContext* CurrentConn();

// Sets the thread's request context for a scope (an I/O loop screening a head, a worker or
// the committer finishing a request).
class CurrentConnScope {
 public:
  explicit CurrentConnScope(ConnContext* cc);
  ~CurrentConnScope();
  CurrentConnScope(const CurrentConnScope&) = delete;
  CurrentConnScope& operator=(const CurrentConnScope&) = delete;
};

struct Ctx {
  const httplib::Request& req;
  httplib::Response& res;
  const std::vector<std::string>& params;  // path parameters, in order
};

using Handler = std::function<void(Ctx&)>;

// Route classes share a rate limit (SPEC §5). kOps (health, readiness, metrics) is never
// limited. The ops listener serves only kOps and kNotify routes.
// kStatic: the storefront's and admin console's shells and files (issue 12), served from
// memory on the loop, with a rate limit and cap of their own so a page load never takes
// the order class's share.
// The storefront's headers for an HTML page or file (web_routes.cc): a strict
// Content-Security-Policy (this origin only; no inline script or style), nosniff, no
// Referer, no framing.
void SetStrictPageHeaders(httplib::Response& res);

enum class RouteClass { kOrder = 0, kRead, kNotify, kAdmin, kPage, kStatic, kOps };
inline constexpr size_t kLimitedClasses = 6;
const char* RouteClassName(RouteClass c);

// What a route accepts as a body; the limit comes from the route, never from the path's
// shape (review finding 2: any POST path ending in /keys once got the import cap).
enum class BodyKind {
  kNone,    // no body: a request with one is refused (400) before it is read
  kJson,    // up to body_bytes_max
  kImport,  // up to import_body_bytes_max (the key import only)
};
enum class Auth { kPublic, kAdmin };  // kAdmin: the Bearer token, checked before the body

// Where a route's handler runs (issue 11). A worker by default. kInline: on the I/O loop
// itself, for handlers that only read memory and answer at once (the catalogue, the
// liveness probe) — no hand-off at all. kPrecheck: the handler runs on the loop first with
// ConnContext::precheck set; it answers there when the answer is certain from memory (a
// sold-out or invalid order), or sets needs_worker and writes nothing, and the request then
// runs again on a worker. The handler is called directly on the head the loop parsed and
// its answer written by response_writer.h — except kEngine: a worker runs it through
// cpp-httplib's engine, for an answer streamed by a content provider (the CSV export).
enum class Exec { kWorker, kInline, kPrecheck, kEngine };

// One row of the route table (api.cc, RegisterRoutes): everything the edge decides from
// the request head, before one byte of the body is read.
struct RouteSpec {
  const char* method;
  const char* pattern;  // "/api/v1/orders/{order_id}": literal segments and {parameters}
  RouteClass cls;
  BodyKind body;
  Auth auth;
  Exec exec = Exec::kWorker;
};

struct Route {
  RouteSpec spec;
  std::string name;  // "GET /api/v1/orders/{order_id}" (metrics and access-log label)
  std::vector<std::string> segments;
  Handler handler;
};

// Exact-segment router: no regex on the hot path.
class Router {
 public:
  // Adds a row. Dies (a programming error, found by every test run) when the row
  // contradicts itself: admin auth without the admin class or the reverse, a GET or
  // DELETE with a body, an import body outside the admin class, a duplicate.
  void Add(const RouteSpec& spec, Handler h);
  // The route for method + path, with its {parameters}; nullptr if none. path_known is set
  // when some route has this path (with another method).
  const Route* Match(const std::string& method, const std::string& path,
                     std::vector<std::string>* params, bool* path_known) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// In-flight caps per route class (SPEC §5): a slot taken is given back by the guard's
// destructor, on every path out of the handler, exceptions included (review finding 9c).
class InflightSlots {
 public:
  // max[i] = 0: class i has no cap.
  explicit InflightSlots(const std::array<int64_t, kLimitedClasses>& max) : max_(max) {}
  // Takes a slot of class i; false (and nothing taken) when the class is at its cap.
  bool TryTake(size_t i) {
    const int64_t n = used_[i].fetch_add(1, std::memory_order_acq_rel) + 1;
    if (max_[i] == 0 || n <= max_[i]) return true;
    used_[i].fetch_sub(1, std::memory_order_acq_rel);
    return false;
  }
  void Give(size_t i) { used_[i].fetch_sub(1, std::memory_order_acq_rel); }
  int64_t used(size_t i) const { return used_[i].load(std::memory_order_acquire); }

  // Holds one slot (or none) and gives it back when it goes out of scope.
  class Guard {
   public:
    Guard() = default;
    Guard(InflightSlots* s, size_t i) : slots_(s), i_(i) {}
    Guard(Guard&& o) noexcept : slots_(o.slots_), i_(o.i_) { o.slots_ = nullptr; }
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (slots_ != nullptr) slots_->Give(i_);
    }

   private:
    InflightSlots* slots_ = nullptr;
    size_t i_ = 0;
  };

 private:
  std::array<int64_t, kLimitedClasses> max_;
  std::array<std::atomic<int64_t>, kLimitedClasses> used_{};
};

// Holds a gauge one higher for its scope.
class GaugeHold {
 public:
  explicit GaugeHold(Gauge* g) : g_(g) { g_->Inc(); }
  ~GaugeHold() { g_->Dec(); }
  GaugeHold(const GaugeHold&) = delete;
  GaugeHold& operator=(const GaugeHold&) = delete;

 private:
  Gauge* g_;
};

struct Server::Impl final : ConnHandler {
  explicit Impl(ServerOptions o);
  // The loops, workers and acceptor use everything below: they end first (the loops give
  // any connection left back to the acceptor). Order: the loops' threads end (no new job
  // reaches the pool), then the workers finish what they hold (a worker's Done() wakes a
  // joined loop whose descriptors are still open: destroying the loops first let a worker
  // write to a closed — possibly reused — eventfd, a race TSan caught), then the loops go.
  ~Impl() override {
    if (reconciler != nullptr) reconciler->Stop();
    for (auto& loop : loops) loop->Join();
    workers.reset();
    loops.clear();
    acceptor.reset();
  }

  // ConnHandler (io_loop.h): the I/O loops and workers call these.
  void OnHead(Conn& c) override;
  void RefuseBody(Conn& c, BodyError why) override;
  void WriteRaw(Conn& c, int status, const char* reason, const char* what) override;
  void Execute(Conn& c) override;
  bool RunsInline(const Conn& c) const override;
  // Execute without cpp-httplib's engine: the route's handler on the loop's parsed head,
  // the answer written by response_writer.h (on a loop or a worker).
  void ExecuteDirect(Conn& c);
  // Writes res into c.out as this request's answer (keep-alive or close), logs it.
  void Answer(Conn& c, httplib::Response& res);
  // Sends c.out as far as the socket takes it now (the loop writes the rest).
  static void SendWithoutWaiting(Conn& c);
  // How an order is to be paid (issue 13): a configured gateway and its sub-method, or none
  // (pay_url_template).
  struct PayChoice {
    pay::Gateway* gateway = nullptr;
    std::string method;
  };
  // The order's gateway from its request's optional "gateway" and "method" and the
  // product's currency, from memory only (no I/O on the order path). nullopt when valid
  // (*out set; left empty for an unknown product, which the shop refuses); else the 400's
  // message, naming the field.
  std::optional<std::string> ChoosePay(uint64_t product_id, const std::optional<std::string>& gw,
                                       const std::optional<std::string>& method, PayChoice* out);
  // A created order's 201 (api.cc).
  void OrderCreated(httplib::Response& res, const OrderView& o, const PayChoice& pay);
  // The end of an order created without waiting (api.cc): on the connection's loop, after
  // the committer's completion handed it the result (IoLoop::Complete); leaves the answer in
  // c.out for the loop to write.
  void FinishOrder(Conn& c, Result<OrderView> r, const PayChoice& pay);

  // The screen, on the I/O loop before the body (OnHead): framing, content coding, route,
  // rate limit, admin auth and the route's body limit are decided from the head; a
  // refusal is answered without reading the body (and closes the connection when one was
  // announced). True when the request was refused (res holds the answer).
  bool Screen(const httplib::Request& req, httplib::Response& res);
  // On the worker (cpp-httplib's pre-routing and Expect: 100-continue hooks): writes the
  // screen's refusal, or hands the engine the body the loop read (body_reader.h), after
  // checking that cpp-httplib parsed the head as the loop did.
  httplib::Server::HandlerResponse PreRoute(const httplib::Request& req, httplib::Response& res);
  int Expect100(const httplib::Request& req, httplib::Response& res);
  // Writes e; with close, the connection ends after the answer (an unread body follows).
  void RefuseBeforeBody(const httplib::Request& req, httplib::Response& res, const HttpError& e,
                        bool close);
  // After cpp-httplib wrote a response: the connection is no longer busy; a 413 or a drain
  // ends it.
  void AfterWrite(const httplib::Request& req, const httplib::Response& res);
  // Runs the route Screen matched, under its class's in-flight cap.
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  // The Authorization header against "Bearer <admin token>" by SHA-256 digest, in
  // constant time.
  bool AdminAuthorized(const httplib::Request& req) const;
  // A route's body limit in bytes (0 = none, and for kNone: no body at all).
  int64_t BodyLimitFor(BodyKind kind) const;
  void RegisterRoutes();  // api.cc
  // The storefront's and admin console's pages and files (web_routes.cc, issue 12).
  void RegisterWebRoutes();
  std::unique_ptr<web::AssetTable> assets;  // built by RegisterWebRoutes; read-only after

  // Parses a JSON body (strict); writes the 400 and returns nullopt on a problem.
  std::optional<Fields> Body(Ctx& c, std::initializer_list<std::string_view> allowed,
                             bool ignore_unknown = false);
  std::string PayUrl(const OrderView& o, const PayChoice& pay) const;
  // The payment routes of issue 13 (api.cc): GET /pay/{order_id}/{gateway}, the gateways'
  // notifies, GET /api/v1/gateways.
  void RegisterPaymentRoutes();
  // A gateway's notify: verdict, the shop's payment path, the gateway's answer.
  void GatewayNotify(Ctx& c, pay::Gateway* gw);
  // The notify's work, shared by the route and the sandbox page.
  // nullopt when the notice was taken (recorded, or acknowledged as not money received).
  std::optional<HttpError> Notify(const std::string& body, const std::string& signature,
                                  PaymentResult* out);

  ServerOptions opts;
  // The payment gateways: opts.gateways, or owned_gateways built by Bind.
  std::unique_ptr<pay::Gateways> owned_gateways;
  pay::Gateways* gateways = nullptr;
  // Every started payment attempt, queried when its notify does not come (Bind starts it,
  // Stop ends it after the drain).
  std::unique_ptr<pay::Reconciler> reconciler;
  // keyvend_gateway_notifies_total{gateway,result} per gateway name: applied, replay,
  // malformed, ignored, rejected.
  struct NotifyCounters {
    Counter* applied = nullptr;
    Counter* replay = nullptr;
    Counter* malformed = nullptr;
    Counter* ignored = nullptr;
    Counter* rejected = nullptr;
  };
  absl::flat_hash_map<std::string, NotifyCounters> notify_counters;  // fixed after Bind
  std::string host;
  int port = 0;  // as bound
  std::string ops_host;
  int ops_port = 0;  // 0: no ops listener
  Engine svr;
  std::unique_ptr<Acceptor> acceptor;
  std::unique_ptr<WorkerPool> workers;
  std::vector<std::unique_ptr<IoLoop>> loops;
  std::atomic<size_t> next_loop{0};
  Router router;
  Registry registry;
  std::unique_ptr<RequestMetrics> requests;
  size_t unmatched_route = 0;
  Gauge* in_flight = nullptr;
  // Takes a token of class `cls` for this client: nullopt when admitted, else the 429
  // (counted) with its Retry-After.
  std::optional<HttpError> Throttle(RouteClass cls, const httplib::Request& req);
  // The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
  // X-Forwarded-For address that is not a trusted proxy.
  std::string ClientIp(const httplib::Request& req) const;

  std::array<std::unique_ptr<RateLimiter>, kLimitedClasses> limiters;
  std::array<Counter*, kLimitedClasses> rate_limited{};
  InflightSlots inflight;  // in-flight caps per class (notify and ops: none)
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
  // Run's life, for Stop: Stop waits on run_cv until a running Run has returned.
  enum class RunState { kNotStarted, kRunning, kDone };
  Mutex run_mu;
  CondVar run_cv;
  RunState run_state ABSL_GUARDED_BY(run_mu) = RunState::kNotStarted;
  std::atomic<uint64_t> orders_created{0};
  std::atomic<uint64_t> payments_received{0};
  int64_t started_mono_ns = 0;
};

}  // namespace kv::http
