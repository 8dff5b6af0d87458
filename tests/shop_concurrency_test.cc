// Concurrency tests of kv::Shop: a flash sale where many threads race for the last keys,
// in both stock modes, with retried and competing payment notices, with backorders served
// by the worker from released holds, with holds expiring under late payments, and with a
// batch retired while its keys are being paid for. Every test ends by closing the shop and proving
// SPEC §2's invariants on the stopped data dir with CheckShop (what `keyvend check` runs).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/coding.h"
#include "gtest/gtest.h"
#include "shop/shop.h"
#include "test_util.h"

namespace kv {
namespace {

using testing::CheckDataDir;
using testing::Describe;
using testing::FormatReport;
using testing::ParallelFor;
using testing::PollUntil;
using testing::ShopDir;

constexpr int kThreads = 64;
constexpr int64_t kPriceCents = 250;
constexpr char kCurrency[] = "EUR";

// `n` distinct card keys; `tag` keeps the keys of different tests and products apart.
std::vector<std::string> MakeKeys(const std::string& tag, int n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (int i = 0; i < n; ++i) keys.push_back(absl::StrCat("KEY-", tag, "-", i, "-X", i * 7919));
  return keys;
}

std::string JoinLines(const std::vector<std::string>& keys) {
  std::string text;
  for (const std::string& k : keys) absl::StrAppend(&text, k, "\n");
  return text;
}

void OpenShop(const ShopOptions& opts, std::unique_ptr<Shop>* out) {
  auto opened = Shop::Open(opts);
  ASSERT_TRUE(opened.ok()) << opened.status();
  *out = std::move(*opened);
}

// Creates a product and imports `keys` into it (all must be stored).
void CreateStockedProduct(Shop& shop, StockMode mode, bool allow_backorder, uint32_t max_per_order,
                          const std::vector<std::string>& keys, uint64_t* pid) {
  ProductSpec spec;
  spec.name = "Flash sale gift card";
  spec.price_cents = kPriceCents;
  spec.currency = kCurrency;
  spec.stock_mode = mode;
  spec.allow_backorder = allow_backorder;
  spec.max_per_order = max_per_order;
  auto p = shop.CreateProduct(spec);
  ASSERT_TRUE(p.ok()) << Describe(p);
  *pid = p->product.id;
  auto imp = shop.ImportKeys(*pid, JoinLines(keys), ParseOptions{});
  ASSERT_TRUE(imp.ok()) << Describe(imp);
  ASSERT_EQ(imp->imported, keys.size());
  ASSERT_EQ(imp->duplicates, 0u);
  ASSERT_TRUE(imp->rejected.empty());
  const StockCounts st = shop.Stock(*pid);
  ASSERT_EQ(st.pool, static_cast<int64_t>(keys.size()));
  ASSERT_EQ(st.sellable(), static_cast<int64_t>(keys.size()));
}

OrderRequest Request(uint64_t pid, int64_t quantity, int i) {
  OrderRequest req;
  req.product_id = pid;
  req.quantity = quantity;
  // Contacts vary (and some repeat, as real buyers retry); a third set a lookup password.
  req.contact = absl::StrCat("buyer", i % 1499, "@example.com");
  if (i % 3 == 0) req.query_password = absl::StrCat("query-pw-", i);
  return req;
}

PaymentNotice NoticeFor(const OrderView& o, std::string payment_id) {
  PaymentNotice n;
  n.order_id = o.order_id;
  n.payment_id = std::move(payment_id);
  n.amount_cents = o.amount_cents;
  n.currency = o.currency;
  return n;
}

// Closes nothing: the caller must have destroyed its Shop (the data dir is locked).
void ExpectCheckPasses(const ShopDir& dir, CheckReport* out) {
  auto report = CheckDataDir(dir.data_dir(), dir.key_file());
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->violations.empty()) << FormatReport(*report);
  *out = *report;
}

// Creates orders for `quantities[i]` from kThreads threads. Returns every result.
std::vector<std::optional<Result<OrderView>>> CreateOrdersConcurrently(
    Shop& shop, uint64_t pid, const std::vector<int64_t>& quantities) {
  std::vector<std::optional<Result<OrderView>>> out(quantities.size());
  ParallelFor(kThreads, static_cast<int>(quantities.size()),
              [&](int i) { out[i].emplace(shop.CreateOrder(Request(pid, quantities[i], i))); });
  return out;
}

std::vector<std::optional<Result<PaymentResult>>> PayConcurrently(
    Shop& shop, const std::vector<PaymentNotice>& notices) {
  std::vector<std::optional<Result<PaymentResult>>> out(notices.size());
  ParallelFor(kThreads, static_cast<int>(notices.size()),
              [&](int i) { out[i].emplace(shop.ApplyPayment(notices[i])); });
  return out;
}

std::vector<std::optional<Result<OrderView>>> ReadConcurrently(
    Shop& shop, const std::vector<OrderView>& orders) {
  std::vector<std::optional<Result<OrderView>>> out(orders.size());
  ParallelFor(kThreads, static_cast<int>(orders.size()),
              [&](int i) { out[i].emplace(shop.GetOrder(orders[i].order_id, orders[i].token)); });
  return out;
}

// Checks a freshly created order view and that ids are unique.
void ExpectNewOrder(const OrderView& v, uint64_t pid, int64_t q, std::set<std::string>* ids) {
  EXPECT_EQ(v.status, OrderStatus::kPendingPayment);
  EXPECT_EQ(v.product_id, pid);
  EXPECT_EQ(v.quantity, q);
  EXPECT_EQ(v.amount_cents, kPriceCents * q);
  EXPECT_EQ(v.currency, kCurrency);
  EXPECT_EQ(v.order_id.size(), 32u);
  EXPECT_FALSE(v.token.empty());
  EXPECT_TRUE(v.keys.empty());
  EXPECT_TRUE(ids->insert(v.order_id).second) << "order id issued twice: " << v.order_id;
}

// --- 1. reserve mode: 5,000 buyers race for 1,000 keys at order creation ------------------

TEST(ShopConcurrencyTest, ReserveFlashSaleHoldsThenDeliversEachKeyOnce) {
  constexpr int kKeys = 1000;
  constexpr int kAttempts = 5000;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("reserve", kKeys);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(dir.Options(), &shop));
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(*shop, StockMode::kReserve,
                                                 /*allow_backorder=*/false, 5, keys, &pid));

    // Order creation is the contended step: the hold is the no-oversell decision.
    const auto created = CreateOrdersConcurrently(*shop, pid, std::vector<int64_t>(kAttempts, 1));
    std::vector<OrderView> orders;
    std::set<std::string> ids;
    int out_of_stock = 0, other = 0;
    for (const auto& r : created) {
      if (r->ok()) {
        ExpectNewOrder(r->value(), pid, 1, &ids);
        orders.push_back(r->value());
      } else if (r->refused() && r->refusal() == Refusal::kOutOfStock) {
        ++out_of_stock;
      } else {
        ++other;
        ADD_FAILURE() << "CreateOrder: " << Describe(*r);
      }
    }
    ASSERT_EQ(orders.size(), static_cast<size_t>(kKeys));
    EXPECT_EQ(out_of_stock, kAttempts - kKeys);
    EXPECT_EQ(other, 0);
    StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.sellable(), 0);
    EXPECT_EQ(st.available, 0);
    EXPECT_EQ(st.held, kKeys);
    EXPECT_EQ(st.pool, kKeys);
    EXPECT_EQ(st.delivered, 0);

    // Pay every order from 64 threads.
    std::vector<PaymentNotice> notices;
    for (const OrderView& o : orders) notices.push_back(NoticeFor(o, "pay-" + o.order_id));
    const auto paid = PayConcurrently(*shop, notices);
    for (size_t i = 0; i < paid.size(); ++i) {
      const auto& r = *paid[i];
      ASSERT_TRUE(r.ok()) << "ApplyPayment " << notices[i].payment_id << ": " << Describe(r);
      EXPECT_EQ(r->outcome, PaymentOutcome::kApplied);
      EXPECT_EQ(r->flag, PaymentFlag::kNone);
      EXPECT_FALSE(r->replay);
      ASSERT_TRUE(r->order_status.has_value());
      EXPECT_EQ(*r->order_status, OrderStatus::kDelivered);
    }
    st = shop->Stock(pid);
    EXPECT_EQ(st.pool, 0);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.delivered, kKeys);
    EXPECT_EQ(st.available, 0);

    // The gateway retries every notice: each is a replay and changes nothing.
    const auto replayed = PayConcurrently(*shop, notices);
    for (const auto& r : replayed) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      EXPECT_TRUE((*r)->replay);
      EXPECT_EQ((*r)->outcome, PaymentOutcome::kApplied);
      EXPECT_EQ((*r)->order_status, std::optional<OrderStatus>(OrderStatus::kDelivered));
    }
    EXPECT_EQ(shop->Stock(pid).delivered, kKeys);

    // Every buyer reads one key; together they are exactly the imported keys.
    const auto read = ReadConcurrently(*shop, orders);
    std::map<std::string, int> seen;
    for (size_t i = 0; i < read.size(); ++i) {
      const auto& r = *read[i];
      ASSERT_TRUE(r.ok()) << "GetOrder " << orders[i].order_id << ": " << Describe(r);
      EXPECT_EQ(r->status, OrderStatus::kDelivered);
      EXPECT_EQ(r->payment_id, "pay-" + orders[i].order_id);
      ASSERT_EQ(r->keys.size(), 1u) << orders[i].order_id;
      ++seen[r->keys[0]];
    }
    std::set<std::string> delivered;
    for (const auto& [k, n] : seen) {
      EXPECT_EQ(n, 1) << "a key was delivered to " << n << " orders";
      delivered.insert(k);
    }
    EXPECT_EQ(delivered, imported);

    // A wrong token reads like an unknown order.
    auto wrong = shop->GetOrder(orders[0].order_id, orders[1].token);
    EXPECT_TRUE(wrong.refused() && wrong.refusal() == Refusal::kOrderNotFound) << Describe(wrong);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.orders, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(report.payments, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(report.keys_delivered, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(report.keys_in_pool, 0u);
  EXPECT_EQ(report.log_entries, 0u);
}

// --- 2a. reserve mode, quantities 1..3: holds never exceed the stock ------------------------

TEST(ShopConcurrencyTest, ReserveMixedQuantitiesNeverHoldMoreThanStock) {
  constexpr int kKeys = 1000;
  constexpr int kAttempts = 5000;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("reserve-mixed", kKeys);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(dir.Options(), &shop));
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(*shop, StockMode::kReserve, false, 5, keys, &pid));
    std::vector<int64_t> quantities(kAttempts);
    std::mt19937 rng(7);
    for (int64_t& q : quantities) q = 1 + static_cast<int64_t>(rng() % 3);

    const auto created = CreateOrdersConcurrently(*shop, pid, quantities);
    std::vector<OrderView> orders;
    std::set<std::string> ids;
    int64_t held_units = 0;
    std::vector<int64_t> refused_q;
    for (size_t i = 0; i < created.size(); ++i) {
      const auto& r = *created[i];
      if (r.ok()) {
        ExpectNewOrder(r.value(), pid, quantities[i], &ids);
        orders.push_back(r.value());
        held_units += quantities[i];
      } else if (r.refused() && r.refusal() == Refusal::kOutOfStock) {
        refused_q.push_back(quantities[i]);
      } else {
        ADD_FAILURE() << "CreateOrder: " << Describe(r);
      }
    }
    const StockCounts st = shop->Stock(pid);
    EXPECT_LE(held_units, kKeys);
    EXPECT_EQ(st.held, held_units);
    EXPECT_EQ(st.pool, kKeys);
    EXPECT_EQ(st.available, kKeys - held_units);
    // Stock only fell during the race, so every refusal asked for more than what is left.
    const int64_t left = kKeys - held_units;
    ASSERT_FALSE(refused_q.empty());
    for (int64_t q : refused_q) {
      EXPECT_GT(q, left) << "refused an order that fits the stock";
    }

    std::vector<PaymentNotice> notices;
    for (const OrderView& o : orders) notices.push_back(NoticeFor(o, "pay-" + o.order_id));
    const auto paid = PayConcurrently(*shop, notices);
    for (const auto& r : paid) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      EXPECT_EQ((*r)->outcome, PaymentOutcome::kApplied);
      EXPECT_EQ((*r)->order_status, std::optional<OrderStatus>(OrderStatus::kDelivered));
    }
    const auto read = ReadConcurrently(*shop, orders);
    std::set<std::string> delivered;
    for (size_t i = 0; i < read.size(); ++i) {
      const auto& r = *read[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      EXPECT_EQ(r->status, OrderStatus::kDelivered);
      EXPECT_EQ(r->keys.size(), orders[i].quantity);
      for (const std::string& k : r->keys) {
        EXPECT_TRUE(delivered.insert(k).second) << "key delivered twice";
        EXPECT_TRUE(imported.contains(k)) << "delivered a key that was never imported";
      }
    }
    EXPECT_EQ(delivered.size(), static_cast<size_t>(held_units));
    const StockCounts after = shop->Stock(pid);
    EXPECT_EQ(after.held, 0);
    EXPECT_EQ(after.delivered, held_units);
    EXPECT_EQ(after.pool, left);
    EXPECT_EQ(after.available, left);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
}

// --- 2b. on_payment mode, quantities 1..3: payment is the contended step -------------------

TEST(ShopConcurrencyTest, OnPaymentRaceDeliversWhatStockPermitsAndFlagsTheRest) {
  constexpr int kKeys = 1000;
  constexpr int kOrders = 5000;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("on-payment", kKeys);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(dir.Options(), &shop));
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(*shop, StockMode::kOnPayment,
                                                 /*allow_backorder=*/false, 3, keys, &pid));
    std::vector<int64_t> quantities(kOrders);
    std::mt19937 rng(11);
    for (int64_t& q : quantities) q = 1 + static_cast<int64_t>(rng() % 3);

    // on_payment holds nothing, so every order is accepted while stock shows.
    const auto created = CreateOrdersConcurrently(*shop, pid, quantities);
    std::vector<OrderView> orders;
    std::set<std::string> ids;
    for (const auto& r : created) {
      ASSERT_TRUE(r->ok()) << "CreateOrder: " << Describe(*r);
      orders.push_back(r->value());
    }
    for (size_t i = 0; i < orders.size(); ++i) ExpectNewOrder(orders[i], pid, quantities[i], &ids);
    StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.available, kKeys);

    // 5,000 payments (about 10,000 keys wanted) race for 1,000 keys.
    std::vector<PaymentNotice> notices;
    for (const OrderView& o : orders) notices.push_back(NoticeFor(o, "pay-" + o.order_id));
    const auto paid = PayConcurrently(*shop, notices);
    int64_t delivered_units = 0;
    std::vector<bool> was_delivered(orders.size(), false);
    for (size_t i = 0; i < paid.size(); ++i) {
      const auto& r = *paid[i];
      ASSERT_TRUE(r.ok()) << "ApplyPayment: " << Describe(r);
      EXPECT_FALSE(r->replay);
      ASSERT_TRUE(r->order_status.has_value());
      if (*r->order_status == OrderStatus::kDelivered) {
        EXPECT_EQ(r->outcome, PaymentOutcome::kApplied);
        EXPECT_EQ(r->flag, PaymentFlag::kNone);
        delivered_units += quantities[i];
        was_delivered[i] = true;
      } else {
        EXPECT_EQ(*r->order_status, OrderStatus::kRefundDue) << Describe(*r->order_status);
        EXPECT_EQ(r->outcome, PaymentOutcome::kRefundDue);
        EXPECT_EQ(r->flag, PaymentFlag::kNoStock) << PaymentFlagName(r->flag);
      }
    }
    ASSERT_LE(delivered_units, kKeys);
    const int64_t left = kKeys - delivered_units;
    st = shop->Stock(pid);
    EXPECT_EQ(st.delivered, delivered_units);
    EXPECT_EQ(st.pool, left);
    EXPECT_EQ(st.available, left);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.owed, 0);
    // Exactly as many keys as stock permits: stock only fell, so each refunded order
    // wanted more than what is left (and so what is left is less than 3 keys).
    for (size_t i = 0; i < orders.size(); ++i) {
      if (!was_delivered[i]) {
        EXPECT_GT(quantities[i], left) << "refund_due although keys remain";
      }
    }
    EXPECT_LT(left, 3);

    const auto read = ReadConcurrently(*shop, orders);
    std::set<std::string> delivered;
    for (size_t i = 0; i < read.size(); ++i) {
      const auto& r = *read[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      if (was_delivered[i]) {
        EXPECT_EQ(r->status, OrderStatus::kDelivered);
        EXPECT_EQ(r->keys.size(), static_cast<size_t>(quantities[i]));
      } else {
        EXPECT_EQ(r->status, OrderStatus::kRefundDue);
        EXPECT_TRUE(r->keys.empty());
      }
      for (const std::string& k : r->keys) {
        EXPECT_TRUE(delivered.insert(k).second) << "key delivered twice";
        EXPECT_TRUE(imported.contains(k)) << "delivered a key that was never imported";
      }
    }
    EXPECT_EQ(delivered.size(), static_cast<size_t>(delivered_units));
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.payments, static_cast<uint64_t>(kOrders));
  EXPECT_EQ(report.log_entries, 0u);
}

// --- competing and repeated notices for the same orders ------------------------------------

TEST(ShopConcurrencyTest, RacingDuplicateAndSecondPaymentsDeliverOnce) {
  constexpr int kOrdersN = 300;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("dup-notify", kOrdersN);
  {
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(dir.Options(), &shop));
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(*shop, StockMode::kReserve, false, 5, keys, &pid));
    const auto created = CreateOrdersConcurrently(*shop, pid, std::vector<int64_t>(kOrdersN, 1));
    std::vector<OrderView> orders;
    for (const auto& r : created) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      orders.push_back(r->value());
    }
    // Per order: payment "a-" sent three times (gateway retries racing each other) and a
    // different payment "b-" once (the buyer paid twice). All shuffled, from 64 threads.
    std::vector<PaymentNotice> notices;
    std::vector<int> order_of;
    for (int i = 0; i < kOrdersN; ++i) {
      for (int k = 0; k < 3; ++k) {
        notices.push_back(NoticeFor(orders[i], "a-" + orders[i].order_id));
        order_of.push_back(i);
      }
      notices.push_back(NoticeFor(orders[i], "b-" + orders[i].order_id));
      order_of.push_back(i);
    }
    std::vector<size_t> perm(notices.size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
    std::vector<PaymentNotice> shuffled;
    for (size_t i : perm) shuffled.push_back(notices[i]);
    const auto results = PayConcurrently(*shop, shuffled);

    // payment id -> (first-time results, replays)
    std::map<std::string, std::vector<PaymentResult>> fresh, replays;
    for (size_t j = 0; j < results.size(); ++j) {
      const auto& r = *results[j];
      ASSERT_TRUE(r.ok()) << Describe(r);
      (r->replay ? replays : fresh)[shuffled[j].payment_id].push_back(r.value());
    }
    const auto read = ReadConcurrently(*shop, orders);
    std::set<std::string> delivered;
    for (int i = 0; i < kOrdersN; ++i) {
      const std::string a = "a-" + orders[i].order_id, b = "b-" + orders[i].order_id;
      ASSERT_EQ(fresh[a].size(), 1u) << "payment " << a << " recorded more than once";
      ASSERT_EQ(fresh[b].size(), 1u) << "payment " << b << " recorded more than once";
      EXPECT_EQ(replays[a].size(), 2u);
      EXPECT_EQ(replays[b].size(), 0u);
      for (const PaymentResult& rep : replays[a]) {
        EXPECT_EQ(rep.outcome, fresh[a][0].outcome);
        EXPECT_EQ(rep.flag, fresh[a][0].flag);
      }
      const auto& r = *read[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      EXPECT_EQ(r->status, OrderStatus::kDelivered);
      ASSERT_EQ(r->keys.size(), 1u);
      EXPECT_TRUE(delivered.insert(r->keys[0]).second) << "key delivered twice";
      // Exactly one of the two payments paid the order; the other is flagged for refund.
      ASSERT_TRUE(r->payment_id == a || r->payment_id == b) << r->payment_id;
      const std::string& winner = r->payment_id;
      const std::string& loser = winner == a ? b : a;
      EXPECT_EQ(fresh[winner][0].outcome, PaymentOutcome::kApplied);
      EXPECT_EQ(fresh[loser][0].outcome, PaymentOutcome::kRefundDue);
      EXPECT_EQ(fresh[loser][0].flag, PaymentFlag::kSecondPayment)
          << PaymentFlagName(fresh[loser][0].flag);
    }
    const StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.delivered, kOrdersN);
    EXPECT_EQ(st.pool, 0);
    EXPECT_EQ(st.held, 0);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.payments, static_cast<uint64_t>(2 * kOrdersN));
}

// --- 3. backorders served by the worker: released holds feed the queue --------------------
// Keys are assigned in the payment's batch when they are at hand; otherwise the order waits
// in the backorder queue (a delivery-log entry) until an import or the worker serves it. Here
// every key is held by a first wave of orders, a second wave pays with none at hand, and
// the first wave's cancellations free the keys the worker hands to the second.

// Every order is delivered with one key, the keys are distinct and are the imported ones.
void ExpectAllDelivered(Shop& shop, const std::vector<OrderView>& orders,
                        const std::set<std::string>& imported) {
  const auto read = ReadConcurrently(shop, orders);
  std::set<std::string> delivered;
  for (size_t i = 0; i < read.size(); ++i) {
    const auto& r = *read[i];
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_EQ(r->status, OrderStatus::kDelivered) << Describe(r->status);
    ASSERT_EQ(r->keys.size(), 1u) << orders[i].order_id << " is " << Describe(r->status);
    EXPECT_TRUE(delivered.insert(r->keys[0]).second) << "key delivered twice";
  }
  EXPECT_EQ(delivered, imported);
}

// Opens a shop with `opts` and creates a reserve-mode product (max 5 per order) stocked
// with `keys`.
void OpenStockedShop(const ShopOptions& opts, const std::vector<std::string>& keys,
                     std::unique_ptr<Shop>* shop, uint64_t* pid) {
  ASSERT_NO_FATAL_FAILURE(OpenShop(opts, shop));
  ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(**shop, StockMode::kReserve, false, 5, keys, pid));
}

// Opens a shop with `opts`, creates a reserve-mode product taking backorders stocked with
// `keys`, and creates, from kThreads threads, one order of quantity 1 per key ("holders":
// each holds a key) and as many again ("waiters": accepted without a key). Waiters' notices
// use "pay-<order id>".
void OpenHoldersAndWaiters(const ShopOptions& opts, const std::vector<std::string>& keys,
                           std::unique_ptr<Shop>* shop, uint64_t* pid,
                           std::vector<OrderView>* holders, std::vector<OrderView>* waiters) {
  ASSERT_NO_FATAL_FAILURE(OpenShop(opts, shop));
  ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(**shop, StockMode::kReserve,
                                               /*allow_backorder=*/true, 5, keys, pid));
  const int n = static_cast<int>(keys.size());
  for (std::vector<OrderView>* wave : {holders, waiters}) {
    const auto created = CreateOrdersConcurrently(**shop, *pid, std::vector<int64_t>(n, 1));
    for (const auto& r : created) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      wave->push_back(r->value());
    }
  }
  const StockCounts st = (*shop)->Stock(*pid);
  ASSERT_EQ(st.held, n);
  ASSERT_EQ(st.available, 0);
}

// Pays every waiter from kThreads threads: each is backordered (no key is at hand), with
// its own log entry.
void PayWaitersIntoTheQueue(Shop& shop, const std::vector<OrderView>& waiters) {
  std::vector<PaymentNotice> notices;
  for (const OrderView& o : waiters) notices.push_back(NoticeFor(o, "pay-" + o.order_id));
  const auto paid = PayConcurrently(shop, notices);
  for (const auto& r : paid) {
    ASSERT_TRUE(r->ok()) << Describe(*r);
    EXPECT_EQ((*r)->outcome, PaymentOutcome::kApplied);
    EXPECT_FALSE((*r)->replay);
    ASSERT_TRUE((*r)->order_status.has_value());
    EXPECT_EQ(*(*r)->order_status, OrderStatus::kBackordered) << Describe(*(*r)->order_status);
  }
  auto queued = shop.ListDeliveries(DeliveryState::kBackordered);
  ASSERT_TRUE(queued.ok()) << queued.status();
  std::set<std::string> logged;
  for (const DeliveryEntry& e : *queued) logged.insert(HexEncode(e.oid));
  std::set<std::string> want;
  for (const OrderView& o : waiters) want.insert(o.order_id);
  EXPECT_EQ(logged, want) << "one log entry per waiter";
  EXPECT_EQ(queued->size(), waiters.size());
}

// Cancels every order from kThreads threads (each must end cancelled).
void CancelConcurrently(Shop& shop, const std::vector<OrderView>& orders) {
  std::vector<std::optional<Result<OrderView>>> out(orders.size());
  ParallelFor(kThreads, static_cast<int>(orders.size()),
              [&](int i) { out[i].emplace(shop.CancelOrder(orders[i].order_id)); });
  for (const auto& r : out) {
    ASSERT_TRUE(r->ok()) << Describe(*r);
    EXPECT_EQ((*r)->status, OrderStatus::kCancelled);
  }
}

TEST(ShopConcurrencyTest, ReleasedHoldsServeBackordersThroughRunBackorders) {
  constexpr int kN = 500;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("released-holds", kN);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    std::unique_ptr<Shop> shop;
    uint64_t pid = 0;
    std::vector<OrderView> holders, waiters;
    ASSERT_NO_FATAL_FAILURE(
        OpenHoldersAndWaiters(dir.Options(), keys, &shop, &pid, &holders, &waiters));
    ASSERT_NO_FATAL_FAILURE(PayWaitersIntoTheQueue(*shop, waiters));
    StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.held, kN);
    EXPECT_EQ(st.owed, kN);
    EXPECT_EQ(st.pool, kN);
    EXPECT_EQ(st.delivered, 0);
    EXPECT_EQ(st.available, -kN);
    auto n = shop->RunBackorders();  // every key is held: nothing to serve
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0u);

    ASSERT_NO_FATAL_FAILURE(CancelConcurrently(*shop, holders));
    n = shop->RunBackorders();
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, static_cast<size_t>(kN));
    ASSERT_NO_FATAL_FAILURE(ExpectAllDelivered(*shop, waiters, imported));
    auto left = shop->ListDeliveries(std::nullopt);
    ASSERT_TRUE(left.ok()) << left.status();
    EXPECT_TRUE(left->empty());
    st = shop->Stock(pid);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.owed, 0);
    EXPECT_EQ(st.pool, 0);
    EXPECT_EQ(st.delivered, kN);
    EXPECT_EQ(st.available, 0);
    // Running the queue again finds nothing to do.
    n = shop->RunBackorders();
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0u);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.keys_delivered, static_cast<uint64_t>(kN));
  EXPECT_EQ(report.log_entries, 0u);
}

// Several workers serve the queue while the payments that fill it and the cancellations that
// free keys still arrive: each waiter gets exactly one key, either in its payment's batch
// (a key was free when it paid) or from a worker, never both.
TEST(ShopConcurrencyTest, ConcurrentRunBackordersDeliverEachOrderOnce) {
  constexpr int kN = 500;
  constexpr int kWorkers = 8;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("backorder-workers", kN);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    std::unique_ptr<Shop> shop;
    uint64_t pid = 0;
    std::vector<OrderView> holders, waiters;
    ASSERT_NO_FATAL_FAILURE(
        OpenHoldersAndWaiters(dir.Options(), keys, &shop, &pid, &holders, &waiters));
    // Workers pass over the queue again and again until the buyers are done, then once more.
    std::atomic<bool> buyers_done{false};
    std::atomic<size_t> by_workers{0};
    std::vector<absl::Status> errors(kWorkers);
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&, w] {
        while (true) {
          const bool last = buyers_done.load();
          auto n = shop->RunBackorders();
          if (!n.ok()) {
            errors[w] = n.status();
            return;
          }
          by_workers += *n;
          if (last) return;
        }
      });
    }
    // Waiters pay (even i) while holders cancel (odd i), interleaved.
    std::vector<std::optional<Result<PaymentResult>>> paid(kN);
    std::vector<std::optional<Result<OrderView>>> cancelled(kN);
    ParallelFor(kThreads, 2 * kN, [&](int i) {
      if (i % 2 == 0) {
        const OrderView& o = waiters[i / 2];
        paid[i / 2].emplace(shop->ApplyPayment(NoticeFor(o, "pay-" + o.order_id)));
      } else {
        cancelled[i / 2].emplace(shop->CancelOrder(holders[i / 2].order_id));
      }
    });
    buyers_done = true;
    for (std::thread& t : workers) t.join();
    for (const absl::Status& e : errors) ASSERT_TRUE(e.ok()) << e;
    // The answer gives the status the payment's own batch left: delivered there, or queued.
    size_t inline_delivered = 0, queued = 0;
    for (int i = 0; i < kN; ++i) {
      ASSERT_TRUE(cancelled[i]->ok()) << Describe(*cancelled[i]);
      EXPECT_EQ((*cancelled[i])->status, OrderStatus::kCancelled);
      const auto& r = *paid[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      EXPECT_EQ(r->outcome, PaymentOutcome::kApplied);
      EXPECT_FALSE(r->replay);
      ASSERT_TRUE(r->order_status.has_value());
      if (*r->order_status == OrderStatus::kDelivered) {
        ++inline_delivered;
      } else {
        EXPECT_EQ(*r->order_status, OrderStatus::kBackordered) << Describe(*r->order_status);
        ++queued;
      }
    }
    auto left = shop->ListDeliveries(std::nullopt);
    ASSERT_TRUE(left.ok()) << left.status();
    EXPECT_TRUE(left->empty()) << left->size() << " backorders left after the last pass";
    ASSERT_NO_FATAL_FAILURE(ExpectAllDelivered(*shop, waiters, imported));
    const StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.delivered, kN);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.owed, 0);
    EXPECT_EQ(st.pool, 0);
    // Each waiter was delivered once: by its payment's batch or by a worker.
    EXPECT_EQ(by_workers.load(), queued) << "deliveries counted by all workers";
    EXPECT_EQ(inline_delivered + queued, static_cast<size_t>(kN));
    std::printf("backorder workers: %zu served by %d workers, %zu in the payment's batch\n",
                by_workers.load(), kWorkers, inline_delivered);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.keys_delivered, static_cast<uint64_t>(kN));
}

// The queue survives a restart: a stopped shop with backorders passes the check, and
// Shop::Open serves those that stock allows before serving anything.
TEST(ShopConcurrencyTest, BackorderQueueIsRebuiltAndServedOnOpen) {
  constexpr int kN = 300;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("backorder-reopen", kN);
  const std::set<std::string> imported(keys.begin(), keys.end());
  std::vector<OrderView> holders, waiters;
  {
    std::unique_ptr<Shop> shop;
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(
        OpenHoldersAndWaiters(dir.Options(), keys, &shop, &pid, &holders, &waiters));
    ASSERT_NO_FATAL_FAILURE(PayWaitersIntoTheQueue(*shop, waiters));
    // Keys freed, no worker (start_workers=false): the queue is left for the next open.
    ASSERT_NO_FATAL_FAILURE(CancelConcurrently(*shop, holders));
    EXPECT_EQ(shop->Stock(pid).owed, kN);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.log_entries, static_cast<uint64_t>(kN));
  {
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(dir.Options(), &shop));  // start_workers=false
    ASSERT_NO_FATAL_FAILURE(ExpectAllDelivered(*shop, waiters, imported));
    auto left = shop->ListDeliveries(std::nullopt);
    ASSERT_TRUE(left.ok()) << left.status();
    EXPECT_TRUE(left->empty());
    EXPECT_EQ(shop->Backlog()->backordered, 0u);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.log_entries, 0u);
  EXPECT_EQ(report.keys_delivered, static_cast<uint64_t>(kN));
}

// The real worker serves the queue while waiters pay and holders cancel: poll (never sleep)
// until everything is delivered.
TEST(ShopConcurrencyTest, LiveWorkerServesBackordersDuringPaymentRace) {
  constexpr int kN = 500;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("backorder-live", kN);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    ShopOptions opts = dir.Options();
    opts.start_workers = true;
    std::unique_ptr<Shop> shop;
    uint64_t pid = 0;
    std::vector<OrderView> holders, waiters;
    ASSERT_NO_FATAL_FAILURE(OpenHoldersAndWaiters(opts, keys, &shop, &pid, &holders, &waiters));
    std::vector<std::optional<Result<PaymentResult>>> paid(kN);
    std::vector<std::optional<Result<OrderView>>> cancelled(kN);
    ParallelFor(kThreads, 2 * kN, [&](int i) {
      if (i % 2 == 0) {
        const OrderView& o = waiters[i / 2];
        paid[i / 2].emplace(shop->ApplyPayment(NoticeFor(o, "pay-" + o.order_id)));
      } else {
        cancelled[i / 2].emplace(shop->CancelOrder(holders[i / 2].order_id));
      }
    });
    for (int i = 0; i < kN; ++i) {
      ASSERT_TRUE(cancelled[i]->ok()) << Describe(*cancelled[i]);
      const auto& r = *paid[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      EXPECT_EQ(r->outcome, PaymentOutcome::kApplied);
      ASSERT_TRUE(r->order_status.has_value());
      EXPECT_TRUE(*r->order_status == OrderStatus::kBackordered ||
                  *r->order_status == OrderStatus::kDelivered)
          << Describe(*r->order_status);
    }
    const bool done =
        PollUntil([&] { return shop->Stock(pid).delivered == kN; }, std::chrono::seconds(20));
    ASSERT_TRUE(done) << "delivered only " << shop->Stock(pid).delivered << " of " << kN;
    ASSERT_NO_FATAL_FAILURE(ExpectAllDelivered(*shop, waiters, imported));
    EXPECT_EQ(shop->Stock(pid).owed, 0);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.log_entries, 0u);
}

// --- holds expire while late payments and new buyers race for the released keys -----------

TEST(ShopConcurrencyTest, HoldExpiryRacesLatePaymentsAndNewBuyers) {
  constexpr int kKeys = 500;
  constexpr int kLateBuyers = 1500;
  FakeClock clock;
  ShopDir dir;
  const std::vector<std::string> keys = MakeKeys("expiry", kKeys);
  const std::set<std::string> imported(keys.begin(), keys.end());
  {
    ShopOptions opts = dir.Options();
    opts.clock = &clock;
    opts.hold_seconds = 60;
    opts.hold_grace_seconds = 10;
    std::unique_ptr<Shop> shop;
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(OpenStockedShop(opts, keys, &shop, &pid));
    const auto first = CreateOrdersConcurrently(*shop, pid, std::vector<int64_t>(kKeys, 1));
    std::vector<OrderView> first_orders;
    for (const auto& r : first) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      first_orders.push_back(r->value());
    }
    ASSERT_EQ(shop->Stock(pid).sellable(), 0);

    // Past expires_at + grace: every hold is due. The expiry worker releases them while the
    // first buyers' payments arrive late and new buyers order the released keys.
    clock.Advance(absl::Seconds(71));
    std::atomic<bool> stop{false};
    size_t expired = 0;
    absl::Status expiry_error;
    std::thread expirer([&] {
      while (true) {
        const bool last = stop.load();
        auto n = shop->RunExpiry();
        if (!n.ok()) {
          expiry_error = n.status();
          return;
        }
        expired += *n;
        if (last) return;
      }
    });
    // One expiry pass is a sequence of synced writes; 64 payers group-commit and would
    // overtake it at once. Let it release a quarter of the holds first, then race.
    EXPECT_TRUE(PollUntil([&] { return shop->Stock(pid).available >= kKeys / 4; },
                          std::chrono::seconds(20)));
    std::vector<std::optional<Result<PaymentResult>>> paid(kKeys);
    std::vector<std::optional<Result<OrderView>>> late(kLateBuyers);
    // Interleaved work: w >= 0 pays first_orders[w]; w < 0 is late buyer -w-1.
    std::vector<int> work;
    for (int p = 0, l = 0; p < kKeys || l < kLateBuyers;) {
      if (p < kKeys && (l >= kLateBuyers || work.size() % 4 == 0)) {
        work.push_back(p++);
      } else {
        work.push_back(-(++l));
      }
    }
    ParallelFor(kThreads, static_cast<int>(work.size()), [&](int i) {
      const int w = work[i];
      if (w >= 0) {
        const OrderView& o = first_orders[w];
        paid[w].emplace(shop->ApplyPayment(NoticeFor(o, "pay-" + o.order_id)));
      } else {
        const int j = -w - 1;
        late[j].emplace(shop->CreateOrder(Request(pid, 1, 100000 + j)));
      }
    });
    stop = true;
    expirer.join();
    ASSERT_TRUE(expiry_error.ok()) << expiry_error;

    int delivered_first = 0;
    std::vector<bool> first_delivered(kKeys, false);
    for (int i = 0; i < kKeys; ++i) {
      ASSERT_TRUE(paid[i].has_value());
      const auto& r = *paid[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      ASSERT_TRUE(r->order_status.has_value());
      if (r->outcome == PaymentOutcome::kApplied) {
        EXPECT_EQ(*r->order_status, OrderStatus::kDelivered) << Describe(*r->order_status);
        ++delivered_first;
        first_delivered[i] = true;
      } else {
        EXPECT_EQ(r->flag, PaymentFlag::kNoStock) << PaymentFlagName(r->flag);
        EXPECT_EQ(*r->order_status, OrderStatus::kRefundDue) << Describe(*r->order_status);
      }
    }
    std::vector<OrderView> late_orders;
    for (const auto& r : late) {
      ASSERT_TRUE(r.has_value());
      if (r->ok()) {
        late_orders.push_back(r->value());
      } else {
        EXPECT_TRUE(r->refused() && r->refusal() == Refusal::kOutOfStock) << Describe(*r);
      }
    }
    const int held_late = static_cast<int>(late_orders.size());
    std::printf(
        "expiry race: %zu holds expired, %d late payments delivered, %d refund_due, "
        "%d new buyers got keys\n",
        expired, delivered_first, kKeys - delivered_first, held_late);
    EXPECT_LE(delivered_first + held_late, kKeys) << "oversold";
    StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.held, held_late);
    EXPECT_EQ(st.delivered, delivered_first);
    EXPECT_EQ(st.pool, kKeys - delivered_first);
    EXPECT_EQ(st.available, st.pool - st.held);
    EXPECT_GE(st.available, 0);

    // The late buyers' holds are honoured.
    std::vector<PaymentNotice> notices;
    for (const OrderView& o : late_orders) notices.push_back(NoticeFor(o, "pay-" + o.order_id));
    const auto late_paid = PayConcurrently(*shop, notices);
    for (const auto& r : late_paid) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      EXPECT_EQ((*r)->outcome, PaymentOutcome::kApplied);
      EXPECT_EQ((*r)->order_status, std::optional<OrderStatus>(OrderStatus::kDelivered));
    }
    std::vector<OrderView> all = first_orders;
    all.insert(all.end(), late_orders.begin(), late_orders.end());
    const auto read = ReadConcurrently(*shop, all);
    std::set<std::string> delivered;
    for (size_t i = 0; i < read.size(); ++i) {
      const auto& r = *read[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      const bool want = i >= first_orders.size() || first_delivered[i];
      EXPECT_EQ(r->status, want ? OrderStatus::kDelivered : OrderStatus::kRefundDue)
          << Describe(r->status);
      for (const std::string& k : r->keys) {
        EXPECT_TRUE(delivered.insert(k).second) << "key delivered twice";
        EXPECT_TRUE(imported.contains(k));
      }
    }
    EXPECT_EQ(delivered.size(), static_cast<size_t>(delivered_first + held_late));
    st = shop->Stock(pid);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.delivered, delivered_first + held_late);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
}

// --- the merchant retires a batch while its keys are being paid for -----------------------

TEST(ShopConcurrencyTest, RetireBatchRacingPaymentsNeverSellsARetiredKey) {
  constexpr int kPerBatch = 300;
  ShopDir dir;
  const std::vector<std::string> keys_a = MakeKeys("retire-a", kPerBatch);
  const std::vector<std::string> keys_b = MakeKeys("retire-b", kPerBatch);
  const std::set<std::string> set_a(keys_a.begin(), keys_a.end());
  const std::set<std::string> set_b(keys_b.begin(), keys_b.end());
  {
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(dir.Options(), &shop));
    uint64_t pid = 0;
    ASSERT_NO_FATAL_FAILURE(
        CreateStockedProduct(*shop, StockMode::kReserve, false, 5, keys_a, &pid));
    auto imp_b = shop->ImportKeys(pid, JoinLines(keys_b), ParseOptions{});
    ASSERT_TRUE(imp_b.ok()) << Describe(imp_b);
    ASSERT_EQ(imp_b->imported, static_cast<uint64_t>(kPerBatch));
    auto batches = shop->ListBatches(pid);
    ASSERT_TRUE(batches.ok()) << Describe(batches);
    ASSERT_EQ(batches->size(), 2u);
    const uint64_t batch_a = (*batches)[0].batch_id;

    const auto created =
        CreateOrdersConcurrently(*shop, pid, std::vector<int64_t>(2 * kPerBatch, 1));
    std::vector<OrderView> orders;
    for (const auto& r : created) {
      ASSERT_TRUE(r->ok()) << Describe(*r);
      orders.push_back(r->value());
    }
    // Batch A (the oldest keys, sold first) is retired while payments take its keys.
    constexpr int kRetireAt = 120;
    std::optional<Result<RetireResult>> retired;
    std::vector<std::optional<Result<PaymentResult>>> paid(orders.size());
    ParallelFor(kThreads, static_cast<int>(orders.size()) + 1, [&](int i) {
      if (i == kRetireAt) {
        retired.emplace(shop->RetireBatch(pid, batch_a));
        return;
      }
      const int j = i < kRetireAt ? i : i - 1;
      paid[j].emplace(shop->ApplyPayment(NoticeFor(orders[j], "pay-" + orders[j].order_id)));
    });
    ASSERT_TRUE(retired.has_value() && retired->ok()) << Describe(*retired);
    const int64_t r = static_cast<int64_t>((*retired)->retired);
    std::printf("retired %lld unsold keys of batch A mid-race\n", static_cast<long long>(r));

    int delivered_orders = 0, refund_due = 0;
    for (size_t j = 0; j < paid.size(); ++j) {
      const auto& p = *paid[j];
      ASSERT_TRUE(p.ok()) << Describe(p);
      if (p->outcome == PaymentOutcome::kApplied) {
        EXPECT_EQ(p->order_status, std::optional<OrderStatus>(OrderStatus::kDelivered));
        ++delivered_orders;
      } else {
        EXPECT_EQ(p->flag, PaymentFlag::kNoStock) << PaymentFlagName(p->flag);
        EXPECT_EQ(p->order_status, std::optional<OrderStatus>(OrderStatus::kRefundDue));
        ++refund_due;
      }
    }
    const auto read = ReadConcurrently(*shop, orders);
    std::set<std::string> delivered;
    int from_a = 0, from_b = 0;
    for (const auto& v : read) {
      ASSERT_TRUE(v->ok()) << Describe(*v);
      for (const std::string& k : (*v)->keys) {
        EXPECT_TRUE(delivered.insert(k).second) << "key delivered twice";
        from_a += set_a.contains(k);
        from_b += set_b.contains(k);
      }
    }
    // Every key of A was either sold before the retire or retired; never both, never lost.
    EXPECT_EQ(from_a + r, kPerBatch);
    EXPECT_EQ(from_b, kPerBatch) << "every key of B is sold: 600 buyers held them";
    EXPECT_EQ(delivered_orders, from_a + from_b);
    EXPECT_EQ(refund_due, r);
    const StockCounts st = shop->Stock(pid);
    EXPECT_EQ(st.pool, 0);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.retired, r);
    EXPECT_EQ(st.delivered, from_a + from_b);
    EXPECT_EQ(st.available, 0);
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
}

// --- backorders: imports and the worker serve the queue while buyers keep paying ----------

TEST(ShopConcurrencyTest, BackordersServedWhileImportsAndPaymentsRace) {
  constexpr int kInitialKeys = 500;
  constexpr int kBuyers = 2000;
  constexpr int kBatch = 50;
  ShopDir dir;
  std::set<std::string> imported;
  {
    ShopOptions opts = dir.Options();
    opts.start_workers = true;  // the worker serves backorders when holds are released
    std::unique_ptr<Shop> shop;
    ASSERT_NO_FATAL_FAILURE(OpenShop(opts, &shop));
    uint64_t pid = 0;
    const std::vector<std::string> initial = MakeKeys("bo-initial", kInitialKeys);
    imported.insert(initial.begin(), initial.end());
    ASSERT_NO_FATAL_FAILURE(CreateStockedProduct(*shop, StockMode::kReserve,
                                                 /*allow_backorder=*/true, 3, initial, &pid));
    std::vector<int64_t> quantities(kBuyers);
    std::mt19937 rng(5);
    int64_t demand = 0;
    for (int64_t& q : quantities) demand += (q = 1 + static_cast<int64_t>(rng() % 3));

    // The merchant imports while buyers order and pay (some cancel instead): a batch
    // whenever backorders wait, up to half the demand, so the queue never runs dry.
    std::atomic<bool> buyers_done{false};
    int batches = 0;
    std::vector<std::string> import_errors;
    std::thread importer([&] {
      while (!buyers_done.load() && batches * kBatch < demand / 2) {
        if (shop->Stock(pid).owed == 0) {
          std::this_thread::yield();
          continue;
        }
        const std::vector<std::string> batch = MakeKeys(absl::StrCat("bo-", batches++), kBatch);
        auto r = shop->ImportKeys(pid, JoinLines(batch), ParseOptions{});
        if (!r.ok() || r->imported != static_cast<uint64_t>(kBatch)) {
          import_errors.push_back(Describe(r));
          return;
        }
        imported.insert(batch.begin(), batch.end());
      }
    });
    std::vector<std::optional<Result<OrderView>>> created(kBuyers);
    std::vector<std::optional<Result<PaymentResult>>> paid(kBuyers);
    std::vector<char> cancelled(kBuyers, 0);  // not vector<bool>: written from many threads
    ParallelFor(kThreads, kBuyers, [&](int i) {
      created[i].emplace(shop->CreateOrder(Request(pid, quantities[i], i)));
      if (!created[i]->ok()) return;
      const OrderView& o = created[i]->value();
      if (i % 10 == 9) {  // releases a hold (or nothing): the worker may serve the queue
        auto c = shop->CancelOrder(o.order_id);
        cancelled[i] = c.ok() && c->status == OrderStatus::kCancelled;
        return;
      }
      paid[i].emplace(shop->ApplyPayment(NoticeFor(o, "pay-" + o.order_id)));
    });
    buyers_done = true;
    importer.join();
    ASSERT_TRUE(import_errors.empty()) << import_errors.front();

    int64_t paid_units = 0;
    std::vector<OrderView> paid_orders;
    for (int i = 0; i < kBuyers; ++i) {
      ASSERT_TRUE(created[i]->ok()) << "backorders allowed, yet: " << Describe(*created[i]);
      if (i % 10 == 9) {
        EXPECT_TRUE(cancelled[i]) << "cancel of a pending order failed";
        continue;
      }
      const auto& r = *paid[i];
      ASSERT_TRUE(r.ok()) << Describe(r);
      EXPECT_EQ(r->outcome, PaymentOutcome::kApplied) << PaymentFlagName(r->flag);
      ASSERT_TRUE(r->order_status.has_value());
      EXPECT_TRUE(*r->order_status == OrderStatus::kDelivered ||
                  *r->order_status == OrderStatus::kBackordered)
          << Describe(*r->order_status);
      paid_units += quantities[i];
      paid_orders.push_back(created[i]->value());
    }
    // Enough keys for every backorder: the import serves the queue first, the worker the rest.
    const int64_t have = static_cast<int64_t>(imported.size());
    const int64_t missing = std::max<int64_t>(0, paid_units - have) + 7;
    const std::vector<std::string> last = MakeKeys("bo-last", static_cast<int>(missing));
    auto r = shop->ImportKeys(pid, JoinLines(last), ParseOptions{});
    ASSERT_TRUE(r.ok()) << Describe(r);
    imported.insert(last.begin(), last.end());
    const bool served = PollUntil([&] { return shop->Stock(pid).delivered == paid_units; },
                                  std::chrono::seconds(20));
    const StockCounts st = shop->Stock(pid);
    ASSERT_TRUE(served) << "delivered " << st.delivered << " of " << paid_units
                        << " paid keys; owed=" << st.owed << " pool=" << st.pool;
    EXPECT_EQ(st.owed, 0);
    EXPECT_EQ(st.held, 0);
    EXPECT_EQ(st.pool, static_cast<int64_t>(imported.size()) - paid_units);
    EXPECT_EQ(st.available, st.pool);

    const auto read = ReadConcurrently(*shop, paid_orders);
    std::set<std::string> delivered;
    for (size_t i = 0; i < read.size(); ++i) {
      const auto& v = *read[i];
      ASSERT_TRUE(v.ok()) << Describe(v);
      EXPECT_EQ(v->status, OrderStatus::kDelivered) << Describe(v->status);
      EXPECT_EQ(v->keys.size(), paid_orders[i].quantity);
      for (const std::string& k : v->keys) {
        EXPECT_TRUE(delivered.insert(k).second) << "key delivered twice";
        EXPECT_TRUE(imported.contains(k)) << "delivered a key that was never imported";
      }
    }
    EXPECT_EQ(static_cast<int64_t>(delivered.size()), paid_units);
    std::printf(
        "backorder race: %d import batches during the sale, %lld keys paid for, "
        "%lld served by the last import\n",
        batches, static_cast<long long>(paid_units), static_cast<long long>(r->backorders_served));
  }
  CheckReport report;
  ASSERT_NO_FATAL_FAILURE(ExpectCheckPasses(dir, &report));
  EXPECT_EQ(report.log_entries, 0u);
}

}  // namespace
}  // namespace kv
