// net::HttpClient over libcurl's easy interface. Easy handles are pooled: a call takes an
// idle one (or makes one), and gives it back after a completed transfer, so the next call
// to the same host reuses its open connection (keep-alive: no connect, no TLS handshake, no
// new socket for the receiver per webhook event). A handle is used by one call at a time,
// so any number of threads may call Do at once. What the remote server sends is bounded:
// the body by the caller's limit (checked before each chunk is buffered), the headers by
// kHeaderBytesMax, the time by the connect and total timeouts. Redirects are never followed
// and no Content-Encoding is asked for or decoded (no decompression bomb).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "net/http_client.h"

namespace kv::net {
namespace {

// All response header lines together (status line included), per response. A gateway's
// answer has a dozen short headers; 64 KiB is generous and still bounded.
constexpr size_t kHeaderBytesMax = 64 * 1024;
// A URL longer than this is refused before curl parses it.
constexpr size_t kUrlBytesMax = 8 * 1024;
constexpr char kUserAgent[] = "keyvend";
// Idle easy handles kept for reuse (each with its open connections); more concurrent calls
// than this make handles that are closed after their call.
constexpr size_t kIdleHandlesMax = 8;
// Open connections one handle keeps (curl's own default is 5): one per endpoint a client
// talks to is plenty, and it bounds the sockets a client holds to kIdleHandlesMax * this.
constexpr long kConnectionsPerHandleMax = 2;
// An idle connection older than this is not reused (closed and a new one opened): shorter
// than the usual keep-alive timeouts of servers (60-120 s), so a send rarely meets a
// connection the server is closing. curl also checks that a connection is alive before it
// reuses it, and retries once on a fresh one when a reused connection dies before the answer.
constexpr long kIdleConnectionSecondsMax = 30;

void GlobalInitOnce() {
  static std::once_flag once;
  // CURL_GLOBAL_DEFAULT initialises the TLS backend; curl_global_init is not itself
  // thread-safe, hence once. Never cleaned up: the process ends with it.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
using CurlString = std::unique_ptr<char, CurlFree>;

// 127.0.0.0/8, ::1 or "localhost" (which curl >= 7.78 resolves to loopback itself, without
// asking DNS). `host` is curl's parsed host part: IPv6 literals come in brackets.
bool IsLoopbackHost(std::string_view host) {
  const std::string h(host);
  if (absl::AsciiStrToLower(h) == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
    in6_addr a6{};
    const std::string inner = h.substr(1, h.size() - 2);
    return inet_pton(AF_INET6, inner.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
  }
  return false;
}

bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

struct Transfer {
  size_t body_max = 0;
  std::string body;
  bool body_over = false;
  size_t header_bytes = 0;
  bool headers_over = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (len > t->body_max - t->body.size()) {
    t->body_over = true;
    return 0;  // != len: curl aborts the transfer with CURLE_WRITE_ERROR
  }
  t->body.append(data, len);
  return len;
}

size_t OnHeader(char* /*data*/, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  t->header_bytes += len;
  if (t->header_bytes > kHeaderBytesMax) {
    t->headers_over = true;
    return 0;
  }
  return len;
}

long ClampMs(absl::Duration d) {
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return static_cast<long>(std::clamp<int64_t>(ms, 1, int64_t{24} * 3600 * 1000));
}

// Idle easy handles. A handle is reset (curl_easy_reset: every option back to its default,
// so nothing of one request leaks into the next; the connection cache stays) before it is
// kept, and closed when the pool is full or its transfer failed.
class HandlePool {
 public:
  HandlePool() = default;
  HandlePool(const HandlePool&) = delete;
  HandlePool& operator=(const HandlePool&) = delete;
  ~HandlePool() {
    for (CURL* c : idle_) curl_easy_cleanup(c);
  }

  // An idle handle or a new one; nullptr when curl cannot make one.
  CURL* Take() {
    {
      MutexLock l(&mu_);
      if (!idle_.empty()) {
        CURL* c = idle_.back();
        idle_.pop_back();
        return c;
      }
    }
    return curl_easy_init();
  }

  // `reuse` false (the transfer failed: its connection may be in any state) closes it.
  void Give(CURL* c, bool reuse) {
    if (reuse) {
      curl_easy_reset(c);
      MutexLock l(&mu_);
      if (idle_.size() < kIdleHandlesMax) {
        idle_.push_back(c);
        return;
      }
    }
    curl_easy_cleanup(c);
  }

 private:
  Mutex mu_;
  std::vector<CURL*> idle_ ABSL_GUARDED_BY(mu_);
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(CurlClientOptions opts) : opts_(std::move(opts)) {}

  absl::StatusOr<HttpResponse> Do(const HttpRequest& req, const HttpLimits& limits) override {
    if (req.method != "GET" && req.method != "POST") {
      return absl::InvalidArgumentError("method must be GET or POST");
    }
    if (req.url.size() > kUrlBytesMax || HasControlChar(req.url)) {
      return absl::InvalidArgumentError("malformed URL");
    }
    // The URL is parsed once, the parsed handle is both checked and given to curl: the host
    // judged loopback is the host connected to.
    std::unique_ptr<CURLU, CurlUrlDeleter> url(curl_url());
    if (!url) return absl::ResourceExhaustedError("curl_url: out of memory");
    if (curl_url_set(url.get(), CURLUPART_URL, req.url.c_str(), 0) != CURLUE_OK) {
      return absl::InvalidArgumentError("malformed URL");
    }
    char* raw = nullptr;
    if (curl_url_get(url.get(), CURLUPART_SCHEME, &raw, 0) != CURLUE_OK) {
      return absl::InvalidArgumentError("URL without a scheme");
    }
    const CurlString scheme(raw);
    raw = nullptr;
    if (curl_url_get(url.get(), CURLUPART_HOST, &raw, 0) != CURLUE_OK) {
      return absl::InvalidArgumentError("URL without a host");
    }
    const CurlString host(raw);
    const std::string_view s = scheme.get();
    bool plain_http = false;
    if (s == "http") {
      if (!opts_.allow_http_loopback || !IsLoopbackHost(host.get())) {
        return absl::InvalidArgumentError(
            "http:// is allowed to loopback hosts only; use https://");
      }
      plain_http = true;
    } else if (s != "https") {
      return absl::InvalidArgumentError("URL scheme must be https");
    }
    for (const auto& [name, value] : req.headers) {
      if (name.empty() || HasControlChar(name) || HasControlChar(value) ||
          name.find(':') != std::string::npos) {
        return absl::InvalidArgumentError("malformed request header");
      }
    }

    GlobalInitOnce();
    // Everything the handle points at is declared before it, so it outlives the handle's
    // return to the pool (a close may still report into errbuf).
    Transfer t;
    t.body_max = limits.max_response_bytes;
    char errbuf[CURL_ERROR_SIZE] = {0};
    std::unique_ptr<curl_slist, SlistDeleter> headers;
    // Back to the pool on every path out: kept (reset) after a completed transfer, closed
    // after a failed one or a setup error.
    bool reuse = false;
    const auto give_back = [this, &reuse](CURL* h) { pool_.Give(h, reuse); };
    std::unique_ptr<CURL, decltype(give_back)> curl(pool_.Take(), give_back);
    if (!curl) return absl::ResourceExhaustedError("curl_easy_init failed");
    CURL* c = curl.get();
    auto add_header = [&](const std::string& line) {
      curl_slist* l = curl_slist_append(headers.get(), line.c_str());
      if (l == nullptr) return false;
      headers.release();
      headers.reset(l);
      return true;
    };
    bool ok = true;
    for (const auto& [name, value] : req.headers) ok &= add_header(absl::StrCat(name, ": ", value));
    ok &= add_header("Expect:");  // no 100-continue round trip for small POSTs
    if (!ok) return absl::ResourceExhaustedError("curl_slist_append failed");

    CURLcode set = CURLE_OK;
    auto opt = [&](CURLoption o, auto v) {
      if (set == CURLE_OK) set = curl_easy_setopt(c, o, v);
    };
    opt(CURLOPT_CURLU, url.get());
    opt(CURLOPT_PROTOCOLS_STR, plain_http ? "http" : "https");
    opt(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    opt(CURLOPT_FOLLOWLOCATION, 0L);
    opt(CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
    opt(CURLOPT_MAXCONNECTS, kConnectionsPerHandleMax);
    opt(CURLOPT_MAXAGE_CONN, kIdleConnectionSecondsMax);
    opt(CURLOPT_CONNECTTIMEOUT_MS, ClampMs(limits.connect_timeout));
    opt(CURLOPT_TIMEOUT_MS, ClampMs(limits.total_timeout));
    opt(CURLOPT_SSL_VERIFYPEER, 1L);
    opt(CURLOPT_SSL_VERIFYHOST, 2L);
    opt(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    if (!opts_.ca_file.empty()) opt(CURLOPT_CAINFO, opts_.ca_file.c_str());
    // A plain-http request stays on this machine: never through a proxy from the
    // environment. https may use one (CONNECT keeps TLS end to end).
    if (plain_http) opt(CURLOPT_PROXY, "");
    opt(CURLOPT_USERAGENT, kUserAgent);
    opt(CURLOPT_HTTPHEADER, headers.get());
    opt(CURLOPT_ERRORBUFFER, errbuf);
    opt(CURLOPT_WRITEFUNCTION, &OnBody);
    opt(CURLOPT_WRITEDATA, &t);
    opt(CURLOPT_HEADERFUNCTION, &OnHeader);
    opt(CURLOPT_HEADERDATA, &t);
    // Refused up front when the server announces a larger Content-Length.
    opt(CURLOPT_MAXFILESIZE_LARGE,
        static_cast<curl_off_t>(std::min<size_t>(limits.max_response_bytes, INT64_MAX)));
    if (req.method == "POST") {
      opt(CURLOPT_POST, 1L);
      opt(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      opt(CURLOPT_POSTFIELDS, req.body.data());
    } else {
      opt(CURLOPT_HTTPGET, 1L);
    }
    if (set != CURLE_OK) {
      return absl::InternalError(absl::StrCat("curl_easy_setopt: ", curl_easy_strerror(set)));
    }

    const CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) return MapError(rc, t, errbuf, limits);
    HttpResponse res;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    res.status = static_cast<int>(status);
    char* ct = nullptr;
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != nullptr) {
      res.content_type = ct;
    }
    res.body = std::move(t.body);
    reuse = true;
    return res;
  }

 private:
  static absl::Status MapError(CURLcode rc, const Transfer& t, const char* errbuf,
                               const HttpLimits& limits) {
    const std::string detail =
        absl::StrCat(curl_easy_strerror(rc), errbuf[0] != '\0' ? ": " : "", errbuf);
    if (t.body_over || rc == CURLE_FILESIZE_EXCEEDED) {
      return absl::ResourceExhaustedError(
          absl::StrCat("response body exceeds ", limits.max_response_bytes, " bytes"));
    }
    if (t.headers_over) {
      return absl::ResourceExhaustedError(
          absl::StrCat("response headers exceed ", kHeaderBytesMax, " bytes"));
    }
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        return absl::DeadlineExceededError(detail);
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return absl::InvalidArgumentError(detail);
      case CURLE_OUT_OF_MEMORY:
        return absl::ResourceExhaustedError(detail);
      default:
        return absl::UnavailableError(detail);
    }
  }

  const CurlClientOptions opts_;
  HandlePool pool_;
};

}  // namespace

std::unique_ptr<HttpClient> MakeCurlHttpClient(const CurlClientOptions& opts) {
  GlobalInitOnce();
  return std::make_unique<CurlHttpClient>(opts);
}

}  // namespace kv::net
