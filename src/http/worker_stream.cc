#include "http/worker_stream.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kv::http {

namespace {
constexpr std::string_view kContinueLine = "HTTP/1.1 100 ";
}  // namespace

WorkerStream::WorkerStream(std::string_view input, int fd, std::string* out, size_t* out_pos,
                           std::string peer_ip, int peer_port, std::string local_ip, int local_port,
                           int64_t write_timeout_ms, bool skip_continue, bool may_block)
    : input_(input),
      fd_(fd),
      out_(out),
      out_pos_(out_pos),
      peer_ip_(std::move(peer_ip)),
      peer_port_(peer_port),
      local_ip_(std::move(local_ip)),
      local_port_(local_port),
      write_timeout_ms_(write_timeout_ms),
      skip_continue_(skip_continue),
      may_block_(may_block) {}

ssize_t WorkerStream::read(char* ptr, size_t size) {
  const size_t n = std::min(size, input_.size() - pos_);
  std::memcpy(ptr, input_.data() + pos_, n);
  pos_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t WorkerStream::write(const char* ptr, size_t size) {
  if (write_failed_) return -1;
  if (skip_continue_) {
    skip_continue_ = false;  // only the engine's first write can be the interim answer
    if (std::string_view(ptr, size).substr(0, kContinueLine.size()) == kContinueLine) {
      return static_cast<ssize_t>(size);
    }
  }
  out_->append(ptr, size);
  if (may_block_ && out_->size() - *out_pos_ >= kFlushBytes && !SendAll()) return -1;
  return static_cast<ssize_t>(size);
}

void WorkerStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = peer_ip_;
  port = peer_port_;
}

void WorkerStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = local_ip_;
  port = local_port_;
}

int SendPending(int fd, std::string* out, size_t* pos) {
  while (*pos < out->size()) {
    const ssize_t n =
        ::send(fd, out->data() + *pos, out->size() - *pos, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      *pos += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
  }
  out->clear();
  *pos = 0;
  return 1;
}

bool WorkerStream::SendNoWait() {
  const int r = SendPending(fd_, out_, out_pos_);
  if (r < 0) write_failed_ = true;
  return r == 1;
}

bool WorkerStream::SendAll() {
  while (!SendNoWait()) {
    if (write_failed_) return false;
    pollfd p{fd_, POLLOUT, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(write_timeout_ms_));
    } while (r < 0 && errno == EINTR);
    if (r <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
      write_failed_ = true;
      return false;
    }
  }
  return true;
}

}  // namespace kv::http
