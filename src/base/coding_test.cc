#include "base/coding.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace kv {
namespace {

TEST(Coding, FixedBigEndianSortsNumerically) {
  std::string a, b;
  PutFixed64BE(&a, 255);
  PutFixed64BE(&b, 256);
  EXPECT_LT(a, b);
  EXPECT_EQ(DecodeFixed64BE(a.data()), 255u);
  std::string c;
  PutFixed32BE(&c, 0xdeadbeef);
  EXPECT_EQ(DecodeFixed32BE(c.data()), 0xdeadbeefu);
}

TEST(Coding, RoundTripsEveryType) {
  std::string s;
  PutFixed64LE(&s, 0x0102030405060708ULL);
  PutVarint64(&s, 0);
  PutVarint64(&s, 127);
  PutVarint64(&s, 128);
  PutVarint64(&s, std::numeric_limits<uint64_t>::max());
  PutVarsint64(&s, -1);
  PutVarsint64(&s, std::numeric_limits<int64_t>::min());
  PutVarsint64(&s, std::numeric_limits<int64_t>::max());
  PutLengthPrefixed(&s, "hello");
  PutLengthPrefixed(&s, "");
  Reader r(s);
  uint64_t u;
  int64_t i;
  std::string str;
  ASSERT_TRUE(r.GetFixed64LE(&u));
  EXPECT_EQ(u, 0x0102030405060708ULL);
  ASSERT_TRUE(r.GetVarint64(&u));
  EXPECT_EQ(u, 0u);
  ASSERT_TRUE(r.GetVarint64(&u));
  EXPECT_EQ(u, 127u);
  ASSERT_TRUE(r.GetVarint64(&u));
  EXPECT_EQ(u, 128u);
  ASSERT_TRUE(r.GetVarint64(&u));
  EXPECT_EQ(u, std::numeric_limits<uint64_t>::max());
  ASSERT_TRUE(r.GetVarsint64(&i));
  EXPECT_EQ(i, -1);
  ASSERT_TRUE(r.GetVarsint64(&i));
  EXPECT_EQ(i, std::numeric_limits<int64_t>::min());
  ASSERT_TRUE(r.GetVarsint64(&i));
  EXPECT_EQ(i, std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(r.GetLengthPrefixed(&str));
  EXPECT_EQ(str, "hello");
  ASSERT_TRUE(r.GetLengthPrefixed(&str));
  EXPECT_EQ(str, "");
  EXPECT_TRUE(r.done());
}

TEST(Coding, ShortAndMalformedInputFailsAndStaysFailed) {
  std::string s;
  PutLengthPrefixed(&s, "abcdef");
  s.resize(s.size() - 1);  // truncated string
  Reader r(s);
  std::string out;
  EXPECT_FALSE(r.GetLengthPrefixed(&out));
  EXPECT_FALSE(r.ok());
  uint8_t b;
  EXPECT_FALSE(r.GetU8(&b));  // sticky failure

  std::string over(11, '\xff');  // a varint longer than 64 bits
  Reader r2(over);
  uint64_t u;
  EXPECT_FALSE(r2.GetVarint64(&u));

  std::string big;
  PutVarint64(&big, uint64_t{1} << 40);
  Reader r3(big);
  uint32_t u32;
  EXPECT_FALSE(r3.GetVarint32(&u32));

  Reader r4("");
  EXPECT_FALSE(r4.GetFixed64BE(&u));
}

TEST(Coding, Hex) {
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
  std::string out;
  EXPECT_TRUE(HexDecode("00ff10", &out));
  EXPECT_EQ(out, std::string("\x00\xff\x10", 3));
  EXPECT_TRUE(HexDecode("ABcd", &out));
  EXPECT_FALSE(HexDecode("abc", &out));
  EXPECT_FALSE(HexDecode("zz", &out));
}

}  // namespace
}  // namespace kv
