#include "http/acceptor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "http/conn_stream.h"

namespace kv::http {
namespace {

// The canned refusal: written without reading the request (admission happens at accept).
const std::string& Refusal() {
  static const std::string* r = [] {
    const std::string body =
        "{\"error\":{\"code\":\"overloaded\",\"message\":\"too many connections; retry "
        "later\"}}";
    return new std::string(absl::StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
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
}

Acceptor::~Acceptor() {
  BeginDrain(0);
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_workers_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  for (auto& l : listeners_) {
    if (l->fd >= 0) close(l->fd);
  }
  for (const Lingering& g : lingering_) close(g.fd);
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
  l->rejected_client = metrics_->GetCounter(
      "keyvend_http_connections_rejected_total", help,
      {{"listener", spec.name}, {"reason", "max_connections_per_client"}});
  listeners_.push_back(std::move(l));
  return listeners_.size() - 1;
}

size_t Acceptor::open_connections() const {
  std::lock_guard<std::mutex> l(mu_);
  return live_fds_.size();
}

void Acceptor::BeginDrain(int64_t drain_timeout_ms) {
  if (draining_.exchange(true, std::memory_order_acq_rel)) return;
  drain_deadline_ns_.store(MonoNowNs() + drain_timeout_ms * 1'000'000);
  const uint64_t one = 1;
  if (drain_fd_ >= 0) (void)!::write(drain_fd_, &one, sizeof one);
  if (wake_pipe_[1] >= 0) (void)!::write(wake_pipe_[1], "x", 1);
  done_cv_.notify_all();
}

void Acceptor::Refuse(int fd) {
  // Written at once (it fits the empty socket buffer), then the socket reads and discards
  // what the client sends for a moment: closing with unread input would reset the
  // connection, and a reset can destroy the 503 before the client reads it.
  (void)!::send(fd, Refusal().data(), Refusal().size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  shutdown(fd, SHUT_WR);
  if (lingering_.size() >= kLingerMax) {
    close(fd);
    return;
  }
  lingering_.push_back(Lingering{fd, MonoNowNs() + int64_t{kLingerMs} * 1'000'000});
}

void Acceptor::AcceptFrom(size_t li) {
  Listener& l = *listeners_[li];
  Counter* out_of_fds = l.accept_errors;
  for (int round = 0; round < 256; ++round) {  // bounded: other listeners get their turn
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd =
        accept4(l.fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the connection stays in the backlog. Back off
        // instead of spinning on a listener that stays readable.
        out_of_fds->Inc();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return;  // EAGAIN: nothing more to accept
    }
    AcceptedConnection c;
    c.fd = fd;
    c.listener = li;
    if (!AddressOf(peer, &c.peer_ip, &c.peer_port)) {
      close(fd);
      continue;
    }
    sockaddr_storage local{};
    socklen_t llen = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
    AddressOf(local, &c.local_ip, &c.local_port);
    bool admitted = false;
    Counter* refused = nullptr;
    {
      std::lock_guard<std::mutex> g(mu_);
      const bool capped_client = l.spec.max_connections_per_client > 0 &&
                                 !cap_exempt_.contains(c.peer_ip);
      size_t* per_client = capped_client ? &per_client_[c.peer_ip] : nullptr;
      if (l.open >= l.spec.max_connections) {
        refused = l.rejected_cap;
      } else if (per_client != nullptr && *per_client >= l.spec.max_connections_per_client) {
        refused = l.rejected_client;
      } else {
        ++l.open;
        if (per_client != nullptr) ++*per_client;
        live_fds_.insert(fd);
        admitted = true;
      }
      if (per_client != nullptr && *per_client == 0) per_client_.erase(c.peer_ip);
    }
    if (!admitted) {
      refused->Inc();
      Refuse(fd);
      continue;
    }
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    l.accepted->Inc();
    l.open_gauge->Inc();
    Submit(std::move(c));
  }
}

void Acceptor::Submit(AcceptedConnection c) {
  std::lock_guard<std::mutex> g(mu_);
  pending_.push_back(std::move(c));
  if (waiting_workers_ >= pending_.size()) {
    cv_.notify_one();
  } else {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

void Acceptor::WorkerLoop() {
  std::unique_lock<std::mutex> g(mu_);
  while (true) {
    while (pending_.empty() && !stop_workers_) {
      ++waiting_workers_;
      cv_.wait(g);
      --waiting_workers_;
    }
    if (pending_.empty()) return;  // stopping
    AcceptedConnection c = std::move(pending_.front());
    pending_.pop_front();
    g.unlock();
    serve_(c);
    Finish(c);
    g.lock();
  }
}

void Acceptor::Finish(const AcceptedConnection& c) {
  Listener& l = *listeners_[c.listener];
  {
    std::lock_guard<std::mutex> g(mu_);
    live_fds_.erase(c.fd);  // before close: a forced shutdown never hits a reused fd
    --l.open;
    auto it = per_client_.find(c.peer_ip);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
    close(c.fd);
  }
  l.open_gauge->Dec();
  done_cv_.notify_all();
}

void Acceptor::PollLingering(const std::vector<pollfd>& fds, size_t first) {
  const int64_t now = MonoNowNs();
  std::vector<Lingering> keep;
  keep.reserve(lingering_.size());
  for (size_t i = 0; i < lingering_.size(); ++i) {
    const Lingering& g = lingering_[i];
    bool done = now >= g.deadline_ns;
    if (!done && first + i < fds.size() && fds[first + i].revents != 0) {
      char sink[4096];
      const ssize_t n = recv(g.fd, sink, sizeof sink, MSG_DONTWAIT);
      done = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
    }
    if (done) {
      close(g.fd);
    } else {
      keep.push_back(g);
    }
  }
  lingering_.swap(keep);
}

void Acceptor::Run() {
  std::vector<pollfd> fds;
  while (!draining()) {
    fds.clear();
    fds.push_back(pollfd{wake_pipe_[0], POLLIN, 0});
    for (const auto& l : listeners_) fds.push_back(pollfd{l->fd, POLLIN, 0});
    const size_t first_linger = fds.size();
    int timeout_ms = -1;
    const int64_t now = MonoNowNs();
    for (const Lingering& g : lingering_) {
      fds.push_back(pollfd{g.fd, POLLIN, 0});
      const int64_t left = std::max<int64_t>(0, (g.deadline_ns - now + 999'999) / 1'000'000);
      timeout_ms = timeout_ms < 0 ? static_cast<int>(left)
                                  : std::min(timeout_ms, static_cast<int>(left));
    }
    const int r = poll(fds.data(), fds.size(), timeout_ms);
    if (r < 0 && errno != EINTR) break;
    if (draining()) break;
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (fds[1 + i].revents != 0) AcceptFrom(i);
    }
    if (!lingering_.empty()) PollLingering(fds, first_linger);
  }
  // Stop accepting: from here new connections are refused by the kernel.
  for (auto& l : listeners_) {
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
  }
  for (const Lingering& g : lingering_) close(g.fd);
  lingering_.clear();

  std::unique_lock<std::mutex> g(mu_);
  const int64_t deadline = drain_deadline_ns_.load();
  while (!live_fds_.empty()) {
    const int64_t left_ns = deadline - MonoNowNs();
    if (left_ns <= 0) break;
    done_cv_.wait_for(g, std::chrono::nanoseconds(left_ns));
  }
  // Past the deadline: cut what is left. A handler in the middle of a shop call finishes
  // it (its commit is whole either way); its response write then fails.
  for (int fd : live_fds_) shutdown(fd, SHUT_RDWR);
  while (!live_fds_.empty()) done_cv_.wait(g);
}

}  // namespace kv::http
