// An outbound HTTP(S) client for talking to payment gateways (and, later, the merchant's
// webhook): one request at a time per call, bounded in time and in what it reads back.
// Everything a remote server sends is hostile: the response body is capped before it is
// buffered, redirects are never followed, and a timeout is an error, never a hang.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kv::net {

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string url;             // https://..., or http:// to a loopback host (see Options)
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Authorization, Content-Type
  std::string body;                                          // POST only
};

struct HttpResponse {
  int status = 0;            // the HTTP status code
  std::string content_type;  // as sent, may be empty
  std::string body;          // at most HttpLimits::max_response_bytes
};

struct HttpLimits {
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration total_timeout = absl::Seconds(15);
  size_t max_response_bytes = size_t{1} << 20;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // Sends the request and reads the whole response. Thread-safe (any number of concurrent
  // calls). Errors: InvalidArgument (a URL this client refuses: not https, or http to a
  // non-loopback host when allowed; a malformed URL), DeadlineExceeded (a timeout),
  // Unavailable (connect/TLS/transfer failure), ResourceExhausted (the body exceeded
  // max_response_bytes). Any HTTP status is a success here: the caller judges it.
  virtual absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const HttpLimits& limits) = 0;
};

struct CurlClientOptions {
  std::string ca_file;  // PEM bundle to verify servers with; empty = the system's
  // Allows http:// (no TLS) to 127.0.0.0/8, ::1 and "localhost" only: the tests' fake
  // gateways. Never to anything else: a secret key must not cross a network in clear.
  bool allow_http_loopback = true;
};

// libcurl (Debian's libcurl4-openssl-dev). Certificates and host names are always verified.
// Connections are kept between calls (keep-alive; at most 8 idle handles with 2 connections
// each, none reused after 30 s idle); a call whose transfer failed closes its connection.
std::unique_ptr<HttpClient> MakeCurlHttpClient(const CurlClientOptions& opts);

}  // namespace kv::net
