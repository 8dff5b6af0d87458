// The merchant webhook and the buyer mail at the scale of issue 14's tests: the real
// `keyvend serve`, tests/fakes/webhook_receiver.py (checks every signature with Python's own
// hmac, independently of keyvend's code; counts each event id) and tests/fakes/smtp_sink.py
// (Debian's aiosmtpd; each mail as Python's email package decodes it), all on loopback.
//  - 1,000 orders paid by 8 client threads -> 1,000 signed order.delivered events, each id
//    at least once, no key or token in a body; 1,000 mails, each with exactly its own
//    order's keys and no other's;
//  - the receiver answering 500 for 60 s of real time while orders are created and paid
//    (every one 2xx), then 200 -> every event arrives; the breaker opened and closed;
//  - kill -9 of the shop with orders and payments in flight, 10 rounds on one data dir ->
//    after the last restart every event and mail of every acknowledged payment arrives
//    (duplicates counted and allowed, losses not);
//  - the SMTP server down -> mails wait, fail after mail_max_attempts (admin list, metric),
//    the sink started and the admin replay -> every mail arrives with its keys.
// Label "outbound": `ctest -L outbound`; about two minutes on 2 cores.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
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

constexpr char kAdminToken[] = "adm-outbound-scale-7c1e9a3b5d2f4068ae";
constexpr char kPaymentSecret[] = "pay-outbound-scale-3f5a7c9e";
constexpr char kWebhookSecret[] = "whsec-outbound-scale-9d7b5f3a1c";
// Generous: a backlog of a thousand events and mails on 2 shared cores.
constexpr milliseconds kArrival{120000};
constexpr char kKeyTail[] = "-KEYBODY";

struct Bought {
  std::string id;
  std::string token;
  std::string contact;
};

class HttpOutboundScaleTest : public ServedShopTest {
 protected:
  HttpOutboundScaleTest() : ServedShopTest(kAdminToken, kPaymentSecret) {}

  void SetUp() override {
    ServedShopTest::SetUp();
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                                 std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret,
                                 std::string("KEYVEND_WEBHOOK_SECRET=") + kWebhookSecret});
    std::string error;
    ASSERT_TRUE(receiver_.Start(&error)) << error;
  }

  std::vector<std::string> WebhookFlags() {
    return {"--webhook-url=" + receiver_.url(), "--webhook-breaker-failures=3",
            "--webhook-breaker-cooldown-seconds=1", "--outbound-backoff-max-seconds=1",
            "--webhook-max-attempts=1000"};
  }
  static std::vector<std::string> MailFlags(const std::string& smtp_url) {
    return {"--smtp-url=" + smtp_url, "--mail-from=shop@example.com", "--mail-max-attempts=1000"};
  }
  static std::vector<std::string> Join(std::vector<std::string> a,
                                       const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  // A product with `keys` keys "OS-<tag>-<pid>-<i>-KEYBODY", at most 3 per order.
  std::string MakeProduct(int keys) {
    const Reply r = api_->AdminPost(
        "/api/v1/admin/products",
        "{\"name\":\"Scale card\",\"price_cents\":250,\"currency\":\"EUR\",\"max_per_order\":3}");
    EXPECT_EQ(r.status, 201) << r;
    const std::string pid = r.json()["id"].str();
    std::string body;
    for (int i = 0; i < keys; ++i) {
      imported_.push_back("OS-" + tag_ + "-" + pid + "-" + std::to_string(i) + kKeyTail);
      body += imported_.back() + "\n";
    }
    const Reply k = api_->AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    EXPECT_EQ(k.status, 200) << k;
    return pid;
  }

  // One order of `quantity` for `contact`, then its payment's notify. The order when the
  // payment was acknowledged (200); *created says whether the order itself got its 201.
  static std::optional<Bought> BuyOne(Api& api, const std::string& pid, int quantity,
                                      const std::string& contact, bool* created = nullptr) {
    const Reply o =
        api.Post("/api/v1/orders",
                 "{\"product_id\":" + Quote(pid) + ",\"quantity\":" + std::to_string(quantity) +
                     ",\"contact\":" + Quote(contact) + "}",
                 "application/json");
    if (created != nullptr) *created = o.status == 201;
    if (o.status != 201) return std::nullopt;
    const Json j = o.json();
    const std::string id = j["order_id"].str();
    const Reply p =
        SendNotify(api, kPaymentSecret,
                   NotifyBody(id, "pay-" + id, j["amount_cents"].num(), j["currency"].str()));
    if (p.status != 200) return std::nullopt;
    return Bought{id, j["token"].str(), contact};
  }

  // `n` orders (quantity 1 + i % 3) paid from `threads` client threads; every order and
  // payment must succeed. Contacts are "<prefix><i>@example.com".
  std::vector<Bought> BuyMany(const std::string& pid, int n, int threads,
                              const std::string& prefix) {
    std::mutex mu;
    std::vector<Bought> out;
    std::atomic<int> next{0};
    OnThreads(threads, server_->port(), kAdminToken, [&](int, Api& api) {
      for (int i = next++; i < n; i = next++) {
        auto b = BuyOne(api, pid, 1 + i % 3, prefix + std::to_string(i) + "@example.com");
        EXPECT_TRUE(b.has_value()) << "order " << i;
        if (!b) continue;
        std::lock_guard<std::mutex> l(mu);
        out.push_back(std::move(*b));
      }
    });
    return out;
  }

  // Each order's keys, read with its token (8 threads).
  std::map<std::string, std::vector<std::string>> KeysOf(const std::vector<Bought>& orders) {
    std::mutex mu;
    std::map<std::string, std::vector<std::string>> out;
    std::atomic<size_t> next{0};
    OnThreads(8, server_->port(), kAdminToken, [&](int, Api& api) {
      for (size_t i = next++; i < orders.size(); i = next++) {
        const Reply r = api.Get("/api/v1/orders/" + orders[i].id + "?token=" + orders[i].token);
        EXPECT_EQ(r.status, 200) << r;
        if (r.status != 200) continue;
        const Json j = r.json();
        EXPECT_EQ(j["status"].str(), "delivered") << orders[i].id;
        std::vector<std::string> keys;
        for (const Json& k : j["keys"].items()) keys.push_back(k.str());
        std::lock_guard<std::mutex> l(mu);
        out[orders[i].id] = std::move(keys);
      }
    });
    return out;
  }

  // The card keys of this test in `text` (every "OS-<tag>-...-KEYBODY").
  std::multiset<std::string> KeysIn(const std::string& text) const {
    std::multiset<std::string> out;
    const std::string head = "OS-" + tag_ + "-";
    for (size_t p = text.find(head); p != std::string::npos; p = text.find(head, p + 1)) {
      const size_t end = text.find(kKeyTail, p);
      if (end == std::string::npos) break;
      out.insert(text.substr(p, end + sizeof kKeyTail - 1 - p));
    }
    return out;
  }

  // Waits until the receiver accepted every order's order.delivered event.
  ::testing::AssertionResult AllEventsArrive(const std::vector<Bought>& orders) {
    std::vector<std::string> missing;
    const bool ok = PollUntil(
        [&] {
          const std::map<std::string, int> got = receiver_.Accepted();
          missing.clear();
          for (const Bought& b : orders) {
            if (got.count("evt_" + b.id + "_delivered") == 0) missing.push_back(b.id);
          }
          return missing.empty();
        },
        kArrival, milliseconds(250));
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << missing.size() << " of " << orders.size()
                                         << " events never arrived, e.g. " << missing.front();
  }

  // Waits until the sink holds at least one mail per order, then checks that each order's
  // contact got mails holding exactly that order's keys (every copy: duplicates allowed).
  // Returns how many mails were duplicates.
  ::testing::AssertionResult AllMailsArrive(SmtpSink& sink, const std::vector<Bought>& orders,
                                            size_t* duplicates = nullptr) {
    std::map<std::string, const Bought*> by_contact;
    for (const Bought& b : orders) by_contact[b.contact] = &b;
    std::set<std::string> missing;
    std::vector<std::pair<std::string, std::string>> mails;
    const bool ok = PollUntil(
        [&] {
          if (sink.Count() < orders.size()) return false;
          mails = sink.Mails();
          missing.clear();
          for (const auto& [c, b] : by_contact) missing.insert(c);
          for (const auto& m : mails) missing.erase(m.first);
          return missing.empty();
        },
        kArrival, milliseconds(250));
    if (!ok) {
      return ::testing::AssertionFailure()
             << missing.size() << " of " << orders.size() << " orders' mails never arrived ("
             << sink.Count() << " mails), e.g. " << (missing.empty() ? "" : *missing.begin());
    }
    const std::map<std::string, std::vector<std::string>> keys = KeysOf(orders);
    std::map<std::string, int> seen;
    for (const auto& [rcpt, body] : mails) {
      ++seen[rcpt];
      auto it = by_contact.find(rcpt);
      if (it == by_contact.end()) continue;  // an order whose payment was not acknowledged
      const auto k = keys.find(it->second->id);
      if (k == keys.end()) return ::testing::AssertionFailure() << "no keys read for " << rcpt;
      const std::multiset<std::string> want(k->second.begin(), k->second.end());
      if (want.empty() || KeysIn(body) != want) {
        return ::testing::AssertionFailure()
               << "the mail to " << rcpt << " does not hold exactly its order's " << want.size()
               << " keys: " << body.substr(0, 400);
      }
    }
    if (duplicates != nullptr) {
      *duplicates = 0;
      for (const auto& [rcpt, n] : seen) *duplicates += static_cast<size_t>(n - 1);
    }
    return ::testing::AssertionSuccess();
  }

  double Metric(std::string_view name, const kv::testing::Labels& labels = {}) {
    const Reply r = api_->Get("/metrics");
    EXPECT_EQ(r.status, 200) << r;
    return kv::testing::MetricValue(r.body, name, labels).value_or(-1);
  }

  WebhookReceiver receiver_{kWebhookSecret};
};

TEST_F(HttpOutboundScaleTest, AThousandPaidOrdersGiveAThousandSignedEventsAndMails) {
  SmtpSink sink;
  std::string error;
  ASSERT_TRUE(sink.Start(0, &error)) << error;
  Start(Join(WebhookFlags(), MailFlags(sink.url())));
  constexpr int kOrders = 1000;
  const std::string pid = MakeProduct(2 * kOrders + 10);  // quantities 1..3, mean 2
  const auto t0 = SteadyClock::now();
  const std::vector<Bought> orders = BuyMany(pid, kOrders, 8, "buyer-" + tag_ + "-");
  ASSERT_EQ(orders.size(), static_cast<size_t>(kOrders));
  const auto t1 = SteadyClock::now();
  ASSERT_TRUE(AllEventsArrive(orders));
  const auto t2 = SteadyClock::now();
  size_t dup_mails = 0;
  ASSERT_TRUE(AllMailsArrive(sink, orders, &dup_mails));
  const auto t3 = SteadyClock::now();
  using std::chrono::duration_cast;
  std::printf(
      "1,000 orders: paid in %lld ms; every event %lld ms later; every mail %lld ms "
      "after the payments\n",
      static_cast<long long>(duration_cast<milliseconds>(t1 - t0).count()),
      static_cast<long long>(duration_cast<milliseconds>(t2 - t1).count()),
      static_cast<long long>(duration_cast<milliseconds>(t3 - t1).count()));
  // At least once: a copy more is allowed (an answer lost to a timeout), never one less;
  // nothing else is sent (no other id, no other type, no bad signature).
  const Json summary = receiver_.Summary();
  std::printf("duplicates: %lld events, %zu mails\n",
              static_cast<long long>(summary["types"]["order.delivered"].num() - kOrders),
              dup_mails);
  EXPECT_GE(sink.Count(), static_cast<size_t>(kOrders));
  EXPECT_EQ(summary["invalid"].num(), 0);
  EXPECT_EQ(summary["accepted"].size(), static_cast<size_t>(kOrders));
  EXPECT_EQ(summary["types"].size(), 1u);
  EXPECT_GE(summary["types"]["order.delivered"].num(), kOrders);
  // Every body: signed (valid), an order.delivered of one of these orders, no key, no token.
  std::set<std::string> ids;
  for (const Bought& b : orders) ids.insert("evt_" + b.id + "_delivered");
  const Json ev = receiver_.Events();
  EXPECT_GE(ev["events"].size(), static_cast<size_t>(kOrders));
  for (const Json& e : ev["events"].items()) {
    EXPECT_TRUE(e["valid"].boolean()) << e["id"].str();
    EXPECT_EQ(e["type"].str(), "order.delivered");
    EXPECT_EQ(ids.count(e["id"].str()), 1u) << e["id"].str();
    const std::string body = e["body"].str();
    EXPECT_EQ(body.find(kKeyTail), std::string::npos) << body;
    EXPECT_TRUE(KeysIn(body).empty()) << body;
    for (const Bought& b : orders) {
      if (body.find(b.token) != std::string::npos) {
        ADD_FAILURE() << "a token in a webhook body: " << body;
        break;
      }
    }
  }
  // Settled: nothing left in the log.
  ASSERT_TRUE(PollUntil(
      [&] {
        return Metric("keyvend_outbound_events", {{"kind", "webhook"}, {"state", "pending"}}) ==
                   0 &&
               Metric("keyvend_outbound_events", {{"kind", "mail"}, {"state", "pending"}}) == 0;
      },
      kArrival, milliseconds(100)));
  EXPECT_GE(Metric("keyvend_outbound_attempts_total", {{"kind", "mail"}, {"result", "sent"}}),
            kOrders);
}

TEST_F(HttpOutboundScaleTest, AMinuteOfFiveHundredsThenEveryEventArrivesAndTheBreakerCloses) {
  // A cooldown of 5 s: the breaker probes about a dozen times in the minute (each probe
  // refused re-opens it), and closes within 5 s of the receiver's return.
  Start(Join(WebhookFlags(), {"--webhook-breaker-cooldown-seconds=5"}));
  const std::string pid = MakeProduct(3000);
  receiver_.Fail(true);
  constexpr auto kOutage = std::chrono::seconds(60);
  const auto end = SteadyClock::now() + kOutage;
  std::mutex mu;
  std::vector<Bought> orders;
  std::atomic<int> refused{0};
  std::atomic<int> seq{0};
  // Two buyers, each about 8 orders a second, for the whole outage.
  OnThreads(2, server_->port(), kAdminToken, [&](int, Api& api) {
    while (SteadyClock::now() < end) {
      const int i = seq++;
      bool created = false;
      auto b = BuyOne(api, pid, 1, "outage-" + std::to_string(i) + "@example.com", &created);
      if (!b) {
        ++refused;
        ADD_FAILURE() << "order " << i << (created ? ": payment" : ": creation") << " refused";
      } else {
        std::lock_guard<std::mutex> l(mu);
        orders.push_back(std::move(*b));
      }
      std::this_thread::sleep_for(milliseconds(120));
    }
  });
  ASSERT_EQ(refused.load(), 0);
  ASSERT_GT(orders.size(), 100u);
  const double opened = Metric("keyvend_webhook_breaker_opened_total");
  EXPECT_GE(opened, 1);
  EXPECT_NE(Metric("keyvend_webhook_breaker_state"), 0);  // open or half open
  EXPECT_EQ(receiver_.Accepted().size(), 0u);             // nothing got through
  std::printf("outage: %zu orders paid in 60 s, breaker opened %g times, %lld refusals\n",
              orders.size(), opened, static_cast<long long>(receiver_.Summary()["refused"].num()));
  receiver_.Fail(false);
  ASSERT_TRUE(AllEventsArrive(orders));
  ASSERT_TRUE(PollUntil([&] { return Metric("keyvend_webhook_breaker_state") == 0; }, kArrival));
  EXPECT_GE(Metric("keyvend_webhook_breaker_closed_total"), 1);
  EXPECT_EQ(Metric("keyvend_outbound_events", {{"kind", "webhook"}, {"state", "failed"}}), 0);
}

TEST_F(HttpOutboundScaleTest, TenKillNineRoundsLoseNoEventOrMailOfAnAcknowledgedPayment) {
  SmtpSink sink;
  std::string error;
  ASSERT_TRUE(sink.Start(0, &error)) << error;
  const std::vector<std::string> flags = Join(WebhookFlags(), MailFlags(sink.url()));
  Start(flags);
  const std::string pid = MakeProduct(12000);  // about 800 paid orders a second, 1.25 keys each
  std::vector<Bought> acked;
  std::mt19937 rng(std::random_device{}());
  constexpr int kRounds = 10;
  std::printf("round  created  paid(acked)  | so far: events (distinct)  mails\n");
  for (int round = 0; round < kRounds; ++round) {
    // The receiver refuses in odd rounds: events are still waiting at the kill.
    receiver_.Fail(round % 2 == 1);
    std::atomic<bool> stop{false};
    std::atomic<int> created{0};
    std::mutex mu;
    std::vector<Bought> now;
    std::thread load([&] {
      OnThreads(4, server_->port(), kAdminToken, [&](int t, Api& api) {
        for (int i = 0; !stop.load(); ++i) {
          const std::string c = "k" + std::to_string(round) + "-" + std::to_string(t) + "-" +
                                std::to_string(i) + "-" + tag_ + "@example.com";
          bool made = false;
          auto b = BuyOne(api, pid, i % 4 == 0 ? 2 : 1, c, &made);
          if (made) ++created;
          if (!b) continue;  // the kill: not acknowledged, nothing promised
          std::lock_guard<std::mutex> l(mu);
          now.push_back(std::move(*b));
        }
      });
    });
    // Killed mid-stream: once 20 payments of the round were acknowledged, 0..700 ms later.
    EXPECT_TRUE(PollUntil(
        [&] {
          std::lock_guard<std::mutex> l(mu);
          return now.size() >= 20;
        },
        kArrival, milliseconds(10)))
        << "round " << round;
    std::this_thread::sleep_for(milliseconds(rng() % 700));
    server_->Kill9();
    stop = true;
    load.join();
    const size_t events = receiver_.Accepted().size();
    const size_t mails = sink.Count();
    acked.insert(acked.end(), now.begin(), now.end());
    std::printf("%5d  %7d  %11zu  | %16zu  %5zu\n", round, created.load(), now.size(), events,
                mails);
    receiver_.Fail(false);
    Start(flags);
  }
  ASSERT_GT(acked.size(), 50u);
  ASSERT_TRUE(AllEventsArrive(acked));
  size_t dup_mails = 0;
  ASSERT_TRUE(AllMailsArrive(sink, acked, &dup_mails));
  size_t dup_events = 0;
  for (const auto& [id, n] : receiver_.Accepted()) dup_events += static_cast<size_t>(n - 1);
  std::printf(
      "%d kill -9 rounds: %zu payments acknowledged; every event and mail arrived; "
      "%zu distinct events, %zu duplicate events; %zu mails, %zu duplicate mails\n",
      kRounds, acked.size(), receiver_.Accepted().size(), dup_events, sink.Count(), dup_mails);
  EXPECT_EQ(receiver_.Summary()["invalid"].num(), 0);
}

TEST_F(HttpOutboundScaleTest, MailsWaitFailAndAreReplayedWhenTheSmtpServerIsDown) {
  const int port = DeadPort();
  ASSERT_GT(port, 0);
  Start({"--smtp-url=smtp://127.0.0.1:" + std::to_string(port), "--mail-from=shop@example.com",
         "--mail-max-attempts=3", "--outbound-backoff-max-seconds=1"});
  const std::string pid = MakeProduct(200);
  constexpr int kOrders = 60;
  const std::vector<Bought> orders = BuyMany(pid, kOrders, 4, "down-" + tag_ + "-");
  ASSERT_EQ(orders.size(), static_cast<size_t>(kOrders));
  Json failed;
  ASSERT_TRUE(PollUntil(
      [&] {
        const Reply r = api_->AdminGet("/api/v1/admin/events?state=failed");
        failed = r.json();
        return r.status == 200 && failed["events"].size() == kOrders;
      },
      kArrival, milliseconds(200)))
      << failed["events"].size();
  std::set<std::string> ids;
  for (const Json& e : failed["events"].items(kOrders)) {
    EXPECT_EQ(e["kind"].str(), "mail");
    EXPECT_EQ(e["state"].str(), "failed");
    EXPECT_EQ(e["attempts"].num(), 3);
    ids.insert(e["id"].str());
  }
  for (const Bought& b : orders) EXPECT_EQ(ids.count("mail_" + b.id + "_delivered"), 1u) << b.id;
  EXPECT_EQ(Metric("keyvend_outbound_events", {{"kind", "mail"}, {"state", "failed"}}), kOrders);
  EXPECT_EQ(Metric("keyvend_outbound_events", {{"kind", "mail"}, {"state", "pending"}}), 0);
  EXPECT_EQ(Metric("keyvend_outbound_attempts_total", {{"kind", "mail"}, {"result", "sent"}}), 0);
  // The SMTP server comes up on that port; the admin replays every failed mail.
  SmtpSink sink;
  std::string error;
  ASSERT_TRUE(sink.Start(port, &error)) << error;
  EXPECT_EQ(sink.Count(), 0u);
  const Reply rp = api_->AdminPost("/api/v1/admin/events/replay", "");
  ASSERT_EQ(rp.status, 200) << rp;
  EXPECT_EQ(rp.json()["replayed"].num(), kOrders);
  ASSERT_TRUE(AllMailsArrive(sink, orders));
  ASSERT_TRUE(PollUntil(
      [&] {
        return Metric("keyvend_outbound_events", {{"kind", "mail"}, {"state", "failed"}}) == 0 &&
               Metric("keyvend_outbound_events", {{"kind", "mail"}, {"state", "pending"}}) == 0;
      },
      kArrival, milliseconds(100)));
  EXPECT_EQ(api_->AdminGet("/api/v1/admin/events").json()["events"].size(), 0u);
}

}  // namespace
}  // namespace kv::httptest
