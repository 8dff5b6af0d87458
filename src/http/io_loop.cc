#include "http/io_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "base/log.h"
#include "http/worker_stream.h"

namespace kv::http {

int64_t MonoNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {
constexpr uint64_t kWakeTag = ~uint64_t{0};
constexpr uint64_t kDrainTag = ~uint64_t{0} - 1;
constexpr size_t kKeepBufferBytes = 4 * 1024;  // an idle connection's buffers shrink to this
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

uint64_t Tag(int fd, uint32_t gen) { return (uint64_t{gen} << 32) | static_cast<uint32_t>(fd); }
}  // namespace

IoLoop::IoLoop(size_t index, IoLoopOptions opts, ConnHandler* handler, Acceptor* acceptor,
               WorkerPool* pool, Counters counters)
    : index_(index),
      opts_(opts),
      handler_(handler),
      acceptor_(acceptor),
      pool_(pool),
      counters_(counters),
      scratch_(new char[kReadBytes]) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  KV_CHECK(epoll_fd_ >= 0 && wake_fd_ >= 0, "epoll/eventfd: errno ", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  KV_CHECK(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) == 0, "epoll_ctl: errno ", errno);
  // Level-triggered: readable from the drain on, removed once seen.
  ev.data.u64 = kDrainTag;
  if (acceptor_->drain_fd() >= 0) epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, acceptor_->drain_fd(), &ev);
}

IoLoop::~IoLoop() {
  Stop();
  if (thread_.joinable()) thread_.join();
  // Connections still held (Run never ran, or the server is torn down without a drain):
  // given back to the acceptor so its counts and descriptors stay right.
  for (auto& c : conns_) {
    if (c != nullptr) acceptor_->Release(c->ac);
  }
  close(epoll_fd_);
  close(wake_fd_);
}

void IoLoop::Join() {
  Stop();
  if (thread_.joinable()) thread_.join();
}

void IoLoop::Start() {
  thread_ = std::thread([this] { Run(); });
}

void IoLoop::Stop() {
  {
    MutexLock l(&mu_);
    stop_ = true;
  }
  Wake();
}

void IoLoop::Wake() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void IoLoop::Adopt(const AcceptedConnection& ac) {
  bool wake = false;
  {
    MutexLock l(&mu_);
    adopted_.push_back(ac);
    wake = !woken_;
    woken_ = true;
  }
  if (wake) Wake();
}

void IoLoop::Done(Conn* c) {
  bool wake = false;
  {
    MutexLock l(&mu_);
    done_.push_back(c);
    wake = !woken_;
    woken_ = true;
  }
  if (wake) Wake();
}

void IoLoop::Complete(Conn* c, std::function<void(Conn&)> finish) {
  bool wake = false;
  {
    MutexLock l(&mu_);
    completions_.push_back({c, std::move(finish)});
    wake = !woken_;
    woken_ = true;
  }
  if (wake) Wake();
}

void IoLoop::Run() {
  pthread_setname_np(pthread_self(), "kv-io");  // named in top, perf and gdb
  constexpr int kEvents = 256;
  epoll_event events[kEvents];
  while (true) {
    const int n = epoll_wait(epoll_fd_, events, kEvents, NextTimeoutMs(MonoNowNs()));
    if (n < 0 && errno != EINTR) {
      KV_LOG(kError, "I/O loop ", index_, ": epoll_wait failed: errno ", errno);
      break;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        (void)!::read(wake_fd_, &v, sizeof v);
        continue;
      }
      if (tag == kDrainTag) {
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, acceptor_->drain_fd(), nullptr);
        OnDrain();
        continue;
      }
      OnEvent(static_cast<int>(tag & 0xffffffffu), static_cast<uint32_t>(tag >> 32),
              events[i].events);
    }
    TakeInbox();
    ExpireTimers(MonoNowNs());
    MutexLock l(&mu_);
    if (stop_) break;
  }
}

void IoLoop::TakeInbox() {
  std::vector<AcceptedConnection> adopted;
  std::vector<Conn*> done;
  std::vector<Completion> completions;
  {
    MutexLock l(&mu_);
    adopted.swap(adopted_);
    done.swap(done_);
    completions.swap(completions_);
    woken_ = false;
  }
  for (Completion& k : completions) {
    k.finish(*k.conn);
    done.push_back(k.conn);
  }
  for (Conn* c : done) {
    c->state = Conn::State::kWriting;
    SetStateDeadline(*c, MonoNowNs() + opts_.write_timeout_ms * 1'000'000);
    WriteOut(*c);
  }
  for (const AcceptedConnection& ac : adopted) Add(ac);
}

void IoLoop::Add(const AcceptedConnection& ac) {
  if (static_cast<size_t>(ac.fd) >= conns_.size()) conns_.resize(static_cast<size_t>(ac.fd) + 1);
  auto c = std::make_unique<Conn>();
  c->ac = ac;
  c->loop = index_;
  c->gen = next_gen_++;
  c->cc.conn = &c->ac;
  c->cc.owner = c.get();
  c->cc.one_request = ac.reserved;
  c->cc.ops = acceptor_->name(ac.listener) == "ops";  // serves only the ops and notify routes
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = Tag(ac.fd, c->gen);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, ac.fd, &ev) != 0) {
    KV_LOG(kError, "I/O loop ", index_, ": epoll_ctl add failed: errno ", errno);
    acceptor_->Release(ac);
    return;
  }
  Conn& r = *c;
  conns_[static_cast<size_t>(ac.fd)] = std::move(c);
  count_.fetch_add(1, std::memory_order_relaxed);
  // The acceptor admitted it because it is readable: the first head is due header_timeout
  // after accept (the time it waited silent included).
  r.idle = false;
  r.last_read_ns = MonoNowNs();
  SetStateDeadline(r, ac.accepted_ns + opts_.header_timeout_ms * 1'000'000);
  if (draining_) {
    r.close_after = true;
  }
  ReadInput(r);
}

void IoLoop::OnEvent(int fd, uint32_t gen, uint32_t events) {
  if (fd < 0 || static_cast<size_t>(fd) >= conns_.size()) return;
  Conn* c = conns_[static_cast<size_t>(fd)].get();
  if (c == nullptr || c->gen != gen) return;  // an event for an earlier user of the fd
  if (c->state == Conn::State::kWorking) {
    // The worker owns it: note that input (or an end) may be waiting.
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) c->read_hint = true;
    return;
  }
  if ((events & EPOLLERR) != 0) {
    Close(*c);
    return;
  }
  if ((events & EPOLLOUT) != 0 && c->state == Conn::State::kWriting) {
    if (!WriteOut(*c)) return;
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) {
    if (c->state == Conn::State::kWorking || c->state == Conn::State::kWriting) {
      c->read_hint = true;
    } else {
      ReadInput(*c);
    }
  }
}

bool IoLoop::ReadInput(Conn& c) {
  c.read_hint = false;
  while (true) {
    const ssize_t n = ::recv(c.ac.fd, scratch_.get(), kReadBytes, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      Close(c);  // a reset: nobody to answer, whatever was pending
      return false;
    }
    if (n == 0) return OnEof(c);
    if (c.state == Conn::State::kLinger) {
      c.lingered += static_cast<uint64_t>(n);
      if (c.lingered > kLingerBytesMax) {
        Close(c);
        return false;
      }
      continue;
    }
    c.in.append(scratch_.get(), static_cast<size_t>(n));
    c.last_read_ns = MonoNowNs();
    if (!Advance(c)) return false;
    if (c.state != Conn::State::kHead && c.state != Conn::State::kBody) {
      // A request is complete (or a refusal is on its way): read the rest later.
      c.read_hint = true;
      return true;
    }
    UpdateDeadline(c);
    if (static_cast<size_t>(n) < kReadBytes) return true;  // the socket is drained
  }
}

bool IoLoop::OnEof(Conn& c) {
  c.peer_eof = true;
  switch (c.state) {
    case Conn::State::kBody:
      // The body ended early: answered (the client may still read), then closed.
      return Refuse(c, ConnHandler::BodyError::kEndedEarly);
    case Conn::State::kHead:
    case Conn::State::kLinger:
    default:
      // No request pending (or only part of a head): nothing to answer.
      Close(c);
      return false;
  }
}

bool IoLoop::Advance(Conn& c) {
  // Not re-entered: a response finished on the loop (an inline request) inside this loop
  // returns here, and the loop goes on with the next buffered request.
  if (c.in_advance) return true;
  c.in_advance = true;
  const bool alive = AdvanceBuffered(c);
  if (alive) c.in_advance = false;
  return alive;
}

bool IoLoop::AdvanceBuffered(Conn& c) {
  while (true) {
    const size_t avail = c.in.size() - c.in_pos;
    if (c.state == Conn::State::kHead) {
      if (avail == 0) return true;
      const int64_t now = MonoNowNs();
      if (c.idle) {
        // The first byte of a later request: its head is due header_timeout from now.
        c.idle = false;
        SetStateDeadline(c, now + opts_.header_timeout_ms * 1'000'000);
      }
      size_t skip = 0, len = 0;
      const HeadScan r = ScanHead(std::string_view(c.in).substr(c.in_pos), &c.scan,
                                  opts_.header_bytes_max, opts_.header_count_max, &skip, &len);
      if (r == HeadScan::kNeedMore) {
        c.in_pos += skip;
        if (skip > 0) c.scan = HeadScanState{};
        return true;
      }
      if (r != HeadScan::kComplete) {
        if (counters_.header_too_large != nullptr) counters_.header_too_large->Inc();
        c.cc.must_close = true;
        return Raw(c, 431, "Request Header Fields Too Large",
                   r == HeadScan::kTooLarge ? "header_bytes" : "header_lines");
      }
      c.head_bytes.assign(c.in, c.in_pos + skip, len);
      c.in_pos += skip + len;
      c.scan = HeadScanState{};
      c.head = httplib::Request();
      c.head_parsed = ParseHead(c.head_bytes, &c.head);
      c.body_left = 0;
      c.chunked = false;
      c.expect_continue = false;
      handler_->OnHead(c);
      ++c.served;
      c.close_after = c.close_after || draining_ || acceptor_->draining() ||
                      c.served >= opts_.keep_alive_max_count || c.cc.one_request;
      if (!c.head_parsed || c.cc.refused || (c.body_left == 0 && !c.chunked)) {
        if (!Dispatch(c)) return false;
        if (c.state == Conn::State::kHead) continue;  // answered on the loop: the next one
        return true;
      }
      if (!StartBody(c)) return false;
      continue;
    }
    if (c.state == Conn::State::kBody) {
      if (c.chunked) {
        size_t used = 0;
        const BodyRead r = c.decoder.Feed(c.in.data() + c.in_pos, avail, &used, &c.cc.body);
        c.in_pos += used;
        switch (r) {
          case BodyRead::kOk:
            if (!Dispatch(c)) return false;
            if (c.state == Conn::State::kHead) continue;
            return true;
          case BodyRead::kNeedMore:
            Compact(c);
            return true;
          case BodyRead::kTooLarge:
            return Refuse(c, ConnHandler::BodyError::kTooLarge);
          case BodyRead::kMalformed:
            return Refuse(c, ConnHandler::BodyError::kMalformed);
        }
        return true;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(avail, c.body_left));
      c.cc.body.append(c.in, c.in_pos, take);
      c.in_pos += take;
      c.body_left -= take;
      Compact(c);
      if (c.body_left > 0) return true;
      if (!Dispatch(c)) return false;
      if (c.state == Conn::State::kHead) continue;
      return true;
    }
    return true;
  }
}

bool IoLoop::StartBody(Conn& c) {
  c.state = Conn::State::kBody;
  SetStateDeadline(c, MonoNowNs() + opts_.body_timeout_ms * 1'000'000);
  if (c.chunked) c.cc.body.clear();
  const size_t avail = c.in.size() - c.in_pos;
  const bool all_here = !c.chunked && avail >= c.body_left;
  if (c.expect_continue && !all_here) {
    // The client waits for this before it sends the body (the screen admitted it).
    c.out.append(kContinue);
    if (SendSome(c) < 0) {
      Close(c);
      return false;
    }
  }
  return true;
}

bool IoLoop::Refuse(Conn& c, ConnHandler::BodyError why) {
  if (why == ConnHandler::BodyError::kTimeout && counters_.body_timeouts != nullptr) {
    counters_.body_timeouts->Inc();
  }
  handler_->RefuseBody(c, why);
  c.close_after = true;
  return Dispatch(c);
}

bool IoLoop::Raw(Conn& c, int status, const char* reason, const char* message) {
  handler_->WriteRaw(c, status, reason, message);
  c.close_after = true;
  c.cc.must_close = true;
  c.state = Conn::State::kWriting;
  SetStateDeadline(c, MonoNowNs() + opts_.write_timeout_ms * 1'000'000);
  return WriteOut(c);
}

bool IoLoop::Dispatch(Conn& c) {
  Compact(c);
  if (handler_->RunsInline(c)) {
    // Answered here, without a hand-off (the catalogue, probes, refusals, sold out).
    const size_t mark = c.out.size();
    c.cc.on_loop = true;
    handler_->Execute(c);
    if (c.cc.async_pending) {
      // Handed to the committer, whose completion calls Complete: the connection is not ours
      // until then (nothing of it is touched here but the loop's own fields).
      c.state = Conn::State::kWorking;
      SetStateDeadline(c, 0);
      return true;
    }
    c.cc.on_loop = false;
    if (!c.cc.needs_worker) {
      c.state = Conn::State::kWriting;
      SetStateDeadline(c, MonoNowNs() + opts_.write_timeout_ms * 1'000'000);
      return WriteOut(c);
    }
    c.out.resize(mark);  // whatever the engine wrote for the unanswered first run
    c.cc.needs_worker = false;
    c.cc.precheck = false;
    c.worker_ok = true;
    c.worker_closed = false;
  }
  c.state = Conn::State::kWorking;
  SetStateDeadline(c, 0);
  Conn* p = &c;
  pool_->Submit([this, p] {
    handler_->Execute(*p);
    Done(p);
  });
  return true;
}

int IoLoop::SendSome(Conn& c) {
  const int r = SendPending(c.ac.fd, &c.out, &c.out_pos);
  if (r == 1 && c.out.capacity() > kKeepBufferBytes) c.out.shrink_to_fit();
  return r;
}

bool IoLoop::WriteOut(Conn& c) {
  const int r = c.write_failed ? -1 : SendSome(c);
  if (r < 0) {
    Close(c);
    return false;
  }
  if (r == 0) return true;  // EPOLLOUT resumes it
  return FinishResponse(c);
}

bool IoLoop::FinishResponse(Conn& c) {
  const bool unread = c.in_pos < c.in.size();
  if (!c.worker_ok || c.worker_closed || c.close_after || c.cc.must_close || draining_ ||
      acceptor_->draining()) {
    if (unread || c.cc.must_close) return StartLinger(c);
    Close(c);
    return false;
  }
  // Keep-alive: the next request.
  c.state = Conn::State::kHead;
  c.idle = true;
  c.worker_ok = true;
  c.worker_closed = false;
  c.cc.body.clear();
  if (c.cc.body.capacity() > kKeepBufferBytes) c.cc.body.shrink_to_fit();
  Compact(c);
  SetStateDeadline(c, MonoNowNs() + opts_.keep_alive_timeout_ms * 1'000'000);
  // Answered on the loop inside Advance: it goes on with the buffered input, and its
  // caller with the socket.
  if (c.in_advance) return true;
  if (c.in_pos < c.in.size()) {
    if (!Advance(c)) return false;
  }
  if (c.read_hint || c.peer_eof) {
    if (c.peer_eof && c.state == Conn::State::kHead) {
      Close(c);
      return false;
    }
    if (c.state == Conn::State::kHead || c.state == Conn::State::kBody) return ReadInput(c);
  }
  return true;
}

bool IoLoop::StartLinger(Conn& c) {
  // Unread input must never be parsed as a request: stop writing, read and discard for a
  // moment (bounded in time and bytes), then close — the client reads the answer rather
  // than a reset.
  ::shutdown(c.ac.fd, SHUT_WR);
  c.state = Conn::State::kLinger;
  c.lingered = 0;
  SetStateDeadline(c, MonoNowNs() + int64_t{Acceptor::kLingerMs} * 1'000'000);
  return ReadInput(c);
}

void IoLoop::Close(Conn& c) {
  const int fd = c.ac.fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  std::unique_ptr<Conn> owned = std::move(conns_[static_cast<size_t>(fd)]);
  count_.fetch_sub(1, std::memory_order_relaxed);
  acceptor_->Release(owned->ac);  // closes the fd
}

void IoLoop::Compact(Conn& c) {
  if (c.in_pos == c.in.size()) {
    c.in.clear();
    c.in_pos = 0;
    if (c.in.capacity() > kKeepBufferBytes) c.in.shrink_to_fit();
  } else if (c.in_pos >= kReadBytes) {
    c.in.erase(0, c.in_pos);
    c.in_pos = 0;
  }
}

void IoLoop::SetStateDeadline(Conn& c, int64_t at) {
  c.deadline_ns = at;
  UpdateDeadline(c);
}

void IoLoop::UpdateDeadline(Conn& c) {
  int64_t at = c.deadline_ns;
  if (at == 0) return;
  const bool reading = (c.state == Conn::State::kHead && !c.idle) || c.state == Conn::State::kBody;
  if (reading) at = std::min(at, c.last_read_ns + opts_.read_timeout_ms * 1'000'000);
  // One heap entry covers every later deadline: when it fires, the real one is checked
  // and re-armed.
  if (c.timer_at == 0 || at < c.timer_at) {
    timers_.push(Timer{at, c.ac.fd, c.gen});
    c.timer_at = at;
  }
}

void IoLoop::ExpireTimers(int64_t now) {
  // Bounded per round: when thousands of deadlines fall together (a crowd of slow-drip
  // connections cut at once), ready connections get their turn in between.
  size_t budget = kExpiriesPerRound;
  while (!timers_.empty() && timers_.top().at <= now && budget-- > 0) {
    const Timer t = timers_.top();
    timers_.pop();
    if (t.fd < 0 || static_cast<size_t>(t.fd) >= conns_.size()) continue;
    Conn* c = conns_[static_cast<size_t>(t.fd)].get();
    if (c == nullptr || c->gen != t.gen) continue;
    if (c->timer_at == t.at) c->timer_at = 0;
    if (c->deadline_ns == 0) continue;  // working: no deadline
    int64_t due = c->deadline_ns;
    const bool reading =
        (c->state == Conn::State::kHead && !c->idle) || c->state == Conn::State::kBody;
    if (reading) due = std::min(due, c->last_read_ns + opts_.read_timeout_ms * 1'000'000);
    if (due <= now) {
      Expire(*c);
    } else if (c->timer_at == 0) {
      timers_.push(Timer{due, t.fd, t.gen});
      c->timer_at = due;
    }
  }
}

void IoLoop::Expire(Conn& c) {
  c.deadline_ns = 0;
  switch (c.state) {
    case Conn::State::kHead:
      if (c.idle || c.in_pos == c.in.size()) {
        // Nothing of a request (idle keep-alive, or a first request still silent): close.
        Close(c);
        return;
      }
      // A request begun and not finished in time (slow drip).
      if (counters_.header_timeouts != nullptr) counters_.header_timeouts->Inc();
      Raw(c, 408, "Request Timeout", "header_timeout");
      return;
    case Conn::State::kBody:
      Refuse(c, ConnHandler::BodyError::kTimeout);
      return;
    case Conn::State::kWriting:
    case Conn::State::kLinger:
      Close(c);
      return;
    case Conn::State::kWorking:
      return;
  }
}

int IoLoop::NextTimeoutMs(int64_t now) const {
  if (timers_.empty()) return 1000;
  const int64_t ms = (timers_.top().at - now + 999'999) / 1'000'000;
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 1000));
}

void IoLoop::OnDrain() {
  draining_ = true;
  std::vector<Conn*> idle;
  for (auto& c : conns_) {
    if (c != nullptr && c->state == Conn::State::kHead && c->idle && c->in_pos == c->in.size()) {
      // Bytes in the socket the loop has not read yet (a request sent just before the drain
      // began) make it busy, not idle: its readable event is pending, and closing it with
      // unread data would reset a request the client already sent.
      char b;
      if (::recv(c->ac.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0) continue;
      idle.push_back(c.get());
    }
  }
  for (Conn* c : idle) Close(*c);
}

}  // namespace kv::http
