#include "base/json_string.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/utf8.h"
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

// The escaper one character at a time, as it was before ASCII runs were copied whole: the
// model the fast path must agree with byte for byte.
std::string Model(std::string_view s, size_t max_bytes) {
  const bool cut = max_bytes > 3 && s.size() > max_bytes;
  const size_t end = cut ? max_bytes - 3 : s.size();
  static constexpr char kHex[] = "0123456789abcdef";
  auto esc = [](std::string* o, uint32_t c) {
    o->append("\\u00");
    o->push_back(kHex[c >> 4]);
    o->push_back(kHex[c & 0xf]);
  };
  std::string out = "\"";
  for (size_t i = 0; i < end;) {
    char32_t cp = 0;
    const size_t len = Utf8SequenceLength(s.substr(i), &cp);
    if (len == 0) {
      esc(&out, static_cast<uint8_t>(s[i]));
      i += 1;
      continue;
    }
    if (i + len > end) break;
    if (cp == '"' || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
      esc(&out, cp);
    } else {
      out.append(s.data() + i, len);
    }
    i += len;
  }
  if (cut) out.append("...");
  out.push_back('"');
  return out;
}

TEST(JsonString, AsciiRunsCopiedWholeAgreeWithTheCharacterByCharacterModel) {
  // Long printable runs broken by every kind of byte the escaper treats apart: quotes,
  // backslashes, controls, DEL, C1, valid 2/3/4-byte UTF-8, stray continuation and lead
  // bytes; cut at every kind of place.
  const std::vector<std::string> pieces = {"order-0123456789",
                                           "a",
                                           " ",
                                           "~",
                                           "\"",
                                           "\\",
                                           "\n",
                                           std::string(1, '\0'),
                                           "\x7f",
                                           "\xc2\x9b",
                                           "\xc3\xa9",
                                           "\xe2\x82\xac",
                                           "\xf0\x9f\x94\x91",
                                           "\x80",
                                           "\xc3",
                                           "\xff",
                                           "\xed\xa0\x80"};
  std::mt19937 rng(20261204);
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const int n = static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) s += pieces[rng() % pieces.size()];
    const size_t max = rng() % 4 == 0 ? 0 : rng() % (s.size() + 6);
    ASSERT_EQ(J(s, max), Model(s, max)) << "input of " << s.size() << " bytes, bound " << max;
  }
  std::string prefix = "{";  // appends after what is already there
  AppendJsonString(&prefix, "x\"y");
  EXPECT_EQ(prefix, "{\"x\\\"y\"");
}

}  // namespace
}  // namespace kv
