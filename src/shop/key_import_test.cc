#include "shop/key_import.h"

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kv {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

using KeyList = std::vector<std::pair<uint32_t, std::string>>;
using RejectList = std::vector<std::pair<uint32_t, std::string>>;

// Flattens results into printable values so failures show line numbers and reason codes.
KeyList Keys(const ParsedKeys& p) {
  KeyList out;
  for (const ParsedKey& k : p.keys) out.emplace_back(k.line, std::string(k.text));
  return out;
}

RejectList Rejects(const ParsedKeys& p) {
  RejectList out;
  for (const RejectedLine& r : p.rejected) {
    out.emplace_back(r.line, std::string(LineRejectName(r.reason)));
  }
  return out;
}

// The result points into `input`, so callers pass literals or named strings, never temporaries.
ParsedKeys ParseOk(std::string_view input, const ParseOptions& opts = {}) {
  absl::StatusOr<ParsedKeys> r = ParseKeys(input, opts);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return ParsedKeys();
  return *std::move(r);
}

ParseOptions Csv(std::string column = "key") {
  ParseOptions o;
  o.format = KeyFormat::kCsv;
  o.csv_column = std::move(column);
  return o;
}

bool PointsInto(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

TEST(LineRejectNameTest, StableCodes) {
  EXPECT_EQ(LineRejectName(LineReject::kEmpty), "empty");
  EXPECT_EQ(LineRejectName(LineReject::kTooLong), "too_long");
  EXPECT_EQ(LineRejectName(LineReject::kNonPrintable), "non_printable");
  EXPECT_EQ(LineRejectName(LineReject::kDuplicateInInput), "duplicate_in_input");
  EXPECT_EQ(LineRejectName(LineReject::kBadCsvRow), "bad_csv_row");
  EXPECT_EQ(LineRejectName(static_cast<LineReject>(200)), "unknown");
}

// --- text format -------------------------------------------------------------------------

TEST(ParseKeysTextTest, LfLines) {
  ParsedKeys p = ParseOk("AAA\nBBB\nCCC\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB"), Pair(3, "CCC")));
  EXPECT_THAT(p.rejected, IsEmpty());
  EXPECT_EQ(p.duplicates_in_input, 0u);
}

TEST(ParseKeysTextTest, CrLfLines) {
  ParsedKeys p = ParseOk("AAA\r\nBBB\r\nCCC\r\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB"), Pair(3, "CCC")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysTextTest, MixedLineEndings) {
  ParsedKeys p = ParseOk("AAA\r\nBBB\nCCC\r\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB"), Pair(3, "CCC")));
}

TEST(ParseKeysTextTest, FinalLineWithoutTerminatorCounts) {
  EXPECT_THAT(Keys(ParseOk("AAA\nBBB")), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB")));
  EXPECT_THAT(Keys(ParseOk("AAA\r\nBBB")), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB")));
  EXPECT_THAT(Keys(ParseOk("AAA")), ElementsAre(Pair(1, "AAA")));
}

TEST(ParseKeysTextTest, EmptyStringAfterFinalNewlineIsNotALine) {
  ParsedKeys p = ParseOk("AAA\nBBB\n");
  EXPECT_EQ(p.keys.size(), 2u);
  EXPECT_THAT(p.rejected, IsEmpty());
  p = ParseOk("AAA\r\n");
  EXPECT_EQ(p.keys.size(), 1u);
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysTextTest, Bom) {
  const std::string bom = "\xEF\xBB\xBF";
  const std::string at_start = bom + "AAA\nBBB\n";
  ParsedKeys p = ParseOk(at_start);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB")));
  // Only at the very start; elsewhere it is ordinary (valid, printable) UTF-8 text.
  const std::string later = "AAA\n" + bom + "BBB\n";
  p = ParseOk(later);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, bom + "BBB")));
  // A BOM alone is an empty input.
  p = ParseOk(bom);
  EXPECT_THAT(p.keys, IsEmpty());
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysTextTest, EmptyInput) {
  ParsedKeys p = ParseOk("");
  EXPECT_THAT(p.keys, IsEmpty());
  EXPECT_THAT(p.rejected, IsEmpty());
  EXPECT_EQ(p.duplicates_in_input, 0u);
}

TEST(ParseKeysTextTest, TrimsAsciiWhitespaceKeepsInternalSpaces) {
  ParsedKeys p = ParseOk("  AAA  \n\tBBB\t\r\n\v\fC C C\f\v\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB"), Pair(3, "C C C")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysTextTest, KeysPointIntoInput) {
  const std::string input = "  AAA\nBBB\n";
  ParsedKeys p = ParseOk(input);
  ASSERT_EQ(p.keys.size(), 2u);
  for (const ParsedKey& k : p.keys) EXPECT_TRUE(PointsInto(k.text, input));
  EXPECT_EQ(p.keys[0].text.data(), input.data() + 2);
}

TEST(ParseKeysTextTest, BlankLinesAreEmpty) {
  ParsedKeys p = ParseOk("AAA\n\nBBB\n   \r\n\t\nCCC\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(3, "BBB"), Pair(6, "CCC")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(2, "empty"), Pair(4, "empty"), Pair(5, "empty")));
}

TEST(ParseKeysTextTest, EachRejectReasonWithLineNumbers) {
  const std::string long_key(257, 'x');
  const std::string input =
      "good-1\n"           // 1
      "\n"                 // 2 empty
      + long_key + "\n" +  // 3 too_long
      "bad\x01key\n"       // 4 non_printable
      "good-1\n"           // 5 duplicate
      "good-2";            // 6
  ParsedKeys p = ParseOk(input);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "good-1"), Pair(6, "good-2")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(2, "empty"), Pair(3, "too_long"),
                                      Pair(4, "non_printable"), Pair(5, "duplicate_in_input")));
  EXPECT_EQ(p.duplicates_in_input, 1u);
}

TEST(ParseKeysTextTest, LengthLimitIsInclusiveAndAppliesAfterTrimming) {
  const std::string k256(kKeyBytesMax, 'a');
  const std::string k257(kKeyBytesMax + 1, 'b');
  const std::string input = k256 + "\n" + k257 + "\n   " + std::string(kKeyBytesMax, 'c') + "   \n";
  ParsedKeys p = ParseOk(input);
  ASSERT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.keys[0].line, 1u);
  EXPECT_EQ(p.keys[0].text.size(), 256u);
  EXPECT_EQ(p.keys[1].line, 3u);
  EXPECT_EQ(p.keys[1].text.size(), 256u);
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(2, "too_long")));
}

TEST(ParseKeysTextTest, LengthCountsBytesNotCharacters) {
  // 128 two-byte characters = 256 bytes: accepted. One more byte: too long.
  std::string k;
  for (int i = 0; i < 128; ++i) k += "\xD0\xB6";  // "ж"
  const std::string input = k + "\n" + k + "x\n";
  ParsedKeys p = ParseOk(input);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, k)));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(2, "too_long")));
}

TEST(ParseKeysTextTest, TooLongTakesPrecedenceOverNonPrintable) {
  std::string k(300, 'a');
  k[10] = '\x01';
  EXPECT_THAT(Rejects(ParseOk(k)), ElementsAre(Pair(1, "too_long")));
}

TEST(ParseKeysTextTest, ControlCharactersRejected) {
  const std::string input = std::string("nul\0key\n", 8) +  // 1 NUL
                            "del\x7fkey\n"                  // 2 DEL
                            "tab\tkey\n"                    // 3 tab inside
                            "cr\rkey\n"                     // 4 CR inside
                            "esc\x1b[0m\n"                  // 5 ESC
                            "vt\vkey\n"                     // 6 VT inside
                            "x\x1f\n"                       // 7 unit separator
                            "ok key ~!\n";                  // 8 space and ~ are fine
  ParsedKeys p = ParseOk(input);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(8, "ok key ~!")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(1, "non_printable"), Pair(2, "non_printable"),
                                      Pair(3, "non_printable"), Pair(4, "non_printable"),
                                      Pair(5, "non_printable"), Pair(6, "non_printable"),
                                      Pair(7, "non_printable")));
}

TEST(ParseKeysTextTest, LoneNulLineIsNonPrintableNotEmpty) {
  EXPECT_THAT(Rejects(ParseOk(std::string_view("\0\n", 2))), ElementsAre(Pair(1, "non_printable")));
}

TEST(ParseKeysTextTest, ValidUtf8Accepted) {
  ParsedKeys p = ParseOk(
      "ключ-1\n"                 // Cyrillic, 2-byte sequences
      "\xE2\x82\xAC-100\n"       // U+20AC euro, 3 bytes
      "gift-\xF0\x9F\x8E\x81\n"  // U+1F381 wrapped present emoji, 4 bytes
      "\xF4\x8F\xBF\xBF\n"       // U+10FFFF, the largest code point
      "\xED\x9F\xBF\n"           // U+D7FF, just below the surrogates
      "\xEE\x80\x80\n");         // U+E000, just above the surrogates
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "ключ-1"), Pair(2, "\xE2\x82\xAC-100"),
                                   Pair(3, "gift-\xF0\x9F\x8E\x81"), Pair(4, "\xF4\x8F\xBF\xBF"),
                                   Pair(5, "\xED\x9F\xBF"), Pair(6, "\xEE\x80\x80")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysTextTest, InvalidUtf8Rejected) {
  const char* const kBad[] = {
      "a\x80z",            // stray continuation byte
      "a\xBFz",            // stray continuation byte
      "\xC0\xAF",          // overlong '/'
      "\xC1\xBF",          // overlong
      "\xE0\x80\xAF",      // overlong 3-byte
      "\xF0\x80\x80\xAF",  // overlong 4-byte
      "\xED\xA0\x80",      // U+D800 surrogate
      "\xED\xBF\xBF",      // U+DFFF surrogate
      "\xF4\x90\x80\x80",  // U+110000
      "\xF5\x80\x80\x80",  // lead byte beyond range
      "\xFF",              // never valid
      "\xFE",              // never valid
      "abc\xD0",           // truncated 2-byte at end
      "abc\xE2\x82",       // truncated 3-byte at end
      "abc\xF0\x9F\x8E",   // truncated 4-byte at end
      "\xE2\x82-x",        // truncated 3-byte mid-key
      "\xD0 x",            // lead followed by ASCII
      "\xC2\x80\x80",      // extra continuation
  };
  std::string input;
  for (const char* s : kBad) input += std::string(s) + "\n";
  ParsedKeys p = ParseOk(input);
  EXPECT_THAT(p.keys, IsEmpty());
  ASSERT_EQ(p.rejected.size(), std::size(kBad));
  for (size_t i = 0; i < p.rejected.size(); ++i) {
    EXPECT_EQ(p.rejected[i].line, i + 1);
    EXPECT_EQ(p.rejected[i].reason, LineReject::kNonPrintable) << "line " << i + 1;
  }
}

TEST(ParseKeysTextTest, DuplicatesCountedFirstOccurrenceKept) {
  ParsedKeys p = ParseOk("AAA\nBBB\n  AAA\nCCC\nBBB\nAAA\naaa\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(1, "AAA"), Pair(2, "BBB"), Pair(4, "CCC"), Pair(7, "aaa")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(3, "duplicate_in_input"), Pair(5, "duplicate_in_input"),
                                      Pair(6, "duplicate_in_input")));
  EXPECT_EQ(p.duplicates_in_input, 3u);
}

TEST(ParseKeysTextTest, RejectedLineDoesNotCountAsFirstOccurrence) {
  // Line 1 is rejected, so line 2 is the first accepted occurrence.
  ParsedKeys p = ParseOk("AAA\x01\nAAA\n");
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "AAA")));
  EXPECT_EQ(p.duplicates_in_input, 0u);
}

TEST(ParseKeysTextTest, FirstLineOffset) {
  ParseOptions o;
  o.first_line = 101;
  ParsedKeys p = ParseOk("AAA\n\nBBB\n", o);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(101, "AAA"), Pair(103, "BBB")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(102, "empty")));
}

TEST(ParseKeysTextTest, LineNumbersSaturateInsteadOfWrapping) {
  ParseOptions o;
  o.first_line = UINT32_MAX - 1;
  ParsedKeys p = ParseOk("A\nB\nC\n", o);
  EXPECT_THAT(Keys(p),
              ElementsAre(Pair(UINT32_MAX - 1, "A"), Pair(UINT32_MAX, "B"), Pair(UINT32_MAX, "C")));
}

TEST(ParseKeysTextTest, CsvOptionsIgnoredForText) {
  ParseOptions o;
  o.csv_column = "nope";
  EXPECT_THAT(Keys(ParseOk("a,b\n", o)), ElementsAre(Pair(1, "a,b")));
}

TEST(ParseKeysTextTest, LargeGeneratedInput) {
  constexpr int kLines = 200000;
  std::string input;
  input.reserve(kLines * 24);
  int expect_keys = 0, expect_dups = 0, expect_empty = 0, expect_long = 0, expect_bad = 0;
  for (int i = 0; i < kLines; ++i) {
    if (i % 1000 == 999) {
      input += "\r\n";
      ++expect_empty;
    } else if (i % 1000 == 998) {
      input += std::string(300, 'L') + "\n";
      ++expect_long;
    } else if (i % 1000 == 997) {
      input += "bad\x7f\n";
      ++expect_bad;
    } else if (i % 100 == 50) {
      input += "KEY-" + std::to_string(i - 1) + "\n";  // Repeats the previous line's key.
      ++expect_dups;
    } else {
      input += "KEY-" + std::to_string(i) + "\r\n";
      ++expect_keys;
    }
  }
  ParsedKeys p = ParseOk(input);
  EXPECT_EQ(p.keys.size(), static_cast<size_t>(expect_keys));
  EXPECT_EQ(p.duplicates_in_input, static_cast<size_t>(expect_dups));
  EXPECT_EQ(p.rejected.size(),
            static_cast<size_t>(expect_dups + expect_empty + expect_long + expect_bad));
  EXPECT_EQ(p.keys.size() + p.rejected.size(), static_cast<size_t>(kLines));
  ASSERT_FALSE(p.keys.empty());
  EXPECT_EQ(p.keys.front().line, 1u);
  EXPECT_EQ(p.keys.front().text, "KEY-0");
  EXPECT_EQ(p.keys.back().line, static_cast<uint32_t>(kLines - 3));
  EXPECT_EQ(p.keys.back().text, "KEY-" + std::to_string(kLines - 4));
  // Every physical line accounted for exactly once, in order.
  size_t ki = 0, ri = 0;
  for (uint32_t line = 1; line <= static_cast<uint32_t>(kLines); ++line) {
    if (ki < p.keys.size() && p.keys[ki].line == line) {
      ++ki;
    } else {
      ASSERT_LT(ri, p.rejected.size());
      ASSERT_EQ(p.rejected[ri].line, line);
      ++ri;
    }
  }
}

// --- CSV -----------------------------------------------------------------------------------

TEST(ParseKeysCsvTest, KeyColumnNotFirst) {
  ParsedKeys p = ParseOk("sku,key,note\ngc-10,AAA,x\ngc-20,BBB,y\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "AAA"), Pair(3, "BBB")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysCsvTest, CrLfAndBomAndNoFinalNewline) {
  ParsedKeys p = ParseOk("\xEF\xBB\xBFkey,sku\r\nAAA,1\r\nBBB,2", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "AAA"), Pair(3, "BBB")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysCsvTest, KeyInLastColumnWithCrLf) {
  ParsedKeys p = ParseOk("sku,key\r\n1,AAA\r\n2,BBB\r\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "AAA"), Pair(3, "BBB")));
}

TEST(ParseKeysCsvTest, FieldsTrimmedAndValidated) {
  ParsedKeys p = ParseOk("sku,key\n1,  AAA  \n2,\n3,  \n4,A\x01Z\n5,AAA\n6,A B\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "AAA"), Pair(7, "A B")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(3, "empty"), Pair(4, "empty"), Pair(5, "non_printable"),
                                      Pair(6, "duplicate_in_input")));
  EXPECT_EQ(p.duplicates_in_input, 1u);
}

TEST(ParseKeysCsvTest, QuotedFieldsWithCommas) {
  ParsedKeys p = ParseOk("note,key\n\"a, b\",\"K,1\"\n\"x\",K2\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "K,1"), Pair(3, "K2")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysCsvTest, QuotedKeyWithoutEscapesPointsIntoInput) {
  const std::string input = "key\n\" K1 \"\n";
  ParsedKeys p = ParseOk(input, Csv());
  ASSERT_EQ(p.keys.size(), 1u);
  EXPECT_EQ(p.keys[0].text, "K1");
  EXPECT_TRUE(PointsInto(p.keys[0].text, input));
  EXPECT_THAT(p.owned, IsEmpty());
}

TEST(ParseKeysCsvTest, EscapedQuotes) {
  const std::string input =
      "key,note\n"
      "\"K\"\"1\",\"say \"\"hi\"\"\"\n"  // 2: key K"1, note with escapes too
      "\"\"\"K2\"\"\",x\n"               // 3: key "K2"
      "plain,\"\"\"\"\n"                 // 4: key plain, note is one quote
      "\"K\"\"1\",dup\n"                 // 5: duplicate of line 2 after unescaping
      "\"\"\"\"\"\",x\n";                // 6: key is two quotes
  ParsedKeys p = ParseOk(input, Csv());
  EXPECT_THAT(Keys(p),
              ElementsAre(Pair(2, "K\"1"), Pair(3, "\"K2\""), Pair(4, "plain"), Pair(6, "\"\"")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(5, "duplicate_in_input")));
  // Unescaped keys live in `owned` and survive moving the result.
  ParsedKeys moved = std::move(p);
  EXPECT_EQ(moved.keys[0].text, "K\"1");
  EXPECT_EQ(moved.keys[1].text, "\"K2\"");
  EXPECT_FALSE(PointsInto(moved.keys[0].text, input));
  EXPECT_TRUE(PointsInto(moved.keys[2].text, input));
}

TEST(ParseKeysCsvTest, EscapedQuoteKeyDuplicatesUnescapedEarlierKey) {
  // 'K"1' arrives first unquoted (a bare quote is literal), then quoted and escaped.
  ParsedKeys p = ParseOk("key\nK\"1\n\"K\"\"1\"\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "K\"1")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(3, "duplicate_in_input")));
}

TEST(ParseKeysCsvTest, EmbeddedNewlineKeepsPhysicalLineNumbers) {
  const std::string input =
      "key,note\n"              // 1
      "K1,\"first\nsecond\"\n"  // 2-3: one record on two physical lines
      "K2,\"a\r\nb\r\nc\"\r\n"  // 4-6: CRLF inside the quotes
      "K3,x\n"                  // 7
      "\"K4\nX\",y\n"           // 8-9: key with an embedded newline is non-printable
      "K5,z\n";                 // 10
  ParsedKeys p = ParseOk(input, Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "K1"), Pair(4, "K2"), Pair(7, "K3"), Pair(10, "K5")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(8, "non_printable")));
}

TEST(ParseKeysCsvTest, ShortRow) {
  ParsedKeys p = ParseOk("sku,key,note\n1,AAA,x\n2\n3,BBB\n4,\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "AAA"), Pair(4, "BBB")));
  // "4," has two fields, so the key field exists and is empty.
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(3, "bad_csv_row"), Pair(5, "empty")));
}

TEST(ParseKeysCsvTest, ExtraFieldsAreFine) {
  EXPECT_THAT(Keys(ParseOk("key\nAAA,x,y,z\n", Csv())), ElementsAre(Pair(2, "AAA")));
}

TEST(ParseKeysCsvTest, MalformedQuoteIsBadRowAndParsingContinues) {
  const std::string input =
      "key,note\n"                // 1
      "\"K1\"x,note\n"            // 2: text after closing quote
      "K2,\"a\"b\n"               // 3: malformed later field spoils the record
      "K3,\"multi\nline\"junk\n"  // 4-5: malformed after an embedded newline
      "K4,ok\n"                   // 6
      "\"K5\" ,x\n"               // 7: a blank after the closing quote is still text
      "K6,ok\n";                  // 8
  ParsedKeys p = ParseOk(input, Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(6, "K4"), Pair(8, "K6")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(2, "bad_csv_row"), Pair(3, "bad_csv_row"),
                                      Pair(4, "bad_csv_row"), Pair(7, "bad_csv_row")));
}

TEST(ParseKeysCsvTest, UnterminatedQuoteAtEndOfInput) {
  ParsedKeys p = ParseOk("key\nK1\n\"K2\nK3\nK4\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "K1")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(3, "bad_csv_row")));
  p = ParseOk("key\nK1\n\"", Csv());
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(3, "bad_csv_row")));
}

TEST(ParseKeysCsvTest, BlanksBeforeOpeningQuoteAreIgnored) {
  ParsedKeys p = ParseOk("sku, key\n1, \"K,1\"\n2,\t\"K2\"\r\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "K,1"), Pair(3, "K2")));
}

TEST(ParseKeysCsvTest, BareQuoteInUnquotedFieldIsLiteral) {
  EXPECT_THAT(Keys(ParseOk("key\nab\"cd\n", Csv())), ElementsAre(Pair(2, "ab\"cd")));
}

TEST(ParseKeysCsvTest, EmptyLinesSkippedSilently) {
  ParsedKeys p = ParseOk("\n\r\nkey\n\nAAA\r\n\r\n\nBBB\n\n", Csv());
  EXPECT_THAT(Keys(p), ElementsAre(Pair(5, "AAA"), Pair(8, "BBB")));
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysCsvTest, WhitespaceOnlyLineIsARecord) {
  // Not "completely empty": one blank field, so too short for column 2 and empty for column 1.
  EXPECT_THAT(Rejects(ParseOk("sku,key\n  \nX,K\n", Csv())), ElementsAre(Pair(2, "bad_csv_row")));
  EXPECT_THAT(Rejects(ParseOk("key\n  \nK\n", Csv())), ElementsAre(Pair(2, "empty")));
}

TEST(ParseKeysCsvTest, MissingColumnIsInvalidArgumentNamingIt) {
  absl::StatusOr<ParsedKeys> r = ParseKeys("sku,code\n1,AAA\n", Csv());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "CSV header has no \"key\" column");

  r = ParseKeys("sku,code\n1,AAA\n", Csv("serial"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("\"serial\""));
}

TEST(ParseKeysCsvTest, MissingColumnMessageNeverEchoesInput) {
  // A merchant who forgot the header: the first key must not leak into the message.
  absl::StatusOr<ParsedKeys> r = ParseKeys("SECRET-KEY-1\nSECRET-KEY-2\n", Csv());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), ::testing::Not(HasSubstr("SECRET")));
}

TEST(ParseKeysCsvTest, NoHeaderIsInvalidArgument) {
  for (std::string_view input : {"", "\n\n", "\r\n", "\xEF\xBB\xBF"}) {
    absl::StatusOr<ParsedKeys> r = ParseKeys(input, Csv());
    ASSERT_FALSE(r.ok()) << "input size " << input.size();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ParseKeysCsvTest, MalformedHeaderIsInvalidArgument) {
  absl::StatusOr<ParsedKeys> r = ParseKeys("\"key\"x,sku\nAAA,1\n", Csv());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseKeysCsvTest, HeaderOnlyGivesNothing) {
  ParsedKeys p = ParseOk("key\n", Csv());
  EXPECT_THAT(p.keys, IsEmpty());
  EXPECT_THAT(p.rejected, IsEmpty());
}

TEST(ParseKeysCsvTest, HeaderMatchIsCaseInsensitiveAndTrimmed) {
  EXPECT_THAT(Keys(ParseOk("sku,  KEY \nx,AAA\n", Csv())), ElementsAre(Pair(2, "AAA")));
  EXPECT_THAT(Keys(ParseOk("sku,\"Key\"\nx,AAA\n", Csv())), ElementsAre(Pair(2, "AAA")));
  EXPECT_THAT(Keys(ParseOk("Key\r\nAAA\r\n", Csv())), ElementsAre(Pair(2, "AAA")));
}

TEST(ParseKeysCsvTest, CustomColumnName) {
  ParsedKeys p = ParseOk("Serial Number,key\nS-1,not-this\nS-2,nor-this\n", Csv("serial number"));
  EXPECT_THAT(Keys(p), ElementsAre(Pair(2, "S-1"), Pair(3, "S-2")));
}

TEST(ParseKeysCsvTest, FirstMatchingColumnWins) {
  EXPECT_THAT(Keys(ParseOk("key,KEY\nA,B\n", Csv())), ElementsAre(Pair(2, "A")));
}

TEST(ParseKeysCsvTest, FirstLineOffset) {
  ParseOptions o = Csv();
  o.first_line = 10;
  ParsedKeys p = ParseOk("key,n\nAAA,\"x\ny\"\n\nBBB,1\n,2\n", o);
  EXPECT_THAT(Keys(p), ElementsAre(Pair(11, "AAA"), Pair(14, "BBB")));
  EXPECT_THAT(Rejects(p), ElementsAre(Pair(15, "empty")));
}

TEST(ParseKeysCsvTest, LargeGeneratedInput) {
  constexpr int kRows = 200000;
  std::string input = "id,key,note\r\n";
  int expect_keys = 0, expect_dups = 0, expect_bad = 0;
  for (int i = 0; i < kRows; ++i) {
    if (i % 500 == 499) {
      input += std::to_string(i) + "\n";  // short row
      ++expect_bad;
    } else if (i % 100 == 10) {
      input += std::to_string(i) + ",K" + std::to_string(i - 1) + ",dup\r\n";
      ++expect_dups;
    } else {
      input += std::to_string(i) + ",\"K" + std::to_string(i) + "\",\"n, n\"\r\n";
      ++expect_keys;
    }
  }
  ParsedKeys p = ParseOk(input, Csv());
  EXPECT_EQ(p.keys.size(), static_cast<size_t>(expect_keys));
  EXPECT_EQ(p.duplicates_in_input, static_cast<size_t>(expect_dups));
  EXPECT_EQ(p.rejected.size(), static_cast<size_t>(expect_dups + expect_bad));
  ASSERT_FALSE(p.keys.empty());
  EXPECT_EQ(p.keys.back().line, static_cast<uint32_t>(kRows));  // Row i is line i + 2.
  EXPECT_EQ(p.keys.back().text, "K" + std::to_string(kRows - 2));
}

}  // namespace
}  // namespace kv
