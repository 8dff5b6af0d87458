#include "http/response_writer.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kv::http {

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

void AppendResponse(const httplib::Request& req, const httplib::Response& res, bool close,
                    int64_t keep_alive_timeout_seconds, int64_t keep_alive_max_count,
                    std::string* out) {
  absl::StrAppend(out, "HTTP/1.1 ", res.status, " ", ReasonPhrase(res.status), "\r\n");
  bool has_type = false;
  for (const auto& [name, value] : res.headers) {
    // The framing headers are this writer's: never a handler's (or a copied refusal's).
    const absl::string_view n(name);
    if (absl::EqualsIgnoreCase(n, "Connection") || absl::EqualsIgnoreCase(n, "Keep-Alive") ||
        absl::EqualsIgnoreCase(n, "Content-Length")) {
      continue;
    }
    has_type = has_type || absl::EqualsIgnoreCase(n, "Content-Type");
    absl::StrAppend(out, name, ": ", value, "\r\n");
  }
  if (close) {
    out->append("Connection: close\r\n");
  } else {
    absl::StrAppend(out, "Keep-Alive: timeout=", keep_alive_timeout_seconds,
                    ", max=", keep_alive_max_count, "\r\n");
  }
  if (res.status == 304 || res.status == 204) {
    out->append("\r\n");  // no content, so no Content-Length (RFC 9110 §8.6) and no body
    return;
  }
  if (!has_type && !res.body.empty()) out->append("Content-Type: text/plain\r\n");
  absl::StrAppend(out, "Content-Length: ", res.body.size(), "\r\n\r\n");
  if (req.method != "HEAD") out->append(res.body);
}

}  // namespace kv::http
