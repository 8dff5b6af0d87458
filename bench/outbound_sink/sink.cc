// One epoll thread, level-triggered, non-blocking sockets: a connection costs a buffer, an
// event costs one read, one HMAC and one write. Everything a client sends is bounded
// (sink.h); past a bound the connection is closed, never the process.
#include "outbound_sink/sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace kv::bench {
namespace {

double NowS() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

int ListenOn(uint16_t port, uint16_t* bound) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1024) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *bound = ntohs(a.sin_port);
  return fd;
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseDigits(std::string_view s, size_t max_digits, uint64_t* out) {
  if (s.empty() || s.size() > max_digits) return false;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  *out = v;
  return true;
}

}  // namespace

struct OutboundSink::Conn {
  int fd = -1;
  bool smtp = false;
  std::string in;
  std::string out;
  bool close_after_flush = false;
  bool want_write = false;
  // SMTP transaction
  bool in_data = false;
  bool have_from = false;
  int rcpts = 0;
  size_t mail_bytes = 0;
};

OutboundSink::OutboundSink(std::string secret) : secret_(std::move(secret)) {}

OutboundSink::~OutboundSink() {
  for (auto& [fd, c] : conns_) close(fd);
  if (http_fd_ >= 0) close(http_fd_);
  if (smtp_fd_ >= 0) close(smtp_fd_);
  if (epfd_ >= 0) close(epfd_);
}

bool OutboundSink::Listen(uint16_t http_port, uint16_t smtp_port) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return false;
  http_fd_ = ListenOn(http_port, &http_port_);
  if (http_fd_ < 0) return false;
  smtp_fd_ = ListenOn(smtp_port, &smtp_port_);
  if (smtp_fd_ < 0) return false;
  for (int fd : {http_fd_, smtp_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  }
  return true;
}

void OutboundSink::Run() {
  epoll_event evs[128];
  while (true) {
    const int n = epoll_wait(epfd_, evs, 128, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = evs[i].data.fd;
      if (fd == http_fd_ || fd == smtp_fd_) {
        Accept(fd, fd == smtp_fd_);
        continue;
      }
      auto it = conns_.find(fd);
      if (it == conns_.end()) continue;
      Conn* c = it->second.get();
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        Close(c);
        continue;
      }
      if (evs[i].events & EPOLLOUT) {
        Flush(c);
        if (conns_.count(fd) == 0) continue;
      }
      if (evs[i].events & EPOLLIN) OnReadable(c);
    }
  }
}

void OutboundSink::Accept(int listen_fd, bool smtp) {
  while (true) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error: the next event tries again
    if (conns_.size() >= kConnectionsMax) {
      close(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    c->smtp = smtp;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    Conn* raw = c.get();
    conns_[fd] = std::move(c);
    if (smtp) {
      ++c_.smtp_connections;
      raw->out = "220 outbound_sink ESMTP\r\n";
      Flush(raw);
    } else {
      ++c_.http_connections;
    }
  }
}

void OutboundSink::Close(Conn* c) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  conns_.erase(c->fd);  // destroys c
}

void OutboundSink::Flush(Conn* c) {
  while (!c->out.empty()) {
    const ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      Close(c);
      return;
    }
    c->out.erase(0, static_cast<size_t>(n));
  }
  if (c->out.empty() && c->close_after_flush) {
    Close(c);
    return;
  }
  const bool want = !c->out.empty();
  if (want != c->want_write) {
    epoll_event ev{};
    ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.fd = c->fd;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_write = want;
  }
}

void OutboundSink::OnReadable(Conn* c) {
  char buf[64 * 1024];
  const ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
    Close(c);
    return;
  }
  if (n < 0) return;
  if (c->close_after_flush) return;  // answered and closing: the rest is ignored
  c->in.append(buf, static_cast<size_t>(n));
  const bool keep = c->smtp ? HandleSmtp(c) : HandleHttp(c);
  if (!keep) {
    c->close_after_flush = true;
    if (c->out.empty()) {
      Close(c);
      return;
    }
  }
  Flush(c);
}

// --- HTTP ---------------------------------------------------------------------------------

bool OutboundSink::HandleHttp(Conn* c) {
  size_t off = 0;
  bool keep = true;
  while (keep) {
    const std::string_view rest = std::string_view(c->in).substr(off);
    const size_t end = rest.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (rest.size() > kHeadBytesMax) return false;
      break;
    }
    if (end > kHeadBytesMax) return false;
    const std::string_view head = rest.substr(0, end);
    size_t line_end = head.find("\r\n");
    const std::string_view request_line = head.substr(0, line_end);
    const size_t sp1 = request_line.find(' ');
    const size_t sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 <= sp1) return false;
    const std::string method(request_line.substr(0, sp1));
    const std::string target(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
    uint64_t content_length = 0;
    std::string signature, event_id;
    while (line_end != std::string_view::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string_view line = head.substr(
          start, line_end == std::string_view::npos ? std::string_view::npos : line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) return false;
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = Trim(line.substr(colon + 1));
      if (IEquals(name, "content-length")) {
        if (!ParseDigits(value, 9, &content_length) || content_length > kBodyBytesMax) {
          return false;
        }
      } else if (IEquals(name, "transfer-encoding")) {
        return false;  // keyvend's client sends Content-Length; nothing else is accepted
      } else if (IEquals(name, "keyvend-signature")) {
        signature = std::string(value);
      } else if (IEquals(name, "keyvend-event-id")) {
        event_id = std::string(value);
      } else if (IEquals(name, "connection") && IEquals(value, "close")) {
        keep = false;
      }
    }
    const size_t total = end + 4 + content_length;
    if (rest.size() < total) break;  // the body is still coming
    HttpRequest(c, method, target, signature, event_id, rest.substr(end + 4, content_length));
    off += total;
  }
  c->in.erase(0, off);
  return keep;
}

void OutboundSink::HttpRequest(Conn* c, const std::string& method, const std::string& target,
                               const std::string& signature, const std::string& event_id,
                               std::string_view body) {
  int code = 404;
  std::string payload = "{}";
  if (method == "POST" && target == "/hook") {
    // The body's id: keyvend's WebhookBody starts with it ({"id":"evt_..."}).
    constexpr std::string_view kIdPrefix = "{\"id\":\"";
    std::string_view id;
    if (body.substr(0, kIdPrefix.size()) == kIdPrefix) {
      const size_t q = body.find('"', kIdPrefix.size());
      if (q != std::string_view::npos) id = body.substr(kIdPrefix.size(), q - kIdPrefix.size());
    }
    const bool valid = !id.empty() && id == event_id && Verify(signature, body);
    if (!valid) {
      code = 401;
      ++c_.invalid;
    } else if (fail_) {
      code = 500;
      ++c_.refused;
    } else {
      code = 200;
      ++c_.posts;
      c_.accepted_ids.emplace(id);
      c_.last_at = NowS();
      if (c_.first_at == 0) c_.first_at = c_.last_at;
    }
  } else if (method == "GET" && target == "/control/summary") {
    code = 200;
    payload = Summary();
  } else if (method == "POST" && (target == "/control/fail?on=1" || target == "/control/fail")) {
    fail_ = true;
    code = 200;
  } else if (method == "POST" && target == "/control/fail?on=0") {
    fail_ = false;
    code = 200;
  }
  const char* reason = code == 200   ? "OK"
                       : code == 401 ? "Unauthorized"
                       : code == 500 ? "Internal Server Error"
                                     : "Not Found";
  char head[160];
  snprintf(head, sizeof head,
           "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", code,
           reason, payload.size());
  c->out += head;
  c->out += payload;
}

bool OutboundSink::Verify(const std::string& header, std::string_view body) const {
  std::string_view t, v1;
  std::string_view h(header);
  while (!h.empty()) {
    const size_t comma = h.find(',');
    const std::string_view part = h.substr(0, comma);
    if (part.substr(0, 2) == "t=") t = part.substr(2);
    if (part.substr(0, 3) == "v1=") v1 = part.substr(3);
    if (comma == std::string_view::npos) break;
    h.remove_prefix(comma + 1);
  }
  uint64_t ts = 0;
  if (!ParseDigits(t, 12, &ts) || v1.size() != 64) return false;
  const double skew = NowS() - static_cast<double>(ts);
  if (skew > kSignatureWindowS || skew < -kSignatureWindowS) return false;
  std::string signed_text;
  signed_text.reserve(t.size() + 1 + body.size());
  signed_text.append(t);
  signed_text.push_back('.');
  signed_text.append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
           reinterpret_cast<const unsigned char*>(signed_text.data()), signed_text.size(), mac,
           &mac_len) == nullptr ||
      mac_len != 32) {
    return false;
  }
  char hex[65];
  for (unsigned i = 0; i < 32; ++i) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
  return CRYPTO_memcmp(hex, v1.data(), 64) == 0;
}

std::string OutboundSink::Summary() const {
  auto time_or_null = [](double t) {
    if (t == 0) return std::string("null");
    char b[40];
    snprintf(b, sizeof b, "%.6f", t);
    return std::string(b);
  };
  char b[640];
  snprintf(b, sizeof b,
           "{\"accepted\":%zu,\"posts\":%llu,\"invalid\":%llu,\"refused\":%llu,\"first_at\":%s,"
           "\"last_at\":%s,\"http_connections\":%llu,\"mails\":%llu,\"mail_first_at\":%s,"
           "\"mail_last_at\":%s,\"smtp_connections\":%llu,\"smtp_errors\":%llu}",
           c_.accepted_ids.size(), static_cast<unsigned long long>(c_.posts),
           static_cast<unsigned long long>(c_.invalid), static_cast<unsigned long long>(c_.refused),
           time_or_null(c_.first_at).c_str(), time_or_null(c_.last_at).c_str(),
           static_cast<unsigned long long>(c_.http_connections),
           static_cast<unsigned long long>(c_.mails), time_or_null(c_.mail_first_at).c_str(),
           time_or_null(c_.mail_last_at).c_str(),
           static_cast<unsigned long long>(c_.smtp_connections),
           static_cast<unsigned long long>(c_.smtp_errors));
  return b;
}

// --- SMTP ---------------------------------------------------------------------------------

bool OutboundSink::HandleSmtp(Conn* c) {
  size_t off = 0;
  bool keep = true;
  while (keep) {
    const size_t nl = c->in.find('\n', off);
    if (nl == std::string::npos) {
      if (c->in.size() - off > kSmtpLineBytesMax) return false;
      break;
    }
    if (nl - off > kSmtpLineBytesMax) return false;
    std::string_view line = std::string_view(c->in).substr(off, nl - off);
    off = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (c->in_data) {
      if (line == ".") {
        c->in_data = false;
        c->have_from = false;
        c->rcpts = 0;
        ++c_.mails;
        c_.mail_last_at = NowS();
        if (c_.mail_first_at == 0) c_.mail_first_at = c_.mail_last_at;
        c->out += "250 2.0.0 queued\r\n";
        continue;
      }
      c->mail_bytes += line.size() + 2;
      if (c->mail_bytes > kMailBytesMax) {
        ++c_.smtp_errors;
        c->out += "552 5.3.4 message too big\r\n";
        return false;
      }
      continue;
    }
    const std::string_view verb = line.substr(0, 4);
    if (IEquals(verb, "EHLO")) {
      c->have_from = false;
      c->rcpts = 0;
      c->out += "250-outbound_sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 8388608\r\n";
    } else if (IEquals(verb, "HELO")) {
      c->have_from = false;
      c->rcpts = 0;
      c->out += "250 outbound_sink\r\n";
    } else if (IEquals(verb, "MAIL")) {
      if (line.size() < 10 || !IEquals(line.substr(0, 10), "MAIL FROM:") || c->have_from) {
        ++c_.smtp_errors;
        c->out += "503 5.5.1 bad sequence or syntax\r\n";
      } else {
        c->have_from = true;
        c->rcpts = 0;
        c->out += "250 2.1.0 ok\r\n";
      }
    } else if (IEquals(verb, "RCPT")) {
      if (!c->have_from || line.size() < 8 || !IEquals(line.substr(0, 8), "RCPT TO:")) {
        ++c_.smtp_errors;
        c->out += "503 5.5.1 bad sequence or syntax\r\n";
      } else {
        ++c->rcpts;
        c->out += "250 2.1.5 ok\r\n";
      }
    } else if (IEquals(verb, "DATA")) {
      if (c->rcpts == 0) {
        ++c_.smtp_errors;
        c->out += "503 5.5.1 no recipients\r\n";
      } else {
        c->in_data = true;
        c->mail_bytes = 0;
        c->out += "354 end with <CRLF>.<CRLF>\r\n";
      }
    } else if (IEquals(verb, "RSET")) {
      c->have_from = false;
      c->rcpts = 0;
      c->out += "250 2.0.0 ok\r\n";
    } else if (IEquals(verb, "NOOP")) {
      c->out += "250 2.0.0 ok\r\n";
    } else if (IEquals(verb, "QUIT")) {
      c->out += "221 2.0.0 bye\r\n";
      keep = false;
    } else {
      ++c_.smtp_errors;
      c->out += "502 5.5.2 command not implemented\r\n";
    }
  }
  c->in.erase(0, off);
  return keep;
}

}  // namespace kv::bench
