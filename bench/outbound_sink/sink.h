// The outbound benchmark's native fake (tools/bench-outbound.sh, issue 14): ONE process on
// loopback that is both the merchant's webhook receiver and the buyer's SMTP server, on one
// epoll thread, so that measuring keyvend's outbound path does not mostly measure the fakes
// (the Python receiver and sink burned ~11 of the 16 CPU-seconds of an 8 s window on 2
// cores). Not a test oracle: tests/fakes/*.py stay the tests' independent checkers.
//
// HTTP (keep-alive, HTTP/1.1, pipelining allowed):
//   POST /hook            verifies Keyvend-Signature ("t=<unix>,v1=<hex HMAC-SHA256(secret,
//                         "<t>.<body>")>", t within 300 s) with OpenSSL's HMAC, and that
//                         Keyvend-Event-Id is the body's "id": 200 (counted), 401 (invalid),
//                         500 while failing is on (refused)
//   GET  /control/summary {"accepted": distinct ids, "posts", "invalid", "refused",
//                         "first_at", "last_at" (unix s of the first/last accepted post, or
//                         null), "http_connections", "mails", "mail_first_at",
//                         "mail_last_at", "smtp_connections", "smtp_errors"}
//   POST /control/fail?on=1|0
// SMTP (no TLS, no AUTH): EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT; each mail
// ended by "." is counted (250). Out-of-order commands get 503, unknown ones 502.
// Bounds: request head 64 KiB, HTTP body 1 MiB, SMTP line 4 KiB, mail 8 MiB; past one the
// connection is closed. At most kConnectionsMax connections; more are closed at accept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace kv::bench {

struct SinkCounters {
  std::unordered_set<std::string> accepted_ids;
  uint64_t posts = 0;  // valid posts answered 200 (duplicates included)
  uint64_t invalid = 0;
  uint64_t refused = 0;
  double first_at = 0, last_at = 0;  // 0: none
  uint64_t http_connections = 0;
  uint64_t mails = 0;
  double mail_first_at = 0, mail_last_at = 0;
  uint64_t smtp_connections = 0;
  uint64_t smtp_errors = 0;  // 5xx answers (bad sequence, unknown command, over a bound)
};

class OutboundSink {
 public:
  static constexpr size_t kHeadBytesMax = 64 * 1024;
  static constexpr size_t kBodyBytesMax = 1 << 20;
  static constexpr size_t kSmtpLineBytesMax = 4096;
  static constexpr size_t kMailBytesMax = 8 << 20;
  static constexpr size_t kConnectionsMax = 4096;
  static constexpr int64_t kSignatureWindowS = 300;

  explicit OutboundSink(std::string secret);
  ~OutboundSink();
  // Listens on 127.0.0.1 (port 0: any). Returns false with errno set.
  bool Listen(uint16_t http_port, uint16_t smtp_port);
  uint16_t http_port() const { return http_port_; }
  uint16_t smtp_port() const { return smtp_port_; }
  // Serves until the process ends (never returns unless epoll fails).
  void Run();

  const SinkCounters& counters() const { return c_; }

 private:
  struct Conn;
  void Accept(int listen_fd, bool smtp);
  void OnReadable(Conn* c);
  void Flush(Conn* c);
  void Close(Conn* c);
  bool HandleHttp(Conn* c);  // false: close
  bool HandleSmtp(Conn* c);  // false: close
  void HttpRequest(Conn* c, const std::string& method, const std::string& target,
                   const std::string& signature, const std::string& event_id,
                   std::string_view body);
  bool Verify(const std::string& header, std::string_view body) const;
  std::string Summary() const;

  const std::string secret_;
  int epfd_ = -1;
  int http_fd_ = -1;
  int smtp_fd_ = -1;
  uint16_t http_port_ = 0;
  uint16_t smtp_port_ = 0;
  bool fail_ = false;
  SinkCounters c_;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
};

}  // namespace kv::bench
