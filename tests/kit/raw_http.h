// Raw HTTP over TCP for the black-box tests: what an HTTP library hides — a chosen source
// address (127.0.0.x), bytes sent one at a time, whole responses read and checked for
// completeness (status line, headers, Content-Length or chunked body) on a keep-alive
// connection, and EOF.
//
// Header-only over kit/http_client.h (Reply, IsError).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "httplib.h"
#include "kit/files.h"
#include "kit/http_client.h"

namespace kv::httptest {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

using kv::testing::ReadFile;

// --- raw TCP ----------------------------------------------------------------------------------

struct RawResponse {
  bool connected = false;
  std::string data;       // everything read
  bool complete = false;  // a status line, headers and Content-Length bytes of body arrived
  bool peer_closed = false;
  int status = -1;
  std::string body;  // the first response's body (when complete)
};

// One HTTP/1.1 response read from a raw socket.
struct HttpMessage {
  bool complete = false;   // a status line, headers and the whole body arrived
  bool eof = false;        // the peer closed (or reset) the connection before it was complete
  bool timed_out = false;  // the read's deadline passed before it was complete
  std::string raw;         // the response's bytes as received (everything read if incomplete)
  int status = -1;
  httplib::Headers headers;  // case-insensitive names
  std::string body;          // de-chunked

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  // As a Reply (for IsError and printing); a transport error unless complete.
  Reply AsReply() const {
    Reply r;
    if (!complete) {
      r.error = std::string(eof         ? "connection closed"
                            : timed_out ? "timed out"
                                        : "incomplete") +
                " after " + std::to_string(raw.size()) + " bytes: " + raw.substr(0, 300);
      return r;
    }
    r.status = status;
    r.body = body;
    r.headers = headers;
    return r;
  }
};

inline std::ostream& operator<<(std::ostream& os, const HttpMessage& m) {
  return os << m.AsReply();
}

// Parses the response at the start of `buf` (`at_eof`: no more bytes will come, so a body
// delimited by the connection's end is complete). Returns the bytes it takes, or 0 while it
// is incomplete; a malformed response is never complete.
inline size_t ParseHttpResponse(const std::string& buf, bool at_eof, HttpMessage* out) {
  const size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  if (buf.rfind("HTTP/1.", 0) != 0 || head_end < 12 || buf[8] != ' ') return 0;
  HttpMessage m;
  m.status = std::atoi(buf.c_str() + 9);
  size_t line = buf.find("\r\n") + 2;
  while (line < head_end + 2) {
    const size_t eol = buf.find("\r\n", line);
    const size_t colon = buf.find(':', line);
    if (colon == std::string::npos || colon > eol) return 0;
    size_t v = colon + 1;
    while (v < eol && (buf[v] == ' ' || buf[v] == '\t')) ++v;
    m.headers.emplace(buf.substr(line, colon - line), buf.substr(v, eol - v));
    line = eol + 2;
  }
  size_t end = head_end + 4;
  const std::string length = m.header("Content-Length");
  if (!length.empty()) {
    const size_t n = std::strtoull(length.c_str(), nullptr, 10);
    if (buf.size() < end + n) return 0;
    m.body = buf.substr(end, n);
    end += n;
  } else if (!m.header("Transfer-Encoding").empty()) {  // chunked
    while (true) {
      const size_t eol = buf.find("\r\n", end);
      if (eol == std::string::npos) return 0;
      const size_t n = std::strtoull(buf.c_str() + end, nullptr, 16);
      if (n == 0) {  // last chunk, then trailers up to an empty line
        const size_t trailers_end = buf.find("\r\n\r\n", eol);
        if (buf.compare(eol, 4, "\r\n\r\n") == 0) {
          end = eol + 4;
        } else if (trailers_end != std::string::npos) {
          end = trailers_end + 4;
        } else {
          return 0;
        }
        break;
      }
      if (buf.size() < eol + 2 + n + 2) return 0;
      m.body.append(buf, eol + 2, n);
      end = eol + 2 + n + 2;
    }
  } else if (m.status >= 200 && m.status != 204 && m.status != 304) {
    if (!at_eof) return 0;  // delimited by the connection's end
    m.body = buf.substr(end);
    end = buf.size();
  }
  m.complete = true;
  m.raw = buf.substr(0, end);
  *out = std::move(m);
  return end;
}

// A request as bytes: the request line, `Host: 127.0.0.1`, `headers`, and a Content-Length
// for a body (always for POST, PUT and PATCH).
inline std::string RawRequest(const std::string& method, const std::string& target,
                              const std::vector<std::pair<std::string, std::string>>& headers = {},
                              const std::string& body = "") {
  std::string out = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return out + "\r\n" + body;
}

// One client TCP connection to 127.0.0.1:port that sends exactly the bytes it is given,
// optionally from a chosen source address (any 127.0.0.x is local on Linux).
class RawConnection {
 public:
  explicit RawConnection(int port, const std::string& source_ip = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (!source_ip.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      if (::inet_pton(AF_INET, source_ip.c_str(), &src.sin_addr) != 1 ||
          ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    int yes = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  }
  ~RawConnection() { Close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // The server has sent something (or closed): a read would not block.
  bool Readable() const {
    if (!pending_.empty()) return true;
    pollfd p{fd_, POLLIN, 0};
    return fd_ >= 0 && ::poll(&p, 1, 0) > 0;
  }

  // Sends `bytes` one at a time, `interval` apart, and stops early as soon as the server
  // answers or closes (or a send fails). Returns the number of bytes sent.
  size_t SendSlowly(const std::string& bytes, milliseconds interval) {
    size_t sent = 0;
    for (; sent < bytes.size(); ++sent) {
      if (Readable() || !Send(bytes.substr(sent, 1))) break;
      if (sent + 1 < bytes.size()) {
        pollfd p{fd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(interval.count()));  // wakes early on an answer
      }
    }
    return sent;
  }

  // Reads one whole response (bytes after it stay buffered for the next call), until it is
  // complete, the peer closes or `timeout` passes.
  HttpMessage ReadResponse(milliseconds timeout) {
    HttpMessage m;
    const auto deadline = SteadyClock::now() + timeout;
    while (true) {
      const size_t used = ParseHttpResponse(pending_, /*at_eof=*/false, &m);
      if (used > 0) {
        pending_.erase(0, used);
        return m;
      }
      const int r = RecvSome(deadline);
      if (r > 0) continue;
      if (r == 0) {  // EOF or reset: a response delimited by the close is complete now
        const size_t at_eof = ParseHttpResponse(pending_, /*at_eof=*/true, &m);
        if (at_eof > 0) {
          pending_.erase(0, at_eof);
          return m;
        }
        m.eof = true;
      } else {
        m.timed_out = true;
      }
      m.raw = pending_;
      pending_.clear();
      return m;
    }
  }

  // Reads until the peer closes (EOF or reset) or `timeout` passes; true when it closed.
  // Bytes that arrive meanwhile are appended to *rest.
  bool ReadToEof(milliseconds timeout, std::string* rest = nullptr) {
    const auto deadline = SteadyClock::now() + timeout;
    while (true) {
      const int r = RecvSome(deadline);
      if (rest != nullptr) rest->append(pending_);
      pending_.clear();
      if (r == 0) return true;
      if (r < 0) return false;
    }
  }

  // Bytes this connection sent that the server process has not read yet (the receive queue
  // of the server's end of the connection, from /proc/net/tcp); -1 when it is not found.
  // 0 means the server's code has consumed everything (e.g. it is parsing a request).
  int64_t UnreadByServer() const {
    sockaddr_in local{}, peer{};
    socklen_t len = sizeof local;
    if (fd_ < 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) return -1;
    len = sizeof peer;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return -1;
    // The kernel prints an address as the hex of its in-memory (network-order) u32, and
    // the port in host order.
    char want_local[32], want_remote[32];
    std::snprintf(want_local, sizeof want_local, "%08X:%04X", peer.sin_addr.s_addr,
                  ntohs(peer.sin_port));
    std::snprintf(want_remote, sizeof want_remote, "%08X:%04X", local.sin_addr.s_addr,
                  ntohs(local.sin_port));
    std::istringstream in(ReadFile("/proc/net/tcp"));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, l, r, st, queues;
      if (!(fields >> sl >> l >> r >> st >> queues)) continue;
      if (l != want_local || r != want_remote) continue;
      const size_t colon = queues.find(':');
      if (colon == std::string::npos) return -1;
      return static_cast<int64_t>(std::strtoull(queues.c_str() + colon + 1, nullptr, 16));
    }
    return -1;
  }

  // False when not everything could be sent (e.g. the peer closed).
  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (fd_ >= 0 && off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return fd_ >= 0;
  }

  // Reads into out->data until a complete response is buffered (unless read_to_eof), the
  // peer closes, or `timeout` passes; then parses the first response's status and body.
  void Read(milliseconds timeout, bool read_to_eof, RawResponse* out) {
    out->connected = fd_ >= 0;
    const auto deadline = SteadyClock::now() + timeout;
    char buf[8192];
    while (fd_ >= 0 && SteadyClock::now() < deadline && !(out->complete && !read_to_eof)) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count())));
      if (r <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        out->peer_closed = true;
        break;
      }
      out->data.append(buf, static_cast<size_t>(n));
      Parse(out);
    }
  }

 private:
  static void Parse(RawResponse* out) {
    if (out->complete) return;
    const size_t hdr_end = out->data.find("\r\n\r\n");
    if (hdr_end == std::string::npos) return;
    std::string lower = out->data.substr(0, hdr_end);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const size_t cl = lower.find("\r\ncontent-length:");
    if (cl == std::string::npos) return;
    const size_t len = std::strtoull(lower.c_str() + cl + 17, nullptr, 10);
    if (out->data.size() < hdr_end + 4 + len) return;
    out->complete = true;
    out->body = out->data.substr(hdr_end + 4, len);
    if (out->data.rfind("HTTP/1.", 0) == 0 && out->data.size() > 12) {
      out->status = std::atoi(out->data.c_str() + 9);
    }
  }

  // Appends what one recv returns to pending_, waiting until `deadline`: >0 bytes read,
  // 0 the peer closed (EOF or reset), -1 the deadline passed.
  int RecvSome(SteadyClock::time_point deadline) {
    char buf[16384];
    while (fd_ >= 0) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) return -1;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (r <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;
      pending_.append(buf, static_cast<size_t>(n));
      return 1;
    }
    return 0;
  }

  int fd_ = -1;
  std::string pending_;  // received, not yet returned by ReadResponse
};

// Sends `request` as is on a new connection (it may announce a body it never sends) and
// reads the response until it is complete — or, with read_to_eof, until the peer closes —
// or `timeout` passes.
inline RawResponse RawExchange(int port, const std::string& request, milliseconds timeout,
                               bool read_to_eof = false) {
  RawResponse out;
  RawConnection c(port);
  if (!c.connected()) return out;
  c.Send(request);
  c.Read(timeout, read_to_eof, &out);
  return out;
}

// Milliseconds since t0.
inline double MsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

// Sends `request` on `c` and reads one whole response. A failed send still reads: a
// connection refused at accept may have answered (and closed) before the request went out.
inline HttpMessage Exchange(RawConnection& c, const std::string& request,
                            milliseconds timeout = milliseconds(20000)) {
  (void)c.Send(request);
  return c.ReadResponse(timeout);
}

// An error answer with `status` and `code` that ends the connection: it says
// Connection: close, then the server closes (within `timeout`).
inline ::testing::AssertionResult IsErrorThenClose(const HttpMessage& m, RawConnection& c,
                                                   int status, const std::string& code,
                                                   milliseconds timeout = milliseconds(20000)) {
  ::testing::AssertionResult shape = IsError(m.AsReply(), status, code);
  if (!shape) return shape;
  if (m.header("Connection") != "close") {
    return ::testing::AssertionFailure() << "no Connection: close on the " << status << ":\n"
                                         << m.raw;
  }
  if (!c.ReadToEof(timeout)) {
    return ::testing::AssertionFailure() << "the connection stayed open after the " << status;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kv::httptest
