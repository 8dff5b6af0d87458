// The HTTP server: cpp-httplib plumbing (threads, timeouts, limits, backlog), the router,
// error mapping and the ops endpoints. The API's handlers are in api.cc.
#include "http/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "http/server_internal.h"

namespace kv::http {

// --- errors -----------------------------------------------------------------------------

HttpError ErrorFor(Refusal r, std::string message) {
  int status = 400;
  switch (r) {
    case Refusal::kBadRequest:
    case Refusal::kInvalidQuantity: status = 400; break;
    case Refusal::kProductNotFound:
    case Refusal::kOrderNotFound:
    case Refusal::kNotFound: status = 404; break;
    case Refusal::kOutOfStock:
    case Refusal::kProductInactive:
    case Refusal::kQuantityLimit:
    case Refusal::kInvalidState:
    case Refusal::kIdempotencyConflict: status = 409; break;
    case Refusal::kPendingLimit: status = 429; break;
  }
  return HttpError{status, std::string(RefusalCode(r)), std::move(message)};
}

HttpError ErrorFor(const absl::Status& s) {
  // Infrastructure failures: never echo internals that could hold data; the code says what
  // the client can do (retry later).
  if (absl::IsUnavailable(s)) {
    return HttpError{503, "storage_unavailable", "storage is unavailable; retry later"};
  }
  std::fprintf(stderr, "keyvend: internal error: %s\n", std::string(s.message()).c_str());
  return HttpError{500, "internal", "internal error"};
}

void WriteError(httplib::Response& res, const HttpError& e) {
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject().Field("code", e.code).Field("message", e.message);
  w.EndObject().EndObject();
  res.status = e.status;
  if (e.status == 429 || e.status == 503) {
    res.set_header("Retry-After", std::to_string(std::max<int64_t>(1, e.retry_after_seconds)));
  }
  res.set_content(w.Take(), "application/json");
}

void WriteJson(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.set_content(std::move(body), "application/json");
}

// --- the router ---------------------------------------------------------------------------

const char* RouteClassName(RouteClass c) {
  switch (c) {
    case RouteClass::kOrder: return "order";
    case RouteClass::kRead: return "read";
    case RouteClass::kNotify: return "notify";
    case RouteClass::kAdmin: return "admin";
    case RouteClass::kPage: return "page";
    case RouteClass::kOps: return "ops";
  }
  return "page";
}

void Router::Add(const char* method, const char* pattern, bool admin, Handler h) {
  Route r;
  const std::string key = absl::StrCat(method, " ", pattern);
  if (admin) {
    r.cls = RouteClass::kAdmin;
  } else if (key == "GET /healthz" || key == "GET /readyz" || key == "GET /metrics") {
    r.cls = RouteClass::kOps;
  } else if (key == "POST /api/v1/orders") {
    r.cls = RouteClass::kOrder;
  } else if (key == "GET /api/v1/orders/{order_id}" || key == "POST /api/v1/orders/lookup") {
    r.cls = RouteClass::kRead;
  } else if (key == "POST /api/v1/payments/notify") {
    r.cls = RouteClass::kNotify;
  }
  r.method = method;
  r.name = absl::StrCat(method, " ", pattern);
  r.admin = admin;
  r.handler = std::move(h);
  for (absl::string_view seg : absl::StrSplit(absl::string_view(pattern), '/', absl::SkipEmpty())) {
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
    if (r.method == method) return &r;
  }
  return nullptr;
}

// --- the connection queue -------------------------------------------------------------------

namespace {

// cpp-httplib serves one connection per pool thread for the connection's whole life; the
// pool is sized to max_connections. Each task is one connection: counting them here gives
// the open-connections gauge.
class ConnectionPool final : public httplib::ThreadPool {
 public:
  ConnectionPool(size_t n, Gauge* open) : httplib::ThreadPool(n), open_(open) {}
  void enqueue(std::function<void()> fn) override {
    Gauge* g = open_;
    g->Inc();
    httplib::ThreadPool::enqueue([fn = std::move(fn), g] {
      fn();
      g->Dec();
    });
  }

 private:
  Gauge* open_;
};

}  // namespace

// Shuts the read side of this server's accepted connections for which shut(peer address,
// peer port) is true. cpp-httplib 0.11.4 gives handlers no socket and decides keep-alive
// before routing, and its stop() waits for every idle keep-alive connection to time out;
// reading EOF ends a connection right after its current response instead. Never call it on
// a connection whose response is not written yet: cpp-httplib then sees a dead peer and
// drops the response. The sockets are found through /proc/self/fd by their addresses (the
// owning worker thread keeps the fd open until it closes it).
void ShutdownConnections(int local_port,
                         const std::function<bool(const std::string&, int)>& shut) {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd < 0) continue;
    sockaddr_storage local{}, peer{};
    socklen_t llen = sizeof(local), plen = sizeof(peer);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &llen) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &plen) != 0) {
      continue;  // not a connected socket
    }
    auto port_of = [](const sockaddr_storage& a) {
      if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
      if (a.ss_family == AF_INET6) {
        return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
      }
      return static_cast<uint16_t>(0);
    };
    if (port_of(local) != local_port) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    const void* addr = peer.ss_family == AF_INET
                           ? static_cast<const void*>(&reinterpret_cast<sockaddr_in&>(peer).sin_addr)
                           : static_cast<const void*>(&reinterpret_cast<sockaddr_in6&>(peer).sin6_addr);
    inet_ntop(peer.ss_family, addr, buf, sizeof buf);
    if (!shut(buf, port_of(peer))) continue;
    shutdown(static_cast<int>(fd), SHUT_RD);
  }
  closedir(d);
}

// --- server lifecycle -----------------------------------------------------------------------

void ApplyServerSettings(httplib::Server& svr, const Config& c, Gauge* open_connections,
                         int* listen_fd) {
  const size_t threads = static_cast<size_t>(c.max_connections);
  Gauge* open = open_connections;
  svr.new_task_queue = [threads, open] { return new ConnectionPool(threads, open); };
  svr.set_tcp_nodelay(true);
  svr.set_keep_alive_max_count(static_cast<size_t>(c.keep_alive_max_count));
  svr.set_keep_alive_timeout(static_cast<time_t>(c.keep_alive_timeout_seconds));
  svr.set_read_timeout(c.read_timeout_ms / 1000, (c.read_timeout_ms % 1000) * 1000);
  svr.set_write_timeout(c.write_timeout_ms / 1000, (c.write_timeout_ms % 1000) * 1000);
  // The largest body any route accepts; each route's own limit is enforced from
  // Content-Length before the body is read (pre-routing / Expect: 100-continue).
  const int64_t max_body = std::max(c.body_bytes_max, c.import_body_bytes_max);
  svr.set_payload_max_length(max_body == 0 ? std::numeric_limits<size_t>::max()
                                           : static_cast<size_t>(max_body));
  svr.set_socket_options([listen_fd](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listen_fd = sock;
  });
}

void RaiseBacklog(int listen_fd, const Config& c) {
  // cpp-httplib 0.11 listens with a backlog of 5 and has no setter: listen() again on the
  // same socket raises it (DEPS.md item 2).
  if (listen_fd >= 0) ::listen(listen_fd, static_cast<int>(c.listen_backlog));
}

Server::~Server() {
  if (impl_ != nullptr) Stop();
}

std::string Server::url() const { return absl::StrCat("http://", impl_->host, ":", port_); }

absl::StatusOr<std::unique_ptr<Server>> Server::Bind(ServerOptions opts) {
  if (!opts.config.payment_sandbox && opts.config.pay_url_template.empty()) {
    return absl::InvalidArgumentError(
        "no way to pay: set pay_url_template (your gateway's payment page) or enable "
        "--payment-sandbox");
  }
  std::string host;
  int port = 0;
  if (!ParseHostPort(opts.config.listen, &host, &port)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid listen address ", opts.config.listen));
  }
  std::unique_ptr<Server> s(new Server());
  s->impl_ = std::make_unique<Impl>(std::move(opts));
  Impl& m = *s->impl_;
  m.host = host;
  const Config& c = m.opts.config;
  httplib::Server& svr = m.svr;

  ApplyServerSettings(svr, c, m.open_connections, &m.listen_fd);
  Impl* mp = &m;
  svr.set_pre_routing_handler([mp](const httplib::Request& req, httplib::Response& res) {
    return mp->PreRoute(req, res);
  });
  // cpp-httplib calls the logger after the response is written.
  svr.set_logger([mp](const httplib::Request& req, const httplib::Response& res) {
    mp->AfterWrite(req, res);
  });
  svr.set_expect_100_continue_handler(
      [mp](const httplib::Request& req, httplib::Response& res) { return mp->Expect100(req, res); });
  auto dispatch = [mp](const httplib::Request& req, httplib::Response& res) {
    mp->Dispatch(req, res);
  };
  for (const char* method : {"GET", "POST", "PATCH", "PUT", "DELETE"}) {
    if (std::string(method) == "GET") svr.Get(".*", dispatch);
    if (std::string(method) == "POST") svr.Post(".*", dispatch);
    if (std::string(method) == "PATCH") svr.Patch(".*", dispatch);
    if (std::string(method) == "PUT") svr.Put(".*", dispatch);
    if (std::string(method) == "DELETE") svr.Delete(".*", dispatch);
  }
  svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    // Errors cpp-httplib raises itself (malformed request line, body over the global cap).
    if (!res.body.empty()) return;
    if (res.status == 413) {
      WriteError(res, HttpError{413, "payload_too_large", "request body too large"});
    } else if (res.status == 404) {
      WriteError(res, HttpError{404, "not_found", "no such route"});
    } else {
      WriteError(res, HttpError{res.status, "bad_request", "malformed request"});
    }
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                               std::exception_ptr) {
    WriteError(res, HttpError{500, "internal", "internal error"});
  });

  if (port == 0) {
    port = svr.bind_to_any_port(host);
    if (port <= 0) return absl::UnavailableError(absl::StrCat("cannot bind ", host, ":0"));
  } else if (!svr.bind_to_port(host, port)) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", host, ":", port));
  }
  RaiseBacklog(m.listen_fd, c);
  s->port_ = port;
  m.port = port;
  if (m.opts.config.public_url.empty()) m.opts.config.public_url = s->url();
  m.RegisterRoutes();
  return s;
}

bool Server::Run() {
  impl_->run_called = true;
  if (impl_->stop_requested) return true;  // stopped before it began serving
  const bool ok = impl_->svr.listen_after_bind();
  impl_->run_done = true;
  return ok;
}

void Server::Stop() {
  impl_->draining = true;
  impl_->stop_requested = true;
  // A signal can arrive between the "listening" line and Run() entering its accept loop:
  // cpp-httplib's stop() does nothing before that, so wait until it is running (or done).
  if (impl_->run_called) {
    for (int i = 0; i < 5000 && !impl_->svr.is_running() && !impl_->run_done; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (impl_->svr.is_running()) {
    impl_->svr.stop();  // closes the listener; workers finish their current requests
    // Idle keep-alive connections end now; busy ones after their response is written.
    Impl* m = impl_.get();
    ShutdownConnections(port_, [m](const std::string& addr, int port) {
      MutexLock l(&m->busy_mu);
      return !m->busy.contains(absl::StrCat(addr, ":", port));
    });
  }
}

// --- per-request plumbing -------------------------------------------------------------------

Server::Impl::Impl(ServerOptions o) : opts(std::move(o)) {
  open_connections = registry.GetGauge("keyvend_http_open_connections",
                                       "HTTP connections being served.");
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
  }};
  for (size_t i = 0; i < kLimitedClasses; ++i) {
    limiters[i] = std::make_unique<RateLimiter>(
        opts.clock, limit(table[i][0], table[i][1]), limit(table[i][2], table[i][3]),
        static_cast<size_t>(c.rate_limit_clients_max));
    rate_limited[i] = registry.GetCounter(
        "keyvend_http_rejected_total", "Requests refused by load protection, by route class.",
        {{"class", RouteClassName(static_cast<RouteClass>(i))}, {"reason", "rate_limited"}});
  }
  for (absl::string_view p : absl::StrSplit(c.trusted_proxies, ',', absl::SkipWhitespace())) {
    trusted_proxies.insert(std::string(absl::StripAsciiWhitespace(p)));
  }
  in_flight = registry.GetGauge("keyvend_http_requests_in_flight", "Requests being served.");
}

int64_t Server::Impl::BodyLimitFor(const httplib::Request& req) const {
  const Config& c = opts.config;
  // Only the key import takes large bodies.
  const bool import = req.method == "POST" && req.path.size() > 5 &&
                      req.path.compare(req.path.size() - 5, 5, "/keys") == 0;
  return import ? c.import_body_bytes_max : c.body_bytes_max;
}

std::string PeerKey(const httplib::Request& req) {
  return absl::StrCat(req.remote_addr, ":", req.remote_port);
}

void Server::Impl::AfterWrite(const httplib::Request& req, const httplib::Response& res) {
  {
    MutexLock l(&busy_mu);
    auto it = busy.find(PeerKey(req));
    if (it != busy.end() && --it->second <= 0) busy.erase(it);
  }
  if (res.status == 413 && res.get_header_value("Connection") == "close") {
    // The refused body was never read and must never be parsed as further requests:
    // the response is written, so end the connection now.
    ShutdownConnections(port, [&req](const std::string& addr, int p) {
      return addr == req.remote_addr && p == req.remote_port;
    });
  }
  if (draining) {
    // Draining: this connection's last response is out.
    ShutdownConnections(port, [&req](const std::string& addr, int p) {
      return addr == req.remote_addr && p == req.remote_port;
    });
  }
}

httplib::Server::HandlerResponse Server::Impl::PreRoute(const httplib::Request& req,
                                                        httplib::Response& res) {
  {
    MutexLock l(&busy_mu);
    ++busy[PeerKey(req)];
  }
  // RFC 9112 §6.3: a request with neither Content-Length nor Transfer-Encoding has an empty
  // body. cpp-httplib 0.11.4 would instead read until the peer closes (a bodyless
  // `curl -X POST` then waits for the read timeout), so say so before it reads.
  if ((req.method == "POST" || req.method == "PATCH" || req.method == "PUT") &&
      !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
    const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
  }
  if (RefuseOversized(req, res)) return httplib::Server::HandlerResponse::Handled;
  return httplib::Server::HandlerResponse::Unhandled;
}

bool Server::Impl::RefuseOversized(const httplib::Request& req, httplib::Response& res) {
  const int64_t limit = BodyLimitFor(req);
  if (limit > 0 && req.has_header("Content-Length")) {
    const std::string v = req.get_header_value("Content-Length");
    const unsigned long long n = std::strtoull(v.c_str(), nullptr, 10);
    if (n > static_cast<unsigned long long>(limit)) {
      // Refused on the declared length, before one byte of the body is read; the
      // connection is closed because the unread body would follow.
      WriteError(res, HttpError{413, "payload_too_large",
                                absl::StrCat("request body over ", limit, " bytes")});
      res.set_header("Connection", "close");  // the logger ends the connection (AfterWrite)
      // cpp-httplib adds "Keep-Alive" to the answer unless the request said close.
      auto& mutable_req = const_cast<httplib::Request&>(req);
      mutable_req.headers.erase("Connection");
      mutable_req.set_header("Connection", "close");
      requests->Observe(unmatched_route, 413, 0);
      return true;
    }
  }
  return false;
}

int Server::Impl::Expect100(const httplib::Request& req, httplib::Response& res) {
  if (RefuseOversized(req, res)) return 413;
  return 100;
}

void Server::Impl::Dispatch(const httplib::Request& req, httplib::Response& res) {
  const int64_t start = opts.clock->MonoNowNs();
  in_flight->Inc();
  std::vector<std::string> params;
  bool path_known = false;
  const Route* r = router.Match(req.method, req.path, &params, &path_known);
  size_t route_index = unmatched_route;
  if (r == nullptr) {
    if (Admit(RouteClass::kPage, req, res)) {  // probing unknown paths is not free either
      WriteError(res, path_known ? HttpError{404, "not_found", "no such route for this method"}
                                 : HttpError{404, "not_found", "no such route"});
    }
  } else if (!Admit(r->cls, req, res)) {
    route_index = static_cast<size_t>(r - router.routes().data());
  } else {
    route_index = static_cast<size_t>(r - router.routes().data());
    const int64_t body_limit = BodyLimitFor(req);
    if (r->admin && !AdminAuthorized(req)) {
      WriteError(res, HttpError{401, "unauthorized", "admin token required"});
    } else if (body_limit > 0 && static_cast<int64_t>(req.body.size()) > body_limit) {
      WriteError(res, HttpError{413, "payload_too_large",
                                absl::StrCat("request body over ", body_limit, " bytes")});
    } else {
      Ctx ctx{req, res, params};
      r->handler(ctx);
    }
  }
  in_flight->Dec();
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

bool Server::Impl::Admit(RouteClass cls, const httplib::Request& req, httplib::Response& res) {
  if (cls == RouteClass::kOps) return true;
  const size_t i = static_cast<size_t>(cls);
  const int64_t wait_ns = limiters[i]->Admit(ClientIp(req));
  if (wait_ns == 0) return true;
  rate_limited[i]->Inc();
  WriteError(res, HttpError{429, "rate_limited", "too many requests; retry later",
                            (wait_ns + 999'999'999) / 1'000'000'000});
  return false;
}

bool Server::Impl::AdminAuthorized(const httplib::Request& req) const {
  const std::string& token = opts.admin_token;
  if (token.empty()) return false;
  const std::string h = req.get_header_value("Authorization");
  const std::string want = "Bearer " + token;
  if (h.size() != want.size()) return false;
  return CRYPTO_memcmp(h.data(), want.data(), want.size()) == 0;
}

}  // namespace kv::http
