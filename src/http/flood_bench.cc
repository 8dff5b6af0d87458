// The load-protection benchmark of issue 4: a closed-loop (or paced) HTTP/1.1 load generator
// that floods order creation from many keep-alive connections while it probes /healthz and
// sends signed payment notifies for a sample of the accepted orders (on the ops listener
// when there is one). tools/bench-flood.sh starts the servers and runs it.
//
//   flood_bench --url http://127.0.0.1:PORT --product ID [--ops-url URL]
//               [--mode flood|throughput] [--connections N] [--seconds S] [--threads T]
//               [--payment-secret S]    (or KEYVEND_PAYMENT_SECRET)
//               [--notify-every K]      notify every K-th 201; 0 = none
//                                       (default: 20 in flood mode, 0 in throughput mode)
//               [--probe-interval-ms MS] /healthz period; 0 = no prober
//                                       (default: 10 in flood mode, 0 in throughput mode)
//               [--configured-rate R]   the server's order rate, to report multiples of it
//               [--offered-rate X]      open loop: start X order requests/s on a fixed
//                                       schedule over the N connections (0 = closed loop)
//
// Buyers: N connections spread over T epoll threads, each POSTing
// {"product_id":ID,"quantity":1,"contact":"b<i>@x.test"} as soon as the previous answer
// arrived (closed loop), or, with --offered-rate, when the schedule says (a request due
// while every connection is busy starts late, as soon as one is free, and is counted).
// Latency is measured from the request's first byte sent to its last byte received (a fresh
// connection's connect time is not included), per status (201, 429, 503, other), in
// microseconds in a log-linear histogram (≤ 1.6 % relative error; the max is exact). A
// connection the server closes is reopened and counted. At the deadline no new request
// starts; answers still in flight are awaited (≤ 5 s) and counted, and the rates are over
// the time until the last one arrived.
//
// Output: a table for people, then one line for scripts:
//   RESULT mode=.. seconds=.. connections=.. offered_per_s=.. accepted_per_s=.. ...
// Exit status: 0 when the run completed (whatever it measured), 1 when no request was
// answered at all, 2 on a usage error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "http/signature.h"

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// --- latency histogram ----------------------------------------------------------------------

// Log-linear (HdrHistogram-like): exact below 64 µs, then 64 sub-buckets per power of two.
class Histogram {
 public:
  static constexpr int kSubBits = 6;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  void Record(uint64_t us) {
    ++counts_[Index(us)];
    ++n_;
    max_ = std::max(max_, us);
  }
  void Merge(const Histogram& o) {
    for (size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    n_ += o.n_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return n_; }
  uint64_t max() const { return max_; }
  // The smallest recorded bucket's upper bound with at least q·n values at or below it
  // (never above the exact max); 0 when empty.
  uint64_t Quantile(double q) const {
    if (n_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(n_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, n_);
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(UpperBound(i), max_);
    }
    return max_;
  }

 private:
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int msb = 63 - __builtin_clzll(v);     // >= kSubBits
    const uint64_t sub = v >> (msb - kSubBits);  // in [kSub, 2·kSub)
    return static_cast<size_t>((msb - kSubBits + 1) * kSub + (sub - kSub));
  }
  static uint64_t UpperBound(size_t i) {
    if (i < kSub) return i;
    const int msb = static_cast<int>(i / kSub) + kSubBits - 1;
    const uint64_t sub = kSub + i % kSub;
    return ((sub + 1) << (msb - kSubBits)) - 1;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t n_ = 0;
  uint64_t max_ = 0;
};

double Ms(uint64_t us) { return static_cast<double>(us) / 1000.0; }

// --- HTTP bits --------------------------------------------------------------------------------

struct Endpoint {
  std::string host;
  int port = 0;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host_header;  // "host:port"
};

// "http://HOST:PORT" (an optional trailing "/" is ignored); false when malformed or the
// host does not resolve.
bool ParseUrl(const std::string& url, Endpoint* out) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) return false;
  std::string rest = url.substr(prefix.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  out->host = rest.substr(0, colon);
  if (out->host.size() > 2 && out->host.front() == '[' && out->host.back() == ']') {
    out->host = out->host.substr(1, out->host.size() - 2);
  }
  out->port = std::atoi(rest.c_str() + colon + 1);
  if (out->port <= 0 || out->port > 65535) return false;
  out->host_header = rest;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(out->host.c_str(), std::to_string(out->port).c_str(), &hints, &res) != 0 ||
      res == nullptr) {
    return false;
  }
  std::memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
  out->addr_len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return true;
}

// A parsed response head, once a whole response is buffered.
struct Response {
  int status = 0;
  bool close = false;      // "Connection: close"
  size_t total_bytes = 0;  // head + body
  std::string_view body;
};

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// 1: a whole response is at the start of `buf` (*r filled); 0: not yet; -1: malformed
// (no status line, no Content-Length — keyvend always sends one).
int ParseResponse(std::string_view buf, Response* r) {
  const size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return buf.size() > 65536 ? -1 : 0;
  if (buf.size() < 12 || buf.substr(0, 7) != "HTTP/1.") return -1;
  r->status = std::atoi(std::string(buf.substr(9, 3)).c_str());
  if (r->status < 100 || r->status > 599) return -1;
  long long content_length = -1;
  r->close = buf.substr(0, 8) == "HTTP/1.0";
  size_t pos = buf.find("\r\n") + 2;
  while (pos < head_end) {
    const size_t eol = buf.find("\r\n", pos);
    const std::string_view line = buf.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (IEquals(name, "content-length")) {
      content_length = std::atoll(std::string(value).c_str());
    } else if (IEquals(name, "connection")) {
      r->close = IEquals(value, "close");
    }
  }
  if (content_length < 0) return -1;
  const size_t total = head_end + 4 + static_cast<size_t>(content_length);
  if (buf.size() < total) return 0;
  r->total_bytes = total;
  r->body = buf.substr(head_end + 4, static_cast<size_t>(content_length));
  return 1;
}

// The string value of "key":"..." in a flat JSON body (keyvend writes no spaces), or "".
std::string JsonString(std::string_view body, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":\"";
  const size_t p = body.find(needle);
  if (p == std::string_view::npos) return "";
  const size_t start = p + needle.size();
  const size_t end = body.find('"', start);
  return end == std::string_view::npos ? "" : std::string(body.substr(start, end - start));
}

// The integer value of "key":123, or -1.
int64_t JsonInt(std::string_view body, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":";
  const size_t p = body.find(needle);
  if (p == std::string_view::npos) return -1;
  const char* s = body.data() + p + needle.size();
  if (s >= body.data() + body.size() || *s < '0' || *s > '9') return -1;
  return std::strtoll(s, nullptr, 10);
}

int NewSocket(const Endpoint& ep, bool nonblocking) {
  const int fd = ::socket(ep.addr.ss_family,
                          SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// A blocking keep-alive connection with a deadline per exchange (the prober, the notifier).
class BlockingConn {
 public:
  explicit BlockingConn(const Endpoint& ep) : ep_(ep) {}
  ~BlockingConn() { Close(); }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  // Sends `request` (connecting first if needed) and reads one whole response within
  // timeout_ms. False on any transport failure (the connection is then closed; *error
  // says what). *reconnected is set when a new connection had to be opened.
  bool Exchange(const std::string& request, int timeout_ms, int* status, std::string* body,
                std::string* error, bool* reconnected) {
    const int64_t deadline = NowNs() + int64_t{timeout_ms} * 1'000'000;
    *reconnected = false;
    if (fd_ < 0) {
      if (!Connect(deadline, error)) return false;
      *reconnected = true;
    }
    size_t off = 0;
    while (off < request.size()) {
      const ssize_t n =
          ::send(fd_, request.data() + off, request.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!WaitFor(POLLOUT, deadline, error)) return false;
        continue;
      }
      *error = std::string("send: ") + std::strerror(errno);
      Close();
      return false;
    }
    char tmp[16384];
    while (true) {
      Response r;
      const int parsed = ParseResponse(buf_, &r);
      if (parsed < 0) {
        *error = "malformed response";
        Close();
        return false;
      }
      if (parsed > 0) {
        *status = r.status;
        body->assign(r.body);
        buf_.erase(0, r.total_bytes);
        if (r.close) Close();
        return true;
      }
      if (!WaitFor(POLLIN, deadline, error)) return false;
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, MSG_DONTWAIT);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
      } else if (n == 0) {
        *error = "closed by the server";
        Close();
        return false;
      } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        *error = std::string("recv: ") + std::strerror(errno);
        Close();
        return false;
      }
    }
  }

 private:
  bool Connect(int64_t deadline, std::string* error) {
    fd_ = NewSocket(ep_, /*nonblocking=*/true);
    if (fd_ < 0) {
      *error = std::string("socket: ") + std::strerror(errno);
      return false;
    }
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&ep_.addr), ep_.addr_len) != 0 &&
        errno != EINPROGRESS) {
      *error = std::string("connect: ") + std::strerror(errno);
      Close();
      return false;
    }
    if (!WaitFor(POLLOUT, deadline, error)) return false;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      *error = std::string("connect: ") + std::strerror(err);
      Close();
      return false;
    }
    return true;
  }

  bool WaitFor(short events, int64_t deadline, std::string* error) {
    while (true) {
      const int64_t left_ms = (deadline - NowNs()) / 1'000'000;
      if (left_ms <= 0) {
        *error = "timeout";
        Close();
        return false;
      }
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left_ms));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) {
        *error = std::string("poll: ") + std::strerror(errno);
        Close();
        return false;
      }
    }
  }

  const Endpoint& ep_;
  int fd_ = -1;
  std::string buf_;
};

// --- shared state -----------------------------------------------------------------------------

struct Options {
  std::string mode = "flood";
  std::string url;
  std::string ops_url;
  std::string product;
  std::string secret;
  int connections = 256;
  int threads = 1;
  double seconds = 10;
  int notify_every = -1;        // -1: the mode's default
  int probe_interval_ms = -1;   // -1: the mode's default
  int64_t configured_rate = 0;  // for the report only (offered and accepted as multiples)
  double offered_rate = 0;      // requests/s started on a fixed schedule; 0 = closed loop
};

// What one order was sold for, to pay it.
struct Sold {
  std::string order_id;
  int64_t amount_cents;
  std::string currency;
};

// Notify work handed from buyer threads to the notifier (bounded: a full queue drops).
class NotifyQueue {
 public:
  static constexpr size_t kMax = 100000;
  void Push(Sold s) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (q_.size() >= kMax) {
        ++dropped_;
        return;
      }
      q_.push_back(std::move(s));
    }
    cv_.notify_one();
  }
  // Waits for an item (true), or returns false once the queue is closed and empty.
  bool Pop(Sold* out) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    *out = std::move(q_.front());
    q_.pop_front();
    return true;
  }
  void Close() {
    {
      std::lock_guard<std::mutex> l(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  size_t Abandon() {  // empties the queue; returns how many were never sent
    std::lock_guard<std::mutex> l(mu_);
    const size_t n = q_.size();
    q_.clear();
    closed_ = true;
    cv_.notify_all();
    return n;
  }
  uint64_t dropped() {
    std::lock_guard<std::mutex> l(mu_);
    return dropped_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Sold> q_;
  bool closed_ = false;
  uint64_t dropped_ = 0;
};

enum StatusClass { k201 = 0, k429, k503, kOther, kNumClasses };
const char* const kClassName[kNumClasses] = {"201", "429", "503", "other"};

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

// One buyer thread's results (merged at the end).
struct BuyerStats {
  std::array<Histogram, kNumClasses> latency;
  std::map<std::string, uint64_t> codes;  // "429 rate_limited" -> n
  std::vector<uint64_t> accepted_per_second;
  uint64_t sent = 0;
  uint64_t connects = 0;            // connections opened (the first ones included)
  uint64_t reconnects = 0;          // connections reopened after a close or an error
  uint64_t server_closes = 0;       // the server closed (Connection: close or EOF when idle)
  uint64_t closed_mid_request = 0;  // EOF or reset before the whole response
  uint64_t connect_errors = 0;
  uint64_t malformed = 0;
  uint64_t unfinished = 0;    // still waiting when the drain timed out
  uint64_t sampled = 0;       // handed to the notifier
  uint64_t started_late = 0;  // paced: started after their time (no free connection)
  uint64_t not_started = 0;   // paced: due but never started (no free connection)
};

// --- buyers: one epoll loop over its share of the connections ------------------------------------

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

// --- prober and notifier ------------------------------------------------------------------------

struct ProbeStats {
  Histogram latency;  // 200 answers only
  uint64_t probes = 0;
  uint64_t failures = 0;  // not a 200, or a transport failure / 2 s timeout
  uint64_t reconnects = 0;
  std::string last_failure;
};

void RunProber(const Endpoint& ep, int interval_ms, int64_t stop_ns, ProbeStats* out) {
  BlockingConn conn(ep);
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: " + ep.host_header + "\r\n\r\n";
  const int64_t interval_ns = int64_t{interval_ms} * 1'000'000;
  int64_t next = NowNs();
  bool first = true;
  while (next < stop_ns) {
    const int64_t t0 = NowNs();
    int status = 0;
    std::string body, error;
    bool reconnected = false;
    const bool ok = conn.Exchange(req, 2000, &status, &body, &error, &reconnected);
    const int64_t t1 = NowNs();
    ++out->probes;
    if (reconnected && !first) ++out->reconnects;
    first = false;
    if (ok && status == 200) {
      out->latency.Record(static_cast<uint64_t>((t1 - t0) / 1000));
    } else {
      ++out->failures;
      out->last_failure = ok ? "HTTP " + std::to_string(status) : error;
    }
    // Fixed schedule; after a slow probe the next one goes at once (never a burst).
    next = std::max(next + interval_ns, NowNs());
    const int64_t sleep_ns = next - NowNs();
    if (sleep_ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(sleep_ns));
  }
}

struct NotifyStats {
  Histogram latency;  // 200 answers only
  uint64_t sent = 0;
  uint64_t ok = 0;      // 200
  uint64_t other = 0;   // answered, not 200
  uint64_t failed = 0;  // transport failure / 10 s timeout
  uint64_t unsent = 0;  // sampled but not sent before the drain ended
  std::map<std::string, uint64_t> codes;
  std::string last_failure;
};

void RunNotifier(const Endpoint& ep, const std::string& secret, NotifyQueue* queue,
                 NotifyStats* out) {
  BlockingConn conn(ep);
  uint64_t n = 0;
  Sold s;
  const std::string prefix =
      "flood-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr)) + "-";
  while (queue->Pop(&s)) {
    const std::string body = "{\"order_id\":\"" + s.order_id + "\",\"payment_id\":\"" + prefix +
                             std::to_string(n++) +
                             "\",\"amount_cents\":" + std::to_string(s.amount_cents) +
                             ",\"currency\":\"" + s.currency + "\",\"status\":\"succeeded\"}";
    const std::string sig = kv::http::SignNotify(secret, std::time(nullptr), body);
    const std::string req = "POST /api/v1/payments/notify HTTP/1.1\r\nHost: " + ep.host_header +
                            "\r\nContent-Type: application/json\r\nKeyvend-Signature: " + sig +
                            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                            body;
    const int64_t t0 = NowNs();
    int status = 0;
    std::string resp, error;
    bool reconnected = false;
    const bool ok = conn.Exchange(req, 10000, &status, &resp, &error, &reconnected);
    const int64_t t1 = NowNs();
    ++out->sent;
    if (!ok) {
      ++out->failed;
      out->last_failure = error;
    } else if (status == 200) {
      ++out->ok;
      out->latency.Record(static_cast<uint64_t>((t1 - t0) / 1000));
    } else {
      ++out->other;
      const std::string code = JsonString(resp, "code");
      ++out->codes[std::to_string(status) + " " + (code.empty() ? "-" : code)];
      out->last_failure = "HTTP " + std::to_string(status) + " " + code;
    }
  }
}

// --- main ------------------------------------------------------------------------------------

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr,
               "flood_bench: %s\nusage: flood_bench --url http://HOST:PORT --product ID "
               "[--ops-url URL] [--mode flood|throughput] [--connections N] [--seconds S] "
               "[--threads T] [--payment-secret S] [--notify-every K] "
               "[--probe-interval-ms MS] [--configured-rate R] [--offered-rate X]\n",
               why.c_str());
  std::exit(2);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  if (const char* s = std::getenv("KEYVEND_PAYMENT_SECRET")) o.secret = s;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (i + 1 >= argc) Usage(a + " needs a value");
      v = argv[++i];
    }
    const auto num = [&](double lo, double hi) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || d < lo || d > hi) Usage("bad value for " + a + ": " + v);
      return d;
    };
    if (a == "--url") {
      o.url = v;
    } else if (a == "--ops-url") {
      o.ops_url = v;
    } else if (a == "--product") {
      o.product = v;
    } else if (a == "--payment-secret") {
      o.secret = v;
    } else if (a == "--mode") {
      if (v != "flood" && v != "throughput") Usage("--mode is flood or throughput");
      o.mode = v;
    } else if (a == "--connections") {
      o.connections = static_cast<int>(num(1, 20000));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(num(1, 64));
    } else if (a == "--seconds") {
      o.seconds = num(0.1, 3600);
    } else if (a == "--notify-every") {
      o.notify_every = static_cast<int>(num(0, 1e9));
    } else if (a == "--offered-rate") {
      o.offered_rate = num(0, 1e7);
    } else if (a == "--configured-rate") {
      o.configured_rate = static_cast<int64_t>(num(0, 1e9));
    } else if (a == "--probe-interval-ms") {
      o.probe_interval_ms = static_cast<int>(num(0, 60000));
    } else {
      Usage("unknown option " + a);
    }
  }
  if (o.url.empty()) Usage("--url is required");
  if (o.product.empty()) Usage("--product is required");
  if (o.ops_url.empty()) o.ops_url = o.url;
  const bool flood = o.mode == "flood";
  if (o.notify_every < 0) o.notify_every = flood ? 20 : 0;
  if (o.probe_interval_ms < 0) o.probe_interval_ms = flood ? 10 : 0;
  if (o.notify_every > 0 && o.secret.empty()) {
    Usage("notifies need --payment-secret or KEYVEND_PAYMENT_SECRET");
  }
  o.threads = std::min(o.threads, o.connections);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  Endpoint main_ep, ops_ep;
  if (!ParseUrl(o.url, &main_ep)) Usage("cannot use --url " + o.url);
  if (!ParseUrl(o.ops_url, &ops_ep)) Usage("cannot use --ops-url " + o.ops_url);

  NotifyQueue queue;
  const int64_t start_ns = NowNs();
  const int64_t stop_ns = start_ns + static_cast<int64_t>(o.seconds * 1e9);

  std::vector<std::unique_ptr<BuyerLoop>> loops;
  for (int t = 0; t < o.threads; ++t) {
    std::vector<int> ids;
    for (int i = t; i < o.connections; i += o.threads) ids.push_back(i);
    loops.push_back(std::make_unique<BuyerLoop>(main_ep, o, std::move(ids), start_ns, stop_ns,
                                                o.notify_every > 0 ? &queue : nullptr,
                                                o.notify_every, o.offered_rate / o.threads));
  }
  ProbeStats probe;
  NotifyStats notify;
  std::vector<std::thread> buyers;
  for (auto& l : loops) buyers.emplace_back([&l] { l->Run(); });
  std::thread prober, notifier;
  std::atomic<bool> notifier_done{false};
  if (o.probe_interval_ms > 0) {
    prober = std::thread([&] { RunProber(ops_ep, o.probe_interval_ms, stop_ns, &probe); });
  }
  if (o.notify_every > 0) {
    notifier = std::thread([&] {
      RunNotifier(ops_ep, o.secret, &queue, &notify);
      notifier_done = true;
    });
  }
  for (auto& b : buyers) b.join();
  const int64_t buyers_done_ns = NowNs();
  if (prober.joinable()) prober.join();
  if (notifier.joinable()) {
    // Orders accepted at the end still get their notify, for at most 5 s more.
    queue.Close();
    const int64_t give_up = NowNs() + 5'000'000'000;
    while (!notifier_done.load() && NowNs() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    notify.unsent = queue.Abandon();
    notifier.join();
  }
  notify.unsent += queue.dropped();

  // --- merge and report ---
  BuyerStats all;
  all.accepted_per_second.assign(static_cast<size_t>(o.seconds) + 8, 0);
  for (auto& l : loops) {
    BuyerStats& s = l->stats();
    for (int c = 0; c < kNumClasses; ++c) all.latency[c].Merge(s.latency[c]);
    for (const auto& [k, v] : s.codes) all.codes[k] += v;
    for (size_t i = 0; i < s.accepted_per_second.size(); ++i) {
      all.accepted_per_second[i] += s.accepted_per_second[i];
    }
    all.sent += s.sent;
    all.connects += s.connects;
    all.reconnects += s.reconnects;
    all.server_closes += s.server_closes;
    all.closed_mid_request += s.closed_mid_request;
    all.connect_errors += s.connect_errors;
    all.malformed += s.malformed;
    all.unfinished += s.unfinished;
    all.sampled += s.sampled;
    all.started_late += s.started_late;
    all.not_started += s.not_started;
  }
  const double elapsed = static_cast<double>(buyers_done_ns - start_ns) / 1e9;
  uint64_t answered = 0;
  for (int c = 0; c < kNumClasses; ++c) answered += all.latency[c].count();
  const Histogram& acc = all.latency[k201];
  const double offered_per_s = static_cast<double>(all.sent) / elapsed;
  const double accepted_per_s = static_cast<double>(acc.count()) / elapsed;
  // Whole seconds after the first (which also spends the bucket's burst) and before the
  // deadline's partial second.
  std::vector<uint64_t> steady;
  for (size_t i = 1; i < static_cast<size_t>(o.seconds) && i < all.accepted_per_second.size();
       ++i) {
    steady.push_back(all.accepted_per_second[i]);
  }
  std::vector<uint64_t> sorted = steady;
  std::sort(sorted.begin(), sorted.end());
  const uint64_t steady_min = sorted.empty() ? 0 : sorted.front();
  const uint64_t steady_med = sorted.empty() ? 0 : sorted[sorted.size() / 2];
  const uint64_t steady_max = sorted.empty() ? 0 : sorted.back();

  char load[64] = "closed loop";
  if (o.offered_rate > 0) std::snprintf(load, sizeof load, "paced %.0f/s", o.offered_rate);
  std::printf(
      "flood_bench mode=%s url=%s ops_url=%s connections=%d threads=%d load=%s "
      "seconds=%.1f (measured %.2f)\n",
      o.mode.c_str(), o.url.c_str(), o.ops_url.c_str(), o.connections, o.threads, load, o.seconds,
      elapsed);
  std::printf("\norders (POST /api/v1/orders)\n");
  std::printf("  %-6s %10s %10s %9s %9s %9s %9s\n", "status", "count", "per_s", "p50_ms", "p99_ms",
              "p999_ms", "max_ms");
  for (int c = 0; c < kNumClasses; ++c) {
    const Histogram& h = all.latency[c];
    std::printf("  %-6s %10llu %10.1f %9.2f %9.2f %9.2f %9.2f\n", kClassName[c],
                static_cast<unsigned long long>(h.count()),
                static_cast<double>(h.count()) / elapsed, Ms(h.Quantile(0.5)), Ms(h.Quantile(0.99)),
                Ms(h.Quantile(0.999)), Ms(h.max()));
  }
  std::printf("  offered (requests sent) %.1f/s, answered %.1f/s, accepted %.1f/s", offered_per_s,
              static_cast<double>(answered) / elapsed, accepted_per_s);
  if (o.configured_rate > 0) {
    std::printf(" (configured %lld/s: offered = %.1fx, accepted = %.2fx)",
                static_cast<long long>(o.configured_rate), offered_per_s / o.configured_rate,
                accepted_per_s / o.configured_rate);
  }
  std::printf("\n");
  if (!steady.empty()) {
    std::printf(
        "  accepted per whole second after the first (%zu s): min %llu, median %llu, "
        "max %llu\n",
        steady.size(), static_cast<unsigned long long>(steady_min),
        static_cast<unsigned long long>(steady_med), static_cast<unsigned long long>(steady_max));
  }
  for (const auto& [k, v] : all.codes) {
    std::printf("  answered %-28s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
  }
  std::printf(
      "  connections: opened %llu (reopened %llu), closed by server %llu, closed or "
      "reset mid-request %llu, connect errors %llu, malformed %llu, unfinished %llu\n",
      static_cast<unsigned long long>(all.connects),
      static_cast<unsigned long long>(all.reconnects),
      static_cast<unsigned long long>(all.server_closes),
      static_cast<unsigned long long>(all.closed_mid_request),
      static_cast<unsigned long long>(all.connect_errors),
      static_cast<unsigned long long>(all.malformed),
      static_cast<unsigned long long>(all.unfinished));
  if (o.offered_rate > 0) {
    std::printf(
        "  paced: %llu requests started late (every connection busy), %llu due but "
        "never started\n",
        static_cast<unsigned long long>(all.started_late),
        static_cast<unsigned long long>(all.not_started));
  }
  if (o.probe_interval_ms > 0) {
    std::printf("\nhealthz (GET /healthz every %d ms on %s)\n", o.probe_interval_ms,
                o.ops_url.c_str());
    std::printf(
        "  probes %llu, failures %llu, reconnects %llu, p50 %.2f ms, p99 %.2f ms, "
        "max %.2f ms%s%s\n",
        static_cast<unsigned long long>(probe.probes),
        static_cast<unsigned long long>(probe.failures),
        static_cast<unsigned long long>(probe.reconnects), Ms(probe.latency.Quantile(0.5)),
        Ms(probe.latency.Quantile(0.99)), Ms(probe.latency.max()),
        probe.last_failure.empty() ? "" : ", last failure: ", probe.last_failure.c_str());
  }
  if (o.notify_every > 0) {
    std::printf("\nnotify (signed, every %d-th accepted order, on %s)\n", o.notify_every,
                o.ops_url.c_str());
    std::printf(
        "  sampled %llu, sent %llu, 200 %llu, other status %llu, transport failures "
        "%llu, unsent %llu, p50 %.2f ms, p99 %.2f ms, max %.2f ms%s%s\n",
        static_cast<unsigned long long>(all.sampled), static_cast<unsigned long long>(notify.sent),
        static_cast<unsigned long long>(notify.ok), static_cast<unsigned long long>(notify.other),
        static_cast<unsigned long long>(notify.failed),
        static_cast<unsigned long long>(notify.unsent), Ms(notify.latency.Quantile(0.5)),
        Ms(notify.latency.Quantile(0.99)), Ms(notify.latency.max()),
        notify.last_failure.empty() ? "" : ", last failure: ", notify.last_failure.c_str());
    for (const auto& [k, v] : notify.codes) {
      std::printf("  answered %-28s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    }
  }
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf(
      "\nRESULT mode=%s seconds=%.2f connections=%d paced_rate=%.0f offered_per_s=%.1f "
      "answered_per_s=%.1f accepted_per_s=%.1f accepted_steady_seconds=%zu "
      "accepted_steady_min=%llu "
      "accepted_steady_median=%llu accepted_steady_max=%llu p50_accepted_ms=%.2f "
      "p99_accepted_ms=%.2f max_accepted_ms=%.2f status_201=%llu status_429=%llu "
      "status_503=%llu status_other=%llu p99_429_ms=%.2f p99_503_ms=%.2f "
      "reconnects=%llu conn_errors=%llu closed_mid_request=%llu unfinished=%llu "
      "healthz_probes=%llu healthz_failures=%llu healthz_p50_ms=%.2f healthz_p99_ms=%.2f "
      "healthz_max_ms=%.2f notify_sent=%llu notify_ok=%llu notify_other=%llu "
      "notify_failed=%llu notify_unsent=%llu notify_p99_ms=%.2f started_late=%llu "
      "not_started=%llu\n",
      o.mode.c_str(), elapsed, o.connections, o.offered_rate, offered_per_s,
      static_cast<double>(answered) / elapsed, accepted_per_s, steady.size(), u(steady_min),
      u(steady_med), u(steady_max), Ms(acc.Quantile(0.5)), Ms(acc.Quantile(0.99)), Ms(acc.max()),
      u(acc.count()), u(all.latency[k429].count()), u(all.latency[k503].count()),
      u(all.latency[kOther].count()), Ms(all.latency[k429].Quantile(0.99)),
      Ms(all.latency[k503].Quantile(0.99)), u(all.reconnects), u(all.connect_errors),
      u(all.closed_mid_request), u(all.unfinished), u(probe.probes), u(probe.failures),
      Ms(probe.latency.Quantile(0.5)), Ms(probe.latency.Quantile(0.99)), Ms(probe.latency.max()),
      u(notify.sent), u(notify.ok), u(notify.other), u(notify.failed), u(notify.unsent),
      Ms(notify.latency.Quantile(0.99)), u(all.started_late), u(all.not_started));
  return answered == 0 ? 1 : 0;
}
