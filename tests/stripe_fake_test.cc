// The Stripe adapter (pay/stripe.h) over the real curl client (net/http_client.h) against the
// loopback fake Stripe (tests/fakes/fake_stripe.py): the two agree on the protocol (form
// encoding, Bearer key, expires_at bounds, Idempotency-Key, the session object, the signed
// webhook) without keyvend's server in between. The webhook is received by a cpp-httplib
// server in this test and given to ParseNotify as the notify route would.
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "gtest/gtest.h"
#include "kit/json.h"
#include "kit/poll.h"
#include "kit/process.h"
#include "net/http_client.h"
#include "pay/stripe.h"

namespace kv::pay {
namespace {

constexpr char kKey[] = "sk_test_adapter_fake";
constexpr char kWhsec[] = "whsec_adapter_fake";
constexpr char kOrder[] = "00112233445566778899aabbccddeeff";

class StripeFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    receiver_.Post("/notify", [this](const httplib::Request& req, httplib::Response& res) {
      NotifyVerdict v = gateway_->ParseNotify(req, RealClock::Get()->WallNow());
      {
        std::lock_guard<std::mutex> l(mu_);
        verdicts_.push_back(v);
      }
      const NotifyReply r = gateway_->Reply(v.kind != NotifyKind::kRejected);
      res.status = r.status;
      res.set_content(r.body, r.content_type.c_str());
    });
    const int rx_port = receiver_.bind_to_any_port("127.0.0.1");
    rx_thread_ = std::thread([this] { receiver_.listen_after_bind(); });
    while (!receiver_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

    kv::testing::ChildOptions o;
    o.out = kv::testing::Output::Pipe();
    std::string error;
    ASSERT_TRUE(
        fake_.Start({KV_PYTHON, FAKE_STRIPE, "--secret-key", kKey, "--webhook-secret", kWhsec,
                     "--webhook-url", "http://127.0.0.1:" + std::to_string(rx_port) + "/notify"},
                    o, &error))
        << error;
    std::string line;
    char c;
    while (line.size() < 64 && ::read(fake_.stdout_fd(), &c, 1) == 1 && c != '\n') line += c;
    ASSERT_EQ(line.rfind("PORT ", 0), 0u) << line;
    fake_port_ = std::stoi(line.substr(5));

    StripeOptions so;
    so.api_base = "http://127.0.0.1:" + std::to_string(fake_port_);
    so.secret_key = kKey;
    so.webhook_secret = kWhsec;
    gateway_ = MakeStripeGateway(so, http_.get(), RealClock::Get());
  }

  void TearDown() override {
    receiver_.stop();
    if (rx_thread_.joinable()) rx_thread_.join();
    fake_.Kill9();
  }

  PayOrder Order(int64_t amount = 1234, const std::string& currency = "USD") const {
    PayOrder o;
    o.order_id = kOrder;
    o.amount_cents = amount;
    o.currency = currency;
    o.product_name = "Fake-checked key";
    o.return_url = std::string("http://127.0.0.1:1/order/") + kOrder;
    o.cancel_url = o.return_url;
    o.expires_at = RealClock::Get()->WallNow() + absl::Minutes(15);  // keyvend's default hold
    return o;
  }

  kv::testing::Json FakePost(const std::string& path) {
    httplib::Client c("127.0.0.1", fake_port_);
    c.set_read_timeout(30, 0);
    auto r = c.Post(path.c_str(), "", "text/plain");
    EXPECT_TRUE(r && r->status == 200) << path;
    return r ? kv::testing::Json::Parse(r->body) : kv::testing::Json();
  }

  std::vector<NotifyVerdict> Verdicts() {
    std::lock_guard<std::mutex> l(mu_);
    return verdicts_;
  }

  httplib::Server receiver_;
  std::thread rx_thread_;
  kv::testing::Child fake_;
  int fake_port_ = 0;
  std::unique_ptr<net::HttpClient> http_ = net::MakeCurlHttpClient({});
  std::unique_ptr<Gateway> gateway_;
  std::mutex mu_;
  std::vector<NotifyVerdict> verdicts_;
};

TEST_F(StripeFakeTest, StartPayWebhookAndQueryAgree) {
  auto s = gateway_->Start(Order());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ref.rfind("cs_test_", 0), 0u);
  EXPECT_EQ(s->redirect_url, "http://127.0.0.1:" + std::to_string(fake_port_) + "/c/pay/" + s->ref);
  // A repeat (the buyer's second click) is the same session: same parameters, same key.
  // (A 2-hour hold, so that the session's expires_at is the order's, whatever the time.)
  PayOrder longer = Order();
  longer.expires_at =
      absl::FromUnixSeconds(absl::ToUnixSeconds(longer.expires_at)) + absl::Hours(2);
  auto first = gateway_->Start(longer);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = gateway_->Start(longer);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ref, first->ref);

  QueryResult q = gateway_->Query(kOrder, s->ref);
  EXPECT_EQ(q.state, QueryState::kNotPaid) << q.error;

  const kv::testing::Json d = FakePost("/_control/pay?session=" + s->ref + "&drop_notify=0");
  EXPECT_EQ(d["status"].num(), 200) << d["body"].str();
  const std::vector<NotifyVerdict> v = Verdicts();
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].kind, NotifyKind::kPayment) << v[0].reason << v[0].malformed.problem;
  EXPECT_EQ(v[0].notice.payment_id, "stripe:" + s->ref);
  EXPECT_EQ(v[0].notice.order_id, kOrder);
  EXPECT_EQ(v[0].notice.amount_cents, 1234);
  EXPECT_EQ(v[0].notice.currency, "USD");

  q = gateway_->Query(kOrder, s->ref);
  ASSERT_EQ(q.state, QueryState::kPaid) << q.error;
  EXPECT_EQ(q.notice.payment_id, v[0].notice.payment_id);
  EXPECT_EQ(q.notice.amount_cents, 1234);
  EXPECT_EQ(q.notice.currency, "USD");

  // Forged and stale webhooks are rejected with Stripe's expected 400.
  for (const char* extra : {"&secret=whsec_forged", "&t_offset=-301", "&t_offset=301"}) {
    const kv::testing::Json bad = FakePost("/_control/send?session=" + s->ref + extra);
    EXPECT_EQ(bad["status"].num(), 400) << extra;
  }
}

TEST_F(StripeFakeTest, ZeroDecimalCurrencyAndDroppedWebhook) {
  auto s = gateway_->Start(Order(500, "JPY"));
  ASSERT_TRUE(s.ok()) << s.status();
  FakePost("/_control/pay?session=" + s->ref + "&drop_notify=1");
  EXPECT_TRUE(Verdicts().empty());
  QueryResult q = gateway_->Query(kOrder, s->ref);
  ASSERT_EQ(q.state, QueryState::kPaid) << q.error;
  EXPECT_EQ(q.notice.amount_cents, 500);
  EXPECT_EQ(q.notice.currency, "JPY");
  EXPECT_EQ(gateway_->Query(kOrder, "cs_test_unknown").state, QueryState::kUnknown);
}

TEST_F(StripeFakeTest, WrongKeyIsUnavailable) {
  StripeOptions so;
  so.api_base = "http://127.0.0.1:" + std::to_string(fake_port_);
  so.secret_key = "sk_test_wrong";
  so.webhook_secret = kWhsec;
  auto wrong = MakeStripeGateway(so, http_.get(), RealClock::Get());
  EXPECT_EQ(wrong->Start(Order()).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kv::pay
