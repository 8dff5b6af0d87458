// The HTTP client side of the black-box tests: Reply (one response, with a strict Json
// body), Api (a keep-alive client with the admin token), OnThreads, IsError (SPEC §4's
// error shape) and the signed payment notify (NotifyBody, SendNotify).
//
// Header-only over cpp-httplib and src/http/signature.h (its users link kv_http).
#pragma once

#include <chrono>
#include <cstdint>
#include <latch>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "http/signature.h"
#include "httplib.h"
#include "kit/json.h"

namespace kv::httptest {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

using kv::testing::Json;
using kv::testing::Quote;

inline int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Waits (at most ~0.6 s) until the wall clock is in the first 400 ms of a second, so that a
// request sent right after sees the same unix second on the server as the test computed
// (for the ±tolerance boundary tests of the notify signature).
inline void AlignToFreshSecond() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto frac = std::chrono::duration_cast<milliseconds>(now) % 1000;
  if (frac > milliseconds(400)) std::this_thread::sleep_for(milliseconds(1005) - frac);
}

// `keyvend check` on a stopped shop.
// --- HTTP -------------------------------------------------------------------------------------

// One response, or a transport failure (status -1, `error` says which).
struct Reply {
  int status = -1;
  std::string body;
  httplib::Headers headers;
  std::string error;

  Json json() const { return Json::Parse(body); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Reply& r) {
  if (r.status < 0) return os << "[transport error: " << r.error << "]";
  return os << "[HTTP " << r.status << " " << r.body.substr(0, 600)
            << (r.body.size() > 600 ? "..." : "") << "]";
}

inline Reply ToReply(const httplib::Result& res) {
  Reply r;
  if (!res) {
    r.error = httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.body = res->body;
  r.headers = res->headers;
  return r;
}

// A keep-alive client for 127.0.0.1:port with explicit timeouts.
inline std::unique_ptr<httplib::Client> MakeClient(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(20, 0);
  c->set_write_timeout(20, 0);
  return c;
}

// A small API client over one keep-alive connection (not thread-safe: one per thread).
class Api {
 public:
  Api(int port, std::string admin_token)
      : client_(MakeClient(port)), admin_(std::move(admin_token)) {}

  httplib::Client& raw() { return *client_; }

  Reply Get(const std::string& path, const httplib::Headers& h = {}) {
    return ToReply(client_->Get(path, h));
  }
  Reply Post(const std::string& path, const std::string& body,
             const std::string& type = "application/json", const httplib::Headers& h = {}) {
    return ToReply(client_->Post(path, h, body, type));
  }
  Reply Patch(const std::string& path, const std::string& body,
              const std::string& type = "application/json", const httplib::Headers& h = {}) {
    return ToReply(client_->Patch(path, h, body, type));
  }
  httplib::Headers AdminHeaders() const { return {{"Authorization", "Bearer " + admin_}}; }
  Reply AdminGet(const std::string& path) { return Get(path, AdminHeaders()); }
  Reply AdminPost(const std::string& path, const std::string& body,
                  const std::string& type = "application/json") {
    return Post(path, body, type, AdminHeaders());
  }
  Reply AdminPatch(const std::string& path, const std::string& body) {
    return Patch(path, body, "application/json", AdminHeaders());
  }

 private:
  std::unique_ptr<httplib::Client> client_;
  std::string admin_;
};

// Runs fn(thread_index, api) on `threads` threads, each with its own keep-alive Api,
// all released together once every client exists.
template <typename F>
void OnThreads(int threads, int port, const std::string& admin_token, F&& fn) {
  std::latch ready(threads);
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Api api(port, admin_token);
      ready.arrive_and_wait();
      fn(t, api);
    });
  }
  for (std::thread& th : pool) th.join();
}

// --- payments ---------------------------------------------------------------------------------

inline std::string NotifyBody(const std::string& order_id, const std::string& payment_id,
                              int64_t amount_cents, const std::string& currency,
                              const std::string& status = "succeeded") {
  return "{\"order_id\":" + Quote(order_id) + ",\"payment_id\":" + Quote(payment_id) +
         ",\"amount_cents\":" + std::to_string(amount_cents) + ",\"currency\":" + Quote(currency) +
         ",\"status\":" + Quote(status) + "}";
}

// POSTs a notify signed with `secret` at unix time t (now when t == 0).
inline Reply SendNotify(Api& api, const std::string& secret, const std::string& body,
                        int64_t t = 0) {
  if (t == 0) t = NowUnix();
  return api.Post("/api/v1/payments/notify", body, "application/json",
                  {{"Keyvend-Signature", kv::http::SignNotify(secret, t, body)}});
}

// --- assertions -------------------------------------------------------------------------------

// The SPEC §4 error shape, exactly: {"error":{"code":"<code>","message":"<non-empty>"}}
// with the status and an application/json content type.
inline ::testing::AssertionResult IsError(const Reply& r, int status, const std::string& code) {
  if (r.status != status) {
    return ::testing::AssertionFailure() << "want HTTP " << status << " " << code << ", got " << r;
  }
  if (r.header("Content-Type").rfind("application/json", 0) != 0) {
    return ::testing::AssertionFailure()
           << "error without a JSON content type (" << r.header("Content-Type") << "): " << r;
  }
  std::string err;
  const Json j = Json::Parse(r.body, &err);
  if (!j.is_object() || j.size() != 1 || !j["error"].is_object()) {
    return ::testing::AssertionFailure() << "not {\"error\":{...}} (" << err << "): " << r;
  }
  const Json& e = j["error"];
  if (e.size() != 2 || !e["code"].is_string() || !e["message"].is_string()) {
    return ::testing::AssertionFailure() << "error is not {code, message} strings: " << r;
  }
  if (e["code"].str() != code) {
    return ::testing::AssertionFailure() << "want code " << code << ", got " << r;
  }
  if (e["message"].str().empty()) {
    return ::testing::AssertionFailure() << "empty error message: " << r;
  }
  if ((status == 429 || status == 503) && r.header("Retry-After").empty()) {
    return ::testing::AssertionFailure() << status << " without Retry-After: " << r;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace kv::httptest
