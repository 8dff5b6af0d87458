// keyvend check: passes on a healthy shop and names each planted violation.
#include "shop/check.h"

#include "kit/shop_fixture.h"
#include "storage/counter_merge.h"

namespace kv {
namespace {

class CheckTest : public testing::ShopTest {
 protected:
  // Builds a small shop with every kind of record, then closes it.
  void Populate() {
    const uint64_t pid = MakeProduct(StockMode::kReserve, true);
    Import(pid, 4);
    OrderView a = Order(pid, 2);
    Pay(a);
    delivered_ = a;
    Order(pid, 1);                                 // pending hold
    OrderView c = Order(pid, 1);                   // hold on the last key
    ASSERT_TRUE(shop_->CancelOrder(c.order_id).ok());
    OrderView d = Order(pid, 2);                   // backorder (only 1 free)
    shop_->ApplyPayment({std::string(32, 'c'), "stray", 1, "USD"});  // flagged payment
    Pay(d);
    EXPECT_TRUE(CloseAndCheck().empty());
  }

  std::vector<std::string> Tamper(const std::function<void(storage::Db*)>& f) {
    storage::DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    o.create_if_missing = false;
    {
      auto d = storage::OpenDataDir(o, &random_);
      EXPECT_TRUE(d.ok());
      f(d->db.get());
    }
    return CloseAndCheck();
  }

  static bool Mentions(const std::vector<std::string>& v, const std::string& what) {
    for (const auto& s : v) {
      if (s.find(what) != std::string::npos) return true;
    }
    return false;
  }

  OrderView delivered_;
};

TEST_F(CheckTest, HealthyShopPasses) { Populate(); }

TEST_F(CheckTest, CounterDriftIsNamed) {
  Populate();
  auto v = Tamper([](storage::Db* db) {
    rocksdb::WriteBatch b;
    b.Merge(db->cf(storage::kCfCounters), storage::CounterKey(1, storage::CounterKind::kHeld),
            storage::EncodeCounter(1));
    ASSERT_TRUE(db->Write(&b).ok());
  });
  EXPECT_TRUE(Mentions(v, "counter held is 2 but a recount gives 1")) << v.size();
}

TEST_F(CheckTest, DeliveredKeyBackInPoolIsNamed) {
  Populate();
  auto v = Tamper([&](storage::Db* db) {
    std::string oid;
    ASSERT_TRUE(ParseOrderId(delivered_.order_id, &oid));
    auto val = db->Get(storage::kCfOrders, oid);
    OrderRecord o;
    ASSERT_TRUE(DecodeOrder(**val, &o).ok());
    rocksdb::WriteBatch b;
    b.Put(db->cf(storage::kCfPool), storage::PoolKey(o.product_id, o.keys[0].seq),
          EncodePoolKey(PoolKeyRecord{o.keys[0].batch_id, o.keys[0].sealed}));
    ASSERT_TRUE(db->Write(&b).ok());
  });
  EXPECT_TRUE(Mentions(v, "is still in the pool"));
  EXPECT_TRUE(Mentions(v, "counter pool"));
  for (const auto& s : v) EXPECT_EQ(s.find("KEY"), std::string::npos) << "a key in a message";
}

TEST_F(CheckTest, PaidOrderWithoutLogEntryIsNamed) {
  Populate();
  auto v = Tamper([](storage::Db* db) {
    auto it = db->NewIterator(storage::kCfDeliveryLog);
    it->SeekToFirst();
    ASSERT_TRUE(it->Valid());
    rocksdb::WriteBatch b;
    b.Delete(db->cf(storage::kCfDeliveryLog), it->key());
    ASSERT_TRUE(db->Write(&b).ok());
  });
  EXPECT_TRUE(Mentions(v, "delivery-log entry")) << (v.empty() ? "" : v[0]);
}

TEST_F(CheckTest, TamperedCiphertextIsNamed) {
  Populate();
  auto v = Tamper([](storage::Db* db) {
    auto it = db->NewIterator(storage::kCfPool);
    it->SeekToFirst();
    ASSERT_TRUE(it->Valid());
    PoolKeyRecord r;
    ASSERT_TRUE(DecodePoolKey(std::string_view(it->value().data(), it->value().size()), &r).ok());
    r.sealed[r.sealed.size() - 1] ^= 1;
    rocksdb::WriteBatch b;
    b.Put(db->cf(storage::kCfPool), it->key(), EncodePoolKey(r));
    ASSERT_TRUE(db->Write(&b).ok());
  });
  EXPECT_TRUE(Mentions(v, "fails authentication"));
}

}  // namespace
}  // namespace kv
