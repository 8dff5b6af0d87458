#include "base/json_string.h"

#include "gtest/gtest.h"

namespace kv {
namespace {

std::string J(std::string_view s, size_t max = 0) {
  std::string out;
  AppendJsonString(&out, s, max);
  return out;
}

TEST(JsonString, EscapesQuotesBackslashesAndControlsAndKeepsUtf8) {
  EXPECT_EQ(J("plain"), "\"plain\"");
  EXPECT_EQ(J("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(J(std::string("\n\r\t\x01\x7f", 5) + std::string(1, '\0')),
            R"("\u000a\u000d\u0009\u0001\u007f\u0000")");
  EXPECT_EQ(J("caf\xc3\xa9 \xe2\x82\xac"), "\"caf\xc3\xa9 \xe2\x82\xac\"");
  EXPECT_EQ(J("\xc2\x9b"), R"("\u009b")") << "C1 controls are escaped";
}

TEST(JsonString, InvalidUtf8BytesBecomeEscapesSoTheOutputStaysValid) {
  EXPECT_EQ(J("a\xff"
              "b\xc3"),
            R"("a\u00ffb\u00c3")");
  EXPECT_EQ(J("\xed\xa0\x80"), R"("\u00ed\u00a0\u0080")") << "a UTF-16 surrogate is not UTF-8";
}

TEST(JsonString, BoundCutsAtACharacterBoundaryWithAnEllipsis) {
  EXPECT_EQ(J("abcdefgh", 8), "\"abcdefgh\"") << "at the bound: whole";
  EXPECT_EQ(J("abcdefghi", 8), "\"abcde...\"");
  // A 2-byte character straddling the cut is left out whole.
  EXPECT_EQ(J("abcd\xc3\xa9xyz", 8), "\"abcd...\"");
  EXPECT_EQ(J("abcdefghi", 0), "\"abcdefghi\"") << "0 = no bound";
}

}  // namespace
}  // namespace kv
