// The crash soak (issue 15): rounds of mixed sale load on the REAL `keyvend serve`, each
// ended by a kill -9 or a simulated power loss at a random moment, then `keyvend check` on
// the dead dir, a restart, and an outside ledger that the shop's answers are held to.
//
// Load (LOAD_THREADS clients, each with its own keep-alive connection), per operation:
// create an order (product A: reserve, backorders allowed; B: on_payment; C: reserve, no
// backorders) and usually pay it at once; pay an old unpaid order late (its hold is 2 s,
// so usually expired); send an acknowledged payment's notify again (a duplicate); send a
// second, different payment for a paid order; cancel an unpaid order; refund a paid one;
// import a batch of new keys; take an online backup.
//
// The ledger records what was SENT and what was ACKNOWLEDGED (a 2xx). After each round:
//  - `keyvend check` on the killed (or power-cut) dir: exit 0 (SPEC §2.1, §2.2, §2.5);
//  - after the restart, every order touched since the last verification (and, every
//    kFullEvery rounds and at the end, every order ever acknowledged) opens with its token
//    and its status is one the ledger allows: an acknowledged refund → refunded; an
//    acknowledged cancel → cancelled; an acknowledged matching payment → delivered,
//    backordered or refund_due (SPEC §2.3, §2.4); a status that needs a payment, cancel or
//    refund only if one was sent; a delivered order has exactly its quantity of keys, each
//    one this test imported, never changing afterwards, and no key is in two orders (§2.2);
//  - on full verifications also: every acknowledged payment is listed by the merchant API,
//    the keys in orders add up to each product's `delivered` counter, and `imported` lies
//    between the acknowledged and the sent import lines.
// Every round ends, whatever it found, and the test fails with the round and seed printed.
//
// Rounds: KEYVEND_SOAK_ROUNDS (default 4, CI's short run); seed: KEYVEND_SOAK_SEED (default
// random, printed); KEYVEND_SOAK_POWER_PERCENT: the share of rounds ended by a power loss
// (default 50). Power loss needs the test build's keyvend_fault_server (KEYVEND_FAULT_
// SERVER_BIN): it runs the same serve path on a fault file system and, on SIGUSR2, drops
// every byte not yet synced (tearing the last writes) and dies; without it every round is a
// kill -9. tools/crash-soak.sh N runs N rounds.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-soak-5e1f9a7c3b-0123456789abcdef012";
constexpr char kPaymentSecret[] = "pay-soak-4d2b8f6a1c";
constexpr int kLoadThreads = 4;
constexpr int kFullEvery = 20;
constexpr int kProducts = 3;

enum class Sent : uint8_t { kNo, kUnknown, kAcked };  // kUnknown: no answer (the kill cut it)

struct Order {
  std::string id, token;
  int product = 0;  // index into products_
  int64_t quantity = 0, amount = 0;
  int round = 0;
  Sent pay = Sent::kNo;  // a matching payment
  Sent cancel = Sent::kNo;
  Sent refund = Sent::kNo;
  std::string payment_id;         // the matching payment's id, once sent
  std::vector<std::string> keys;  // as first seen with keys
  bool touched = true;            // changed since its last verification
};

struct Product {
  std::string id;
  int64_t price = 0;
  int64_t lines_acked = 0;  // key lines in imports answered 200
  int64_t lines_sent = 0;   // key lines in every import sent
};

struct Totals {
  int64_t orders = 0, payments = 0, late = 0, duplicates = 0, seconds = 0, cancels = 0, refunds = 0,
          imports = 0, backups = 0, kills = 0, power_cuts = 0, bytes_dropped = 0;
};

uint64_t EnvU64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : dflt;
}

class CrashSoakTest : public ::testing::Test {
 protected:
  CrashSoakTest()
      : server_({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                 std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret}) {}

  void Start(bool fault_fs) {
#ifdef KEYVEND_FAULT_SERVER_BIN
    server_.set_binary(fault_fs ? KEYVEND_FAULT_SERVER_BIN : "");
#else
    ASSERT_FALSE(fault_fs);
#endif
    std::string error;
    ASSERT_TRUE(server_.Start({"--hold-seconds=2", "--hold-grace-seconds=1",
                               "--backup-dir=" + server_.root() + "/backups"},
                              &error))
        << error;
  }

  // One import of n new keys into product p; returns the answer's status.
  int Import(Api& api, int p, int n) {
    std::string body;
    std::vector<std::string> keys;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (int i = 0; i < n; ++i) {
        keys.push_back("SOAK-" + std::to_string(seed_ % 100000) + "-" + std::to_string(++key_seq_) +
                       "-" + std::to_string(p));
        body += keys.back() + "\n";
        imported_.insert(keys.back());
      }
      products_[p].lines_sent += n;
    }
    const Reply r =
        api.AdminPost("/api/v1/admin/products/" + products_[p].id + "/keys", body, "text/plain");
    std::lock_guard<std::mutex> l(mu_);
    if (r.status == 200) {
      EXPECT_EQ(r.json()["imported"].num(), n) << r;
      products_[p].lines_acked += n;
    }
    return r.status;
  }

  // A status the ledger cannot explain is a failure; transport errors (the kill) are not.
  void Unexpected(const std::string& what, const Reply& r) {
    if (r.status < 0) return;
    std::lock_guard<std::mutex> l(mu_);
    failures_.push_back(what + ": " + std::to_string(r.status) + " " + r.body.substr(0, 300));
  }

  static Sent Outcome(const Reply& r) {
    return r.status / 100 == 2 ? Sent::kAcked : Sent::kUnknown;
  }

  void Pay(Api& api, Order* o, bool late) {
    std::string pid;
    {
      std::lock_guard<std::mutex> l(mu_);
      pid = "soak-pay-" + std::to_string(++pay_seq_);
      o->payment_id = pid;
      o->pay = Sent::kUnknown;
      o->touched = true;
      ++(late ? totals_.late : totals_.payments);
    }
    const Reply r = SendNotify(api, kPaymentSecret, NotifyBody(o->id, pid, o->amount, "USD"));
    if (r.status >= 0 && r.status != 200) Unexpected("notify " + pid, r);
    std::lock_guard<std::mutex> l(mu_);
    o->pay = Outcome(r);
    if (o->pay == Sent::kAcked) {
      acked_payments_.insert(pid);
      paid_.push_back(o);
    }
  }

  // One operation of a load thread, chosen by dice.
  void Step(Api& api, std::mt19937_64& rng) {
    const int dice = static_cast<int>(rng() % 100);
    auto take = [&](std::vector<Order*>& from) -> Order* {
      std::lock_guard<std::mutex> l(mu_);
      if (from.empty()) return nullptr;
      const size_t i = rng() % from.size();
      Order* o = from[i];
      from[i] = from.back();
      from.pop_back();
      return o;
    };
    if (dice < 50) {  // a new order, usually paid at once
      const int p = static_cast<int>(rng() % kProducts);
      const int64_t qty = 1 + static_cast<int64_t>(rng() % (p == 0 ? 3 : 2));
      const Reply r = api.Post("/api/v1/orders",
                               "{\"product_id\":" + Quote(products_[p].id) +
                                   ",\"quantity\":" + std::to_string(qty) + ",\"contact\":\"soak-" +
                                   std::to_string(rng() % 1000) + "@example.com\"}");
      if (r.status != 201) {
        // Sold out is an answer the shop may give (B has no backorders; A's pool may be held).
        if (r.status >= 0 && !IsError(r, 409, "out_of_stock")) Unexpected("create order", r);
        return;
      }
      const Json j = r.json();
      auto o = std::make_unique<Order>();
      o->id = j["order_id"].str();
      o->token = j["token"].str();
      o->product = p;
      o->quantity = qty;
      o->amount = j["amount_cents"].num();
      o->round = round_;
      Order* raw = o.get();
      {
        std::lock_guard<std::mutex> l(mu_);
        orders_.push_back(std::move(o));
        ++totals_.orders;
        if (rng() % 10 >= 7) {
          unpaid_.push_back(raw);
          return;
        }
      }
      Pay(api, raw, false);
    } else if (dice < 60) {  // a late payment of an old unpaid order
      if (Order* o = take(unpaid_)) Pay(api, o, true);
    } else if (dice < 68) {  // the gateway sends an acknowledged payment again
      std::string body;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (paid_.empty()) return;
        const Order* o = paid_[rng() % paid_.size()];
        body = NotifyBody(o->id, o->payment_id, o->amount, "USD");
        ++totals_.duplicates;
      }
      const Reply r = SendNotify(api, kPaymentSecret, body);
      if (r.status >= 0 && r.status != 200) Unexpected("duplicate notify", r);
    } else if (dice < 72) {  // a second, different payment for a paid order
      std::string body, pid;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (paid_.empty()) return;
        const Order* o = paid_[rng() % paid_.size()];
        pid = "soak-second-" + std::to_string(++pay_seq_);
        body = NotifyBody(o->id, pid, o->amount, "USD");
        ++totals_.seconds;
      }
      const Reply r = SendNotify(api, kPaymentSecret, body);
      if (r.status >= 0 && r.status != 200) Unexpected("second notify", r);
      std::lock_guard<std::mutex> l(mu_);
      if (r.status == 200) acked_payments_.insert(pid);
    } else if (dice < 80) {  // the merchant cancels an unpaid order
      Order* o = take(unpaid_);
      if (!o) return;
      {
        std::lock_guard<std::mutex> l(mu_);
        o->cancel = Sent::kUnknown;
        o->touched = true;
        ++totals_.cancels;
      }
      const Reply r = api.AdminPost("/api/v1/admin/orders/" + o->id + "/cancel", "{}");
      // An expired order cannot be cancelled any more: 409 invalid_state is an answer.
      if (r.status >= 0 && r.status != 200 && !IsError(r, 409, "invalid_state")) {
        Unexpected("cancel", r);
      }
      std::lock_guard<std::mutex> l(mu_);
      if (r.status == 409) {
        o->cancel = Sent::kNo;
        unpaid_.push_back(o);  // still payable late
      } else {
        o->cancel = Outcome(r);
      }
    } else if (dice < 88) {  // the merchant refunds a paid order
      Order* o = take(paid_);
      if (!o) return;
      {
        std::lock_guard<std::mutex> l(mu_);
        o->refund = Sent::kUnknown;
        o->touched = true;
        ++totals_.refunds;
      }
      const Reply r = api.AdminPost("/api/v1/admin/orders/" + o->id + "/refund", "{}");
      if (r.status >= 0 && r.status != 200) Unexpected("refund " + o->id, r);
      std::lock_guard<std::mutex> l(mu_);
      o->refund = Outcome(r);
    } else if (dice < 91) {  // the merchant imports new keys
      {
        std::lock_guard<std::mutex> l(mu_);
        ++totals_.imports;
      }
      const int s =
          Import(api, static_cast<int>(rng() % kProducts), 3 + static_cast<int>(rng() % 10));
      if (s >= 0 && s != 200) Unexpected("import", Reply{s, "", {}, ""});
    } else if (dice < 92) {  // an online backup
      {
        std::lock_guard<std::mutex> l(mu_);
        ++totals_.backups;
      }
      const Reply r = api.AdminPost("/api/v1/admin/backups", "{}");
      if (r.status == 201) {
        std::lock_guard<std::mutex> l(mu_);
        last_backup_ = std::max<int64_t>(last_backup_, std::stoll(r.json()["backup"]["id"].str()));
      }
      // One backup at a time: a second one while the first runs may be refused (409/503).
      if (r.status >= 0 && r.status != 201 && r.status != 409 && r.status != 503) {
        Unexpected("backup", r);
      }
    } else {  // a buyer reads an order (reads go on while writes do)
      std::string path;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (orders_.empty()) return;
        const Order& o = *orders_[rng() % orders_.size()];
        path = "/api/v1/orders/" + o.id + "?token=" + o.token;
      }
      const Reply r = api.Get(path);
      if (r.status >= 0 && r.status != 200) Unexpected("read order", r);
    }
  }

  // Checks one order against the ledger; `owner` collects key -> order id.
  void VerifyOrder(Api& api, Order& o, std::map<std::string, std::string>* owner,
                   std::vector<int64_t>* keys_per_product) {
    const std::string where = "round " + std::to_string(round_) + ": order " + o.id +
                              " (created in round " + std::to_string(o.round) + ")";
    Json j;
    std::string status;
    // "paid" is a moment inside the payment's batch; a delivery the crash interrupted
    // completes at the restart. Wait (bounded) until the order is out of it.
    const bool settled = PollUntil(
        [&] {
          const Reply r = api.Get("/api/v1/orders/" + o.id + "?token=" + o.token);
          if (r.status != 200) {
            status = "HTTP " + std::to_string(r.status);
            return true;
          }
          j = r.json();
          status = j["status"].str();
          return status != "paid";
        },
        milliseconds(5000), milliseconds(20));
    ASSERT_TRUE(settled) << where << " stays paid";
    ASSERT_TRUE(j.is_object()) << where << " does not open with its token: " << status;
    const bool pay_sent = o.pay != Sent::kNo;
    if (o.refund == Sent::kAcked) {
      EXPECT_EQ(status, "refunded") << where << ": its refund was acknowledged";
    } else if (o.cancel == Sent::kAcked) {
      EXPECT_EQ(status, "cancelled") << where << ": its cancel was acknowledged";
    } else if (o.pay == Sent::kAcked && o.cancel == Sent::kNo && o.refund == Sent::kNo) {
      EXPECT_TRUE(status == "delivered" || status == "backordered" || status == "refund_due")
          << where << ": its payment " << o.payment_id << " was acknowledged, but it is " << status;
    }
    if (status == "pending_payment" || status == "expired") {
      EXPECT_NE(o.pay, Sent::kAcked)
          << where << " is " << status << " after an acknowledged payment";
    } else if (status == "cancelled") {
      EXPECT_NE(o.cancel, Sent::kNo) << where << " is cancelled; nobody cancelled it";
    } else if (status == "refunded") {
      EXPECT_NE(o.refund, Sent::kNo) << where << " is refunded; nobody refunded it";
    } else if (status == "delivered" || status == "backordered" || status == "refund_due") {
      EXPECT_TRUE(pay_sent) << where << " is " << status << "; nobody paid it";
    } else {
      ADD_FAILURE() << where << ": unknown status " << status;
    }
    std::vector<std::string> keys;
    for (const Json& k : j["keys"].items()) keys.push_back(k.str());
    if (status == "delivered") {
      EXPECT_EQ(static_cast<int64_t>(keys.size()), o.quantity) << where;
    } else if (status != "refunded") {
      EXPECT_TRUE(keys.empty()) << where << " is " << status << " but shows keys";
    }
    if (!keys.empty()) {
      if (o.keys.empty()) {
        o.keys = keys;
      } else {
        EXPECT_EQ(keys, o.keys) << where << " changed its keys";
      }
    }
    for (const std::string& k : keys) {
      EXPECT_TRUE(imported_.contains(k)) << where << ": a key this test never imported";
      if (owner) {
        auto [it, fresh] = owner->emplace(k, o.id);
        EXPECT_TRUE(fresh) << where << ": a key is also in order " << it->second;
      }
    }
    if (keys_per_product) (*keys_per_product)[o.product] += static_cast<int64_t>(keys.size());
    ++statuses_[status];
    o.touched = false;
  }

  // After a restart: touched orders (or all), and on full verifications the merchant's view.
  void Verify(bool full) {
    Api api(server_.port(), kAdminToken);
    statuses_.clear();
    std::map<std::string, std::string> owner;
    std::vector<int64_t> keys_per_product(kProducts, 0);
    size_t n = 0;
    for (auto& o : orders_) {
      if (!full && !o->touched) continue;
      ++n;
      ASSERT_NO_FATAL_FAILURE(
          VerifyOrder(api, *o, full ? &owner : nullptr, full ? &keys_per_product : nullptr));
    }
    // Backups: the newest acknowledged one is listed (backup_keep keeps several), and
    // none is unreadable (a backup the kill cut off is never listed as one).
    const Reply backups = api.AdminGet("/api/v1/admin/backups");
    ASSERT_EQ(backups.status, 200) << backups;
    const Json bj = backups.json();
    EXPECT_EQ(bj["unreadable"].size(), 0u) << "round " << round_ << ": " << backups;
    bool newest_listed = last_backup_ == 0;
    for (const Json& b : bj["backups"].items()) {
      EXPECT_TRUE(b["keyvend"].boolean()) << "round " << round_ << ": " << backups;
      newest_listed |= b["id"].str() == std::to_string(last_backup_);
    }
    EXPECT_TRUE(newest_listed) << "round " << round_ << ": acknowledged backup " << last_backup_
                               << " is not listed: " << backups;
    if (!full) {
      std::printf("  round %d: %zu orders verified\n", round_, n);
      return;
    }
    const Reply pays = api.AdminGet("/api/v1/admin/payments");
    ASSERT_EQ(pays.status, 200) << pays;
    std::set<std::string> listed;
    for (const Json& p : pays.json()["payments"].items()) listed.insert(p["payment_id"].str());
    for (const std::string& pid : acked_payments_) {
      EXPECT_TRUE(listed.contains(pid))
          << "round " << round_ << ": acknowledged payment " << pid << " is not listed";
    }
    for (int p = 0; p < kProducts; ++p) {
      // Wait (bounded) for backorders the restart serves to settle: delivered counts move.
      Json counts;
      PollUntil(
          [&] {
            const Reply r = api.AdminGet("/api/v1/admin/products/" + products_[p].id + "/keys");
            if (r.status != 200) return false;
            counts = r.json()["counts"];
            return true;
          },
          milliseconds(5000), milliseconds(20));
      ASSERT_TRUE(counts.is_object()) << "round " << round_ << ": no counts for product " << p;
      EXPECT_EQ(counts["delivered"].num(), keys_per_product[p])
          << "round " << round_ << ": product " << p
          << "'s delivered counter disagrees with the keys its orders show";
      EXPECT_GE(counts["imported"].num(), products_[p].lines_acked)
          << "round " << round_ << ": product " << p << " lost acknowledged key lines";
      EXPECT_LE(counts["imported"].num(), products_[p].lines_sent) << "round " << round_;
    }
    std::string by_status;
    for (const auto& [s, c] : statuses_) by_status += " " + s + " " + std::to_string(c);
    std::printf(
        "  round %d: full verification: %zu orders (%s), %zu keys out, %zu payments listed\n",
        round_, n, by_status.c_str() + 1, owner.size(), listed.size());
  }

  ServerProcess server_;
  uint64_t seed_ = 0;
  int round_ = 0;
  std::mutex mu_;
  Product products_[kProducts];
  std::set<std::string> imported_;  // every key line ever sent (acknowledged or not)
  int64_t key_seq_ = 0;
  int64_t pay_seq_ = 0;
  std::vector<std::unique_ptr<Order>> orders_;
  std::vector<Order*> unpaid_;  // acknowledged, no payment or cancel sent
  std::vector<Order*> paid_;    // payment acknowledged, no refund sent
  std::set<std::string> acked_payments_;
  int64_t last_backup_ = 0;  // the id of the newest acknowledged backup
  std::vector<std::string> failures_;
  std::map<std::string, int64_t> statuses_;  // of the orders the last Verify read
  Totals totals_;
};

TEST_F(CrashSoakTest, RoundsOfSaleLoadEndedByKillOrPowerLossLoseNothingAcknowledged) {
  const uint64_t rounds = std::clamp<uint64_t>(EnvU64("KEYVEND_SOAK_ROUNDS", 4), 1, 100000);
  seed_ = EnvU64("KEYVEND_SOAK_SEED", std::random_device()());
#ifdef KEYVEND_FAULT_SERVER_BIN
  const bool can_cut_power = true;
#else
  const bool can_cut_power = false;
#endif
  // The share of rounds ended by a power loss rather than kill -9 (when possible).
  const uint64_t power_pct = std::min<uint64_t>(EnvU64("KEYVEND_SOAK_POWER_PERCENT", 50), 100);
  std::printf("crash soak: %llu rounds, seed %llu (KEYVEND_SOAK_SEED), power loss %s\n",
              static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(seed_),
              can_cut_power ? ("in " + std::to_string(power_pct) + " % of rounds").c_str()
                            : "off (no keyvend_fault_server)");
  std::fflush(stdout);
  std::mt19937_64 rng(seed_);
  const auto t0 = SteadyClock::now();

  ASSERT_NO_FATAL_FAILURE(Start(false));
  {
    Api admin(server_.port(), kAdminToken);
    // A: held at order time, backorders when sold out; B: taken at payment (a payment that
    // finds none is refund_due); C: held, no backorders (a late payment after its hold was
    // released and sold again is refund_due).
    const char* specs[kProducts] = {
        R"({"name":"Soak A","price_cents":300,"currency":"USD","max_per_order":3,"allow_backorder":true})",
        R"({"name":"Soak B","price_cents":700,"currency":"USD","max_per_order":2,"stock_mode":"on_payment"})",
        R"({"name":"Soak C","price_cents":500,"currency":"USD","max_per_order":2})"};
    for (int p = 0; p < kProducts; ++p) {
      const Reply r = admin.AdminPost("/api/v1/admin/products", specs[p]);
      ASSERT_EQ(r.status, 201) << r;
      products_[p].id = r.json()["id"].str();
      products_[p].price = r.json()["price_cents"].num();
      ASSERT_EQ(Import(admin, p, 40), 200);
    }
  }

  for (round_ = 1; round_ <= static_cast<int>(rounds); ++round_) {
    // Round 2 is always a power loss (when possible and not 0 %), so a short run has one.
    const bool power = can_cut_power && power_pct > 0 && (round_ == 2 || rng() % 100 < power_pct);
    if (power) {  // the verified server gives way to one on the fault file system
      server_.Terminate();
      ASSERT_NO_FATAL_FAILURE(Start(true));
    }
    // The kill lands 100..2,500 ms into the load, while the clients are mid-request.
    const auto load_for = milliseconds(100 + static_cast<int>(rng() % 2400));
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kLoadThreads; ++t) {
      threads.emplace_back([&, tseed = rng()] {
        std::mt19937_64 trng(tseed);
        Api api(server_.port(), kAdminToken);
        while (!stop.load(std::memory_order_relaxed)) Step(api, trng);
      });
    }
    std::this_thread::sleep_for(load_for);
    if (power) {
      server_.Signal(SIGUSR2);
      const int st = server_.WaitExit(milliseconds(20000));
      ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
          << "round " << round_ << ": the power cut ended the server with " << DescribeWait(st);
      ++totals_.power_cuts;
      // The fault server's one-line account of what the cut took (the last one printed).
      const std::string err = ReadFile(server_.stderr_path());
      const size_t at = err.rfind("power loss: ");
      if (at != std::string::npos) {
        const std::string line = err.substr(at, err.find('\n', at) - at);
        std::printf("  round %d: %s\n", round_, line.c_str());
        unsigned long long files = 0, bytes = 0;
        if (std::sscanf(line.c_str(), "power loss: %llu files cut, %llu bytes dropped", &files,
                        &bytes) == 2) {
          totals_.bytes_dropped += static_cast<int64_t>(bytes);
        }
      }
    } else {
      server_.Kill9();
      ++totals_.kills;
    }
    stop = true;
    for (std::thread& t : threads) t.join();
    {
      std::lock_guard<std::mutex> l(mu_);
      ASSERT_TRUE(failures_.empty()) << "round " << round_ << ": " << failures_.front();
    }

    const RunResult check = RunKeyvendCheck(server_.data_dir(), server_.key_file());
    ASSERT_EQ(check.exit_code, 0) << "round " << round_ << " ("
                                  << (power ? "power loss" : "kill -9") << ", seed " << seed_
                                  << "): keyvend check:\n"
                                  << check.out;
    ASSERT_NO_FATAL_FAILURE(Start(false));
    const bool full = round_ % kFullEvery == 0 || round_ == static_cast<int>(rounds);
    ASSERT_NO_FATAL_FAILURE(Verify(full)) << "seed " << seed_;
    ASSERT_FALSE(HasFailure()) << "round " << round_ << ", seed " << seed_;
    std::fflush(stdout);
  }

  ExpectCleanStop(server_, {});
  const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::printf(
      "crash soak: %d rounds (%lld kill -9, %lld power loss dropping %lld unsynced bytes) in "
      "%.0f s; orders %lld, payments "
      "%lld, late %lld, duplicates %lld, second payments %lld, cancels %lld, refunds %lld, "
      "imports %lld, backups %lld; acknowledged payments %zu\n",
      round_ - 1, static_cast<long long>(totals_.kills), static_cast<long long>(totals_.power_cuts),
      static_cast<long long>(totals_.bytes_dropped), secs, static_cast<long long>(totals_.orders),
      static_cast<long long>(totals_.payments), static_cast<long long>(totals_.late),
      static_cast<long long>(totals_.duplicates), static_cast<long long>(totals_.seconds),
      static_cast<long long>(totals_.cancels), static_cast<long long>(totals_.refunds),
      static_cast<long long>(totals_.imports), static_cast<long long>(totals_.backups),
      acked_payments_.size());
}

}  // namespace
}  // namespace kv::httptest
