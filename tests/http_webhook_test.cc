// The merchant webhook end to end (issue 14): the real `keyvend serve` with webhook_url
// pointing at tests/fakes/webhook_receiver.py on loopback, which checks each signature with
// Python's own hmac and records every event id.
//  - paid orders -> one order.delivered event each, correctly signed, no key or token in any
//    body, the log empty afterwards;
//  - the receiver answers 500 for a while, then 200 -> every event arrives, the breaker
//    opened and closed (seen in /metrics);
//  - kill -9 right after payments were acknowledged, a few rounds -> after each restart every
//    acknowledged payment's event arrives (duplicates allowed, losses not);
//  - the admin routes: failed events listed, replayed, settled by hand with a reason.
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/exposition.h"
#include "kit/outbound_fakes.h"
#include "kit/served_shop_test.h"

#ifndef KV_PYTHON
#error "KV_PYTHON must name Debian's python3"
#endif
#ifndef SMTP_SINK_PY
#error "SMTP_SINK_PY must name tests/fakes/smtp_sink.py"
#endif
#ifndef WEBHOOK_RECEIVER_PY
#error "WEBHOOK_RECEIVER_PY must name tests/fakes/webhook_receiver.py"
#endif

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-webhook-blackbox-5d1f3b7a9c0e2468ac";
constexpr char kPaymentSecret[] = "pay-webhook-blackbox-8e6c4a2f";
constexpr char kWebhookSecret[] = "whsec-blackbox-2b4d6f8a0c1e3579";
constexpr milliseconds kArrival{30000};

struct Bought {
  std::string id;
  std::string token;
};

class HttpWebhookTest : public ServedShopTest {
 protected:
  HttpWebhookTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  void SetUp() override {
    ServedShopTest::SetUp();
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                                 std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret,
                                 std::string("KEYVEND_WEBHOOK_SECRET=") + kWebhookSecret});
    std::string error;
    ASSERT_TRUE(receiver_.Start(&error)) << error;
  }

  std::vector<std::string> Flags() {
    return {"--webhook-url=" + receiver_.url(), "--webhook-breaker-failures=3",
            "--webhook-breaker-cooldown-seconds=1", "--outbound-backoff-max-seconds=1",
            "--webhook-max-attempts=1000"};
  }

  std::string MakeProduct(int keys) {
    const Reply r = api_->AdminPost(
        "/api/v1/admin/products",
        "{\"name\":\"Webhook card\",\"price_cents\":300,\"currency\":\"EUR\",\"max_per_order\":5}");
    EXPECT_EQ(r.status, 201) << r;
    const std::string pid = r.json()["id"].str();
    std::string body;
    for (int i = 0; i < keys; ++i) {
      imported_.push_back("WH-" + tag_ + "-" + pid + "-" + std::to_string(i) + "-KEYBODY");
      body += imported_.back() + "\n";
    }
    const Reply k = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(k.status, 200) << k;
    return pid;
  }

  // Creates and pays `n` orders of one key; returns those whose payment was acknowledged.
  std::vector<Bought> BuyAndPay(const std::string& pid, int n) {
    std::vector<Bought> out;
    for (int i = 0; i < n; ++i) {
      const Reply o =
          api_->Post("/api/v1/orders",
                     "{\"product_id\":" + Quote(pid) + ",\"quantity\":1,\"contact\":\"buyer" +
                         std::to_string(i) + "@example.com\"}",
                     "application/json");
      EXPECT_EQ(o.status, 201) << o;
      const Json j = o.json();
      const Reply p = SendNotify(*api_, kPaymentSecret,
                                 NotifyBody(j["order_id"].str(), "pay-" + j["order_id"].str(),
                                            j["amount_cents"].num(), j["currency"].str()));
      EXPECT_EQ(p.status, 200) << p;
      if (p.status == 200) out.push_back(Bought{j["order_id"].str(), j["token"].str()});
    }
    return out;
  }

  // Waits until the receiver accepted every order's order.delivered event.
  ::testing::AssertionResult AllArrive(const std::vector<Bought>& orders) {
    std::set<std::string> missing;
    const bool ok = PollUntil(
        [&] {
          const std::map<std::string, int> got = receiver_.Accepted();
          missing.clear();
          for (const Bought& b : orders) {
            if (got.count("evt_" + b.id + "_delivered") == 0) missing.insert(b.id);
          }
          return missing.empty();
        },
        kArrival, milliseconds(50));
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << missing.size() << " of " << orders.size()
                                         << " events never arrived, e.g. " << *missing.begin();
  }

  double Metric(std::string_view name, const kv::testing::Labels& labels = {}) {
    const Reply r = api_->Get("/metrics");
    EXPECT_EQ(r.status, 200) << r;
    return kv::testing::MetricValue(r.body, name, labels).value_or(-1);
  }

  WebhookReceiver receiver_{kWebhookSecret};
};

TEST_F(HttpWebhookTest, EveryPaidOrderGivesOneSignedEventWithoutKeysOrToken) {
  Start(Flags());
  const std::string pid = MakeProduct(40);
  const std::vector<Bought> orders = BuyAndPay(pid, 40);
  ASSERT_EQ(orders.size(), 40u);
  ASSERT_TRUE(AllArrive(orders));
  const Json ev = receiver_.Events();
  for (const Json& e : ev["events"].items(ev["events"].size())) {
    EXPECT_TRUE(e["valid"].boolean()) << e["id"].str();
    EXPECT_EQ(e["type"].str(), "order.delivered");
    const std::string body = e["body"].str();
    EXPECT_EQ(body.find("KEYBODY"), std::string::npos) << body;
    for (const Bought& b : orders) EXPECT_EQ(body.find(b.token), std::string::npos) << body;
  }
  // Settled: nothing left in the log, and the counts (memory, no scan) say so.
  ASSERT_TRUE(PollUntil(
      [&] {
        return Metric("keyvend_outbound_events", {{"kind", "webhook"}, {"state", "pending"}}) == 0;
      },
      kArrival));
  const Reply list = api_->AdminGet("/api/v1/admin/events");
  ASSERT_EQ(list.status, 200) << list;
  EXPECT_EQ(list.json()["events"].size(), 0u) << list;
  EXPECT_EQ(Metric("keyvend_outbound_attempts_total", {{"kind", "webhook"}, {"result", "sent"}}),
            40);
}

TEST_F(HttpWebhookTest, AReceiverFailingThenBackGetsEveryEventAndTheBreakerOpensAndCloses) {
  Start(Flags());
  const std::string pid = MakeProduct(12);
  receiver_.Fail(true);
  const std::vector<Bought> orders = BuyAndPay(pid, 12);
  ASSERT_EQ(orders.size(), 12u);
  ASSERT_TRUE(PollUntil([&] { return Metric("keyvend_webhook_breaker_opened_total") >= 1; },
                        kArrival, milliseconds(50)));
  EXPECT_NE(Metric("keyvend_webhook_breaker_state"), 0);  // open or half open
  receiver_.Fail(false);
  ASSERT_TRUE(AllArrive(orders));
  ASSERT_TRUE(PollUntil([&] { return Metric("keyvend_webhook_breaker_state") == 0; }, kArrival));
  EXPECT_GE(Metric("keyvend_webhook_breaker_closed_total"), 1);
  EXPECT_GT(receiver_.Events()["refused"].num(), 0);
}

TEST_F(HttpWebhookTest, KillNineLosesNoEventOfAnAcknowledgedPayment) {
  Start(Flags());
  const std::string pid = MakeProduct(60);
  std::vector<Bought> acked;
  for (int round = 0; round < 3; ++round) {
    // The receiver refuses for part of each round, so events are still waiting at the kill.
    receiver_.Fail(round % 2 == 0);
    const std::vector<Bought> now = BuyAndPay(pid, 15);
    acked.insert(acked.end(), now.begin(), now.end());
    server_->Kill9();
    receiver_.Fail(false);
    Start(Flags());
    ASSERT_TRUE(AllArrive(acked)) << "round " << round;
  }
}

TEST_F(HttpWebhookTest, FailedEventsAreListedReplayedAndSettledByHand) {
  // Two attempts, then failed.
  std::vector<std::string> flags = Flags();
  flags.push_back("--webhook-max-attempts=2");
  flags.push_back("--webhook-breaker-failures=1000");
  Start(flags);
  const std::string pid = MakeProduct(2);
  receiver_.Fail(true);
  const std::vector<Bought> orders = BuyAndPay(pid, 2);
  ASSERT_EQ(orders.size(), 2u);
  Json failed;
  ASSERT_TRUE(PollUntil(
      [&] {
        const Reply r = api_->AdminGet("/api/v1/admin/events?state=failed");
        failed = r.json();
        return r.status == 200 && failed["events"].size() == 2;
      },
      kArrival, milliseconds(50)));
  EXPECT_EQ(Metric("keyvend_outbound_events", {{"kind", "webhook"}, {"state", "failed"}}), 2);
  // The order's detail shows its event.
  const Json detail = api_->AdminGet("/api/v1/admin/orders/" + orders[0].id).json();
  ASSERT_EQ(detail["events"].size(), 1u);
  EXPECT_EQ(detail["events"][0]["id"].str(), "evt_" + orders[0].id + "_delivered");
  EXPECT_EQ(detail["events"][0]["state"].str(), "failed");
  EXPECT_EQ(detail["events"][0]["attempts"].num(), 2);
  // Settle the first by hand (recorded with its reason), replay the rest.
  const std::string id0 = "evt_" + orders[0].id + "_delivered";
  EXPECT_TRUE(IsError(api_->AdminPost("/api/v1/admin/events/" + id0 + "/settle", "{}"), 400,
                      "bad_request"));
  const Reply s =
      api_->AdminPost("/api/v1/admin/events/" + id0 + "/settle", "{\"reason\":\"sent by hand\"}");
  ASSERT_EQ(s.status, 200) << s;
  EXPECT_EQ(s.json()["event"]["state"].str(), "settled");
  EXPECT_EQ(s.json()["event"]["last_error"].str(), "settled by hand: sent by hand");
  EXPECT_EQ(api_->AdminPost("/api/v1/admin/events/" + id0 + "/replay", "").status, 409);
  EXPECT_EQ(api_->AdminPost("/api/v1/admin/events/evt_nonsense/replay", "").status, 404);
  receiver_.Fail(false);
  const Reply rp = api_->AdminPost("/api/v1/admin/events/replay", "");
  ASSERT_EQ(rp.status, 200) << rp;
  EXPECT_EQ(rp.json()["replayed"].num(), 1);
  ASSERT_TRUE(AllArrive({orders[1]}));
  EXPECT_EQ(receiver_.Accepted().count(id0), 0u);  // settled: never sent
  const Json by_order =
      api_->AdminGet("/api/v1/admin/events?order_id=" + orders[0].id + "&state=settled").json();
  EXPECT_EQ(by_order["events"].size(), 1u);
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/events?state=lost"), 400, "bad_request"));
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/events?order_id=zz"), 400, "bad_request"));
}

// Buyer mails through Debian's aiosmtpd (tests/fakes/smtp_sink.py): each delivered order
// whose contact is an address gets one mail with exactly its own keys; a contact that is not
// an address gets none.
TEST_F(HttpWebhookTest, EachDeliveredOrderMailsItsOwnKeys) {
  kv::testing::TempDir mails;
  Child sink;
  ChildOptions o;
  o.out = Output::Pipe();
  o.err = Output::Null();
  std::string error;
  ASSERT_TRUE(sink.Start({KV_PYTHON, SMTP_SINK_PY, "--dir", mails.path()}, o, &error)) << error;
  std::string line;
  char c = 0;
  while (line.size() < 100 && ::read(sink.stdout_fd(), &c, 1) == 1 && c != '\n') line.push_back(c);
  ASSERT_EQ(line.rfind("PORT ", 0), 0u) << line;
  std::vector<std::string> flags = Flags();
  flags.push_back("--smtp-url=smtp://127.0.0.1:" + line.substr(5));
  flags.push_back("--mail-from=shop@example.com");
  Start(flags);
  const std::string pid = MakeProduct(12);
  const std::vector<Bought> orders = BuyAndPay(pid, 5);  // buyer<i>@example.com, 1 key each
  ASSERT_EQ(orders.size(), 5u);
  const Reply phone = api_->Post(
      "/api/v1/orders",
      "{\"product_id\":" + Quote(pid) + ",\"quantity\":2,\"contact\":\"+86 138 0000 0000\"}",
      "application/json");
  ASSERT_EQ(phone.status, 201) << phone;
  const Json pj = phone.json();
  ASSERT_EQ(SendNotify(*api_, kPaymentSecret,
                       NotifyBody(pj["order_id"].str(), "pay-phone-" + tag_,
                                  pj["amount_cents"].num(), pj["currency"].str()))
                .status,
            200);
  std::vector<std::string> files;
  ASSERT_TRUE(PollUntil(
      [&] {
        files.clear();
        for (int i = 1; i <= 6; ++i) {
          char name[32];
          std::snprintf(name, sizeof name, "/%06d.json", i);
          if (::access((mails.path() + name).c_str(), F_OK) == 0)
            files.push_back(mails.path() + name);
        }
        return files.size() >= 5;
      },
      kArrival, milliseconds(50)));
  ASSERT_TRUE(AllArrive(orders));  // the webhook still works beside the mail
  ASSERT_EQ(files.size(), 5u);     // none for the phone contact
  std::vector<std::string> keys;   // each order's one key, read with its token
  for (const Bought& b : orders) {
    const Json got = api_->Get("/api/v1/orders/" + b.id + "?token=" + b.token).json();
    keys.push_back(got["keys"].items(1)[0].str());
  }
  std::set<std::string> to;
  for (const std::string& f : files) {
    const Json m = Json::Parse(ReadFile(f));
    const std::string rcpt = m["rcpt_tos"].items(1)[0].str();
    to.insert(rcpt);
    const std::string body = m["body"].str();
    for (size_t i = 0; i < orders.size(); ++i) {
      const bool mine = rcpt == "buyer" + std::to_string(i) + "@example.com";
      EXPECT_EQ(body.find(keys[i]) != std::string::npos, mine) << rcpt << " / order " << i;
    }
  }
  EXPECT_EQ(to.size(), 5u);
  sink.Kill9();
}

// The outbound backlog in /readyz and /metrics (issue 14): counts and the oldest from memory;
// /readyz fails only past outbound_backlog_max (a safety stop), and the age of the oldest
// pending event is exported for the alert rules.
TEST_F(HttpWebhookTest, ReadyzFailsOnlyPastTheOutboundBacklogLimit) {
  receiver_.Fail(true);
  std::vector<std::string> flags = Flags();
  flags.push_back("--outbound-backlog-max=3");
  Start(flags);
  const std::string pid = MakeProduct(5);
  EXPECT_EQ(api_->Get("/readyz").status, 200);
  ASSERT_EQ(BuyAndPay(pid, 3).size(), 3u);
  // Three unsent events: at the limit, still ready (a dead endpoint must not stop sales).
  EXPECT_EQ(Metric("keyvend_outbound_events", {{"kind", "webhook"}, {"state", "pending"}}), 3);
  EXPECT_EQ(api_->Get("/readyz").status, 200);
  ASSERT_TRUE(PollUntil(
      [&] {
        return Metric("keyvend_outbound_oldest_seconds",
                      {{"kind", "webhook"}, {"state", "pending"}}) >= 1;
      },
      kArrival, milliseconds(100)));
  EXPECT_EQ(Metric("keyvend_outbound_oldest_seconds", {{"kind", "webhook"}, {"state", "failed"}}),
            0);
  ASSERT_EQ(BuyAndPay(pid, 1).size(), 1u);
  const Reply r = api_->Get("/readyz");
  EXPECT_EQ(r.status, 503) << r;
  EXPECT_NE(r.body.find("outbound backlog"), std::string::npos) << r;
  // The endpoint comes back: the backlog drains and the shop is ready again.
  receiver_.Fail(false);
  ASSERT_TRUE(PollUntil([&] { return api_->Get("/readyz").status == 200; }, kArrival));
  ASSERT_TRUE(PollUntil(
      [&] {
        return Metric("keyvend_outbound_events", {{"kind", "webhook"}, {"state", "pending"}}) == 0;
      },
      kArrival));
  EXPECT_EQ(Metric("keyvend_outbound_oldest_seconds", {{"kind", "webhook"}, {"state", "pending"}}),
            0);
}

}  // namespace
}  // namespace kv::httptest
