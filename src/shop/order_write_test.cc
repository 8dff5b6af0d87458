// Impl::PutOrder, the one place order records are written, refuses a write the state
// machine does not allow (CanRecordTransition) in every build, and puts nothing into the
// batch then.
#include <memory>

#include "gtest/gtest.h"
#include "kit/files.h"
#include "shop/records.h"
#include "shop/shop_internal.h"
#include "storage/data_dir.h"

namespace kv {
namespace {

using S = OrderStatus;

TEST(CanRecordTransition, NewOrdersStartPendingAndRewritesTakeLegalSteps) {
  EXPECT_TRUE(CanRecordTransition(std::nullopt, S::kPendingPayment));
  for (S s : kAllOrderStatuses) {
    if (s != S::kPendingPayment) {
      EXPECT_FALSE(CanRecordTransition(std::nullopt, s));
    }
  }
  for (S from : kAllOrderStatuses) {
    for (S to : kAllOrderStatuses) {
      const bool via_paid =
          CanTransition(from, S::kPaid) && CanTransition(S::kPaid, to) && to != S::kRefunded;
      EXPECT_EQ(CanRecordTransition(from, to), from == to || CanTransition(from, to) || via_paid)
          << OrderStatusName(from) << " -> " << OrderStatusName(to);
    }
  }
  // The payment's batch: pending_payment/expired -> paid -> delivered | backordered |
  // refund_due in one write.
  EXPECT_TRUE(CanRecordTransition(S::kPendingPayment, S::kDelivered));
  EXPECT_TRUE(CanRecordTransition(S::kExpired, S::kBackordered));
  EXPECT_TRUE(CanRecordTransition(S::kExpired, S::kRefundDue));
  // Never back, never out of a final state.
  EXPECT_FALSE(CanRecordTransition(S::kDelivered, S::kPendingPayment));
  EXPECT_FALSE(CanRecordTransition(S::kRefunded, S::kDelivered));
  EXPECT_FALSE(CanRecordTransition(S::kCancelled, S::kPaid));
  EXPECT_FALSE(CanRecordTransition(S::kPendingPayment, S::kRefunded));
}

class OrderWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    auto d = storage::OpenDataDir(o, SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    dir_ = std::move(*d);
    impl_ = std::make_unique<Shop::Impl>(nullptr, ShopOptions{}, dir_.db.get(), dir_.cipher.get());
  }

  static OrderRecord Order(S status) {
    OrderRecord r;
    r.oid = std::string(storage::kOrderIdBytes, 'o');
    r.status = status;
    r.product_id = 1;
    r.quantity = 1;
    return r;
  }

  testing::TempDir tmp_;
  storage::OpenedDataDir dir_;
  std::unique_ptr<Shop::Impl> impl_;
};

TEST_F(OrderWriteTest, AnIllegalTransitionIsRefusedAndNothingIsWritten) {
  const OrderRecord prev = Order(S::kDelivered);
  const OrderRecord next = Order(S::kPendingPayment);
  BatchEffects fx;
  rocksdb::WriteBatch b;
  const absl::Status s = impl_->PutOrder(&b, &prev, next, &fx);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(b.Count(), 0u);
  EXPECT_TRUE(fx.outbound.empty());
  // A new order that is not pending_payment: refused too.
  const absl::Status s2 = impl_->PutOrder(&b, nullptr, Order(S::kDelivered), nullptr);
  EXPECT_EQ(s2.code(), absl::StatusCode::kFailedPrecondition) << s2;
  EXPECT_EQ(b.Count(), 0u);
  // And the data dir holds no order.
  ASSERT_TRUE(dir_.db->Write(&b).ok());
  auto v = dir_.db->Get(storage::kCfOrders, prev.oid);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->has_value());
}

TEST_F(OrderWriteTest, LegalWritesArePut) {
  rocksdb::WriteBatch b;
  ASSERT_TRUE(impl_->PutOrder(&b, nullptr, Order(S::kPendingPayment), nullptr).ok());
  EXPECT_GT(b.Count(), 0u);
  const int before = static_cast<int>(b.Count());
  BatchEffects fx;
  const OrderRecord prev = Order(S::kPendingPayment);
  ASSERT_TRUE(impl_->PutOrder(&b, &prev, Order(S::kDelivered), &fx).ok());
  EXPECT_GT(static_cast<int>(b.Count()), before);
  ASSERT_TRUE(dir_.db->Write(&b).ok());
  auto v = dir_.db->Get(storage::kCfOrders, prev.oid);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->has_value());
}

}  // namespace
}  // namespace kv
