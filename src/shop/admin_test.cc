// Idempotent order creation and the merchant's views.
#include "kit/shop_fixture.h"

namespace kv {
namespace {

using testing::ShopTest;

TEST_F(ShopTest, IdempotencyKeyAnswersTheFirstOrderAgain) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  IdempotencyKey k{"client-key-1", "fingerprint-A"};
  auto first = shop_->CreateOrder({pid, 1, "a@b.c", ""}, &k);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->idempotent_replay);
  EXPECT_EQ(
      Pay(*first).outcome,
      PaymentOutcome::kApplied);  // the order moves on; the replayed answer is still the first one
  auto again = shop_->CreateOrder({pid, 1, "a@b.c", ""}, &k);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->idempotent_replay);
  EXPECT_EQ(again->order_id, first->order_id);
  EXPECT_EQ(again->token, first->token);
  EXPECT_EQ(again->status, OrderStatus::kPendingPayment);
  EXPECT_EQ(again->expires_at, first->expires_at);
  EXPECT_EQ(shop_->Stock(pid).delivered + shop_->Stock(pid).sellable(), 3);  // no 2nd order
  IdempotencyKey other_body{"client-key-1", "fingerprint-B"};
  EXPECT_EQ(shop_->CreateOrder({pid, 2, "a@b.c", ""}, &other_body).refusal(),
            Refusal::kIdempotencyConflict);
  // A refused attempt is not recorded: the same key is judged afresh next time.
  IdempotencyKey k2{"client-key-2", "fp"};
  EXPECT_EQ(shop_->CreateOrder({pid, 50, "a@b.c", ""}, &k2).refusal(), Refusal::kQuantityLimit);
  auto ok2 = shop_->CreateOrder({pid, 1, "a@b.c", ""}, &k2);
  ASSERT_TRUE(ok2.ok());
  EXPECT_FALSE(ok2->idempotent_replay);
  IdempotencyKey too_long{std::string(256, 'k'), "fp"};
  EXPECT_EQ(shop_->CreateOrder({pid, 1, "a@b.c", ""}, &too_long).refusal(), Refusal::kBadRequest);
  // Survives a restart; collected after 24 h, not before.
  Reopen();
  EXPECT_TRUE(shop_->CreateOrder({pid, 1, "a@b.c", ""}, &k)->idempotent_replay);
  clock_.Advance(absl::Hours(23));
  EXPECT_EQ(*shop_->CollectIdempotency(absl::Hours(24)), 0u);
  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(*shop_->CollectIdempotency(absl::Hours(24)), 2u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, ListOrdersPagesByStatus) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, false, 10);
  Import(pid, 20);
  std::vector<OrderView> all;
  for (int i = 0; i < 7; ++i) {
    all.push_back(Order(pid));
    clock_.Advance(absl::Milliseconds(10));
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Pay(all[i]).outcome, PaymentOutcome::kApplied);
  auto delivered = shop_->ListOrders(OrderStatus::kDelivered, 2, "");
  ASSERT_TRUE(delivered.ok());
  ASSERT_EQ(delivered->orders.size(), 2u);
  EXPECT_EQ(delivered->orders[0].order_id, all[0].order_id);  // oldest first
  ASSERT_FALSE(delivered->next_cursor.empty());
  auto rest = shop_->ListOrders(OrderStatus::kDelivered, 2, delivered->next_cursor);
  ASSERT_EQ(rest->orders.size(), 1u);
  EXPECT_EQ(rest->orders[0].order_id, all[2].order_id);
  EXPECT_TRUE(rest->next_cursor.empty());
  auto pending = shop_->ListOrders(OrderStatus::kPendingPayment, 100, "");
  EXPECT_EQ(pending->orders.size(), 4u);
  std::set<std::string> seen;
  std::string cursor;
  do {
    auto page = shop_->ListOrders(std::nullopt, 3, cursor);
    ASSERT_TRUE(page.ok());
    for (const auto& o : page->orders) seen.insert(o.order_id);
    cursor = page->next_cursor;
  } while (!cursor.empty());
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(shop_->ListOrders(std::nullopt, 3, "zz").refusal(), Refusal::kBadRequest);
  EXPECT_EQ(shop_->ListOrders(OrderStatus::kDelivered, 3, pending->orders[0].order_id).refusal(),
            Refusal::kBadRequest);
  EXPECT_EQ(shop_->ListOrders(std::nullopt, 0, "").refusal(), Refusal::kBadRequest);
  int n = 0;
  ASSERT_TRUE(shop_->ForEachOrder([&](const OrderView&) { return ++n < 100; }).ok());
  EXPECT_EQ(n, 7);
  auto stats = shop_->Stats();
  ASSERT_TRUE(stats.ok());
  for (const auto& [st, count] : stats->orders_by_status) {
    if (st == OrderStatus::kPendingPayment) {
      EXPECT_EQ(count, 4u);
    }
    if (st == OrderStatus::kDelivered) {
      EXPECT_EQ(count, 3u);
    }
  }
}

}  // namespace
}  // namespace kv

namespace kv {
namespace {

class HoardingTest : public testing::ShopTest {
 protected:
  void SetUp() override {}
  void OpenWithCaps() {
    shop_.reset();
    ShopOptions o = Options();
    o.pending_orders_per_contact_max = 2;
    o.pending_orders_per_client_max = 3;
    auto s = Shop::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    shop_ = std::move(*s);
  }
};

TEST_F(HoardingTest, OpenPendingOrdersAreCappedPerContactAndPerClient) {
  OpenWithCaps();
  const uint64_t pid = MakeProduct(StockMode::kReserve, false, 10);
  Import(pid, 50);
  auto order = [&](const std::string& contact, const std::string& client) {
    return shop_->CreateOrder(OrderRequest(pid, 1, contact, "", client));
  };
  ASSERT_TRUE(order("a@x.y", "10.0.0.1").ok());
  ASSERT_TRUE(order("A@X.Y", "10.0.0.2").ok());  // contacts compare case-insensitively
  auto third = order("a@x.y", "10.0.0.3");
  ASSERT_TRUE(third.refused());
  EXPECT_EQ(third.refusal(), Refusal::kPendingLimit);
  EXPECT_EQ(shop_->Stock(pid).held, 2);  // the refusal held nothing
  // Per client: three contacts from one address, the fourth is refused.
  ASSERT_TRUE(order("b@x.y", "10.0.0.9").ok());
  ASSERT_TRUE(order("c@x.y", "10.0.0.9").ok());
  ASSERT_TRUE(order("d@x.y", "10.0.0.9").ok());
  EXPECT_EQ(order("e@x.y", "10.0.0.9").refusal(), Refusal::kPendingLimit);
  // Paying an order frees its slot; so do cancel and expiry.
  auto paid = order("f@x.y", "10.0.0.7");
  ASSERT_TRUE(paid.ok());
  auto blocked = order("f@x.y", "10.0.0.7");
  ASSERT_TRUE(blocked.ok());
  EXPECT_EQ(order("f@x.y", "10.0.0.7").refusal(), Refusal::kPendingLimit);
  EXPECT_EQ(Pay(*paid).outcome, PaymentOutcome::kApplied);
  ASSERT_TRUE(order("f@x.y", "10.0.0.7").ok());
  ASSERT_TRUE(shop_->CancelOrder(blocked->order_id).ok());
  ASSERT_TRUE(order("f@x.y", "10.0.0.7").ok());
  EXPECT_EQ(order("f@x.y", "10.0.0.7").refusal(), Refusal::kPendingLimit);
  // The counts survive a restart (rebuilt from the pending orders)...
  OpenWithCaps();
  EXPECT_EQ(order("f@x.y", "10.0.0.8").refusal(), Refusal::kPendingLimit);
  // ...and expiry releases them.
  clock_.Advance(absl::Seconds(1021));
  ASSERT_TRUE(shop_->RunExpiry().ok());
  EXPECT_TRUE(order("f@x.y", "10.0.0.8").ok());
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
