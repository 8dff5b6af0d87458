// Shop::Stats reads per-status order counts kept beside the order index (CF "counters", 'o'
// keys) instead of scanning the index: the counts follow every transition, survive a
// reopen and are written once for a dir that predates them (check_test.cc: `keyvend check`
// names a wrong one).
#include <map>

#include "kit/shop_fixture.h"
#include "storage/counter_merge.h"
#include "storage/data_dir.h"
#include "storage/schema.h"

namespace kv {
namespace {

using Counts = std::map<OrderStatus, int64_t>;

class StatsTest : public testing::ShopTest {
 protected:
  // What Stats reported before the counts: the order index, counted ('e' entries are the
  // pending_payment orders, 's' entries every other status).
  Counts IndexCounts() {
    Counts c;
    for (OrderStatus s : kAllOrderStatuses) {
      const std::string prefix = s == OrderStatus::kPendingPayment
                                     ? std::string(1, storage::kIdxExpiry)
                                     : storage::StatusIndexPrefix(static_cast<uint8_t>(s));
      int64_t n = 0;
      EXPECT_TRUE(shop_->db()
                      ->ForEach(storage::kCfOrderIndex, prefix,
                                [&](std::string_view, std::string_view) {
                                  ++n;
                                  return storage::Scan::kNext;
                                })
                      .ok());
      c[s] = n;
    }
    return c;
  }

  // The stored counts themselves (0 when absent).
  Counts StoredCounts() {
    Counts c;
    for (OrderStatus s : kAllOrderStatuses) {
      auto v =
          shop_->db()->Get(storage::kCfCounters, storage::OrderCountKey(static_cast<uint8_t>(s)));
      EXPECT_TRUE(v.ok());
      int64_t n = 0;
      if (v.ok() && v->has_value()) {
        EXPECT_TRUE(storage::DecodeCounter(**v, &n));
      }
      c[s] = n;
    }
    return c;
  }

  Counts StatsCounts() {
    auto st = shop_->Stats();
    EXPECT_TRUE(st.ok()) << st.status();
    Counts c;
    if (!st.ok()) return c;
    EXPECT_EQ(st->orders_by_status.size(), std::size(kAllOrderStatuses));
    for (const auto& [s, n] : st->orders_by_status) c[s] = static_cast<int64_t>(n);
    return c;
  }

  // By status name, so that a failure reads.
  static std::map<std::string, int64_t> Named(const Counts& c) {
    std::map<std::string, int64_t> out;
    for (const auto& [s, n] : c) out[std::string(OrderStatusName(s))] = n;
    return out;
  }

  // Stats, the stored counts and the index agree, and equal `want` (statuses not named: 0).
  void ExpectCounts(Counts want, const char* step) {
    SCOPED_TRACE(step);
    for (OrderStatus s : kAllOrderStatuses) want.try_emplace(s, 0);
    EXPECT_EQ(Named(IndexCounts()), Named(want));
    EXPECT_EQ(Named(StoredCounts()), Named(want));
    EXPECT_EQ(Named(StatsCounts()), Named(want));
  }
};

TEST_F(StatsTest, CountsFollowEveryTransition) {
  using S = OrderStatus;
  ExpectCounts({}, "empty shop");
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  OrderView a = Order(pid);
  OrderView b = Order(pid);
  OrderView c = Order(pid);
  ExpectCounts({{S::kPendingPayment, 3}}, "create");
  EXPECT_EQ(*Pay(a).order_status, S::kDelivered);
  ExpectCounts({{S::kPendingPayment, 2}, {S::kDelivered, 1}}, "pay -> delivered");
  ASSERT_TRUE(shop_->CancelOrder(b.order_id).ok());
  ExpectCounts({{S::kPendingPayment, 1}, {S::kDelivered, 1}, {S::kCancelled, 1}}, "cancel");
  clock_.Advance(absl::Seconds(1021));
  EXPECT_EQ(*shop_->RunExpiry(), 1u);
  ExpectCounts({{S::kDelivered, 1}, {S::kCancelled, 1}, {S::kExpired, 1}}, "expire");
  OrderView d = Order(pid, 2);  // the two free keys: c's late payment finds no stock
  ExpectCounts({{S::kPendingPayment, 1}, {S::kDelivered, 1}, {S::kCancelled, 1}, {S::kExpired, 1}},
               "create again");
  EXPECT_EQ(*Pay(c).order_status, S::kRefundDue);
  ExpectCounts(
      {{S::kPendingPayment, 1}, {S::kDelivered, 1}, {S::kCancelled, 1}, {S::kRefundDue, 1}},
      "late payment -> refund_due");
  ASSERT_TRUE(shop_->RefundOrder(c.order_id).ok());
  ExpectCounts({{S::kPendingPayment, 1}, {S::kDelivered, 1}, {S::kCancelled, 1}, {S::kRefunded, 1}},
               "refund_due -> refunded");
  EXPECT_EQ(*Pay(d).order_status, S::kDelivered);
  // A backorder on a product that takes them, served by its restock.
  const uint64_t q = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  OrderView e = Order(q);
  EXPECT_EQ(*Pay(e).order_status, S::kBackordered);
  ExpectCounts({{S::kDelivered, 2}, {S::kCancelled, 1}, {S::kRefunded, 1}, {S::kBackordered, 1}},
               "pay -> backordered");
  Import(q, 1);
  EXPECT_EQ(StatusOf(e), S::kDelivered);
  ExpectCounts({{S::kDelivered, 3}, {S::kCancelled, 1}, {S::kRefunded, 1}}, "restock -> delivered");
  ASSERT_TRUE(shop_->RefundOrder(a.order_id).ok());
  ExpectCounts({{S::kDelivered, 2}, {S::kCancelled, 1}, {S::kRefunded, 2}},
               "delivered -> refunded");
  Reopen();
  ExpectCounts({{S::kDelivered, 2}, {S::kCancelled, 1}, {S::kRefunded, 2}}, "after a reopen");
  EXPECT_TRUE(CloseAndCheck().empty());
}

// A backorder the worker serves (from a released hold, not an import) moves its count too.
TEST_F(StatsTest, BackorderServedByTheWorkerMovesItsCount) {
  using S = OrderStatus;
  const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  Import(pid, 1);
  OrderView holder = Order(pid);
  OrderView waiting = Order(pid);
  EXPECT_EQ(*Pay(waiting).order_status, S::kBackordered);
  ExpectCounts({{S::kPendingPayment, 1}, {S::kBackordered, 1}}, "one holds, one waits");
  ASSERT_TRUE(shop_->CancelOrder(holder.order_id).ok());
  ExpectCounts({{S::kCancelled, 1}, {S::kBackordered, 1}}, "hold released");
  auto served = shop_->RunBackorders();
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, 1u);
  ExpectCounts({{S::kCancelled, 1}, {S::kDelivered, 1}}, "served by the worker");
  Reopen();
  ExpectCounts({{S::kCancelled, 1}, {S::kDelivered, 1}}, "after a reopen");
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(StatsTest, StatsReadsTheCountsNotTheIndex) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  Order(pid);
  // An index entry written behind the shop's back: a scan would count it, the counts do not.
  rocksdb::WriteBatch b;
  b.Put(shop_->db()->cf(storage::kCfOrderIndex),
        storage::StatusIndexKey(static_cast<uint8_t>(OrderStatus::kCancelled), 1,
                                std::string(storage::kOrderIdBytes, 'x')),
        rocksdb::Slice());
  ASSERT_TRUE(shop_->db()->Write(&b).ok());
  Counts want = {{OrderStatus::kPendingPayment, 1}};
  for (OrderStatus s : kAllOrderStatuses) want.try_emplace(s, 0);
  EXPECT_EQ(Named(StatsCounts()), Named(want));
}

TEST_F(StatsTest, ADirWithoutCountsIsCountedOnceAtOpen) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  OrderView a = Order(pid);
  Order(pid);
  OrderView c = Order(pid);
  EXPECT_EQ(*Pay(a).order_status, OrderStatus::kDelivered);
  ASSERT_TRUE(shop_->CancelOrder(c.order_id).ok());
  // Make it a dir written before the counts: no 'o' keys, no marker.
  shop_.reset();
  {
    storage::DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    auto d = storage::OpenDataDir(o, &random_);
    ASSERT_TRUE(d.ok()) << d.status();
    rocksdb::WriteBatch b;
    for (OrderStatus s : kAllOrderStatuses) {
      b.Delete(d->db->cf(storage::kCfCounters), storage::OrderCountKey(static_cast<uint8_t>(s)));
    }
    b.Delete(d->db->cf(storage::kCfMeta), std::string(storage::kMetaOrderCounts));
    ASSERT_TRUE(d->db->Write(&b).ok());
  }
  EXPECT_TRUE(CheckDir(tmp_.Sub("data")).empty());  // no counts yet: nothing to compare
  Reopen();
  const Counts after_open = {{OrderStatus::kPendingPayment, 1},
                             {OrderStatus::kDelivered, 1},
                             {OrderStatus::kCancelled, 1}};
  ExpectCounts(after_open, "counted at open");
  auto marker = shop_->db()->Get(storage::kCfMeta, storage::kMetaOrderCounts);
  ASSERT_TRUE(marker.ok());
  EXPECT_TRUE(marker->has_value());
  // Counted once: a second open leaves the counts as they are (here: moved by later
  // writes only).
  Order(pid, 1, "other@example.com");
  Reopen();
  ExpectCounts({{OrderStatus::kPendingPayment, 2},
                {OrderStatus::kDelivered, 1},
                {OrderStatus::kCancelled, 1}},
               "reopened");
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
