// kill -9 of the real `keyvend serve` while payment notifies are in flight (SPEC §2.3, §2.4,
// §2.2): a payment once answered 200 is never lost, a paid order is delivered after the
// restart with its keys readable by its token, and no key is ever in two orders.
//
// One data dir, six rounds. Each round creates 200 orders, then notifies them from several
// threads. In four rounds the thread that receives the round's Nth 200 sends SIGKILL at
// once (N = 1, 20, 60, 130), so the kill lands with other notifies mid-way; in two more the
// test kills a random 1..12 ms after the Nth 200 (seeded: KEYVEND_HTTP_CRASH_SEED). Then:
// `keyvend check` on the killed dir (exit 0), restart on the same dir, verify every order
// ever created, and let the gateway retry every notify of the round (replays included):
// all answered 200, all delivered, acknowledged ones with the keys they already had.
// Finally SIGTERM (exit 0) and `keyvend check` (exit 0).
#include <atomic>
#include <cstdlib>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-crash-8c6e4a2f0d-0123456789abcdef012";
constexpr char kPaymentSecret[] = "pay-crash-1b3d5f7a9c";
constexpr int kKeys = 1800;  // 6 rounds x 296 keys ordered per round, plus some
constexpr int kOrdersPerRound = 200;
constexpr int kNotifyThreads = 6;

struct KillPlan {
  int after_acks;  // the kill follows the round's after_acks-th 200
  bool delayed;    // false: at once, from the thread that got it; true: 1..12 ms later
};
constexpr KillPlan kPlans[] = {{1, false},   {20, false}, {60, false},
                               {130, false}, {1, true},   {30, true}};

struct Order {
  std::string id;
  std::string token;
  int64_t amount = 0;
  int64_t quantity = 0;
  int round = 0;
  std::string payment_id;
  bool acked = false;             // a notify for it was answered 200
  std::vector<std::string> keys;  // as first seen delivered
};

class HttpCrashTest : public ::testing::Test {
 protected:
  HttpCrashTest()
      : server_({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                 std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret}) {}

  void StartServer() {
    std::string error;
    ASSERT_TRUE(server_.Start({}, &error)) << error;
  }

  // Reads every order with its token: each exists; acknowledged ones are delivered (after
  // the restart's replay; a worker may take up to a second) with `quantity` keys; others are
  // pending_payment or delivered (a payment may commit without its answer arriving). No key
  // in two orders; every key was imported; a delivered order keeps its keys.
  void VerifyAll(const std::string& when) {
    Api api(server_.port(), kAdminToken);
    std::map<std::string, std::string> owner;  // key -> order id
    int delivered = 0;
    for (Order& o : orders_) {
      Json j;
      bool unreadable = false;
      const bool ok = PollUntil(
          [&] {
            const Reply r = api.Get("/api/v1/orders/" + o.id + "?token=" + o.token);
            if (r.status != 200) {
              ADD_FAILURE() << when << ": order " << o.id << " (round " << o.round
                            << ") does not open with its token: " << r;
              unreadable = true;
              return true;
            }
            j = r.json();
            return !o.acked || j["status"].str() == "delivered";
          },
          milliseconds(5000), milliseconds(20));
      if (unreadable) return;
      const std::string status = j["status"].str();
      if (o.acked) {
        EXPECT_TRUE(ok && status == "delivered")
            << when << ": acknowledged payment " << o.payment_id << " of order " << o.id
            << " (round " << o.round << "): order is " << status;
      } else {
        EXPECT_TRUE(status == "pending_payment" || status == "delivered")
            << when << ": order " << o.id << " is " << status;
      }
      std::vector<std::string> keys;
      for (const Json& k : j["keys"].items()) keys.push_back(k.str());
      if (status == "delivered") {
        ++delivered;
        EXPECT_EQ(static_cast<int64_t>(keys.size()), o.quantity) << when << ": order " << o.id;
        if (o.keys.empty()) {
          o.keys = keys;
        } else {
          EXPECT_EQ(keys, o.keys) << when << ": order " << o.id << " changed its keys";
        }
      } else {
        EXPECT_TRUE(keys.empty()) << when << ": " << status << " order " << o.id << " has keys";
      }
      for (const std::string& k : keys) {
        EXPECT_TRUE(imported_.contains(k)) << when << ": a key that was never imported";
        auto [it, fresh] = owner.emplace(k, o.id);
        EXPECT_TRUE(fresh) << when << ": a key is in orders " << it->second << " and " << o.id;
      }
    }
    std::printf("  %s: %zu orders, %d delivered, %zu keys out\n", when.c_str(), orders_.size(),
                delivered, owner.size());
    std::fflush(stdout);
  }

  ServerProcess server_;
  std::set<std::string> imported_;
  std::vector<Order> orders_;
};

TEST_F(HttpCrashTest, KillNineMidNotifiesLosesNoAcknowledgedPayment) {
  const auto t0 = SteadyClock::now();
  uint64_t seed = std::random_device()();
  if (const char* e = std::getenv("KEYVEND_HTTP_CRASH_SEED")) seed = std::strtoull(e, nullptr, 10);
  std::printf("http_crash_test: seed %llu (KEYVEND_HTTP_CRASH_SEED reproduces the delays)\n",
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::string pid;
  {
    Api admin(server_.port(), kAdminToken);
    Reply r = admin.AdminPost(
        "/api/v1/admin/products",
        R"({"name":"Crash card","price_cents":450,"currency":"EUR","max_per_order":3})");
    ASSERT_EQ(r.status, 201) << r;
    pid = r.json()["id"].str();
    std::string body;
    for (int i = 0; i < kKeys; ++i) {
      const std::string k =
          "CRASH-" + std::to_string(NowUnix() % 100000) + "-" + std::to_string(200000 + i) + "-K";
      imported_.insert(k);
      body += k + "\n";
    }
    r = admin.AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    ASSERT_EQ(r.status, 200) << r;
    ASSERT_EQ(r.json()["imported"].num(), kKeys) << r;
  }

  int round = 0;
  for (const KillPlan& plan : kPlans) {
    ++round;
    const int kill_after = plan.after_acks;
    const int delay_ms = plan.delayed ? 1 + static_cast<int>(rng() % 12) : 0;
    const size_t first = orders_.size();
    {
      Api api(server_.port(), kAdminToken);
      for (int i = 0; i < kOrdersPerRound; ++i) {
        const int64_t qty = 1 + (i % 3 == 0 ? 1 : 0) + (i % 7 == 0 ? 1 : 0);
        const Reply r =
            api.Post("/api/v1/orders", "{\"product_id\":" + Quote(pid) +
                                           ",\"quantity\":" + std::to_string(qty) +
                                           ",\"contact\":\"crash-" + std::to_string(round) + "-" +
                                           std::to_string(i) + "@example.com\"}");
        ASSERT_EQ(r.status, 201) << r;
        const Json j = r.json();
        Order o;
        o.id = j["order_id"].str();
        o.token = j["token"].str();
        o.amount = j["amount_cents"].num();
        o.quantity = qty;
        o.round = round;
        o.payment_id = "crash-pay-" + std::to_string(round) + "-" + std::to_string(i);
        orders_.push_back(o);
      }
    }

    // Notify from several threads; the thread that gets the kill_after-th 200 kills -9.
    const pid_t child = server_.pid();
    std::atomic<size_t> next{first};
    std::atomic<int> acks{0};
    std::atomic<int> done{0};
    std::mutex mu;
    std::vector<std::string> errors;
    std::latch ready(kNotifyThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kNotifyThreads; ++t) {
      threads.emplace_back([&] {
        Api api(server_.port(), kAdminToken);
        ready.arrive_and_wait();
        for (size_t i = next.fetch_add(1); i < orders_.size(); i = next.fetch_add(1)) {
          Order& o = orders_[i];  // this thread's alone
          const Reply r =
              SendNotify(api, kPaymentSecret, NotifyBody(o.id, o.payment_id, o.amount, "EUR"));
          if (r.status < 0) break;  // the server is gone
          if (r.status == 200 && r.json()["received"].boolean()) {
            o.acked = true;
            if (acks.fetch_add(1) + 1 == kill_after && delay_ms == 0) ::kill(child, SIGKILL);
          } else {
            std::lock_guard<std::mutex> l(mu);
            std::ostringstream os;
            os << o.id << ": " << r;
            errors.push_back(os.str());
          }
        }
        done.fetch_add(1);
      });
    }
    if (delay_ms > 0) {
      PollUntil([&] { return acks.load() >= kill_after || done.load() == kNotifyThreads; },
                milliseconds(30000), milliseconds(1));
      std::this_thread::sleep_for(milliseconds(delay_ms));  // the timing under test
      ::kill(child, SIGKILL);
    }
    for (std::thread& th : threads) th.join();
    const int status = server_.Kill9();  // reaps it (SIGKILL again is harmless)
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": the server was not killed mid-way: " << DescribeWait(status);
    EXPECT_TRUE(errors.empty()) << errors.size() << " notifies refused, first: " << errors.front();
    int acked = 0;
    for (size_t i = first; i < orders_.size(); ++i) acked += orders_[i].acked ? 1 : 0;
    std::printf("round %d: kill -9 %d ms after the %d%s 200; %d of %d notifies acknowledged\n",
                round, delay_ms, kill_after, kill_after == 1 ? "st" : "th", acked, kOrdersPerRound);
    std::fflush(stdout);
    EXPECT_GE(acked, kill_after);
    EXPECT_LT(acked, kOrdersPerRound) << "the kill did not land mid-way";

    // The killed dir is consistent as it lies (counters = recount, no key twice, every paid
    // order delivered or with an unfinished delivery-log entry).
    const RunResult check = RunKeyvendCheck(server_.data_dir(), server_.key_file());
    EXPECT_EQ(check.exit_code, 0) << "after kill " << round << ":\n" << check.out;

    ASSERT_NO_FATAL_FAILURE(StartServer());
    VerifyAll("after kill " + std::to_string(round));
    ASSERT_FALSE(HasFailure()) << "stopped after kill " << round;

    // The gateway retries every notify of the round (a repeat of an acknowledged one is a
    // replay: same answer, nothing changes).
    {
      Api api(server_.port(), kAdminToken);
      for (size_t i = first; i < orders_.size(); ++i) {
        Order& o = orders_[i];
        const Reply r =
            SendNotify(api, kPaymentSecret, NotifyBody(o.id, o.payment_id, o.amount, "EUR"));
        ASSERT_TRUE(r.status == 200 && r.json()["received"].boolean())
            << "retry of " << o.payment_id << ": " << r;
        o.acked = true;
      }
      const Reply due = api.AdminGet("/api/v1/admin/payments?state=refund_due");
      ASSERT_EQ(due.status, 200) << due;
      EXPECT_EQ(due.json()["payments"].size(), 0u) << "a retried payment flagged: " << due;
    }
    VerifyAll("after the retries of round " + std::to_string(round));
    ASSERT_FALSE(HasFailure()) << "stopped after round " << round;
  }

  // Stock adds up: every created order delivered, the rest still sellable.
  int64_t sold = 0;
  for (const Order& o : orders_) sold += o.quantity;
  {
    Api api(server_.port(), kAdminToken);
    const Reply r = api.Get("/api/v1/products/" + pid);
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.json()["stock"].num(), kKeys - sold) << r;
  }

  const int status = server_.Terminate();
  EXPECT_TRUE(ExitedZero(status)) << DescribeWait(status) << "\n"
                                  << ReadFile(server_.stderr_path());
  const RunResult check = RunKeyvendCheck(server_.data_dir(), server_.key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
  const std::string printed = server_.AllOutput() + check.out;
  for (const std::string& k : imported_) {
    ASSERT_EQ(printed.find(k), std::string::npos) << "a card key in the server's output";
  }
  std::printf("http_crash_test: %zu kills, %zu orders, %lld keys sold, %lld ms\n",
              std::size(kPlans), orders_.size(), static_cast<long long>(sold),
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(SteadyClock::now() - t0).count()));
}

TEST_F(HttpCrashTest, KillNineMidOrdersLosesNoAcknowledgedOrderAndOversellsNothing) {
  // Orders are created without a thread waiting for their fsync (the committer's completion
  // writes the 201): kill -9 while 8 clients order, then every 201 must be a stored order
  // and the stock counters must add up (keyvend check recounts them).
  ASSERT_NO_FATAL_FAILURE(StartServer());
  constexpr int kStock = 400;
  std::string pid;
  {
    Api admin(server_.port(), kAdminToken);
    Reply r = admin.AdminPost(
        "/api/v1/admin/products",
        R"({"name":"Order crash","price_cents":100,"currency":"EUR","max_per_order":1})");
    ASSERT_EQ(r.status, 201) << r;
    pid = r.json()["id"].str();
    std::string body;
    for (int i = 0; i < kStock; ++i) body += "ORDERCRASH-" + std::to_string(100000 + i) + "-K\n";
    r = admin.AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    ASSERT_EQ(r.status, 200) << r;
  }
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> acked;  // order id, token
  std::atomic<int> n_acked{0};
  std::vector<std::thread> buyers;
  for (int t = 0; t < 8; ++t) {
    buyers.emplace_back([&, t] {
      Api api(server_.port(), kAdminToken);
      for (int i = 0; i < kStock; ++i) {
        const Reply r =
            api.Post("/api/v1/orders",
                     R"({"product_id":")" + pid + R"(","quantity":1,"contact":"b)" +
                         std::to_string(t) + "-" + std::to_string(i) + R"(@example.com"})",
                     "application/json");
        if (r.status != 201) return;  // the server is gone (or sold out)
        std::lock_guard<std::mutex> l(mu);
        acked.emplace_back(r.json()["order_id"].str(), r.json()["token"].str());
        ++n_acked;
      }
    });
  }
  ASSERT_TRUE(
      PollUntil([&] { return n_acked.load() >= 100; }, milliseconds(30000), milliseconds(1)));
  const int status = server_.Kill9();
  for (std::thread& th : buyers) th.join();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << DescribeWait(status);
  EXPECT_LT(acked.size(), static_cast<size_t>(kStock)) << "the kill did not land mid-way";
  const RunResult check = RunKeyvendCheck(server_.data_dir(), server_.key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Api api(server_.port(), kAdminToken);
  for (const auto& [id, token] : acked) {
    const Reply r = api.Get("/api/v1/orders/" + id + "?token=" + token);
    ASSERT_EQ(r.status, 200) << "acknowledged order " << id << " lost: " << r;
    EXPECT_EQ(r.json()["status"].str(), "pending_payment") << r;
  }
  const Reply p = api.Get("/api/v1/products/" + pid);
  ASSERT_EQ(p.status, 200) << p;
  EXPECT_LE(p.json()["stock"].num() + static_cast<int64_t>(acked.size()), kStock)
      << "more keys on sale than the acknowledged orders left: " << p;
  std::printf("orders: %zu acknowledged before kill -9, all stored\n", acked.size());
  const int end = server_.Terminate();
  EXPECT_TRUE(ExitedZero(end)) << DescribeWait(end);
}

}  // namespace
}  // namespace kv::httptest
