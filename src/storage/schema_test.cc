// The key codec: every parser inverts its builder and refuses a key of another shape.
#include "storage/schema.h"

#include "gtest/gtest.h"

namespace kv::storage {
namespace {

const std::string kOid(kOrderIdBytes, '\x07');
const std::string kTag(kTagBytes, '\x2a');

// Every size from 0 to `exact` + 2 but `exact` is refused by `parse` (a key of that size is
// built from `valid`, cut or padded).
template <typename Parse>
void RefusesOtherSizes(const std::string& valid, Parse parse) {
  ASSERT_TRUE(parse(valid).has_value());
  for (size_t n = 0; n <= valid.size() + 2; ++n) {
    if (n == valid.size()) continue;
    std::string k = valid.substr(0, std::min(n, valid.size()));
    k.resize(n, '\0');
    EXPECT_FALSE(parse(k).has_value()) << "size " << n << " of " << valid.size();
  }
}

TEST(KeyCodec, U64Key) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x0102030405060708}, ~uint64_t{0}}) {
    EXPECT_EQ(ParseU64Key(U64Key(v)), v);
  }
  EXPECT_LT(U64Key(255), U64Key(256));  // byte order is numeric order
  RefusesOtherSizes(U64Key(9), ParseU64Key);
}

TEST(KeyCodec, CounterKey) {
  for (CounterKind kind : kAllCounterKinds) {
    auto p = ParseCounterKey(CounterKey(42, kind));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->pid, 42u);
    EXPECT_EQ(p->kind, kind);
  }
  RefusesOtherSizes(CounterKey(1, CounterKind::kPool), ParseCounterKey);
  std::string unknown = CounterKey(1, CounterKind::kPool);
  for (uint8_t kind : {0, 7, 255}) {
    unknown.back() = static_cast<char>(kind);
    EXPECT_FALSE(ParseCounterKey(unknown).has_value()) << int{kind};
  }
}

// The per-status order counts share CF "counters" with the product counters: neither
// parser takes the other's keys.
TEST(KeyCodec, OrderCountKey) {
  for (uint8_t status : {1, 8, 255}) {
    EXPECT_EQ(ParseOrderCountKey(OrderCountKey(status)), status);
    EXPECT_FALSE(ParseCounterKey(OrderCountKey(status)).has_value());
  }
  RefusesOtherSizes(OrderCountKey(1), ParseOrderCountKey);
  EXPECT_FALSE(ParseOrderCountKey(std::string(1, 'x') + '\x01').has_value());
  for (CounterKind kind : kAllCounterKinds) {
    EXPECT_FALSE(ParseOrderCountKey(CounterKey(1, kind)).has_value());
  }
}

TEST(KeyCodec, PoolAndBatchKeys) {
  auto p = ParsePoolKey(PoolKey(3, 1'000'000'007));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->pid, 3u);
  EXPECT_EQ(p->seq, 1'000'000'007u);
  auto b = ParseBatchKey(BatchKey(65'536, 12));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->pid, 65'536u);
  EXPECT_EQ(b->batch_id, 12u);
  EXPECT_EQ(PoolKey(3, 9).substr(0, kU64KeyBytes), U64Key(3));  // the per-product prefix
  RefusesOtherSizes(PoolKey(1, 2), ParsePoolKey);
  RefusesOtherSizes(BatchKey(1, 2), ParseBatchKey);
}

TEST(KeyCodec, ContactIndexKey) {
  const std::string k = ContactIndexKey(kTag, 1'700'000'000'000, kOid);
  EXPECT_EQ(k.size(), kContactIndexKeyBytes);
  EXPECT_TRUE(k.starts_with(ContactIndexPrefix(kTag)));
  auto p = ParseContactIndexKey(k);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->contact_tag, kTag);
  EXPECT_EQ(p->created_ms, 1'700'000'000'000u);
  EXPECT_EQ(p->oid, kOid);
  RefusesOtherSizes(k, ParseContactIndexKey);
  std::string other = k;
  other[0] = kIdxStatus;
  EXPECT_FALSE(ParseContactIndexKey(other).has_value());
}

TEST(KeyCodec, ExpiryIndexKey) {
  const std::string k = ExpiryIndexKey(123'456, kOid);
  EXPECT_EQ(k.size(), kExpiryIndexKeyBytes);
  auto p = ParseExpiryIndexKey(k);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->expires_ms, 123'456u);
  EXPECT_EQ(p->oid, kOid);
  RefusesOtherSizes(k, ParseExpiryIndexKey);
  std::string other = k;
  other[0] = kIdxContact;
  EXPECT_FALSE(ParseExpiryIndexKey(other).has_value());
}

TEST(KeyCodec, StatusIndexKey) {
  const std::string k = StatusIndexKey(4, 99, kOid);
  EXPECT_EQ(k.size(), kStatusIndexKeyBytes);
  EXPECT_TRUE(k.starts_with(StatusIndexPrefix(4)));
  auto p = ParseStatusIndexKey(k);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->status, 4);
  EXPECT_EQ(p->created_ms, 99u);
  EXPECT_EQ(p->oid, kOid);
  RefusesOtherSizes(k, ParseStatusIndexKey);
  std::string other = k;
  other[0] = kIdxExpiry;
  EXPECT_FALSE(ParseStatusIndexKey(other).has_value());
}

TEST(KeyCodec, BackorderIndexKey) {
  const std::string k = BackorderIndexKey(7, 8);
  EXPECT_EQ(k.size(), kBackorderIndexKeyBytes);
  auto p = ParseBackorderIndexKey(k);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->pid, 7u);
  EXPECT_EQ(p->log_seq, 8u);
  RefusesOtherSizes(k, ParseBackorderIndexKey);
  std::string other = k;
  other[0] = kIdxExpiry;
  EXPECT_FALSE(ParseBackorderIndexKey(other).has_value());
}

TEST(KeyCodec, PayAttemptKey) {
  const std::string k = PayAttemptKey(kOid, "sandbox");
  EXPECT_EQ(k.rfind(PayAttemptPrefix(kOid), 0), 0u);
  auto p = ParsePayAttemptKey(k);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->oid, kOid);
  EXPECT_EQ(p->gateway, "sandbox");
  EXPECT_FALSE(ParsePayAttemptKey(kOid).has_value()) << "no gateway name";
  EXPECT_FALSE(ParsePayAttemptKey(kOid.substr(1)).has_value());
  EXPECT_FALSE(ParsePayAttemptKey(PayAttemptKey(kOid, "Epay")).has_value()) << "upper case";
  EXPECT_FALSE(ParsePayAttemptKey(PayAttemptKey(kOid, "e pay")).has_value());
  EXPECT_TRUE(ParsePayAttemptKey(PayAttemptKey(kOid, std::string(kGatewayNameBytesMax, 'a'))));
  EXPECT_FALSE(ParsePayAttemptKey(PayAttemptKey(kOid, std::string(kGatewayNameBytesMax + 1, 'a'))));
}

}  // namespace
}  // namespace kv::storage
