// slowdrip_bench's event loop (engine.h).
#include "slowdrip/engine.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24  // linux/in.h; glibc's netinet/in.h may lack it
#endif

namespace kv::slowdrip {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int kConnectTimeoutMs = 5000;  // a drip's or an idle connection's connect
constexpr int kIdleAnswerTimeoutMs = 10000;
constexpr int64_t kSampleNs = 100 * kMs;
constexpr size_t kInMax = 65536;  // answers are small; a bigger buffer is a broken server

// A drip's bytes: the request line at once, then these one at a time, forever (valid header
// lines, never the empty line that ends a head).
constexpr std::string_view kDripLine = "POST /api/v1/orders HTTP/1.1\r\n";
constexpr std::string_view kDripHeader = "X-Drip: 0123456789abcdef\r\n";

uint64_t Key(uint32_t slot, uint32_t gen) { return uint64_t{gen} << 32 | slot; }

std::string Errno(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

}  // namespace

in_addr SourceAddress(int first_x, int index) {
  const int x = (first_x - 1 + index / 254) % 254 + 1;
  const int y = index % 254 + 1;
  in_addr a{};
  a.s_addr = htonl((127u << 24) | (static_cast<uint32_t>(x) << 8) | static_cast<uint32_t>(y));
  return a;
}

std::string AddressText(in_addr a) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string CountsText(const std::map<std::string, uint64_t>& counts) {
  if (counts.empty()) return "none";
  std::string s;
  for (const auto& [what, n] : counts) {
    if (!s.empty()) s += ',';
    for (char ch : what) s += (ch == ' ' || ch == ',' || ch == '=' || ch == ':') ? '_' : ch;
    s += ':' + std::to_string(n);
  }
  return s;
}

Engine::Engine(const Endpoint& ep, int max_connecting)
    : ep_(ep), max_connecting_(std::max(1, max_connecting)) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  idle_request_ = "GET /healthz HTTP/1.1\r\nHost: " + ep.host_header + "\r\n\r\n";
}

Engine::~Engine() {
  CloseAll();
  if (epfd_ >= 0) ::close(epfd_);
}

uint32_t Engine::NewSlot(Role role, in_addr source) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(conns_.size());
    conns_.emplace_back();
  }
  Conn& c = conns_[slot];
  const uint32_t gen = c.gen;
  c = Conn{};
  c.gen = gen;
  c.role = role;
  c.source = source;
  return slot;
}

void Engine::AddDrip(in_addr source, int drip_ms, int reopen_delay_ms) {
  drip_ms_ = drip_ms;
  reopen_delay_ms_ = reopen_delay_ms;
  Enqueue(NewSlot(Role::kDrip, source));
}

void Engine::AddIdle(in_addr source) {
  const uint32_t slot = NewSlot(Role::kIdle, source);
  conns_[slot].out = idle_request_;
  Enqueue(slot);
}

void Engine::Enqueue(uint32_t slot) {
  conns_[slot].state = State::kQueued;
  open_queue_.push_back(slot);
}

void Engine::OpenQueued() {
  while (connecting_ < max_connecting_ && !open_queue_.empty()) {
    const uint32_t slot = open_queue_.front();
    open_queue_.pop_front();
    ++connecting_;
    conns_[slot].counted = true;
    Open(slot);
  }
}

void Engine::Open(uint32_t slot) {
  Conn& c = conns_[slot];
  c.state = State::kConnecting;
  c.in.clear();
  c.out_off = 0;
  c.armed = 0;
  const int64_t now = NowNs();
  if (c.role != Role::kRequest) c.start_ns = now;
  c.deadline_ns = c.role == Role::kRequest ? c.start_ns + int64_t{req_.timeout_ms} * kMs
                                           : now + int64_t{kConnectTimeoutMs} * kMs;
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return Finish(slot, Errno("socket", errno));
  const int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Many connections per source address: the port is picked at connect (per destination).
  ::setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr = c.source;
  if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
    return Finish(slot, Errno("bind", errno));
  }
  if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&ep_.addr), ep_.addr_len) != 0 &&
      errno != EINPROGRESS) {
    return Finish(slot, Errno("connect", errno));
  }
  timers_.push({c.deadline_ns, slot, c.gen, Timer::kDeadline});
  Arm(slot, EPOLLOUT | EPOLLRDHUP);
}

void Engine::Arm(uint32_t slot, uint32_t events) {
  Conn& c = conns_[slot];
  if (c.armed == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = Key(slot, c.gen);
  ::epoll_ctl(epfd_, c.armed == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
  c.armed = events;
}

void Engine::OnEvent(uint32_t slot, uint32_t events) {
  Conn& c = conns_[slot];
  if (c.state == State::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Finish(slot, Errno("connect", err));
    if ((events & EPOLLOUT) == 0) return Finish(slot, "connect: hang-up");
    return OnConnected(slot);
  }
  if ((events & EPOLLOUT) != 0 && c.state == State::kSending && !Flush(slot)) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) OnReadable(slot);
}

void Engine::OnConnected(uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.role == Role::kDrip) {
    ++drip_stats_.established;
    ++drips_open_;
    c.deadline_ns = 0;
    c.out.assign(kDripLine);
    drip_stats_.bytes_sent += kDripLine.size();
    if (c.counted) {
      c.counted = false;
      --connecting_;
    }
    c.state = State::kSending;
    if (Flush(slot)) {
      timers_.push({NowNs() + int64_t{drip_ms_} * kMs, slot, c.gen, Timer::kDripByte});
    }
    return;
  }
  c.state = State::kSending;
  Flush(slot);
}

bool Engine::Flush(uint32_t slot) {
  Conn& c = conns_[slot];
  while (c.out_off < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c.state = State::kSending;
      Arm(slot, EPOLLOUT | EPOLLIN | EPOLLRDHUP);
      return true;
    } else {
      Finish(slot, Errno("send", errno));
      return false;
    }
  }
  c.out.clear();
  c.out_off = 0;
  c.state = c.role == Role::kDrip ? State::kDripping : State::kReading;
  Arm(slot, EPOLLIN | EPOLLRDHUP);
  return true;
}

void Engine::OnReadable(uint32_t slot) {
  Conn& c = conns_[slot];
  bool eof = false;
  int err = 0;
  char buf[16384];
  while (true) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      if (c.in.size() < kInMax) c.in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      err = errno;
    }
    break;
  }
  flood::Response r;
  const int parsed = c.in.empty() ? 0 : flood::ParseResponse(c.in, &r);
  if (c.role == Role::kDrip) {
    // Cut: a whole answer (it closes next), or the connection ended. The status says why.
    if (parsed != 0 || eof || err != 0) {
      std::string why = err != 0 ? Errno("recv", err) : "closed";
      if (c.in.size() >= 12 && c.in.compare(0, 7, "HTTP/1.") == 0) {
        why = "HTTP " + c.in.substr(9, 3);
      }
      Finish(slot, why);
    }
    return;
  }
  if (c.state == State::kIdle) {  // an idle connection ended (or sent something unasked)
    if (eof || err != 0 || !c.in.empty()) Finish(slot, eof ? "closed" : "reset");
    return;
  }
  if (parsed < 0) return Finish(slot, "malformed answer");
  if (parsed == 0) {
    if (eof) Finish(slot, "closed by the server");
    if (err != 0) Finish(slot, Errno("recv", err));
    return;
  }
  if (c.role == Role::kRequest) {
    --req_in_flight_;
    if (r.status == req_.expected_status) {
      ++req_stats_.ok;
      req_stats_.latency.Record(static_cast<uint64_t>((NowNs() - c.start_ns) / 1000));
    } else {
      ++req_stats_.failures["HTTP " + std::to_string(r.status)];
    }
    if (!req_.keep_alive || r.close || eof) return Finish(slot, "");
    c.in.erase(0, r.total_bytes);
    c.state = State::kIdle;
    c.deadline_ns = 0;
    req_pool_.push_back(slot);
    return;
  }
  // An idle connection's answer.
  c.in.erase(0, r.total_bytes);
  c.deadline_ns = 0;
  if (r.status != 200 || r.close || eof) {
    return Finish(slot, r.status != 200 ? "HTTP " + std::to_string(r.status) : "closed after 200");
  }
  if (c.resend) {
    ++idle_stats_.resend_ok;
    c.resend = false;
  } else {
    ++idle_stats_.ready;
    ++idle_open_;
    if (c.counted) {
      c.counted = false;
      --connecting_;
    }
  }
  c.state = State::kIdle;
}

void Engine::Finish(uint32_t slot, const std::string& why) {
  Conn& c = conns_[slot];
  const State was = c.state;
  if (c.counted) {
    c.counted = false;
    --connecting_;
  }
  CloseFd(c);
  switch (c.role) {
    case Role::kDrip:
      if (was == State::kConnecting || was == State::kQueued) {
        ++drip_stats_.connect_failures;
      } else {
        --drips_open_;
        ++drip_stats_.cuts[why];
      }
      c.state = State::kFree;
      timers_.push({NowNs() + int64_t{reopen_delay_ms_} * kMs, slot, c.gen, Timer::kReopen});
      return;
    case Role::kRequest:
      if (was != State::kIdle) {  // a pooled connection the server closed: not a request
        if (!why.empty()) {
          --req_in_flight_;
          ++req_stats_.failures[why];
        }
      }
      break;
    case Role::kIdle:
      if (was == State::kIdle) {
        --idle_open_;
        ++idle_stats_.closed_by_server;
      } else if (c.resend) {
        --idle_open_;
        ++idle_stats_.resend_failures[why];
      } else {
        ++idle_stats_.failures[why];
      }
      break;
  }
  c.state = State::kFree;
  free_slots_.push_back(slot);
}

void Engine::CloseFd(Conn& c) {
  if (c.fd >= 0) ::close(c.fd);  // close also removes it from the epoll set
  c.fd = -1;
  c.armed = 0;
  ++c.gen;
}

void Engine::OnTimer(const Due& d) {
  Conn& c = conns_[d.slot];
  if (c.gen != d.gen) return;
  switch (d.what) {
    case Timer::kDeadline:
      if (c.deadline_ns == 0 || c.fd < 0) return;
      if (c.state == State::kConnecting) return Finish(d.slot, "connect timeout");
      if (c.state == State::kSending || c.state == State::kReading) {
        return Finish(d.slot, "timeout");
      }
      return;
    case Timer::kDripByte:
      if (c.state != State::kDripping) return;
      c.out.assign(1, kDripHeader[c.drip_pos++ % kDripHeader.size()]);
      ++drip_stats_.bytes_sent;
      if (Flush(d.slot)) {
        timers_.push({d.ns + int64_t{drip_ms_} * kMs, d.slot, c.gen, Timer::kDripByte});
      }
      return;
    case Timer::kReopen:
      if (c.state == State::kFree && c.role == Role::kDrip) Enqueue(d.slot);
      return;
  }
}

void Engine::StartRequest() {
  const uint64_t seq = req_seq_++;
  ++req_stats_.started;
  ++req_in_flight_;
  const int64_t now = NowNs();
  while (!req_pool_.empty()) {
    const uint32_t slot = req_pool_.back();
    req_pool_.pop_back();
    Conn& c = conns_[slot];
    if (c.role != Role::kRequest || c.state != State::kIdle) continue;  // closed meanwhile
    c.out = req_.make(seq);
    c.out_off = 0;
    c.start_ns = now;
    c.deadline_ns = now + int64_t{req_.timeout_ms} * kMs;
    timers_.push({c.deadline_ns, slot, c.gen, Timer::kDeadline});
    c.state = State::kSending;
    Flush(slot);
    return;
  }
  const in_addr source = req_.sources[req_source_++ % req_.sources.size()];
  const uint32_t slot = NewSlot(Role::kRequest, source);
  conns_[slot].out = req_.make(seq);
  conns_[slot].start_ns = now;
  Open(slot);
}

void Engine::Resend() {
  const int64_t now = NowNs();
  for (uint32_t slot = 0; slot < conns_.size(); ++slot) {
    Conn& c = conns_[slot];
    if (c.role != Role::kIdle || c.state != State::kIdle) continue;
    c.out = idle_request_;
    c.out_off = 0;
    c.resend = true;
    c.start_ns = now;
    c.deadline_ns = now + int64_t{kIdleAnswerTimeoutMs} * kMs;
    timers_.push({c.deadline_ns, slot, c.gen, Timer::kDeadline});
    c.state = State::kSending;
    Flush(slot);
  }
}

void Engine::Tick() {
  const int64_t now = NowNs();
  while (!timers_.empty() && timers_.top().ns <= now) {
    const Due d = timers_.top();
    timers_.pop();
    OnTimer(d);
  }
  if (req_.make) {
    if (req_next_ns_ == 0) req_next_ns_ = req_.start_ns;
    while (now >= req_next_ns_ && req_next_ns_ < req_.stop_ns) {
      StartRequest();
      req_next_ns_ += req_.interval_ns;
    }
  }
  if (sample_to_ns_ > 0 && now >= sample_from_ns_ && now < sample_to_ns_ &&
      now >= next_sample_ns_) {
    const uint64_t open = drips_open_;
    drip_stats_.open_min = drip_stats_.samples == 0 ? open : std::min(drip_stats_.open_min, open);
    drip_stats_.open_max = std::max(drip_stats_.open_max, open);
    drip_stats_.open_sum += open;
    ++drip_stats_.samples;
    next_sample_ns_ = std::max(next_sample_ns_ + kSampleNs, sample_from_ns_);
    if (next_sample_ns_ <= now) next_sample_ns_ = now + kSampleNs;
  }
  OpenQueued();
}

void Engine::Poll(int timeout_ms) {
  epoll_event evs[512];
  const int n = ::epoll_wait(epfd_, evs, 512, timeout_ms);
  for (int i = 0; i < n; ++i) {
    const uint32_t slot = static_cast<uint32_t>(evs[i].data.u64);
    const uint32_t gen = static_cast<uint32_t>(evs[i].data.u64 >> 32);
    if (slot < conns_.size() && conns_[slot].gen == gen && conns_[slot].fd >= 0) {
      OnEvent(slot, evs[i].events);
    }
  }
}

void Engine::Run(int64_t until_ns, const std::atomic<bool>* stop, bool until_requests_done) {
  while (true) {
    Tick();
    const int64_t now = NowNs();
    if (now >= until_ns || (stop != nullptr && stop->load())) return;
    if (until_requests_done && req_.make && now >= req_.stop_ns && req_in_flight_ == 0) return;
    int64_t wait_ns = std::min<int64_t>(until_ns - now, 20 * kMs);
    if (!timers_.empty()) wait_ns = std::min(wait_ns, timers_.top().ns - now);
    if (req_.make && req_next_ns_ < req_.stop_ns) wait_ns = std::min(wait_ns, req_next_ns_ - now);
    Poll(static_cast<int>(std::max<int64_t>(0, (wait_ns + kMs - 1) / kMs)));
  }
}

void Engine::RunUntilIdleSettled(int64_t until_ns) {
  while (NowNs() < until_ns) {
    Tick();
    bool busy = connecting_ > 0 || !open_queue_.empty();
    for (size_t i = 0; !busy && i < conns_.size(); ++i) {
      const Conn& c = conns_[i];
      busy = c.role == Role::kIdle && c.fd >= 0 && c.state != State::kIdle;
    }
    if (!busy) return;
    Poll(10);
  }
}

void Engine::CloseAll() {
  for (Conn& c : conns_) CloseFd(c);
  open_queue_.clear();
}

}  // namespace kv::slowdrip
