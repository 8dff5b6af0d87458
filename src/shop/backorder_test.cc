// Backorders: per-product FIFO queues served by imports before any key becomes stock.
#include "kit/shop_fixture.h"

namespace kv {
namespace {

using testing::ShopTest;

TEST_F(ShopTest, ImportServesOldestBackordersFirstAndStockStaysZero) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  std::vector<OrderView> orders;
  for (int i = 0; i < 10; ++i) {
    orders.push_back(Order(pid, 1, "b" + std::to_string(i) + "@x.y"));
    clock_.Advance(absl::Milliseconds(5));
  }
  for (const OrderView& o : orders) {
    EXPECT_EQ(*Pay(o).order_status, OrderStatus::kBackordered);
  }
  EXPECT_EQ(shop_->Stock(pid).owed, 10);
  EXPECT_EQ(shop_->ListDeliveries(DeliveryState::kBackordered)->size(), 10u);
  // The backlog counts them, aged from the oldest.
  auto backlog = shop_->Backlog();
  ASSERT_TRUE(backlog.ok());
  EXPECT_EQ(backlog->backordered, 10u);
  EXPECT_GT(backlog->oldest_backordered_ms, 0);
  EXPECT_EQ(backlog->oldest_backordered_ms,
            shop_->ListDeliveries(std::nullopt)->front().created_ms);
  // The merchant stops taking backorders, then imports 6 keys.
  ASSERT_TRUE(
      shop_->UpdateProduct(pid, Patch([](ProductPatch& p) { p.allow_backorder = false; })).ok());
  auto imp = shop_->ImportKeys(pid, "K1\nK2\nK3\nK4\nK5\nK6\n", ParseOptions{});
  ASSERT_TRUE(imp.ok());
  EXPECT_EQ(imp->backorders_served, 6u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(StatusOf(orders[i]), i < 6 ? OrderStatus::kDelivered : OrderStatus::kBackordered)
        << i;
  }
  auto first = shop_->GetOrder(orders[0].order_id, orders[0].token);
  ASSERT_EQ(first->keys.size(), 1u);
  EXPECT_EQ(first->keys[0], "K1");
  StockCounts s = shop_->Stock(pid);
  EXPECT_EQ(s.sellable(), 0);
  EXPECT_EQ(s.owed, 4);
  EXPECT_EQ(s.pool, 0);
  EXPECT_EQ(shop_->CreateOrder({pid, 1, "late@x.y", ""}).refusal(), Refusal::kOutOfStock);
  // The rest is served by the next import; only then does stock appear.
  auto imp2 = shop_->ImportKeys(pid, "K7\nK8\nK9\nK10\nK11\n", ParseOptions{});
  EXPECT_EQ(imp2->backorders_served, 4u);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 1);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, BackorderQueueIsStrictFifoAndSurvivesRestart) {
  const uint64_t pid = MakeProduct(StockMode::kOnPayment, true, 5);
  OrderView big = Order(pid, 3);
  OrderView small = Order(pid, 1);
  EXPECT_EQ(Pay(big).outcome, PaymentOutcome::kApplied);
  EXPECT_EQ(Pay(small).outcome, PaymentOutcome::kApplied);
  Reopen();  // the queue is rebuilt from the backorder index
  auto imp = shop_->ImportKeys(pid, "A\nB\n", ParseOptions{});
  EXPECT_EQ(imp->backorders_served, 0u);  // the head needs 3: the later order waits behind it
  EXPECT_EQ(StatusOf(small), OrderStatus::kBackordered);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 0);
  auto imp2 = shop_->ImportKeys(pid, "C\nD\n", ParseOptions{});
  EXPECT_EQ(imp2->backorders_served, 2u);  // head from pool A,B + fresh C; then D
  EXPECT_EQ(StatusOf(big), OrderStatus::kDelivered);
  EXPECT_EQ(StatusOf(small), OrderStatus::kDelivered);
  EXPECT_EQ(shop_->Stock(pid).pool, 0);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, OneProductsBackordersDoNotHoldUpAnother) {
  const uint64_t a = MakeProduct(StockMode::kOnPayment, true);
  const uint64_t b = MakeProduct(StockMode::kOnPayment, true);
  OrderView oa = Order(a, 5);
  OrderView ob = Order(b, 1);
  EXPECT_EQ(Pay(oa).outcome, PaymentOutcome::kApplied);
  EXPECT_EQ(Pay(ob).outcome, PaymentOutcome::kApplied);
  Import(b, 1);
  EXPECT_EQ(StatusOf(ob), OrderStatus::kDelivered);
  EXPECT_EQ(StatusOf(oa), OrderStatus::kBackordered);
  // Refunding a backorder drops its claim.
  ASSERT_TRUE(shop_->RefundOrder(oa.order_id).ok());
  EXPECT_EQ(shop_->Stock(a).owed, 0);
  Import(a, 2);
  EXPECT_EQ(shop_->Stock(a).sellable(), 2);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, ReleasedHoldServesAWaitingBackorder) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, true);
  Import(pid, 1);
  OrderView holder = Order(pid);   // holds the only key
  OrderView waiting = Order(pid);  // accepted unheld (backorders allowed)
  EXPECT_EQ(*Pay(waiting).order_status, OrderStatus::kBackordered);
  ASSERT_TRUE(shop_->CancelOrder(holder.order_id).ok());
  EXPECT_EQ(*shop_->RunBackorders(), 1u);  // the worker serves it from the released key
  EXPECT_EQ(StatusOf(waiting), OrderStatus::kDelivered);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 0);
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
