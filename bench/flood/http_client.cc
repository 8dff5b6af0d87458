// flood_bench's HTTP/1.1 client pieces (http_client.h).
#include "flood/http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace kv::flood {
namespace {

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

}  // namespace

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

std::string JsonString(std::string_view body, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":\"";
  const size_t p = body.find(needle);
  if (p == std::string_view::npos) return "";
  const size_t start = p + needle.size();
  const size_t end = body.find('"', start);
  return end == std::string_view::npos ? "" : std::string(body.substr(start, end - start));
}

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

void BlockingConn::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buf_.clear();
}

bool BlockingConn::Exchange(const std::string& request, int timeout_ms, int* status,
                            std::string* body, std::string* error, bool* reconnected) {
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

bool BlockingConn::Connect(int64_t deadline, std::string* error) {
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

bool BlockingConn::WaitFor(short events, int64_t deadline, std::string* error) {
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

}  // namespace kv::flood
