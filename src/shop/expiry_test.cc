// Holds: expiry on a monotonic timer over the stored expires_at, with a grace period.
#include "kit/shop_fixture.h"

namespace kv {
namespace {

using testing::ShopTest;

TEST_F(ShopTest, HoldIsReleasedOnlyAfterExpiryPlusGrace) {
  const uint64_t pid = MakeProduct();
  Import(pid, 2);
  OrderView o = Order(pid, 2);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 0);
  clock_.Advance(absl::Seconds(900));  // expires_at reached: still in grace
  EXPECT_EQ(*shop_->RunExpiry(), 0u);
  EXPECT_EQ(StatusOf(o), OrderStatus::kPendingPayment);
  clock_.Advance(absl::Seconds(119));
  EXPECT_EQ(*shop_->RunExpiry(), 0u);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(*shop_->RunExpiry(), 1u);
  EXPECT_EQ(StatusOf(o), OrderStatus::kExpired);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 2);
  EXPECT_EQ(shop_->Stock(pid).held, 0);
  EXPECT_EQ(*shop_->RunExpiry(), 0u);  // idempotent
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, WallClockStepDoesNotExpireHolds) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  OrderView a = Order(pid);
  OrderView b = Order(pid);
  clock_.StepWall(absl::Hours(48));  // NTP jump: the monotonic timer does not move
  EXPECT_EQ(*shop_->RunExpiry(), 0u);
  EXPECT_EQ(StatusOf(a), OrderStatus::kPendingPayment);
  EXPECT_EQ(StatusOf(b), OrderStatus::kPendingPayment);
  EXPECT_EQ(shop_->Stock(pid).held, 2);
  clock_.Advance(absl::Seconds(1020));
  EXPECT_EQ(*shop_->RunExpiry(), 2u);
}

TEST_F(ShopTest, PaymentInGraceFindsItsKeys) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  OrderView o = Order(pid);
  clock_.Advance(absl::Seconds(950));  // past expires_at, within grace
  EXPECT_EQ(*shop_->RunExpiry(), 0u);
  EXPECT_EQ(*Pay(o).order_status, OrderStatus::kDelivered);
  clock_.Advance(absl::Seconds(500));
  EXPECT_EQ(*shop_->RunExpiry(), 0u);  // the paid order is not expired
  EXPECT_EQ(StatusOf(o), OrderStatus::kDelivered);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, LatePaymentAfterReleaseTakesFreeStockOrIsFlagged) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  OrderView a = Order(pid);
  clock_.Advance(absl::Seconds(1021));
  EXPECT_EQ(*shop_->RunExpiry(), 1u);
  // expired -> paid: keys are free again, so the late payment is delivered.
  EXPECT_EQ(*Pay(a).order_status, OrderStatus::kDelivered);
  // Another expired order, now with no keys left and no backorder: refund_due.
  Import(pid, 1);
  OrderView b = Order(pid);
  OrderView c_holder;
  clock_.Advance(absl::Seconds(1021));
  EXPECT_EQ(*shop_->RunExpiry(), 1u);
  c_holder = Order(pid);  // takes the freed key
  PaymentResult late = Pay(b);
  EXPECT_EQ(late.flag, PaymentFlag::kNoStock);
  EXPECT_EQ(*late.order_status, OrderStatus::kRefundDue);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, HoldsSurviveRestartAndExpireFromStoredTime) {
  const uint64_t pid = MakeProduct();
  Import(pid, 2);
  OrderView o = Order(pid);
  clock_.Advance(absl::Seconds(600));
  Reopen();  // the heap is rebuilt from the stored expires_at
  EXPECT_EQ(shop_->Stock(pid).held, 1);
  clock_.Advance(absl::Seconds(419));
  EXPECT_EQ(*shop_->RunExpiry(), 0u);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(*shop_->RunExpiry(), 1u);
  EXPECT_EQ(StatusOf(o), OrderStatus::kExpired);
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
