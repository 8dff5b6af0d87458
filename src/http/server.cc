// The HTTP server: cpp-httplib request handling on the acceptor's connections (keep-alive,
// timeouts, the screen before the body, limits), the router,
// error mapping and the ops endpoints. The API's handlers are in api.cc.
#include "http/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/time_format.h"
#include "http/body_reader.h"
#include "http/response_writer.h"
#include "http/server_internal.h"
#include "http/worker_stream.h"
#include "outbound/dispatcher.h"

namespace kv::http {

// --- errors -----------------------------------------------------------------------------

HttpError ErrorFor(Refusal r, std::string message, Wire bad_request_as) {
  return MakeError(r == Refusal::kBadRequest ? bad_request_as : WireFor(r), std::move(message));
}

HttpError ErrorFor(const absl::Status& s) {
  // Infrastructure failures: never echo internals that could hold data; the code says what
  // the client can do (retry later).
  if (absl::IsUnavailable(s)) {
    return MakeError(Wire::kStorageUnavailable, "storage is unavailable; retry later");
  }
  KV_LOG(kError, "internal error: ", std::string(s.message()));
  return MakeError(Wire::kInternal, "internal error");
}

// The connection ends after this answer, and the answer says so: cpp-httplib decides
// between "Connection: close" and "Keep-Alive" after our handler, from the request's own
// Connection header, so that header is rewritten (the request is otherwise const to us).
void AnswerCloses(const httplib::Request& req) {
  auto& mutable_req = const_cast<httplib::Request&>(req);
  mutable_req.headers.erase("Connection");
  mutable_req.set_header("Connection", "close");
}

void WriteError(httplib::Response& res, const HttpError& e) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject().Field("code", e.code).Field("message", e.message);
  w.EndObject().EndObject();
  res.status = e.status;
  res.set_header("Cache-Control", "no-store");
  if (e.status == 429 || e.status == 503) {
    res.set_header("Retry-After", std::to_string(std::max<int64_t>(1, e.retry_after_seconds)));
  }
  res.set_content(w.Take(), "application/json");
}

void WriteJson(httplib::Response& res, int status, std::string body) {
  res.status = status;
  // Every JSON answer is dynamic, and many carry an order's token or its keys: never kept by
  // a browser or a proxy (issue 12).
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::move(body), "application/json");
}

// --- the router ---------------------------------------------------------------------------

const char* RouteClassName(RouteClass c) {
  switch (c) {
    case RouteClass::kOrder:
      return "order";
    case RouteClass::kRead:
      return "read";
    case RouteClass::kNotify:
      return "notify";
    case RouteClass::kAdmin:
      return "admin";
    case RouteClass::kPage:
      return "page";
    case RouteClass::kStatic:
      return "static";
    case RouteClass::kOps:
      return "ops";
  }
  return "page";
}

void Router::Add(const RouteSpec& spec, Handler h) {
  Route r;
  r.spec = spec;
  r.name = absl::StrCat(spec.method, " ", spec.pattern);
  const std::string_view method(spec.method);
  // The table's rules: a row that breaks one is a programming error that every test run
  // hits at start (RegisterRoutes runs in Bind).
  const bool admin_class = spec.cls == RouteClass::kAdmin;
  KV_CHECK(admin_class == (spec.auth == Auth::kAdmin), "route ", r.name,
           ": admin auth if and only if the admin class");
  KV_CHECK(spec.body == BodyKind::kNone || (method != "GET" && method != "DELETE"), "route ",
           r.name, ": a GET or DELETE takes no body");
  KV_CHECK(spec.body != BodyKind::kImport || admin_class, "route ", r.name,
           ": only an admin route takes the import body limit");
  KV_CHECK(spec.exec != Exec::kInline || method == "GET", "route ", r.name,
           ": only a read runs on the I/O loop");
  KV_CHECK(spec.exec != Exec::kPrecheck || spec.body == BodyKind::kJson, "route ", r.name,
           ": a precheck reads a JSON body");
  KV_CHECK(spec.exec != Exec::kEngine || method == "GET", "route ", r.name,
           ": only a read streams its answer");
  for (const Route& other : routes_) {
    KV_CHECK(other.name != r.name, "route ", r.name, " added twice");
  }
  r.handler = std::move(h);
  for (absl::string_view seg :
       absl::StrSplit(absl::string_view(spec.pattern), '/', absl::SkipEmpty())) {
    r.segments.emplace_back(seg);
  }
  routes_.push_back(std::move(r));
}

const Route* Router::Match(const std::string& method, const std::string& path,
                           std::vector<std::string>* params, bool* path_known) const {
  std::vector<std::string_view> segs;
  size_t start = 1;
  if (path.empty() || path[0] != '/') return nullptr;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) segs.emplace_back(path.data() + start, end - start);
    start = end + 1;
  }
  *path_known = false;
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    bool ok = true;
    params->clear();
    for (size_t i = 0; i < segs.size() && ok; ++i) {
      const std::string& p = r.segments[i];
      if (p.front() == '{') {
        params->emplace_back(segs[i]);
      } else {
        ok = p == segs[i];
      }
    }
    if (!ok) continue;
    *path_known = true;
    // HEAD is GET without the body (RFC 9110 §9.3.2; the writers leave the body out).
    if (method == r.spec.method || (method == "HEAD" && std::string_view(r.spec.method) == "GET")) {
      return &r;
    }
  }
  return nullptr;
}

// --- server lifecycle -----------------------------------------------------------------------

size_t GlobalBodyCap(const Config& c) {
  // 0 means "no limit" for a route: then the engine's cap must not limit it either.
  if (c.body_bytes_max == 0 || c.import_body_bytes_max == 0) {
    return std::numeric_limits<size_t>::max();
  }
  return static_cast<size_t>(std::max(c.body_bytes_max, c.import_body_bytes_max));
}

Server::~Server() {
  if (impl_ != nullptr) Stop();
}

std::string Server::url() const { return absl::StrCat("http://", impl_->host, ":", port_); }

absl::StatusOr<std::unique_ptr<Server>> Server::Bind(ServerOptions opts) {
  if (!opts.config.payment_sandbox && opts.config.pay_url_template.empty() &&
      opts.config.payment_gateways.empty()) {
    return absl::InvalidArgumentError(
        "no way to pay: set payment_gateways, or pay_url_template (your gateway's payment "
        "page), or enable --payment-sandbox");
  }
  std::string host, ops_host;
  int port = 0, ops_port = 0;
  if (!ParseHostPort(opts.config.listen, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid listen address ", opts.config.listen));
  }
  const bool with_ops = !opts.config.ops_listen.empty();
  if (with_ops && !ParseHostPort(opts.config.ops_listen, &ops_host, &ops_port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ops_listen address ", opts.config.ops_listen));
  }
  std::unique_ptr<Server> s(new Server());
  s->impl_ = std::make_unique<Impl>(std::move(opts));
  Impl& m = *s->impl_;
  m.host = host;
  m.ops_host = ops_host;
  const Config& c = m.opts.config;
  Engine& svr = m.svr;

  // The largest body any route accepts; each route's own limit is enforced from
  // Content-Length before the body is read (pre-routing / Expect: 100-continue).
  svr.set_payload_max_length(GlobalBodyCap(c));
  // The keep-alive loop is ours (ServeConnection), but cpp-httplib writes the
  // "Keep-Alive: timeout=T, max=N" header from its own settings: advertise what we apply
  // (a client that trusts a longer advertised timeout would reuse closed connections).
  svr.set_keep_alive_timeout(static_cast<time_t>(c.keep_alive_timeout_seconds));
  svr.set_keep_alive_max_count(static_cast<size_t>(c.keep_alive_max_count));
  Impl* mp = &m;
  svr.set_pre_routing_handler(
      [mp](const httplib::Request& req, httplib::Response& res) { return mp->PreRoute(req, res); });
  // cpp-httplib calls the logger after the response is written.
  svr.set_logger([mp](const httplib::Request& req, const httplib::Response& res) {
    mp->AfterWrite(req, res);
  });
  svr.set_expect_100_continue_handler([mp](const httplib::Request& req, httplib::Response& res) {
    return mp->Expect100(req, res);
  });
  auto dispatch = [mp](const httplib::Request& req, httplib::Response& res) {
    mp->Dispatch(req, res);
  };
  svr.Get(".*", dispatch);
  svr.Post(".*", dispatch);
  svr.Patch(".*", dispatch);
  svr.Put(".*", dispatch);
  svr.Delete(".*", dispatch);
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    // Called for every answer >= 400. The errors cpp-httplib raises itself (a request line
    // or header it cannot parse, a URI over its limit: the pre-routing hook never ran) end
    // the connection after the answer.
    if (ConnContext* cc = CurrentConn(); cc != nullptr && !cc->pre_routed) {
      cc->must_close = true;
      AnswerCloses(req);
    }
    if (!res.body.empty()) return;
    if (res.status == 413) {
      WriteError(res, MakeError(Wire::kPayloadTooLarge, "request body too large"));
    } else if (res.status == 404) {
      WriteError(res, MakeError(Wire::kNotFound, "no such route"));
    } else {
      HttpError e = MakeError(Wire::kBadRequest, "malformed request");
      e.status = res.status;  // cpp-httplib's own status (e.g. 414) with the generic code
      WriteError(res, e);
    }
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        WriteError(res, MakeError(Wire::kInternal, "internal error"));
      });

  if (!c.access_log.empty()) {
    auto log =
        AccessLog::Open(c.access_log, static_cast<size_t>(c.access_log_buffer_lines), &m.registry);
    if (!log.ok()) return log.status();
    m.access_log = std::move(*log);
  }
  absl::flat_hash_set<std::string> exempt(m.trusted_proxies.begin(), m.trusted_proxies.end());
  // An admitted connection goes to an I/O loop (round robin); a complete request to a
  // worker (io_loop.h, worker_pool.h).
  m.acceptor = std::make_unique<Acceptor>(
      &m.registry,
      [mp](const AcceptedConnection& ac) {
        const size_t i = mp->next_loop.fetch_add(1, std::memory_order_relaxed);
        mp->loops[i % mp->loops.size()]->Adopt(ac);
      },
      std::move(exempt));
  m.workers = std::make_unique<WorkerPool>(static_cast<size_t>(c.worker_threads_max));
  IoLoopOptions lo;
  lo.header_timeout_ms = c.header_timeout_ms;
  lo.header_bytes_max = static_cast<size_t>(c.header_bytes_max);
  lo.header_count_max = static_cast<size_t>(c.header_count_max);
  lo.body_timeout_ms = c.body_timeout_ms;
  lo.read_timeout_ms = c.read_timeout_ms;
  lo.write_timeout_ms = c.write_timeout_ms;
  lo.keep_alive_timeout_ms = c.keep_alive_timeout_seconds * 1000;
  lo.keep_alive_max_count = c.keep_alive_max_count;
  const size_t io_threads = c.io_threads > 0
                                ? static_cast<size_t>(c.io_threads)
                                : std::max<size_t>(1, std::thread::hardware_concurrency());
  for (size_t i = 0; i < io_threads; ++i) {
    m.loops.push_back(std::make_unique<IoLoop>(
        i, lo, mp, m.acceptor.get(), m.workers.get(),
        IoLoop::Counters{m.header_timeouts, m.body_timeouts, m.header_too_large}));
  }
  // One listener's spec from the config: its address and connection caps; both listeners
  // share the waiting-connection caps and deadline.
  const auto spec = [&c](const char* name, const std::string& h, int p, int64_t max,
                         int64_t per_client) {
    ListenerSpec l;
    l.name = name;
    l.host = h;
    l.port = p;
    l.backlog = static_cast<int>(c.listen_backlog);
    l.max_connections = static_cast<size_t>(max);
    l.max_connections_per_client = static_cast<size_t>(per_client);
    l.waiting_max = static_cast<size_t>(c.waiting_connections_max);
    l.waiting_per_client_max = static_cast<size_t>(c.waiting_connections_per_client);
    l.waiting_timeout_ms = c.header_timeout_ms;
    return l;
  };
  ListenerSpec main_spec =
      spec("main", host, port, c.max_connections, c.max_connections_per_client);
  main_spec.reserve = static_cast<size_t>(c.reserve_connections);
  auto main_index = m.acceptor->AddListener(main_spec);
  if (!main_index.ok()) return main_index.status();
  m.port = m.acceptor->port(*main_index);
  s->port_ = m.port;
  if (with_ops) {
    // The ops listener is for the gateway and the probes: reachable from the outside, so it
    // has its own per-client caps too, with the gateway's addresses exempt
    // (ops_clients_exempt).
    ListenerSpec ops_spec =
        spec("ops", ops_host, ops_port, c.ops_max_connections, c.ops_max_connections_per_client);
    for (absl::string_view a : absl::StrSplit(c.ops_clients_exempt, ',', absl::SkipWhitespace())) {
      ops_spec.cap_exempt.emplace_back(absl::StripAsciiWhitespace(a));
    }
    auto ops_index = m.acceptor->AddListener(ops_spec);
    if (!ops_index.ok()) return ops_index.status();
    m.ops_port = m.acceptor->port(*ops_index);
  }
  if (m.opts.config.public_url.empty()) m.opts.config.public_url = s->url();
  // Payments (issue 13): the gateways, and the reconciler over the stored attempts.
  m.gateways = m.opts.gateways;
  if (m.gateways == nullptr) {
    auto g = pay::MakeGateways(c, {}, nullptr, m.opts.clock, m.opts.random);
    if (!g.ok()) return g.status();
    m.owned_gateways = std::move(*g);
    m.gateways = m.owned_gateways.get();
  }
  pay::ReconcilerOptions ro;
  ro.after = absl::Seconds(c.reconcile_after_seconds);
  ro.tick = absl::Seconds(c.reconcile_tick_seconds);
  ro.window = absl::Seconds(c.reconcile_window_seconds);
  m.reconciler =
      std::make_unique<pay::Reconciler>(m.opts.shop, m.gateways, m.opts.clock, ro, &m.registry);
  if (absl::Status ls = m.reconciler->Load(); !ls.ok()) return ls;
  m.RegisterRoutes();
  m.reconciler->Start();
  if (m.opts.outbound != nullptr) {
    m.opts.outbound->RegisterMetrics(&m.registry);
    m.opts.outbound->SetPublicUrl(m.opts.config.public_url);
    m.opts.outbound->Start();
  }
  return s;
}

std::string Server::ops_url() const {
  if (impl_->ops_port == 0) return "";
  return absl::StrCat("http://", impl_->ops_host, ":", impl_->ops_port);
}

bool Server::Run() {
  {
    MutexLock l(&impl_->run_mu);
    impl_->run_state = Impl::RunState::kRunning;
  }
  for (auto& loop : impl_->loops) loop->Start();
  impl_->acceptor->Run();  // returns after the drain, when every connection was released
  for (auto& loop : impl_->loops) loop->Stop();
  MutexLock l(&impl_->run_mu);
  impl_->run_state = Impl::RunState::kDone;
  impl_->run_cv.SignalAll();
  return true;
}

void Server::RequestStop() {
  impl_->draining = true;
  impl_->acceptor->BeginDrain(impl_->opts.config.drain_timeout_ms);
}

void Server::Stop() {
  RequestStop();
  {
    MutexLock l(&impl_->run_mu);
    while (impl_->run_state == Impl::RunState::kRunning) impl_->run_cv.Wait(&impl_->run_mu);
  }
  // After the drain: no request adds an attempt any more; a query in progress finishes.
  if (impl_->reconciler != nullptr) impl_->reconciler->Stop();
  if (impl_->opts.outbound != nullptr) impl_->opts.outbound->Stop();
}

// --- per-request plumbing -------------------------------------------------------------------

Server::Impl::Impl(ServerOptions o)
    : opts(std::move(o)),
      // notify: never capped (money received)
      inflight(std::array<int64_t, kLimitedClasses>{
          opts.config.inflight_order_max, opts.config.inflight_read_max, 0,
          opts.config.inflight_admin_max, opts.config.inflight_page_max,
          opts.config.inflight_static_max}) {
  const Config& c = opts.config;
  const auto limit = [](int64_t rate, int64_t burst) {
    return RateLimit{static_cast<double>(rate), static_cast<double>(burst)};
  };
  const std::array<std::array<int64_t, 4>, kLimitedClasses> table = {{
      {c.rate_limit_order_per_second, c.rate_limit_order_burst,
       c.rate_limit_order_per_client_per_second, c.rate_limit_order_per_client_burst},
      {c.rate_limit_read_per_second, c.rate_limit_read_burst,
       c.rate_limit_read_per_client_per_second, c.rate_limit_read_per_client_burst},
      {c.rate_limit_notify_per_second, c.rate_limit_notify_burst,
       c.rate_limit_notify_per_client_per_second, c.rate_limit_notify_per_client_burst},
      {c.rate_limit_admin_per_second, c.rate_limit_admin_burst,
       c.rate_limit_admin_per_client_per_second, c.rate_limit_admin_per_client_burst},
      {c.rate_limit_page_per_second, c.rate_limit_page_burst,
       c.rate_limit_page_per_client_per_second, c.rate_limit_page_per_client_burst},
      {c.rate_limit_static_per_second, c.rate_limit_static_burst,
       c.rate_limit_static_per_client_per_second, c.rate_limit_static_per_client_burst},
  }};
  for (size_t i = 0; i < kLimitedClasses; ++i) {
    limiters[i] = std::make_unique<RateLimiter>(opts.clock, limit(table[i][0], table[i][1]),
                                                limit(table[i][2], table[i][3]),
                                                static_cast<size_t>(c.rate_limit_clients_max));
    rate_limited[i] = registry.GetCounter(
        "keyvend_http_rejected_total", "Requests refused by load protection, by route class.",
        {{"class", RouteClassName(static_cast<RouteClass>(i))}, {"reason", "rate_limited"}});
  }
  for (size_t i = 0; i < kLimitedClasses; ++i) {
    overloaded[i] = registry.GetCounter(
        "keyvend_http_rejected_total", "Requests refused by load protection, by route class.",
        {{"class", RouteClassName(static_cast<RouteClass>(i))}, {"reason", "overloaded"}});
  }
  const char* help = "Requests refused by load protection, by route class.";
  header_timeouts = registry.GetCounter("keyvend_http_rejected_total", help,
                                        {{"class", "none"}, {"reason", "header_timeout"}});
  body_timeouts = registry.GetCounter("keyvend_http_rejected_total", help,
                                      {{"class", "none"}, {"reason", "body_timeout"}});
  header_too_large = registry.GetCounter("keyvend_http_rejected_total", help,
                                         {{"class", "none"}, {"reason", "header_too_large"}});
  opts.random->Fill(reinterpret_cast<uint8_t*>(&request_salt), sizeof request_salt);
  for (absl::string_view p : absl::StrSplit(c.trusted_proxies, ',', absl::SkipWhitespace())) {
    trusted_proxies.insert(std::string(absl::StripAsciiWhitespace(p)));
  }
  in_flight = registry.GetGauge("keyvend_http_requests_in_flight", "Requests being served.");
}

int64_t Server::Impl::BodyLimitFor(BodyKind kind) const {
  const Config& c = opts.config;
  switch (kind) {
    case BodyKind::kNone:
      return 0;
    case BodyKind::kJson:
      return c.body_bytes_max;
    case BodyKind::kImport:
      return c.import_body_bytes_max;
  }
  return c.body_bytes_max;
}

namespace {
thread_local ConnContext* tls_conn = nullptr;

// splitmix64: distinct, unpredictable-looking ids from a counter and a random salt.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

ConnContext* CurrentConn() { return tls_conn; }

void Server::Impl::LogAccess(const ConnContext& cc, const std::string& method,
                             const std::string& client_ip, int status, int64_t bytes_in,
                             int64_t bytes_out) {
  if (access_log == nullptr) return;
  AccessRecord r;
  r.unix_ms = UnixMs(opts.clock->WallNow());
  r.request_id = cc.request_id;
  r.listener = cc.ops ? "ops" : "main";
  r.method = method;
  r.route =
      cc.route_index < router.routes().size() ? router.routes()[cc.route_index].name : "unmatched";
  r.status = status;
  r.latency_us = cc.start_ns > 0 ? (MonoNowNs() - cc.start_ns) / 1000 : 0;
  r.client_ip = client_ip;
  r.bytes_in = bytes_in;
  r.bytes_out = bytes_out;
  access_log->Append(r);
}

namespace {
// The answer to a refusal the I/O loop decided (its status, headers and body).
void CopyRefusal(const httplib::Response& from, httplib::Response& to) {
  to.status = from.status;
  to.headers = from.headers;
  to.body = from.body;
}

}  // namespace

CurrentConnScope::CurrentConnScope(ConnContext* cc) { tls_conn = cc; }
CurrentConnScope::~CurrentConnScope() { tls_conn = nullptr; }

void Server::Impl::OnHead(Conn& c) {
  ConnContext& cc = c.cc;
  CurrentConnScope scope(&cc);
  cc.start_ns = MonoNowNs();
  cc.route_index = unmatched_route;
  cc.screened = cc.refused = false;
  cc.route = nullptr;
  cc.params.clear();
  cc.body.clear();
  cc.refusal = httplib::Response();
  cc.precheck = cc.needs_worker = cc.pre_routed = cc.async_pending = cc.on_loop = false;
  const uint64_t id = Mix(request_salt + request_seq.fetch_add(1, std::memory_order_relaxed));
  absl::SNPrintF(cc.request_id, sizeof cc.request_id, "%016x", id);
  if (!c.head_parsed) {
    // cpp-httplib's parse on the worker answers it (400, 414); nothing after it is read.
    cc.must_close = true;
    return;
  }
  httplib::Request& req = c.head;
  req.remote_addr = c.ac.peer_ip;
  req.remote_port = c.ac.peer_port;
  cc.method = req.method;
  cc.path = req.path;
  c.expect_continue = req.get_header_value("Expect") == "100-continue";
  if (Screen(req, cc.refusal)) return;
  cc.precheck = cc.route->spec.exec == Exec::kPrecheck;
  if (req.has_header("Transfer-Encoding")) {
    c.chunked = true;
    c.decoder = ChunkedDecoder(static_cast<uint64_t>(BodyLimitFor(cc.route->spec.body)));
  } else {
    const std::string cl = req.get_header_value("Content-Length");
    c.body_left = cl.empty() ? 0 : std::strtoull(cl.c_str(), nullptr, 10);
  }
}

void Server::Impl::RefuseBody(Conn& c, BodyError why) {
  ConnContext& cc = c.cc;
  CurrentConnScope scope(&cc);
  const int64_t limit = cc.route != nullptr ? BodyLimitFor(cc.route->spec.body) : 0;
  HttpError e = MakeError(Wire::kBadRequest, "malformed chunked body");
  switch (why) {
    case BodyError::kTooLarge:
      e = MakeError(Wire::kPayloadTooLarge, absl::StrCat("request body over ", limit, " bytes"));
      break;
    case BodyError::kMalformed:
      break;
    case BodyError::kEndedEarly:
      e = MakeError(Wire::kBadRequest, "request body ended early");
      break;
    case BodyError::kTimeout:
      e = MakeError(Wire::kRequestTimeout, "request body not received in time");
      break;
  }
  cc.refusal = httplib::Response();
  cc.refusal.set_header("X-Request-Id", cc.request_id);
  RefuseBeforeBody(c.head, cc.refusal, e, true);
  cc.body.clear();
}

void Server::Impl::WriteRaw(Conn& c, int status, const char* reason, const char* what) {
  const Config& cfg = opts.config;
  HttpError e = MakeError(Wire::kRequestTimeout, "request header not received in time");
  if (std::string_view(what) == "header_bytes") {
    e = MakeError(Wire::kHeaderTooLarge,
                  absl::StrCat("request header over ", cfg.header_bytes_max, " bytes"));
  } else if (std::string_view(what) == "header_lines") {
    e = MakeError(Wire::kHeaderTooLarge,
                  absl::StrCat("more than ", cfg.header_count_max, " header lines"));
  }
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject().Field("code", e.code).Field("message", e.message);
  w.EndObject().EndObject();
  const std::string body = w.Take();
  absl::StrAppend(&c.out, "HTTP/1.1 ", status, " ", reason,
                  "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                  "Content-Length: ",
                  body.size(), "\r\n\r\n", body);
  requests->Observe(unmatched_route, status, 0);
  ConnContext& cc = c.cc;
  if (cc.start_ns == 0) cc.start_ns = MonoNowNs();
  cc.route_index = unmatched_route;
  LogAccess(cc, "", c.ac.peer_ip, status, 0, static_cast<int64_t>(body.size()));
}

void Server::Impl::Execute(Conn& c) {
  CurrentConnScope scope(&c.cc);
  const Config& cfg = opts.config;
  const ConnContext& cc = c.cc;
  if (c.head_parsed &&
      (cc.refused || cc.route == nullptr || cc.route->spec.exec != Exec::kEngine)) {
    ExecuteDirect(c);
    // Most answers leave here whole; the loop writes what the socket would not take (and
    // all of an answer given on the loop). Handed over: the connection is not ours now.
    if (!cc.on_loop && !cc.needs_worker && !cc.async_pending) SendWithoutWaiting(c);
    return;
  }
  WorkerStream s(c.head_bytes, c.ac.fd, &c.out, &c.out_pos, c.ac.peer_ip, c.ac.peer_port,
                 c.ac.local_ip, c.ac.local_port, cfg.write_timeout_ms, c.expect_continue,
                 /*may_block=*/!c.cc.on_loop);
  bool closed = false;
  c.worker_ok = svr.Serve(s, c.close_after, closed, nullptr);
  c.worker_closed = closed;
  // On a worker most responses leave here whole; the loop writes what the socket would
  // not take yet (and everything of a request run on the loop).
  if (!c.cc.on_loop) s.SendNoWait();
  c.write_failed = s.write_failed();
}

void Server::Impl::ExecuteDirect(Conn& c) {
  // The head the loop parsed and screened is the request (response_writer.h: why not
  // cpp-httplib's engine here).
  ConnContext& cc = c.cc;
  httplib::Request& req = c.head;
  httplib::Response res;
  cc.pre_routed = true;
  if (cc.refused) {
    CopyRefusal(cc.refusal, res);
    requests->Observe(cc.route_index, res.status, 0);
  } else {
    res.set_header("X-Request-Id", cc.request_id);
    req.body = cc.precheck ? cc.body : std::move(cc.body);
    Dispatch(req, res);
    // Not answered here: a worker runs it from the start, or the committer finishes it.
    if (cc.needs_worker || cc.async_pending) return;
  }
  Answer(c, res);
}

void Server::Impl::Answer(Conn& c, httplib::Response& res) {
  const httplib::Request& req = c.head;
  const std::string connection = req.get_header_value("Connection");
  const bool close = c.close_after || c.cc.must_close || connection == "close" ||
                     (req.version == "HTTP/1.0" && connection != "Keep-Alive");
  AppendResponse(req, res, close, opts.config.keep_alive_timeout_seconds,
                 opts.config.keep_alive_max_count, &c.out);
  AfterWrite(req, res);
  c.worker_ok = true;
  c.worker_closed = close;
  c.write_failed = false;
}

void Server::Impl::SendWithoutWaiting(Conn& c) {
  c.write_failed = SendPending(c.ac.fd, &c.out, &c.out_pos) < 0;
}

bool Server::Impl::RunsInline(const Conn& c) const {
  const ConnContext& cc = c.cc;
  // Refusals and what cpp-httplib answers itself are written at once, as are the routes
  // whose handlers only read memory.
  if (!c.head_parsed || cc.refused || cc.route == nullptr) return true;
  return cc.route->spec.exec != Exec::kWorker;
}

void Server::Impl::AfterWrite(const httplib::Request& req, const httplib::Response& res) {
  ConnContext* cc = CurrentConn();
  if (cc == nullptr || cc->needs_worker) return;
  if (access_log != nullptr) {  // the client address costs a lookup: only when it is logged
    LogAccess(*cc, req.method, ClientIp(req), res.status, static_cast<int64_t>(req.body.size()),
              static_cast<int64_t>(res.body.size()));
  }
  if (res.status == 413 && res.get_header_value("Connection") == "close") {
    // The refused body was never read and must never be parsed as further requests.
    cc->must_close = true;
  }
}

namespace {

// A request header's value as a lowercase token list without spaces ("gzip, br" → "gzip,br").
std::string LowerNoSpace(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    if (ch != ' ' && ch != '\t') out.push_back(absl::ascii_tolower(static_cast<unsigned char>(ch)));
  }
  return out;
}

bool AllDigits(const std::string& v) {
  if (v.empty() || v.size() > 18) return false;  // 18 digits: < 2^63, no overflow
  for (char ch : v) {
    if (ch < '0' || ch > '9') return false;
  }
  return true;
}

}  // namespace

void Server::Impl::RefuseBeforeBody(const httplib::Request& req, httplib::Response& res,
                                    const HttpError& e, bool close) {
  WriteError(res, e);
  ConnContext* cc = CurrentConn();
  if (cc != nullptr) cc->refused = true;
  if (!close) return;
  // The body was not read and must never be parsed as the next request: the answer says
  // so and the connection ends after it (cpp-httplib writes "Connection: close" when the
  // request asked for it, so the request is told to).
  res.set_header("Connection", "close");
  if (cc != nullptr) cc->must_close = true;
  AnswerCloses(req);
}

bool Server::Impl::Screen(const httplib::Request& req, httplib::Response& res) {
  ConnContext* cc = CurrentConn();
  if (cc != nullptr && cc->screened) return cc->refused;  // Expect: 100-continue came first
  if (cc != nullptr) {
    cc->screened = true;
    res.set_header("X-Request-Id", cc->request_id);
  }
  // --- framing (RFC 9112 §6): one unambiguous way to find the body's end, or no body ---
  const size_t te_count = req.get_header_value_count("Transfer-Encoding");
  const size_t cl_count = req.get_header_value_count("Content-Length");
  const bool chunked = te_count > 0;
  const std::string cl = req.get_header_value("Content-Length");
  const bool body_declared = chunked || (cl_count > 0 && cl != "0");
  // Repeated Content-Length lines with one value are one length (RFC 9110 §8.6).
  bool lengths_differ = false;
  for (size_t i = 1; i < cl_count; ++i) {
    lengths_differ = lengths_differ || req.get_header_value("Content-Length", i) != cl;
  }
  if (te_count > 1 || lengths_differ || (te_count > 0 && cl_count > 0)) {
    // Two framings (request smuggling's raw material): refuse, never guess.
    RefuseBeforeBody(
        req, res,
        MakeError(Wire::kBadRequest, "a request has one Content-Length or one Transfer-Encoding"),
        true);
    return true;
  }
  if (chunked && LowerNoSpace(req.get_header_value("Transfer-Encoding")) != "chunked") {
    RefuseBeforeBody(
        req, res, MakeError(Wire::kNotImplemented, "the only transfer coding accepted is chunked"),
        true);
    return true;
  }
  if (cl_count > 0 && !AllDigits(cl)) {
    RefuseBeforeBody(req, res, MakeError(Wire::kBadRequest, "malformed Content-Length"), true);
    return true;
  }
  // --- content coding: never inflate a client's body (review finding 1) ---
  const size_t ce_count = req.get_header_value_count("Content-Encoding");
  for (size_t i = 0; i < ce_count; ++i) {
    const std::string ce = LowerNoSpace(req.get_header_value("Content-Encoding", i));
    if (!ce.empty() && ce != "identity") {
      RefuseBeforeBody(req, res,
                       MakeError(Wire::kUnsupportedMediaType,
                                 "request bodies are accepted only without Content-Encoding"),
                       true);
      return true;
    }
  }
  // --- the route, its class's rate limit, admin auth: all before the body ---
  bool path_known = false;
  std::vector<std::string> params;
  const Route* r = router.Match(req.method, req.path, &params, &path_known);
  if (r != nullptr && cc != nullptr && cc->ops && r->spec.cls != RouteClass::kOps &&
      r->spec.cls != RouteClass::kNotify) {
    r = nullptr;  // the ops listener serves only the notify and the ops endpoints
    path_known = false;
  }
  if (r == nullptr) {
    // Probing unknown paths is not free either: the page class's rate limit first.
    const std::optional<HttpError> limited = Throttle(RouteClass::kPage, req);
    RefuseBeforeBody(req, res,
                     limited      ? *limited
                     : path_known ? MakeError(Wire::kNotFound, "no such route for this method")
                                  : MakeError(Wire::kNotFound, "no such route"),
                     body_declared);
    return true;
  }
  if (cc != nullptr) cc->route_index = static_cast<size_t>(r - router.routes().data());
  if (const std::optional<HttpError> limited = Throttle(r->spec.cls, req)) {
    RefuseBeforeBody(req, res, *limited, body_declared);
    return true;
  }
  if (r->spec.auth == Auth::kAdmin && !AdminAuthorized(req)) {
    RefuseBeforeBody(req, res, MakeError(Wire::kUnauthorized, "admin token required"),
                     body_declared);
    return true;
  }
  if (body_declared) {
    if (r->spec.body == BodyKind::kNone) {
      RefuseBeforeBody(req, res, MakeError(Wire::kBadRequest, "this route takes no body"), true);
      return true;
    }
    const int64_t limit = BodyLimitFor(r->spec.body);
    if (!chunked && limit > 0 && std::strtoll(cl.c_str(), nullptr, 10) > limit) {
      // Refused on the declared length, before one byte of the body is read.
      RefuseBeforeBody(
          req, res,
          MakeError(Wire::kPayloadTooLarge, absl::StrCat("request body over ", limit, " bytes")),
          true);
      return true;
    }
  }
  if (cc != nullptr) {
    cc->route = r;
    cc->params = std::move(params);
  }
  return false;
}

httplib::Server::HandlerResponse Server::Impl::PreRoute(const httplib::Request& req,
                                                        httplib::Response& res) {
  using HR = httplib::Server::HandlerResponse;
  ConnContext* cc = CurrentConn();
  if (cc == nullptr) {  // every request is run by Execute; never here
    WriteError(res, MakeError(Wire::kInternal, "internal error"));
    return HR::Handled;
  }
  cc->pre_routed = true;
  if (cc->refused) {
    CopyRefusal(cc->refusal, res);
    if (cc->must_close) AnswerCloses(req);
    requests->Observe(cc->route_index, res.status, 0);
    return HR::Handled;
  }
  if (!cc->screened || req.method != cc->method || req.path != cc->path) {
    // cpp-httplib read the head differently from the loop that screened it: never serve a
    // request on a decision taken about another one.
    cc->must_close = true;
    AnswerCloses(req);
    WriteError(res, MakeError(Wire::kBadRequest, "malformed request"));
    requests->Observe(cc->route_index, res.status, 0);
    return HR::Handled;
  }
  res.set_header("X-Request-Id", cc->request_id);
  // The body was read by the loop, bounded by the route's limit (body_reader.h). A request
  // with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 §6.3);
  // cpp-httplib 0.11.4 would read until the peer closes. Either way the engine is told
  // there is nothing left to read.
  auto& mutable_req = const_cast<httplib::Request&>(req);
  mutable_req.body = std::move(cc->body);
  cc->body.clear();
  mutable_req.headers.erase("Transfer-Encoding");
  mutable_req.headers.erase("Content-Length");
  mutable_req.set_header("Content-Length", "0");
  return HR::Unhandled;
}

int Server::Impl::Expect100(const httplib::Request& req, httplib::Response& res) {
  // A refusal is answered instead of "100 Continue" (the loop never asked for the body);
  // otherwise the loop already said "100 Continue" if the body had to be waited for, and
  // the worker's stream drops the engine's.
  ConnContext* cc = CurrentConn();
  if (cc != nullptr) cc->pre_routed = true;
  if (cc != nullptr && cc->refused) {
    CopyRefusal(cc->refusal, res);
    if (cc->must_close) AnswerCloses(req);
    requests->Observe(cc->route_index, res.status, 0);
    return res.status;
  }
  return 100;
}

void Server::Impl::Dispatch(const httplib::Request& req, httplib::Response& res) {
  const int64_t start = opts.clock->MonoNowNs();
  ConnContext* cc = CurrentConn();
  const Route* r = cc != nullptr ? cc->route : nullptr;
  if (r == nullptr) {  // PreRoute answers every request it does not pass on; never here
    WriteError(res, MakeError(Wire::kInternal, "internal error"));
    return;
  }
  const size_t route_index = static_cast<size_t>(r - router.routes().data());
  {
    // Both released on every way out, a throwing handler included.
    GaugeHold busy(in_flight);
    std::optional<InflightSlots::Guard> slot;
    const bool capped = r->spec.cls != RouteClass::kOps;
    const size_t i = static_cast<size_t>(r->spec.cls);
    if (capped && !inflight.TryTake(i)) {
      overloaded[i]->Inc();
      WriteError(res, MakeError(Wire::kOverloaded, "too many requests in progress; retry later"));
    } else {
      if (capped) slot.emplace(&inflight, i);
      Ctx ctx{req, res, cc->params};
      r->handler(ctx);
    }
  }
  // Not answered here: the request runs again on a worker, or the committer finishes it
  // (and owns the connection already: nothing more is touched).
  if (cc->needs_worker || cc->async_pending) return;
  cc->route_index = route_index;
  if (draining || cc->one_request) {
    // The connection ends after this answer: say so (cpp-httplib writes "Connection:
    // close" when the request asked for it).
    cc->must_close = true;
    AnswerCloses(req);
  }
  requests->Observe(route_index, res.status,
                    static_cast<double>(opts.clock->MonoNowNs() - start) / 1e9);
}

std::string Server::Impl::ClientIp(const httplib::Request& req) const {
  if (trusted_proxies.empty() || !trusted_proxies.contains(req.remote_addr)) {
    return req.remote_addr;
  }
  const std::string xff = req.get_header_value("X-Forwarded-For");
  std::vector<std::string> hops = absl::StrSplit(xff, ',', absl::SkipWhitespace());
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    std::string hop(absl::StripAsciiWhitespace(*it));
    if (!trusted_proxies.contains(hop)) return hop;
  }
  return hops.empty() ? req.remote_addr : std::string(absl::StripAsciiWhitespace(hops.front()));
}

std::optional<HttpError> Server::Impl::Throttle(RouteClass cls, const httplib::Request& req) {
  if (cls == RouteClass::kOps) return std::nullopt;
  const size_t i = static_cast<size_t>(cls);
  const int64_t wait_ns = limiters[i]->Admit(ClientIp(req));
  if (wait_ns == 0) return std::nullopt;
  rate_limited[i]->Inc();
  return MakeError(Wire::kRateLimited, "too many requests; retry later",
                   (wait_ns + 999'999'999) / 1'000'000'000);
}

bool Server::Impl::AdminAuthorized(const httplib::Request& req) const {
  if (opts.admin_token.empty()) return false;
  // By digest in constant time: neither the token's length nor where a guess first
  // differs shows in the time taken (review finding 9a).
  return SecretEquals(req.get_header_value("Authorization"), "Bearer " + opts.admin_token);
}

}  // namespace kv::http
