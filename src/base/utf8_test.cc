#include "base/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace kv {
namespace {

size_t Len(const std::string& s, char32_t* cp = nullptr) { return Utf8SequenceLength(s, cp); }

TEST(Utf8, WellFormedSequences) {
  char32_t cp = 0;
  EXPECT_EQ(Len("a", &cp), 1u);
  EXPECT_EQ(cp, U'a');
  EXPECT_EQ(Len("\xc3\xa9x", &cp), 2u);  // é, then more text
  EXPECT_EQ(cp, U'\u00e9');
  EXPECT_EQ(Len("\xc2\x80", &cp), 2u);  // U+0080, the smallest two-byte form
  EXPECT_EQ(cp, U'\u0080');
  EXPECT_EQ(Len("\xe2\x82\xac", &cp), 3u);  // €
  EXPECT_EQ(cp, U'\u20ac');
  EXPECT_EQ(Len("\xed\x9f\xbf", &cp), 3u);  // U+D7FF, just below the surrogates
  EXPECT_EQ(cp, U'\ud7ff');
  EXPECT_EQ(Len("\xf0\x9f\x94\x91", &cp), 4u);  // U+1F511
  EXPECT_EQ(cp, U'\U0001f511');
  EXPECT_EQ(Len("\xf4\x8f\xbf\xbf", &cp), 4u);  // U+10FFFF, the largest
  EXPECT_EQ(cp, U'\U0010ffff');
  EXPECT_EQ(Len(std::string(1, '\0'), &cp), 1u);
  EXPECT_EQ(cp, U'\0');
}

TEST(Utf8, IllFormedSequences) {
  EXPECT_EQ(Len(""), 0u);
  EXPECT_EQ(Len("\x80"), 0u);              // stray continuation byte
  EXPECT_EQ(Len("\xc3"), 0u);              // truncated
  EXPECT_EQ(Len("\xc3x"), 0u);             // continuation missing
  EXPECT_EQ(Len("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(Len("\xc1\xbf"), 0u);          // overlong
  EXPECT_EQ(Len("\xe0\x9f\xbf"), 0u);      // overlong three-byte form
  EXPECT_EQ(Len("\xed\xa0\x80"), 0u);      // U+D800, a surrogate
  EXPECT_EQ(Len("\xf0\x8f\xbf\xbf"), 0u);  // overlong four-byte form
  EXPECT_EQ(Len("\xf4\x90\x80\x80"), 0u);  // U+110000
  EXPECT_EQ(Len("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(Len("\xff"), 0u);
  EXPECT_EQ(Len("\xe2\x82"), 0u);  // truncated €
  EXPECT_EQ(Len("\xe2\x82x"), 0u);
}

TEST(Utf8, WholeStrings) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ASCII"));
  EXPECT_TRUE(IsValidUtf8("卡密 \xF0\x9F\x94\x91 ok"));
  EXPECT_FALSE(IsValidUtf8("ok\xC3"));      // truncated at the end
  EXPECT_FALSE(IsValidUtf8("\x80 stray"));  // a continuation byte first
  EXPECT_FALSE(
      IsValidUtf8("a\xED\xA0\x80"
                  "b"));  // a surrogate in the middle
}

}  // namespace
}  // namespace kv
