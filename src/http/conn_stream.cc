#include "http/conn_stream.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace kv::http {

int64_t MonoNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

ConnStream::ConnStream(int fd, std::string peer_ip, int peer_port, std::string local_ip,
                       int local_port, int64_t read_timeout_ms, int64_t write_timeout_ms)
    : fd_(fd),
      peer_ip_(std::move(peer_ip)),
      peer_port_(peer_port),
      local_ip_(std::move(local_ip)),
      local_port_(local_port),
      read_timeout_ms_(read_timeout_ms),
      write_timeout_ms_(write_timeout_ms) {
  rbuf_.resize(kReadChunkBytes);
}

int64_t ConnStream::ReadWaitMs() const {
  int64_t wait = read_timeout_ms_;
  if (deadline_ns_ > 0) {
    const int64_t left_ns = deadline_ns_ - MonoNowNs();
    if (left_ns <= 0) return 0;
    wait = std::min(wait, (left_ns + 999'999) / 1'000'000);
  }
  return wait;
}

int ConnStream::WaitReadable(int64_t timeout_ms) const {
  if (timeout_ms <= 0) return 0;
  pollfd p{fd_, POLLIN, 0};
  while (true) {
    const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(timeout_ms, 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    return r == 0 ? 0 : 1;  // POLLHUP/POLLERR count as readable: recv reports them
  }
}

ssize_t ConnStream::Fill() {
  if (read_failed_) return -1;
  // A client may be waiting for what we wrote (100 Continue) before it sends more.
  if (!wbuf_.empty() && !Flush()) return -1;
  if (rpos_ == rend_) {
    rpos_ = rend_ = 0;
  } else if (rbuf_.size() - rend_ < kReadChunkBytes && rpos_ > 0) {
    std::memmove(rbuf_.data(), rbuf_.data() + rpos_, rend_ - rpos_);
    rend_ -= rpos_;
    rpos_ = 0;
  }
  if (rbuf_.size() - rend_ < kReadChunkBytes) rbuf_.resize(rend_ + kReadChunkBytes);
  while (true) {
    const ssize_t n = ::recv(fd_, rbuf_.data() + rend_, rbuf_.size() - rend_, 0);
    if (n > 0) {
      rend_ += static_cast<size_t>(n);
      bytes_read_ += static_cast<uint64_t>(n);
      return n;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      read_failed_ = true;
      return -1;
    }
    const int64_t wait = ReadWaitMs();
    const int w = WaitReadable(wait);
    if (w <= 0) {
      if (w == 0) timed_out_ = true;
      if (deadline_ns_ > 0 && MonoNowNs() >= deadline_ns_) deadline_hit_ = true;
      read_failed_ = true;
      return -1;
    }
  }
}

bool ConnStream::is_readable() const { return rpos_ < rend_ || WaitReadable(ReadWaitMs()) == 1; }

bool ConnStream::is_writable() const { return !write_failed_; }

ssize_t ConnStream::read(char* ptr, size_t size) {
  if (size == 0) return 0;
  if (rpos_ == rend_) {
    const ssize_t n = Fill();
    if (n <= 0) return n;
  }
  const size_t take = std::min(size, rend_ - rpos_);
  std::memcpy(ptr, rbuf_.data() + rpos_, take);
  rpos_ += take;
  return static_cast<ssize_t>(take);
}

ssize_t ConnStream::write(const char* ptr, size_t size) {
  if (write_failed_) return -1;
  wbuf_.append(ptr, size);
  if (wbuf_.size() >= kWriteBufferBytes && !Flush()) return -1;
  return static_cast<ssize_t>(size);
}

bool ConnStream::Flush() {
  if (wbuf_.empty()) return !write_failed_;
  const bool ok = SendAll(wbuf_.data(), wbuf_.size());
  wbuf_.clear();
  return ok;
}

bool ConnStream::SendAll(const char* p, size_t n) {
  if (write_failed_) return false;
  while (n > 0) {
    const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      bytes_written_ += static_cast<uint64_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pf{fd_, POLLOUT, 0};
      int r;
      do {
        r = poll(&pf, 1, static_cast<int>(write_timeout_ms_));
      } while (r < 0 && errno == EINTR);
      if (r > 0) continue;
    }
    write_failed_ = true;  // error, or the client does not read within the write timeout
    return false;
  }
  return true;
}

void ConnStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = peer_ip_;
  port = peer_port_;
}

void ConnStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = local_ip_;
  port = local_port_;
}

ConnStream::HeaderResult ConnStream::ReadHeader(int64_t deadline_ns, size_t max_bytes,
                                                size_t max_lines, size_t* received) {
  deadline_ns_ = deadline_ns;
  deadline_hit_ = false;
  size_t scan = 0;   // bytes of the header already scanned (from rpos_)
  size_t lines = 0;  // CRLF-terminated lines seen, the request line included
  while (true) {
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    while (scan == 0 && rend_ - rpos_ >= 2 && rbuf_[rpos_] == '\r' && rbuf_[rpos_ + 1] == '\n') {
      rpos_ += 2;
    }
    const char* base = rbuf_.data() + rpos_;
    const size_t have = rend_ - rpos_;
    for (; scan + 1 < have; ++scan) {
      if (base[scan] != '\r' || base[scan + 1] != '\n') continue;
      if (scan >= 2 && base[scan - 2] == '\r' && base[scan - 1] == '\n') {
        *received = scan + 2;  // the empty line ends the header
        if (max_bytes > 0 && *received > max_bytes) return HeaderResult::kTooLarge;
        return HeaderResult::kComplete;
      }
      ++lines;
      if (max_lines > 0 && lines > max_lines + 1) {  // + the request line
        *received = have;
        return HeaderResult::kTooManyLines;
      }
    }
    *received = have;
    if (max_bytes > 0 && have > max_bytes) return HeaderResult::kTooLarge;
    const ssize_t n = Fill();
    if (n > 0) continue;
    *received = rend_ - rpos_;
    if (n == 0) return HeaderResult::kClosed;
    return timed_out_ ? HeaderResult::kTimeout : HeaderResult::kClosed;
  }
}

}  // namespace kv::http
