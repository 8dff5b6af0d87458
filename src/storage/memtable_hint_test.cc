#include "storage/memtable_hint.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "base/random.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "storage/data_dir.h"

namespace kv::storage {
namespace {

std::string Oid(int64_t ms, uint64_t seed) {
  SeededRandom r(seed);
  return NewOrderId(ms, r);
}

uint64_t Next(SeededRandom& r) {
  uint64_t v = 0;
  r.Fill(reinterpret_cast<uint8_t*>(&v), sizeof v);
  return v;
}

TEST(MemtableHint, TimeOrderedKeysShareAFewPrefixes) {
  const std::string a = Oid(1'700'000'000'000, 1), b = Oid(1'700'000'000'123, 2);
  for (Cf cf : {kCfOrders, kCfOutbound, kCfPayAttempts}) {
    EXPECT_EQ(MemtableHintPrefixBytes(cf, a), 1u) << kCfNames[cf];
    EXPECT_NE(MemtableHintExtractor(cf), nullptr) << kCfNames[cf];
  }
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOutbound, OutboundKey(a, 1, 3)), 1u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfPayAttempts, PayAttemptKey(a, "stripe")), 1u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfDeliveryLog, U64Key(42)), 1u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfPool, PoolKey(7, 99)), 8u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrderIndex, ExpiryIndexKey(5, a)), 1u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrderIndex, StatusIndexKey(3, 5, b)), 2u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrderIndex, BackorderIndexKey(7, 1)), 9u);
  // The extractor hands RocksDB exactly those bytes of the key.
  const auto x = MemtableHintExtractor(kCfOrderIndex);
  const std::string s = StatusIndexKey(3, 5, b);
  ASSERT_TRUE(x->InDomain(s));
  EXPECT_EQ(x->Transform(s).ToString(), s.substr(0, 2));
  EXPECT_EQ(x->Transform(s).data(), s.data());
}

TEST(MemtableHint, UnboundedOrRandomKeysTakeNoHint) {
  const std::string oid = Oid(1'700'000'000'000, 3);
  // One hint per buyer would grow with the buyers.
  const std::string contact = ContactIndexKey(std::string(kTagBytes, 'x'), 5, oid);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrderIndex, contact), 0u);
  EXPECT_FALSE(MemtableHintExtractor(kCfOrderIndex)->InDomain(contact));
  // Keys not of the builders' shapes (a short or empty key) are out of the domain too.
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrderIndex, ""), 0u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrderIndex, "e"), 0u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfOrders, "short"), 0u);
  EXPECT_EQ(MemtableHintPrefixBytes(kCfPool, "0123456"), 0u);
  for (Cf cf : {kCfDefault, kCfMeta, kCfProducts, kCfCounters, kCfKeyTags, kCfBatches, kCfPayments,
                kCfIdempotency}) {
    EXPECT_EQ(MemtableHintExtractor(cf), nullptr) << kCfNames[cf];
    EXPECT_EQ(MemtableHintPrefixBytes(cf, oid), 0u) << kCfNames[cf];
  }
}

// Hints decide where an insert starts looking, never where the key goes: keys written in
// groups out of order, interleaved across kinds, read back complete and sorted (from the
// memtable, and again from the SST files after a reopen).
TEST(MemtableHint, KeysInsertedOutOfOrderReadBackSorted) {
  testing::TempDir t;
  DataDirOptions o;
  o.data_dir = t.Sub("data");
  o.master_key_file = t.Sub("master.key");
  std::set<std::string> orders, index;
  SeededRandom rnd(11);
  {
    auto d = OpenDataDir(o, SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    for (int group = 0; group < 200; ++group) {
      rocksdb::WriteBatch b;
      for (int i = 0; i < 30; ++i) {
        // Same or neighbouring milliseconds, random tails, a few far in the past.
        const int64_t ms = 1'700'000'000'000 + group * 2 + static_cast<int64_t>(Next(rnd) % 3) -
                           (i % 10 == 0 ? 1'000'000 : 0);
        const std::string oid = Oid(ms, Next(rnd));
        orders.insert(oid);
        b.Put(d->db->cf(kCfOrders), oid, "o");
        const std::string e = i % 3 == 0 ? StatusIndexKey(static_cast<uint8_t>(i % 5), ms, oid)
                                         : ExpiryIndexKey(static_cast<uint64_t>(ms) + 900'000, oid);
        index.insert(e);
        b.Put(d->db->cf(kCfOrderIndex), e, "");
      }
      ASSERT_TRUE(d->db->Write(&b).ok());
    }
    const auto read_all = [&](Cf cf) {
      std::vector<std::string> keys;
      EXPECT_TRUE(d->db
                      ->ForEach(cf, "",
                                [&](std::string_view k, std::string_view) {
                                  keys.emplace_back(k);
                                  return Scan::kNext;
                                })
                      .ok());
      return keys;
    };
    EXPECT_EQ(read_all(kCfOrders), std::vector<std::string>(orders.begin(), orders.end()));
    EXPECT_EQ(read_all(kCfOrderIndex), std::vector<std::string>(index.begin(), index.end()));
  }
  auto d = OpenDataDir(o, SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  size_t n = 0;
  std::string prev;
  ASSERT_TRUE(d->db
                  ->ForEach(kCfOrders, "",
                            [&](std::string_view k, std::string_view) {
                              EXPECT_TRUE(orders.count(std::string(k))) << "unknown key";
                              EXPECT_LT(prev, k);
                              prev = std::string(k);
                              ++n;
                              return Scan::kNext;
                            })
                  .ok());
  EXPECT_EQ(n, orders.size());
}

}  // namespace
}  // namespace kv::storage
