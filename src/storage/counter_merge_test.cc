#include "storage/counter_merge.h"

#include <cstdlib>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"

namespace kv::storage {
namespace {

TEST(Int64Add, AddsSignedValues) {
  Int64AddOperator op;
  std::string out;
  const std::string five = EncodeCounter(5), minus7 = EncodeCounter(-7);
  rocksdb::Slice base(five);
  ASSERT_TRUE(op.Merge("k", &base, minus7, &out, nullptr));
  int64_t v;
  ASSERT_TRUE(DecodeCounter(out, &v));
  EXPECT_EQ(v, -2);
  ASSERT_TRUE(op.Merge("k", nullptr, five, &out, nullptr));  // missing base = 0
  ASSERT_TRUE(DecodeCounter(out, &v));
  EXPECT_EQ(v, 5);
}

TEST(Int64Add, MalformedOperandOrBaseIsAnErrorNotZero) {
  Int64AddOperator op;
  std::string out;
  const std::string five = EncodeCounter(5);
  rocksdb::Slice base(five);
  EXPECT_FALSE(op.Merge("k", &base, "abc", &out, nullptr));
  EXPECT_FALSE(op.Merge("k", &base, std::string(9, '\0'), &out, nullptr));
  EXPECT_FALSE(op.Merge("k", &base, "", &out, nullptr));
  rocksdb::Slice bad("xyz");
  EXPECT_FALSE(op.Merge("k", &bad, five, &out, nullptr));
}

TEST(Int64Add, OverflowIsAnError) {
  Int64AddOperator op;
  std::string out;
  const std::string max = EncodeCounter(std::numeric_limits<int64_t>::max());
  rocksdb::Slice base(max);
  EXPECT_FALSE(op.Merge("k", &base, EncodeCounter(1), &out, nullptr));
}

// Through a real RocksDB: merges accumulate, and a malformed operand surfaces as
// Corruption on read instead of a silent zero.
TEST(Int64Add, InRocksDb) {
  char tmpl[] = "/tmp/kvmerge.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  rocksdb::Options o;
  o.create_if_missing = true;
  o.merge_operator = MakeInt64AddOperator();
  rocksdb::DB* raw;
  ASSERT_TRUE(rocksdb::DB::Open(o, dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(db->Merge(wo, "c", EncodeCounter(i % 2 ? 3 : -1)).ok());
  std::string v;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "c", &v).ok());
  int64_t n;
  ASSERT_TRUE(DecodeCounter(v, &n));
  EXPECT_EQ(n, 50 * 3 - 50);
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  ASSERT_TRUE(db->Merge(wo, "bad", "zz").ok());
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), "bad", &v);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  db.reset();
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace kv::storage
