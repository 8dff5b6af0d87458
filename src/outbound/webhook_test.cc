// The webhook sender (outbound/webhook.h) and its circuit breaker (outbound/circuit_breaker.h):
// body, signature, outcome mapping and the breaker over an in-process fake HttpClient and a
// FakeClock; then one round over the real curl client to a cpp-httplib receiver on loopback
// that verifies the signature with its own HMAC.
#include "outbound/webhook.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "http/signature.h"
#include "kit/json.h"

namespace kv::outbound {
namespace {

using ::kv::testing::Json;

constexpr char kSecret[] = "whsec_merchant_test";

// Answers from a script (one per call; the last repeats) and records every request.
class FakeHttp final : public net::HttpClient {
 public:
  absl::StatusOr<net::HttpResponse> Do(const net::HttpRequest& req,
                                       const net::HttpLimits& limits) override {
    std::lock_guard<std::mutex> l(mu_);
    requests.push_back(req);
    last_limits = limits;
    absl::StatusOr<net::HttpResponse> a = script.front();
    if (script.size() > 1) script.pop_front();
    return a;
  }
  void Answer(int status) {
    net::HttpResponse r;
    r.status = status;
    script = {r};
  }
  void Fail(absl::Status s) { script = {s}; }
  size_t calls() {
    std::lock_guard<std::mutex> l(mu_);
    return requests.size();
  }

  std::mutex mu_;
  std::deque<absl::StatusOr<net::HttpResponse>> script;
  std::vector<net::HttpRequest> requests;
  net::HttpLimits last_limits;
};

WebhookEvent Event(const std::string& id = "evt_42") {
  WebhookEvent e;
  e.id = id;
  e.type = "order.delivered";
  e.created_at = absl::FromUnixSeconds(1795000100);
  e.order_id = "00112233445566778899aabbccddeeff";
  e.status = "delivered";
  e.product_id = 7;
  e.quantity = 2;
  e.amount_cents = 1998;
  e.currency = "USD";
  e.contact = "buyer\"x\"@example.com";
  e.payment_id = "pay_1";
  e.order_created_at = absl::FromUnixSeconds(1795000000);
  e.paid_at = absl::FromUnixSeconds(1795000050);
  e.delivered_at = absl::FromUnixSeconds(1795000100);
  return e;
}

std::string Header(const net::HttpRequest& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "";
}

// HMAC-SHA256 in hex with OpenSSL directly: the receiver's own check, not SignNotify.
std::string HmacHex(const std::string& key, const std::string& msg) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

// True when `header` is exactly "t=<t>,v1=<hmac of "<t>.<body>">".
bool IndependentlyValid(const std::string& header, const std::string& body, int64_t* t_out) {
  const std::vector<std::string> parts = absl::StrSplit(header, ',');
  if (parts.size() != 2 || parts[0].rfind("t=", 0) != 0 || parts[1].rfind("v1=", 0) != 0) {
    return false;
  }
  const std::string t = parts[0].substr(2);
  *t_out = std::stoll(t);
  return parts[1].substr(3) == HmacHex(kSecret, t + "." + body);
}

class WebhookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.url = "https://merchant.example/hooks/keyvend";
    options_.secret = kSecret;
    options_.connect_timeout = absl::Seconds(2);
    options_.total_timeout = absl::Seconds(7);
    options_.breaker.failures_to_open = 3;
    options_.breaker.cooldown = absl::Seconds(30);
    auto s = WebhookSender::Create(options_, &http_, &clock_);
    ASSERT_TRUE(s.ok()) << s.status();
    sender_ = std::move(*s);
  }

  WebhookOptions options_;
  FakeHttp http_;
  FakeClock clock_;
  std::unique_ptr<WebhookSender> sender_;
};

TEST(WebhookBodyTest, ExactBytesAndNoSecretFields) {
  WebhookEvent e = Event();
  e.payment_id.clear();
  e.delivered_at = absl::InfinitePast();
  EXPECT_EQ(WebhookBody(e),
            "{\"id\":\"evt_42\",\"type\":\"order.delivered\",\"created_at\":\"2026-11-18T"
            "11:08:20Z\",\"data\":{\"order_id\":\"00112233445566778899aabbccddeeff\",\"status\":"
            "\"delivered\",\"product_id\":7,\"quantity\":2,\"amount_cents\":1998,\"currency\":"
            "\"USD\",\"contact\":\"buyer\\\"x\\\"@example.com\",\"payment_id\":null,"
            "\"created_at\":\"2026-11-18T11:06:40Z\",\"paid_at\":\"2026-11-18T11:07:30Z\","
            "\"delivered_at\":null}}");
  // It parses as strict JSON and has exactly the documented keys.
  const Json j = Json::Parse(WebhookBody(Event()));
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["data"]["contact"].str(), "buyer\"x\"@example.com");
  EXPECT_EQ(j.keys(), (std::vector<std::string>{"id", "type", "created_at", "data"}));
  EXPECT_EQ(j["data"].keys(),
            (std::vector<std::string>{"order_id", "status", "product_id", "quantity",
                                      "amount_cents", "currency", "contact", "payment_id",
                                      "created_at", "paid_at", "delivered_at"}));
}

TEST_F(WebhookTest, SignedPostWithEventIdAndTimeouts) {
  http_.Answer(200);
  const WebhookResult r = sender_->Send(Event());
  EXPECT_EQ(r.outcome, WebhookOutcome::kDelivered);
  EXPECT_EQ(r.http_status, 200);
  ASSERT_EQ(http_.calls(), 1u);
  const net::HttpRequest& req = http_.requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, options_.url);
  EXPECT_EQ(req.body, WebhookBody(Event()));
  EXPECT_EQ(Header(req, "Content-Type"), "application/json");
  EXPECT_EQ(Header(req, "Keyvend-Event-Id"), "evt_42");
  int64_t t = 0;
  EXPECT_TRUE(IndependentlyValid(Header(req, "Keyvend-Signature"), req.body, &t));
  EXPECT_EQ(t, absl::ToUnixSeconds(clock_.WallNow()));
  EXPECT_TRUE(http::VerifyNotify(Header(req, "Keyvend-Signature"), req.body, kSecret,
                                 absl::ToUnixSeconds(clock_.WallNow()), 300));
  EXPECT_EQ(http_.last_limits.connect_timeout, absl::Seconds(2));
  EXPECT_EQ(http_.last_limits.total_timeout, absl::Seconds(7));
  EXPECT_LE(http_.last_limits.max_response_bytes, size_t{16} * 1024);
}

TEST_F(WebhookTest, RetryIsSameBodyAndIdNewTimestamp) {
  http_.Answer(503);
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kRetry);
  clock_.Advance(absl::Seconds(10));
  http_.Answer(204);
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kDelivered);
  ASSERT_EQ(http_.calls(), 2u);
  EXPECT_EQ(http_.requests[0].body, http_.requests[1].body);
  EXPECT_EQ(Header(http_.requests[0], "Keyvend-Event-Id"),
            Header(http_.requests[1], "Keyvend-Event-Id"));
  int64_t t0 = 0, t1 = 0;
  EXPECT_TRUE(IndependentlyValid(Header(http_.requests[0], "Keyvend-Signature"),
                                 http_.requests[0].body, &t0));
  EXPECT_TRUE(IndependentlyValid(Header(http_.requests[1], "Keyvend-Signature"),
                                 http_.requests[1].body, &t1));
  EXPECT_EQ(t1 - t0, 10);
}

TEST_F(WebhookTest, OutcomeOfEachAnswer) {
  struct Case {
    int status;
    WebhookOutcome want;
  };
  const Case cases[] = {
      {200, WebhookOutcome::kDelivered},
      {201, WebhookOutcome::kDelivered},
      {299, WebhookOutcome::kDelivered},
      {500, WebhookOutcome::kRetry},
      {502, WebhookOutcome::kRetry},
      {503, WebhookOutcome::kRetry},
      {429, WebhookOutcome::kRetry},
      {408, WebhookOutcome::kRetry},
      {425, WebhookOutcome::kRetry},
      {400, WebhookOutcome::kFailedPermanently},
      {401, WebhookOutcome::kFailedPermanently},
      {404, WebhookOutcome::kFailedPermanently},
      {410, WebhookOutcome::kFailedPermanently},
      {301, WebhookOutcome::kFailedPermanently},
      {302, WebhookOutcome::kFailedPermanently},
      {101, WebhookOutcome::kFailedPermanently},
  };
  for (const Case& c : cases) {
    http_.Answer(c.status);
    const WebhookResult r = sender_->Send(Event());
    EXPECT_EQ(r.outcome, c.want) << c.status << " gave " << WebhookOutcomeName(r.outcome);
    EXPECT_EQ(r.http_status, c.status);
    // Keep the breaker closed between cases: only this case's outcome is under test.
    http_.Answer(200);
    sender_->Send(Event());
  }
  const std::pair<absl::Status, WebhookOutcome> errors[] = {
      {absl::DeadlineExceededError("timeout"), WebhookOutcome::kRetry},
      {absl::UnavailableError("connection refused"), WebhookOutcome::kRetry},
      {absl::ResourceExhaustedError("body too big"), WebhookOutcome::kRetry},
      {absl::InvalidArgumentError("http:// is allowed to loopback hosts only"),
       WebhookOutcome::kFailedPermanently},
  };
  for (const auto& [status, want] : errors) {
    http_.Fail(status);
    const WebhookResult r = sender_->Send(Event());
    EXPECT_EQ(r.outcome, want) << status;
    EXPECT_EQ(r.http_status, 0);
    EXPECT_NE(r.detail.find(std::string(status.message())), std::string::npos);
    http_.Answer(200);
    sender_->Send(Event());
  }
}

TEST_F(WebhookTest, MalformedEventIdIsRefusedWithoutIo) {
  http_.Answer(200);
  for (const std::string& id :
       std::vector<std::string>{"", "evt 1", "evt\r\nX-Evil: 1", std::string(129, 'a')}) {
    EXPECT_EQ(sender_->Send(Event(id)).outcome, WebhookOutcome::kFailedPermanently) << id;
  }
  WebhookEvent bad_type = Event();
  bad_type.type = "order delivered";
  EXPECT_EQ(sender_->Send(bad_type).outcome, WebhookOutcome::kFailedPermanently);
  EXPECT_EQ(http_.calls(), 0u);
  EXPECT_EQ(sender_->Send(Event(std::string(128, 'a'))).outcome, WebhookOutcome::kDelivered);
}

TEST_F(WebhookTest, BreakerOpensRefusesWithoutIoThenProbes) {
  http_.Fail(absl::UnavailableError("connection refused"));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kRetry);
  EXPECT_EQ(sender_->breaker_stats().state, BreakerState::kClosed);
  EXPECT_EQ(sender_->breaker_stats().consecutive_failures, 2);
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kRetry);  // the third: opens
  BreakerStats s = sender_->breaker_stats();
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.opened_total, 1u);
  EXPECT_EQ(http_.calls(), 3u);

  // Open: refused without I/O, with the rest of the cooldown.
  clock_.Advance(absl::Seconds(10));
  for (int i = 0; i < 100; ++i) {
    const WebhookResult r = sender_->Send(Event());
    EXPECT_EQ(r.outcome, WebhookOutcome::kBreakerOpen);
    EXPECT_EQ(r.retry_after, absl::Seconds(20));
  }
  EXPECT_EQ(http_.calls(), 3u);
  EXPECT_EQ(sender_->breaker_stats().refused_total, 100u);

  // Cooldown over: one probe; it fails, so open again for a whole cooldown.
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kRetry);
  EXPECT_EQ(http_.calls(), 4u);
  s = sender_->breaker_stats();
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.opened_total, 2u);
  clock_.Advance(absl::Seconds(29));
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kBreakerOpen);
  EXPECT_EQ(http_.calls(), 4u);

  // The next probe succeeds: closed, and everything flows again.
  clock_.Advance(absl::Seconds(1));
  http_.Answer(200);
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kDelivered);
  s = sender_->breaker_stats();
  EXPECT_EQ(s.state, BreakerState::kClosed);
  EXPECT_EQ(s.closed_total, 1u);
  EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kDelivered);
  EXPECT_EQ(http_.calls(), 6u);
}

TEST_F(WebhookTest, PermanentRefusalsAndSuccessesDoNotOpenTheBreaker) {
  for (int i = 0; i < 10; ++i) {
    http_.Answer(404);
    EXPECT_EQ(sender_->Send(Event()).outcome, WebhookOutcome::kFailedPermanently);
  }
  EXPECT_EQ(sender_->breaker_stats().state, BreakerState::kClosed);
  // Failures must be consecutive: a success in between resets the count.
  for (int i = 0; i < 5; ++i) {
    http_.Answer(500);
    sender_->Send(Event());
    sender_->Send(Event());
    http_.Answer(200);
    sender_->Send(Event());
  }
  EXPECT_EQ(sender_->breaker_stats().state, BreakerState::kClosed);
  EXPECT_EQ(sender_->breaker_stats().opened_total, 0u);
}

TEST(CircuitBreakerTest, HalfOpenLetsExactlyOneProbeThrough) {
  FakeClock clock;
  CircuitBreaker b({/*failures_to_open=*/1, /*cooldown=*/absl::Seconds(5)}, &clock);
  CircuitBreaker::Permit p = b.Acquire();
  ASSERT_TRUE(p.allowed);
  CircuitBreaker::Permit straggler = b.Acquire();  // started before the breaker opened
  b.Release(p, false);
  EXPECT_EQ(b.Stats().state, BreakerState::kOpen);
  EXPECT_FALSE(b.Acquire().allowed);
  clock.Advance(absl::Seconds(5));
  CircuitBreaker::Permit probe = b.Acquire();
  ASSERT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.probe);
  EXPECT_EQ(b.Stats().state, BreakerState::kHalfOpen);
  // While the probe is out, nobody else goes, however long it takes.
  clock.Advance(absl::Minutes(10));
  CircuitBreaker::Permit other = b.Acquire();
  EXPECT_FALSE(other.allowed);
  EXPECT_EQ(other.retry_after, absl::ZeroDuration());
  // A straggler's success does not close the breaker: only the probe decides.
  b.Release(straggler, true);
  EXPECT_EQ(b.Stats().state, BreakerState::kHalfOpen);
  b.Release(probe, true);
  EXPECT_EQ(b.Stats().state, BreakerState::kClosed);
  EXPECT_TRUE(b.Acquire().allowed);
  EXPECT_STREQ(BreakerStateName(BreakerState::kHalfOpen), "half_open");
}

TEST(CircuitBreakerTest, ConcurrentUseKeepsCountsConsistent) {
  FakeClock clock;
  CircuitBreaker b({/*failures_to_open=*/1000000, absl::Seconds(5)}, &clock);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&b, t] {
      for (int i = 0; i < 1000; ++i) b.Release(b.Acquire(), (i + t) % 2 == 0);
    });
  }
  for (auto& th : threads) th.join();
  const BreakerStats s = b.Stats();
  EXPECT_EQ(s.successes_total + s.failures_total, 4000u);
  EXPECT_EQ(s.successes_total, 2000u);
}

TEST(WebhookOptionsTest, EachBadFieldIsNamed) {
  WebhookOptions good;
  good.url = "https://x.example/h";
  good.secret = "s";
  EXPECT_TRUE(ValidateWebhookOptions(good).ok());
  auto bad = [&](auto mutate, const std::string& word) {
    WebhookOptions o = good;
    mutate(o);
    const absl::Status s = ValidateWebhookOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << word;
    EXPECT_NE(s.message().find(word), std::string::npos) << s;
    FakeHttp http;
    EXPECT_FALSE(WebhookSender::Create(o, &http, RealClock::Get()).ok());
  };
  bad([](WebhookOptions& o) { o.url.clear(); }, "url");
  bad([](WebhookOptions& o) { o.secret.clear(); }, "secret");
  bad([](WebhookOptions& o) { o.connect_timeout = absl::ZeroDuration(); }, "connect");
  bad([](WebhookOptions& o) { o.total_timeout = absl::Seconds(1); }, "total");
  bad([](WebhookOptions& o) { o.breaker.failures_to_open = 0; }, "failures");
  bad([](WebhookOptions& o) { o.breaker.cooldown = absl::ZeroDuration(); }, "cooldown");
}

// The real curl client to a real receiver on loopback, which checks the signature with its
// own HMAC and answers 500 once, then 200.
TEST(WebhookLoopbackTest, RealReceiverVerifiesSignature) {
  httplib::Server rx;
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> seen;  // (event id, body)
  int valid = 0, calls = 0;
  rx.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> l(mu);
    int64_t t = 0;
    if (IndependentlyValid(req.get_header_value("Keyvend-Signature"), req.body, &t)) ++valid;
    seen.emplace_back(req.get_header_value("Keyvend-Event-Id"), req.body);
    res.status = (calls++ == 0) ? 500 : 200;
  });
  const int port = rx.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread th([&] { rx.listen_after_bind(); });
  while (!rx.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  std::unique_ptr<net::HttpClient> http = net::MakeCurlHttpClient({});
  WebhookOptions o;
  o.url = absl::StrCat("http://127.0.0.1:", port, "/hook");
  o.secret = kSecret;
  auto sender = WebhookSender::Create(o, http.get(), RealClock::Get());
  ASSERT_TRUE(sender.ok()) << sender.status();
  EXPECT_EQ((*sender)->Send(Event("evt_loop")).outcome, WebhookOutcome::kRetry);
  EXPECT_EQ((*sender)->Send(Event("evt_loop")).outcome, WebhookOutcome::kDelivered);
  rx.stop();
  th.join();

  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(valid, 2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].first, "evt_loop");
  EXPECT_EQ(seen[1].first, "evt_loop");
  EXPECT_EQ(seen[1].second, WebhookBody(Event("evt_loop")));

  // The receiver gone: a connect error is a retry, not a permanent failure.
  EXPECT_EQ((*sender)->Send(Event("evt_loop")).outcome, WebhookOutcome::kRetry);
}

}  // namespace
}  // namespace kv::outbound
