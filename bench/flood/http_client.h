// flood_bench's HTTP/1.1 client pieces: the target's address, a response parser for
// keyvend's answers (always with Content-Length), the two body fields it reads, and a
// blocking keep-alive connection with a deadline per exchange (the prober, the notifier).
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kv::flood {

// Monotonic nanoseconds (steady_clock).
inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Endpoint {
  std::string host;
  int port = 0;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host_header;  // "host:port"
};

// "http://HOST:PORT" (an optional trailing "/" is ignored; an IPv6 host in brackets);
// false when malformed or the host does not resolve (*out then partly filled).
bool ParseUrl(const std::string& url, Endpoint* out);

// A parsed response head, once a whole response is buffered.
struct Response {
  int status = 0;
  bool close = false;      // "Connection: close", or HTTP/1.0 without "Connection"
  size_t total_bytes = 0;  // head + body
  std::string_view body;   // points into the parsed buffer
};

// 1: a whole response is at the start of `buf` (*r filled); 0: not yet (the head or the
// body incomplete); -1: malformed (over 64 KiB without the end of a head, no "HTTP/1."
// status line, a status outside 100..599, or no Content-Length — keyvend always sends one).
int ParseResponse(std::string_view buf, Response* r);

// The string value of "key":"..." in a flat JSON body (keyvend writes no spaces), or "".
std::string JsonString(std::string_view body, std::string_view key);
// The non-negative integer value of "key":123, or -1.
int64_t JsonInt(std::string_view body, std::string_view key);

// A TCP socket for ep's address family with TCP_NODELAY; -1 with errno on failure.
int NewSocket(const Endpoint& ep, bool nonblocking);

// A blocking keep-alive connection, opened on first use and reopened after a failure. Not
// thread safe. `ep` must outlive it.
class BlockingConn {
 public:
  explicit BlockingConn(const Endpoint& ep) : ep_(ep) {}
  ~BlockingConn() { Close(); }
  BlockingConn(const BlockingConn&) = delete;
  BlockingConn& operator=(const BlockingConn&) = delete;

  void Close();

  // Sends `request` (connecting first if needed) and reads one whole response within
  // timeout_ms. False on any transport failure (the connection is then closed; *error
  // says what). *reconnected is set when a new connection had to be opened.
  bool Exchange(const std::string& request, int timeout_ms, int* status, std::string* body,
                std::string* error, bool* reconnected);

 private:
  bool Connect(int64_t deadline, std::string* error);
  bool WaitFor(short events, int64_t deadline, std::string* error);

  const Endpoint& ep_;
  int fd_ = -1;
  std::string buf_;
};

}  // namespace kv::flood
