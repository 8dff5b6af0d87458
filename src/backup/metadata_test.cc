#include "backup/metadata.h"

#include "absl/strings/str_replace.h"
#include "base/time_format.h"
#include "gtest/gtest.h"
#include "kit/shop_fixture.h"

namespace kv::backup {
namespace {

BackupMetadata Sample() {
  BackupMetadata m;
  m.created_unix_ms = 1795000000123;
  m.source = "api";
  m.schema_version = 1;
  m.key_check = std::string(32, '\x5a');
  m.products = 3;
  m.keys = 1000000;
  m.keys_in_pool = 999000;
  m.orders = 1234;
  return m;
}

TEST(BackupMetadata, RoundTrips) {
  const BackupMetadata m = Sample();
  const std::string json = EncodeMetadata(m);
  EXPECT_NE(json.find("\"created_at\":\"2026-11-18T"), std::string::npos) << json;
  auto back = DecodeMetadata(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
}

TEST(BackupMetadata, IgnoresUnknownMembers) {
  std::string json = EncodeMetadata(Sample());
  json.insert(1, "\"added_later\":[1,2,{\"x\":null}],");
  auto back = DecodeMetadata(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, Sample());
}

TEST(BackupMetadata, RefusesWhatIsNotAKeyvendBackupOrIsMalformed) {
  const std::string good = EncodeMetadata(Sample());
  struct Case {
    std::string json;
    std::string names;  // part of the message
  };
  const std::vector<Case> cases = {
      {"", "not JSON"},
      {"[1]", "not a JSON object"},
      {"{}", "not a keyvend backup"},
      {absl::StrReplaceAll(good, {{"\"keyvend_backup\":1", "\"keyvend_backup\":2"}}), "format 2"},
      {absl::StrReplaceAll(good, {{"\"orders\":1234", "\"orders\":-1"}}), "\"orders\""},
      {absl::StrReplaceAll(good, {{"\"keys\":1000000", "\"keys\":\"many\""}}), "\"keys\""},
      {absl::StrReplaceAll(good, {{"\"source\":\"api\",", ""}}), "\"source\""},
      {absl::StrReplaceAll(good, {{"5a5a5a5a", "5a5a5a5"}}), "\"key_check\""},
      {absl::StrReplaceAll(good, {{"5a5a5a5a", "5a5a5a5z"}}), "\"key_check\""},
      {absl::StrReplaceAll(good,
                           {{"\"created_unix_ms\":1795000000123", "\"created_unix_ms\":1.5"}}),
       "\"created_unix_ms\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    auto r = DecodeMetadata(c.json);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.names), std::string::npos) << r.status();
  }
}

TEST(BackupMetadata, SourceIsWrittenSafely) {
  BackupMetadata m = Sample();
  m.source = "a\"b\\c\nd";
  auto back = DecodeMetadata(EncodeMetadata(m));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->source, "a_b_c_d");
}

class DescribeDbTest : public kv::testing::ShopTest {};

TEST_F(DescribeDbTest, CountsProductsKeysAndOrdersFromTheDatabase) {
  const uint64_t p1 = MakeProduct();
  const uint64_t p2 = MakeProduct(StockMode::kOnPayment);
  Import(p1, 10);
  Import(p2, 5);
  const OrderView a = Order(p1, 2);
  Order(p1, 1);
  const OrderView c = Order(p2, 3);
  EXPECT_EQ(Pay(a).outcome, PaymentOutcome::kApplied);  // delivered: 2 keys leave p1's pool
  EXPECT_EQ(Pay(c).outcome, PaymentOutcome::kApplied);  // delivered: 3 keys leave p2's pool
  auto m = DescribeDb(*shop_->db(), clock_.WallNow(), "offline");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->products, 2u);
  EXPECT_EQ(m->keys, 15u);
  EXPECT_EQ(m->keys_in_pool, 10u);
  EXPECT_EQ(m->orders, 3u);
  EXPECT_EQ(m->schema_version, storage::kSchemaVersion);
  auto kcv = shop_->db()->Get(storage::kCfMeta, storage::kMetaKeyCheck);
  ASSERT_TRUE(kcv.ok() && kcv->has_value());
  EXPECT_EQ(m->key_check, **kcv);
  EXPECT_EQ(m->created_unix_ms, UnixMs(clock_.WallNow()));
  EXPECT_EQ(m->source, "offline");
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv::backup
