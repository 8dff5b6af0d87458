#include "flood/buyers.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <thread>

namespace kv::flood {

StatusClass ClassOf(int status) {
  switch (status) {
    case 201:
      return k201;
    case 429:
      return k429;
    case 503:
      return k503;
    default:
      return kOther;
  }
}

void BuyerStats::Merge(const BuyerStats& o) {
  for (int c = 0; c < kNumClasses; ++c) latency[c].Merge(o.latency[c]);
  for (const auto& [k, v] : o.codes) codes[k] += v;
  if (accepted_per_second.size() < o.accepted_per_second.size()) {
    accepted_per_second.resize(o.accepted_per_second.size(), 0);
  }
  for (size_t i = 0; i < o.accepted_per_second.size(); ++i) {
    accepted_per_second[i] += o.accepted_per_second[i];
  }
  sent += o.sent;
  connects += o.connects;
  reconnects += o.reconnects;
  server_closes += o.server_closes;
  closed_mid_request += o.closed_mid_request;
  connect_errors += o.connect_errors;
  malformed += o.malformed;
  unfinished += o.unfinished;
  sampled += o.sampled;
  started_late += o.started_late;
  not_started += o.not_started;
}

uint64_t BuyerStats::answered() const {
  uint64_t n = 0;
  for (int c = 0; c < kNumClasses; ++c) n += latency[c].count();
  return n;
}

namespace {

// One buyer thread: one epoll loop over its share of the connections.
class BuyerLoop {
 public:
  // rate_per_s: this loop's share of --offered-rate (0 = closed loop).
  BuyerLoop(const Endpoint& ep, const Options& o, std::vector<int> buyer_ids, int64_t start_ns,
            int64_t stop_ns, NotifyQueue* notify, int notify_every, double rate_per_s)
      : ep_(ep),
        start_ns_(start_ns),
        stop_ns_(stop_ns),
        notify_(notify),
        notify_every_(notify_every),
        interval_ns_(rate_per_s > 0 ? 1e9 / rate_per_s : 0),
        next_start_ns_(static_cast<double>(start_ns)) {
    stats_.accepted_per_second.assign(static_cast<size_t>(o.seconds) + 8, 0);
    for (int id : buyer_ids) {
      auto c = std::make_unique<Conn>();
      const std::string body = "{\"product_id\":\"" + o.product +
                               "\",\"quantity\":1,\"contact\":\"b" + std::to_string(id) +
                               "@x.test\"}";
      c->request =
          "POST /api/v1/orders HTTP/1.1\r\nHost: " + ep.host_header +
          "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\n\r\n" + body;
      conns_.push_back(std::move(c));
    }
  }

  BuyerStats& stats() { return stats_; }

  void Run() {
    ep_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    for (auto& c : conns_) Open(c.get(), /*first=*/true);
    std::vector<epoll_event> events(256);
    const int64_t drain_deadline = stop_ns_ + 5'000'000'000;
    while (true) {
      const int64_t now = NowNs();
      if (now >= stop_ns_) {
        size_t busy = 0;
        for (auto& c : conns_) busy += c->fd >= 0 && c->in_request ? 1 : 0;
        if (busy == 0) break;
        if (now >= drain_deadline) {
          stats_.unfinished += busy;
          break;
        }
      }
      RetryDue(now);
      StartDue(now);
      const int timeout_ms = retry_.empty() && interval_ns_ == 0 ? 10 : 1;
      const int n =
          ::epoll_wait(ep_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
      for (int i = 0; i < n; ++i) {
        Conn* c = static_cast<Conn*>(events[i].data.ptr);
        if (c->fd < 0) continue;
        if (c->connecting) {
          OnConnected(c);
        } else if (c->in_request && c->sent < c->request.size()) {
          SendMore(c);
        } else {
          OnReadable(c);
        }
      }
    }
    stats_.not_started += owed_;
    for (auto& c : conns_) CloseConn(c.get());
    ::close(ep_fd_);
  }

 private:
  struct Conn {
    int fd = -1;
    bool connecting = false;
    bool in_request = false;
    bool idle = false;  // connected, waiting in idle_ for its next scheduled request
    size_t sent = 0;
    int64_t t_start_ns = 0;
    std::string request;
    std::string in;
  };

  bool Running() const { return NowNs() < stop_ns_; }

  void Open(Conn* c, bool first) {
    if (!first) ++stats_.reconnects;
    c->fd = NewSocket(ep_, /*nonblocking=*/true);
    if (c->fd < 0) {
      ++stats_.connect_errors;
      retry_.push_back(c);
      return;
    }
    ++stats_.connects;
    c->connecting = true;
    c->in_request = false;
    c->in.clear();
    const int r = ::connect(c->fd, reinterpret_cast<const sockaddr*>(&ep_.addr), ep_.addr_len);
    if (r != 0 && errno != EINPROGRESS) {
      ++stats_.connect_errors;
      CloseConn(c);
      retry_.push_back(c);  // e.g. ECONNREFUSED, EADDRNOTAVAIL: try again in a moment
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    ::epoll_ctl(ep_fd_, EPOLL_CTL_ADD, c->fd, &ev);
  }

  void RetryDue(int64_t now) {
    if (retry_.empty() || now < next_retry_ns_) return;
    next_retry_ns_ = now + 1'000'000;  // at most one round of reopening per millisecond
    std::vector<Conn*> due;
    due.swap(retry_);
    for (Conn* c : due) {
      if (Running()) Open(c, /*first=*/false);
    }
  }

  void CloseConn(Conn* c) {
    c->idle = false;  // a stale idle_ entry is skipped
    if (c->fd >= 0) {
      ::epoll_ctl(ep_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
      ::close(c->fd);
    }
    c->fd = -1;
    c->connecting = false;
    c->in_request = false;
    c->in.clear();
  }

  // The connection ended; open a new one while the run lasts.
  void Reopen(Conn* c) {
    CloseConn(c);
    if (Running()) Open(c, /*first=*/false);
  }

  void OnConnected(Conn* c) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      ++stats_.connect_errors;
      CloseConn(c);
      if (Running()) retry_.push_back(c);
      return;
    }
    c->connecting = false;
    if (!Running()) {
      CloseConn(c);
      return;
    }
    Ready(c);
  }

  // A connected connection without a request: closed loop, the next request goes at once;
  // paced, it goes when one is due (or now, when one is overdue).
  void Ready(Conn* c) {
    if (interval_ns_ == 0) return StartRequest(c);
    if (owed_ > 0) {
      --owed_;
      ++stats_.started_late;
      return StartRequest(c);
    }
    c->idle = true;
    idle_.push_back(c);
  }

  // Paced: starts every request whose time has come on an idle connection; with none
  // idle, the request is owed and starts as soon as a connection is free.
  void StartDue(int64_t now) {
    if (interval_ns_ == 0) return;
    const int64_t until = std::min(now, stop_ns_);
    while (next_start_ns_ <= static_cast<double>(until)) {
      next_start_ns_ += interval_ns_;
      Conn* c = nullptr;
      while (c == nullptr && !idle_.empty()) {
        Conn* cand = idle_.back();
        idle_.pop_back();
        if (cand->idle && cand->fd >= 0) c = cand;
      }
      if (c == nullptr) {
        ++owed_;
        continue;
      }
      c->idle = false;
      StartRequest(c);
    }
  }

  void StartRequest(Conn* c) {
    c->in_request = true;
    c->sent = 0;
    c->t_start_ns = NowNs();
    ++stats_.sent;
    SendMore(c);
  }

  void SendMore(Conn* c) {
    while (c->sent < c->request.size()) {
      const ssize_t n =
          ::send(c->fd, c->request.data() + c->sent, c->request.size() - c->sent, MSG_NOSIGNAL);
      if (n > 0) {
        c->sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        Watch(c, EPOLLOUT);
        return;
      }
      // The server closed or reset; its answer (e.g. a fast 503) may still be readable.
      if (TryReadWhatIsLeft(c)) return;
      ++stats_.closed_mid_request;
      Reopen(c);
      return;
    }
    Watch(c, EPOLLIN);
  }

  void Watch(Conn* c, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    ::epoll_ctl(ep_fd_, EPOLL_CTL_MOD, c->fd, &ev);
  }

  // After a failed send: reads whatever the server wrote before closing; true when that
  // held a whole response (recorded, and the connection reopened).
  bool TryReadWhatIsLeft(Conn* c) {
    char buf[16384];
    while (true) {
      const ssize_t n = ::recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      c->in.append(buf, static_cast<size_t>(n));
    }
    Response r;
    if (ParseResponse(c->in, &r) != 1) return false;
    Record(c, r);
    ++stats_.server_closes;
    Reopen(c);
    return true;
  }

  void OnReadable(Conn* c) {
    char buf[16384];
    bool eof = false;
    while (true) {
      const ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
      if (n > 0) {
        c->in.append(buf, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < sizeof buf) break;
        continue;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      eof = true;  // ECONNRESET and friends
      break;
    }
    if (c->in_request) {
      Response r;
      const int parsed = ParseResponse(c->in, &r);
      if (parsed < 0) {
        ++stats_.malformed;
        Reopen(c);
        return;
      }
      if (parsed > 0) {
        Record(c, r);
        c->in.erase(0, r.total_bytes);
        c->in_request = false;
        if (r.close || eof) {
          ++stats_.server_closes;
          Reopen(c);
        } else if (Running()) {
          Ready(c);
        } else {
          CloseConn(c);
        }
        return;
      }
      if (eof) {
        ++stats_.closed_mid_request;
        Reopen(c);
      }
      return;
    }
    if (eof) {  // idle keep-alive connection closed by the server
      ++stats_.server_closes;
      Reopen(c);
    }
  }

  void Record(Conn* c, const Response& r) {
    const int64_t now = NowNs();
    const uint64_t us = static_cast<uint64_t>(std::max<int64_t>(0, now - c->t_start_ns) / 1000);
    const StatusClass cls = ClassOf(r.status);
    stats_.latency[cls].Record(us);
    if (cls == k201) {
      const size_t sec = static_cast<size_t>((now - start_ns_) / 1'000'000'000);
      if (sec < stats_.accepted_per_second.size()) ++stats_.accepted_per_second[sec];
      if (notify_ != nullptr && notify_every_ > 0 && ++accepted_ % notify_every_ == 0) {
        Sold s{JsonString(r.body, "order_id"), JsonInt(r.body, "amount_cents"),
               JsonString(r.body, "currency")};
        if (!s.order_id.empty() && s.amount_cents >= 0 && !s.currency.empty()) {
          ++stats_.sampled;
          notify_->Push(std::move(s));
        }
      }
    } else {
      std::string code = JsonString(r.body, "code");
      ++stats_.codes[std::to_string(r.status) + " " + (code.empty() ? "-" : code)];
    }
  }

  const Endpoint& ep_;
  const int64_t start_ns_;
  const int64_t stop_ns_;
  NotifyQueue* notify_;
  const int notify_every_;
  const double interval_ns_;  // paced: between two request starts; 0 = closed loop
  double next_start_ns_;
  uint64_t owed_ = 0;  // paced: due requests no connection was free for
  std::vector<Conn*> idle_;
  uint64_t accepted_ = 0;
  int ep_fd_ = -1;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> retry_;
  int64_t next_retry_ns_ = 0;
  BuyerStats stats_;
};

}  // namespace

BuyerStats RunBuyers(const Endpoint& ep, const Options& o, int64_t start_ns, int64_t stop_ns,
                     NotifyQueue* notify) {
  std::vector<std::unique_ptr<BuyerLoop>> loops;
  for (int t = 0; t < o.threads; ++t) {
    std::vector<int> ids;
    for (int i = t; i < o.connections; i += o.threads) ids.push_back(i);
    loops.push_back(std::make_unique<BuyerLoop>(ep, o, std::move(ids), start_ns, stop_ns,
                                                o.notify_every > 0 ? notify : nullptr,
                                                o.notify_every, o.offered_rate / o.threads));
  }
  std::vector<std::thread> threads;
  for (auto& l : loops) threads.emplace_back([&l] { l->Run(); });
  for (auto& t : threads) t.join();
  BuyerStats all;
  all.accepted_per_second.assign(static_cast<size_t>(o.seconds) + 8, 0);
  for (auto& l : loops) all.Merge(l->stats());
  return all;
}

}  // namespace kv::flood
