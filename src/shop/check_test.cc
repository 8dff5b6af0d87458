// keyvend check: passes on a healthy shop and names each planted violation.
#include "shop/check.h"

#include <fstream>

#include "kit/shop_fixture.h"
#include "storage/counter_merge.h"
#include "storage/data_dir.h"

namespace kv {
namespace {

class CheckTest : public testing::ShopTest {
 protected:
  // Builds a small shop with every kind of record, then closes it.
  void Populate() {
    const uint64_t pid = MakeProduct(StockMode::kReserve, true);
    Import(pid, 4);
    OrderView a = Order(pid, 2);
    EXPECT_EQ(Pay(a).outcome, PaymentOutcome::kApplied);
    delivered_ = a;
    Order(pid, 1);                // pending hold
    OrderView c = Order(pid, 1);  // hold on the last key
    ASSERT_TRUE(shop_->CancelOrder(c.order_id).ok());
    OrderView d = Order(pid, 2);  // backorder (only 1 free)
    EXPECT_TRUE(
        shop_->ApplyPayment({std::string(32, 'c'), "stray", 1, "USD"}).ok());  // flagged payment
    EXPECT_EQ(Pay(d).outcome, PaymentOutcome::kApplied);
    EXPECT_TRUE(shop_->RecordPayAttempt({a.order_id, "sandbox", "", "", 1}).ok());
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

// Issue 13: every pay attempt's key and record are parsed; a bad one is DataLoss.
TEST_F(CheckTest, MalformedPayAttemptIsDataLoss) {
  Populate();
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {std::string(16, 'o') + "Bad Name", "\x01"},
           {std::string(16, 'o') + "sandbox", "\x09"}}) {
    storage::DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    o.create_if_missing = false;
    auto d = storage::OpenDataDir(o, &random_);
    ASSERT_TRUE(d.ok());
    rocksdb::WriteBatch b;
    b.Put(d->db->cf(storage::kCfPayAttempts), key, value);
    ASSERT_TRUE(d->db->Write(&b).ok());
    auto rep = CheckShop(*d->db, *d->cipher);
    ASSERT_FALSE(rep.ok());
    EXPECT_EQ(rep.status().code(), absl::StatusCode::kDataLoss) << rep.status();
    rocksdb::WriteBatch undo;
    undo.Delete(d->db->cf(storage::kCfPayAttempts), key);
    ASSERT_TRUE(d->db->Write(&undo).ok());
  }
}

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

TEST_F(CheckTest, OrderCountDriftIsNamed) {
  Populate();
  auto v = Tamper([](storage::Db* db) {
    rocksdb::WriteBatch b;
    b.Merge(db->cf(storage::kCfCounters),
            storage::OrderCountKey(static_cast<uint8_t>(OrderStatus::kDelivered)),
            storage::EncodeCounter(2));
    ASSERT_TRUE(db->Write(&b).ok());
  });
  EXPECT_TRUE(Mentions(v, "order count delivered is 3 but the order index has 1 entries"))
      << v.size();
  EXPECT_EQ(v.size(), 1u);
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

// --- read errors: a failed read is an error, never the end of the data --------------------

// A closed shop whose column family `cf` is one SST file with a flipped byte in its first
// data block: RocksDB verifies block checksums on every read, so any read of that CF fails
// (Corruption) while the rest of the dir opens and reads normally.
class ReadErrorTest : public CheckTest, public ::testing::WithParamInterface<storage::Cf> {
 protected:
  void CorruptCf(storage::Cf cf) {
    shop_.reset();
    std::string sst;
    {
      auto d = storage::OpenExistingDataDir(tmp_.Sub("data"), tmp_.Sub("master.key"));
      ASSERT_TRUE(d.ok()) << d.status();
      rocksdb::DB* raw = d->db->raw();
      ASSERT_TRUE(raw->Flush(rocksdb::FlushOptions(), d->db->cf(cf)).ok());
      std::vector<rocksdb::LiveFileMetaData> files;
      raw->GetLiveFilesMetaData(&files);
      for (const auto& f : files) {
        if (f.column_family_name != storage::kCfNames[cf]) continue;
        ASSERT_TRUE(sst.empty()) << "one SST file expected for " << storage::kCfNames[cf];
        sst = f.db_path + f.name;
      }
    }
    ASSERT_FALSE(sst.empty()) << storage::kCfNames[cf] << " holds no data";
    std::fstream f(sst, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << sst;
    f.seekg(8);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(8);
    f.write(&c, 1);
    ASSERT_TRUE(f.good());
  }
};

// keyvend check: each of its scans reports the read error (before issue 10, 8 of its 9 scans
// stopped quietly and the check ran on part of the data).
using CheckReadErrorTest = ReadErrorTest;
TEST_P(CheckReadErrorTest, AFailedReadIsAnError) {
  Populate();
  ASSERT_NO_FATAL_FAILURE(CorruptCf(GetParam()));
  auto d = storage::OpenExistingDataDir(tmp_.Sub("data"), tmp_.Sub("master.key"));
  ASSERT_TRUE(d.ok()) << d.status();
  auto rep = CheckShop(*d->db, *d->cipher);
  ASSERT_FALSE(rep.ok()) << "check passed over an unreadable " << storage::kCfNames[GetParam()]
                         << " with " << rep->violations.size() << " violations";
  EXPECT_EQ(rep.status().code(), absl::StatusCode::kDataLoss) << rep.status();
  EXPECT_NE(rep.status().message().find(storage::kCfNames[GetParam()]), std::string::npos)
      << rep.status();
}
INSTANTIATE_TEST_SUITE_P(
    EveryScan, CheckReadErrorTest,
    ::testing::Values(storage::kCfProducts, storage::kCfBatches, storage::kCfPool,
                      storage::kCfOrders, storage::kCfDeliveryLog, storage::kCfOrderIndex,
                      storage::kCfPayments, storage::kCfKeyTags, storage::kCfCounters),
    [](const auto& info) { return std::string(storage::kCfNames[info.param]); });

// Shop::Open (Recover): a failed read refuses to open the shop (before issue 10 the batch
// and order-index scans stopped quietly: next_seq undercounted, backorders and holds lost).
using RecoverReadErrorTest = ReadErrorTest;
TEST_P(RecoverReadErrorTest, AFailedReadRefusesToOpen) {
  Populate();
  ASSERT_NO_FATAL_FAILURE(CorruptCf(GetParam()));
  auto s = Shop::Open(Options());
  ASSERT_FALSE(s.ok()) << "opened over an unreadable " << storage::kCfNames[GetParam()];
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
}
INSTANTIATE_TEST_SUITE_P(EveryScan, RecoverReadErrorTest,
                         ::testing::Values(storage::kCfProducts, storage::kCfCounters,
                                           storage::kCfBatches, storage::kCfDeliveryLog,
                                           storage::kCfOrderIndex),
                         [](const auto& info) {
                           return std::string(storage::kCfNames[info.param]);
                         });

}  // namespace
}  // namespace kv
