#include "http/acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "http/io_loop.h"

namespace kv::http {
namespace {

// The canned refusal: written without reading the request (admission happens at accept).
const std::string& Refusal() {
  static const std::string* r = [] {
    const std::string body =
        "{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections; retry "
        "later\"}}";
    return new std::string(
        absl::StrCat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Retry-After: 1\r\nConnection: close\r\nContent-Length: ",
                     body.size(), "\r\n\r\n", body));
  }();
  return *r;
}

bool AddressOf(const sockaddr_storage& a, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &v4.sin_addr, buf, sizeof buf);
    *port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &v6.sin6_addr, buf, sizeof buf);
    *port = ntohs(v6.sin6_port);
  } else {
    return false;
  }
  *ip = buf;
  return true;
}

}  // namespace

Acceptor::Acceptor(Registry* metrics, ServeFn serve, absl::flat_hash_set<std::string> cap_exempt)
    : metrics_(metrics), serve_(std::move(serve)), cap_exempt_(std::move(cap_exempt)) {
  if (pipe2(wake_pipe_, O_NONBLOCK | O_CLOEXEC) != 0) wake_pipe_[0] = wake_pipe_[1] = -1;
  drain_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ >= 0 && wake_pipe_[0] >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_pipe_[0];
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_pipe_[0], &ev);
  }
}

Acceptor::~Acceptor() {
  BeginDrain(0);
  for (auto& l : listeners_) {
    if (l->fd >= 0) close(l->fd);
  }
  for (const auto& [fd, p] : parked_) close(fd);
  parked_.clear();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  for (int fd : wake_pipe_) {
    if (fd >= 0) close(fd);
  }
  if (drain_fd_ >= 0) close(drain_fd_);
}

absl::StatusOr<size_t> Acceptor::AddListener(const ListenerSpec& spec) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(spec.port);
  if (getaddrinfo(spec.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve listen host ", spec.host));
  }
  int fd = -1;
  std::string error;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, spec.backlog) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", spec.host, ":", spec.port, ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  std::string ip;
  int bound_port = 0;
  AddressOf(bound, &ip, &bound_port);

  auto l = std::make_unique<Listener>();
  l->spec = spec;
  l->fd = fd;
  l->port = bound_port;
  const Labels by_listener = {{"listener", spec.name}};
  l->open_gauge = metrics_->GetGauge("keyvend_http_open_connections",
                                     "HTTP connections being served, by listener.", by_listener);
  l->accepted = metrics_->GetCounter("keyvend_http_connections_accepted_total",
                                     "HTTP connections admitted, by listener.", by_listener);
  const char* help = "HTTP connections refused at accept with a 503, by listener and reason.";
  l->rejected_cap = metrics_->GetCounter("keyvend_http_connections_rejected_total", help,
                                         {{"listener", spec.name}, {"reason", "max_connections"}});
  l->accept_errors = metrics_->GetCounter(
      "keyvend_http_accept_errors_total",
      "accept() failures for lack of descriptors or memory (the connection waits in the "
      "backlog), by listener.",
      by_listener);
  l->rejected_client =
      metrics_->GetCounter("keyvend_http_connections_rejected_total", help,
                           {{"listener", spec.name}, {"reason", "max_connections_per_client"}});
  l->rejected_waiting_client =
      metrics_->GetCounter("keyvend_http_connections_rejected_total", help,
                           {{"listener", spec.name}, {"reason", "waiting_per_client"}});
  l->waiting_gauge = metrics_->GetGauge(
      "keyvend_http_waiting_connections",
      "Connections accepted that have not sent a byte yet (no slot, no thread), by listener.",
      by_listener);
  const char* dropped_help =
      "Connections closed while waiting for their first byte, by listener and reason "
      "(silent_timeout: silent past the header deadline; evicted: the longest-waiting one, "
      "closed to make room when the waiting set was full).";
  l->silent_timeouts =
      metrics_->GetCounter("keyvend_http_connections_dropped_total", dropped_help,
                           {{"listener", spec.name}, {"reason", "silent_timeout"}});
  l->evictions = metrics_->GetCounter("keyvend_http_connections_dropped_total", dropped_help,
                                      {{"listener", spec.name}, {"reason", "evicted"}});
  l->reserve_admitted = metrics_->GetCounter(
      "keyvend_http_connections_reserve_total",
      "Connections admitted above the cap for one probe or payment-notify request, by "
      "listener.",
      by_listener);
  l->exempt = cap_exempt_;
  for (const std::string& a : spec.cap_exempt) l->exempt.insert(a);
  if (epoll_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  listeners_.push_back(std::move(l));
  return listeners_.size() - 1;
}

size_t Acceptor::open_connections() const {
  MutexLock l(&mu_);
  return live_fds_.size();
}

void Acceptor::BeginDrain(int64_t drain_timeout_ms) {
  if (draining_.exchange(true, std::memory_order_acq_rel)) return;
  drain_deadline_ns_.store(MonoNowNs() + drain_timeout_ms * 1'000'000);
  const uint64_t one = 1;
  if (drain_fd_ >= 0) (void)!::write(drain_fd_, &one, sizeof one);
  if (wake_pipe_[1] >= 0) (void)!::write(wake_pipe_[1], "x", 1);
  done_cv_.SignalAll();
}

void Acceptor::Refuse(int fd) {
  // Written at once (it fits the empty socket buffer), then the socket reads and discards
  // what the client sends for a moment: closing with unread input would reset the
  // connection, and a reset can destroy the 503 before the client reads it.
  (void)!::send(fd, Refusal().data(), Refusal().size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  if (lingering_ >= kLingerMax || epoll_fd_ < 0) {
    close(fd);
    return;
  }
  Parked p;
  p.waiting = false;
  p.conn.fd = fd;
  p.deadline_ns = MonoNowNs() + int64_t{kLingerMs} * 1'000'000;
  p.seq = next_seq_++;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    return;
  }
  linger_due_.push(Due{p.deadline_ns, fd, p.seq});
  parked_[fd] = std::move(p);
  ++lingering_;
}

void Acceptor::AcceptFrom(size_t li) {
  Listener& l = *listeners_[li];
  for (int round = 0; round < 256; ++round) {  // bounded: other listeners get their turn
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd =
        accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the connection stays in the backlog. Back off
        // instead of spinning on a listener that stays readable.
        l.accept_errors->Inc();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return;  // EAGAIN: nothing more to accept
    }
    AcceptedConnection c;
    c.fd = fd;
    c.listener = li;
    c.accepted_ns = MonoNowNs();
    if (!AddressOf(peer, &c.peer_ip, &c.peer_port)) {
      close(fd);
      continue;
    }
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
    AddressOf(local, &c.local_ip, &c.local_port);
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    // Most clients send their request with the connection: admit those at once.
    char first = 0;
    const ssize_t n = recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
      AdmitReadable(std::move(c));
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      close(fd);  // gone already
    } else {
      Park(std::move(c));
    }
  }
}

void Acceptor::Park(AcceptedConnection c) {
  Listener& l = *listeners_[c.listener];
  const bool capped_client = l.spec.waiting_per_client_max > 0 && !l.exempt.contains(c.peer_ip);
  if (capped_client) {
    auto it = l.waiting_per_client.find(c.peer_ip);
    if (it != l.waiting_per_client.end() && it->second >= l.spec.waiting_per_client_max) {
      l.rejected_waiting_client->Inc();
      ++l.tally.waiting_per_client;
      Refuse(c.fd);
      return;
    }
  }
  // Full: the connection that has waited longest makes room (a flood of silent sockets
  // cannot keep newcomers out; a real client sends its request within a round trip).
  const bool bounded = l.spec.waiting_max > 0;  // 0 = no limit
  while (bounded && l.waiting >= l.spec.waiting_max && !l.due.empty()) {
    const Due d = l.due.top();
    l.due.pop();
    auto it = parked_.find(d.fd);
    if (it == parked_.end() || !it->second.waiting || it->second.seq != d.seq) continue;
    l.evictions->Inc();
    ++l.tally.evicted;
    DropWaiting(d.fd, true);
  }
  if ((bounded && l.waiting >= l.spec.waiting_max) || epoll_fd_ < 0) {
    l.evictions->Inc();
    ++l.tally.evicted;
    close(c.fd);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = c.fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    close(c.fd);
    return;
  }
  Parked p;
  p.deadline_ns = c.accepted_ns + l.spec.waiting_timeout_ms * 1'000'000;
  p.seq = next_seq_++;
  l.due.push(Due{p.deadline_ns, c.fd, p.seq});
  ++l.waiting;
  waiting_total_.fetch_add(1, std::memory_order_relaxed);
  l.waiting_gauge->Inc();
  if (capped_client) ++l.waiting_per_client[c.peer_ip];
  const int fd = c.fd;
  p.conn = std::move(c);
  parked_[fd] = std::move(p);
}

void Acceptor::DropWaiting(int fd, bool close_fd) {
  auto it = parked_.find(fd);
  if (it == parked_.end()) return;
  if (epoll_fd_ >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  if (it->second.waiting) {
    Listener& l = *listeners_[it->second.conn.listener];
    --l.waiting;
    waiting_total_.fetch_sub(1, std::memory_order_relaxed);
    l.waiting_gauge->Dec();
    auto pc = l.waiting_per_client.find(it->second.conn.peer_ip);
    if (pc != l.waiting_per_client.end() && --pc->second == 0) l.waiting_per_client.erase(pc);
  } else {
    --lingering_;
  }
  if (close_fd) close(fd);
  parked_.erase(it);
}

void Acceptor::OnParkedEvent(int fd) {
  auto it = parked_.find(fd);
  if (it == parked_.end()) return;
  if (!it->second.waiting) {
    // A refused socket: discard what the client still sends; end at its EOF.
    char sink[4096];
    const ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) DropWaiting(fd, true);
    return;
  }
  char first = 0;
  const ssize_t n = recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {  // closed (or reset) without a byte
    DropWaiting(fd, true);
    return;
  }
  // A copy: DropWaiting's bookkeeping reads the parked record (its peer address).
  AcceptedConnection c = it->second.conn;
  DropWaiting(fd, false);
  AdmitReadable(std::move(c));
}

namespace {

// The first line names a probe or a payment notify, keyvend's or a gateway's (peeked, not
// consumed).
bool IsReservedRequest(int fd) {
  static constexpr std::string_view kLines[] = {"GET /healthz ",
                                                "GET /readyz ",
                                                "GET /metrics ",
                                                "POST /api/v1/payments/notify ",
                                                "POST /api/v1/payments/epay/notify ",
                                                "GET /api/v1/payments/epay/notify?",
                                                "POST /api/v1/payments/stripe/notify "};
  char buf[64];
  const ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return false;
  const std::string_view got(buf, static_cast<size_t>(n));
  for (std::string_view line : kLines) {
    if (got.substr(0, line.size()) == line) return true;
  }
  return false;
}

}  // namespace

void Acceptor::AdmitReadable(AcceptedConnection c) {
  Listener& l = *listeners_[c.listener];
  bool admitted = false;
  bool by_client = false;
  {
    MutexLock g(&mu_);
    const bool capped_client =
        l.spec.max_connections_per_client > 0 && !l.exempt.contains(c.peer_ip);
    size_t* per_client = capped_client ? &per_client_[c.peer_ip] : nullptr;
    if (l.open >= l.spec.max_connections) {
      // Full: a probe or the gateway's notify may still use the reserve, once.
      if (l.reserved_open < l.spec.reserve && IsReservedRequest(c.fd)) {
        ++l.reserved_open;
        c.reserved = true;
        live_fds_.insert(c.fd);
        admitted = true;
      }
    } else if (per_client != nullptr && *per_client >= l.spec.max_connections_per_client) {
      by_client = true;
    } else {
      ++l.open;
      if (per_client != nullptr) ++*per_client;
      live_fds_.insert(c.fd);
      admitted = true;
    }
    if (per_client != nullptr && *per_client == 0) per_client_.erase(c.peer_ip);
  }
  if (!admitted) {
    if (by_client) {
      l.rejected_client->Inc();
      ++l.tally.per_client;
    } else {
      l.rejected_cap->Inc();
      ++l.tally.cap;
    }
    Refuse(c.fd);
    return;
  }
  if (c.reserved) l.reserve_admitted->Inc();
  l.accepted->Inc();
  l.open_gauge->Inc();
  serve_(c);
}

void Acceptor::ExpireDue(int64_t now) {
  for (auto& lp : listeners_) {
    Listener& l = *lp;
    while (!l.due.empty() && l.due.top().deadline_ns <= now) {
      const Due d = l.due.top();
      l.due.pop();
      auto it = parked_.find(d.fd);
      if (it == parked_.end() || !it->second.waiting || it->second.seq != d.seq) continue;
      // Silent since accept for the whole header deadline: closed without an answer
      // (there is no request to answer).
      l.silent_timeouts->Inc();
      ++l.tally.silent_timeout;
      DropWaiting(d.fd, true);
    }
  }
  while (!linger_due_.empty() && linger_due_.top().deadline_ns <= now) {
    const Due d = linger_due_.top();
    linger_due_.pop();
    auto it = parked_.find(d.fd);
    if (it == parked_.end() || it->second.waiting || it->second.seq != d.seq) continue;
    DropWaiting(d.fd, true);
  }
}

int Acceptor::NextTimeoutMs(int64_t now) const {
  int64_t next = INT64_MAX;
  for (const auto& l : listeners_) {
    if (!l->due.empty()) next = std::min(next, l->due.top().deadline_ns);
    if (l->tally.any()) next = std::min(next, l->last_log_ns + kLogIntervalMs * 1'000'000);
  }
  if (!linger_due_.empty()) next = std::min(next, linger_due_.top().deadline_ns);
  if (next == INT64_MAX) return -1;
  return static_cast<int>(std::clamp<int64_t>((next - now + 999'999) / 1'000'000, 0, 60'000));
}

void Acceptor::MaybeLogTally(Listener& l, int64_t now) {
  if (!l.tally.any() || now - l.last_log_ns < kLogIntervalMs * 1'000'000) return;
  const Tally& t = l.tally;
  KV_LOG(kWarn, "listener ", l.spec.name, ": connections refused with 503: ", t.cap,
         " at the connection cap, ", t.per_client, " at the per-client cap, ", t.waiting_per_client,
         " over the per-client waiting cap; closed while silent: ", t.silent_timeout,
         " past the header deadline, ", t.evicted, " evicted (waiting set full)");
  l.tally = Tally{};
  l.last_log_ns = now;
}

void Acceptor::Release(const AcceptedConnection& c) {
  Listener& l = *listeners_[c.listener];
  {
    MutexLock g(&mu_);
    live_fds_.erase(c.fd);  // before close: a forced shutdown never hits a reused fd
    if (c.reserved) {
      --l.reserved_open;
    } else {
      --l.open;
      auto it = per_client_.find(c.peer_ip);
      if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
    }
    close(c.fd);
  }
  l.open_gauge->Dec();
  done_cv_.SignalAll();
}

void Acceptor::Run() {
  constexpr int kEvents = 256;
  epoll_event events[kEvents];
  while (!draining() && epoll_fd_ >= 0) {
    const int n = epoll_wait(epoll_fd_, events, kEvents, NextTimeoutMs(MonoNowNs()));
    if (n < 0 && errno != EINTR) break;
    if (draining()) break;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_pipe_[0]) {
        char sink[64];
        while (::read(fd, sink, sizeof sink) > 0) {
        }
        continue;
      }
      bool listener = false;
      for (size_t li = 0; li < listeners_.size(); ++li) {
        if (listeners_[li]->fd == fd) {
          AcceptFrom(li);
          listener = true;
          break;
        }
      }
      if (!listener) OnParkedEvent(fd);
    }
    const int64_t now = MonoNowNs();
    ExpireDue(now);
    for (auto& l : listeners_) MaybeLogTally(*l, now);
  }
  // Stop accepting. A drain finishes what clients already sent: connections the kernel
  // completed before it (still in the backlog) are accepted once more, and a waiting one
  // whose first bytes have arrived is admitted as it would have been a moment later
  // (closing it would reset a request already sent). From here new connections are
  // refused by the kernel; silent and lingering sockets are closed: there is nothing to
  // finish on them.
  for (size_t li = 0; li < listeners_.size(); ++li) {
    if (listeners_[li]->fd >= 0) AcceptFrom(li);
  }
  for (auto& l : listeners_) {
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
  }
  std::vector<int> parked;
  for (const auto& [fd, p] : parked_) parked.push_back(fd);
  for (int fd : parked) {
    auto it = parked_.find(fd);
    char first = 0;
    if (it->second.waiting && recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
      AcceptedConnection c = it->second.conn;
      DropWaiting(fd, false);
      AdmitReadable(std::move(c));
    } else {
      DropWaiting(fd, true);
    }
  }
  // A connection refused just now (the cap was full) lingers no longer.
  while (!parked_.empty()) DropWaiting(parked_.begin()->first, true);
  for (auto& l : listeners_) MaybeLogTally(*l, INT64_MAX / 2);

  MutexLock g(&mu_);
  const int64_t deadline = drain_deadline_ns_.load();
  while (!live_fds_.empty()) {
    const int64_t left_ns = deadline - MonoNowNs();
    if (left_ns <= 0) break;
    done_cv_.WaitFor(&mu_, std::chrono::nanoseconds(left_ns));
  }
  // Past the deadline: cut what is left. A handler in the middle of a shop call finishes
  // it (its commit is whole either way); its response write then fails.
  for (int fd : live_fds_) shutdown(fd, SHUT_RDWR);
  while (!live_fds_.empty()) done_cv_.Wait(&mu_);
}

}  // namespace kv::http
