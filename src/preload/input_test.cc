#include "preload/input.h"

#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/files.h"

namespace kv::preload {
namespace {

using kv::testing::TempDir;

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(FormatForPath, ByExtensionCaseInsensitive) {
  EXPECT_EQ(*FormatForPath("a/keys.txt"), KeyFormat::kText);
  EXPECT_EQ(*FormatForPath("KEYS.TXT"), KeyFormat::kText);
  EXPECT_EQ(*FormatForPath("export.Csv"), KeyFormat::kCsv);
  auto bad = FormatForPath("keys.tsv");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("keys.tsv"), absl::string_view::npos);
}

// A large text file is parsed in pieces on several threads; the result must be what one
// ParseKeys pass gives, except that repeats across pieces are left to the run's dedupe.
TEST(ReadInputs, PiecesGiveTheSameKeysAndLinesAsOnePass) {
  TempDir t;
  std::string text;
  // ~6 MB: three or four pieces. Lines are chosen so that piece boundaries fall on every
  // kind of line, including a BOM at the start of a line (kept as part of that key).
  for (int i = 0; i < 200'000; ++i) {
    switch (i % 97) {
      case 0:
        text += "\n";
        break;  // empty
      case 1:
        text += std::string(300, 'x') + "\n";
        break;  // too long
      case 2:
        text += "bad\x01key\n";
        break;  // non-printable
      case 3:
        text += "  spaced-key-" + std::to_string(i) + "\t\r\n";
        break;  // trimmed
      case 4:
        text +=
            "\xEF\xBB\xBF"
            "bom-key-" +
            std::to_string(i) + "\n";
        break;
      case 5:
        text += "repeat-me\n";
        break;  // duplicates
      default:
        text += absl::StrCat("KEY-", i, "-ABCDEFGHIJ\n");
    }
  }
  text += "last-line-without-newline";
  Write(t.Sub("k.txt"), text);

  auto whole = ParseKeys(text, ParseOptions{});
  ASSERT_TRUE(whole.ok());
  InputOptions o;
  o.threads = 3;
  auto in = ReadInputs({t.Sub("k.txt")}, o, nullptr);
  ASSERT_TRUE(in.ok()) << in.status();

  // Accepted keys: every key of the single pass, same line, same text; the extra ones are
  // repeats of a key accepted earlier (a duplicate the parser saw in another piece).
  std::map<uint32_t, std::string_view> one_pass;
  for (const ParsedKey& k : whole->keys) one_pass[k.line] = k.text;
  std::set<std::string_view> seen;
  size_t extra = 0;
  for (const InputKey& k : (*in)->keys()) {
    EXPECT_EQ(k.file, 0u);
    auto it = one_pass.find(k.line);
    if (it == one_pass.end()) {
      ++extra;
      EXPECT_TRUE(seen.contains(k.text)) << "line " << k.line;
    } else {
      EXPECT_EQ(it->second, k.text) << "line " << k.line;
    }
    seen.insert(k.text);
  }
  EXPECT_EQ((*in)->keys().size() - extra, whole->keys.size());
  EXPECT_GT(extra, 0u);  // "repeat-me" in later pieces
  // Rejections other than duplicates: identical lines and reasons.
  auto non_dup = [](const std::vector<RejectedLine>& v) {
    std::vector<std::pair<uint32_t, LineReject>> out;
    for (const RejectedLine& r : v) {
      if (r.reason != LineReject::kDuplicateInInput) out.emplace_back(r.line, r.reason);
    }
    return out;
  };
  EXPECT_EQ(non_dup((*in)->files()[0].rejected), non_dup(whole->rejected));
  EXPECT_EQ((*in)->files()[0].bytes, text.size());
}

TEST(ReadInputs, CsvKeysFromTheNamedColumnWithQuotes) {
  TempDir t;
  Write(t.Sub("a.csv"),
        "id,Code,note\n1,AAA-1,x\n2,\"BB,\"\"2\"\"\",y\n3,,z\n4\n5,\"multi\nline\",w\n6,CCC-3,v\n");
  InputOptions o;
  o.csv_column = "code";
  auto in = ReadInputs({t.Sub("a.csv")}, o, nullptr);
  ASSERT_TRUE(in.ok()) << in.status();
  std::vector<std::pair<uint32_t, std::string>> keys;
  for (const InputKey& k : (*in)->keys()) keys.emplace_back(k.line, std::string(k.text));
  EXPECT_EQ(keys, (std::vector<std::pair<uint32_t, std::string>>{
                      {2, "AAA-1"}, {3, "BB,\"2\""}, {8, "CCC-3"}}));
  const auto& rej = (*in)->files()[0].rejected;
  ASSERT_EQ(rej.size(), 3u);
  EXPECT_EQ(rej[0].line, 4u);  // empty key field
  EXPECT_EQ(rej[0].reason, LineReject::kEmpty);
  EXPECT_EQ(rej[1].line, 5u);  // too few fields
  EXPECT_EQ(rej[1].reason, LineReject::kBadCsvRow);
  EXPECT_EQ(rej[2].line, 6u);  // a newline inside the key
  EXPECT_EQ(rej[2].reason, LineReject::kNonPrintable);
}

TEST(ReadInputs, SeveralFilesKeepTheirOrderAndIndexes) {
  TempDir t;
  Write(t.Sub("a.txt"), "A1\nA2\n");
  Write(t.Sub("b.csv"), "key\nB1\n");
  Write(t.Sub("empty.txt"), "");
  auto in =
      ReadInputs({t.Sub("a.txt"), t.Sub("empty.txt"), t.Sub("b.csv")}, InputOptions{}, nullptr);
  ASSERT_TRUE(in.ok()) << in.status();
  ASSERT_EQ((*in)->keys().size(), 3u);
  EXPECT_EQ((*in)->keys()[2].file, 2u);
  EXPECT_EQ((*in)->keys()[2].line, 2u);
  EXPECT_EQ((*in)->keys()[2].text, "B1");
  EXPECT_EQ((*in)->files()[2].format, KeyFormat::kCsv);
  EXPECT_EQ((*in)->total_bytes(), 6u + 0u + 7u);
}

TEST(ReadInputs, WholeInputErrorsNameTheFileAndNeverAKey) {
  TempDir t;
  Write(t.Sub("ok.txt"), "SECRET-KEY-1\n");
  Write(t.Sub("nocol.csv"), "SECRET-KEY-2,other\nSECRET-KEY-3,x\n");
  Write(t.Sub("keys.dat"), "SECRET-KEY-4\n");

  auto missing = ReadInputs({t.Sub("ok.txt"), t.Sub("gone.txt")}, InputOptions{}, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("gone.txt"), absl::string_view::npos);

  auto nocol = ReadInputs({t.Sub("ok.txt"), t.Sub("nocol.csv")}, InputOptions{}, nullptr);
  ASSERT_FALSE(nocol.ok());
  EXPECT_EQ(nocol.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(nocol.status().message().find("nocol.csv"), absl::string_view::npos);
  EXPECT_NE(nocol.status().message().find("\"key\" column"), absl::string_view::npos);
  EXPECT_EQ(nocol.status().message().find("SECRET"), absl::string_view::npos);

  auto dat = ReadInputs({t.Sub("keys.dat")}, InputOptions{}, nullptr);
  ASSERT_FALSE(dat.ok());
  EXPECT_EQ(dat.status().code(), absl::StatusCode::kInvalidArgument);
  InputOptions as_text;
  as_text.format = KeyFormat::kText;
  auto forced = ReadInputs({t.Sub("keys.dat")}, as_text, nullptr);
  ASSERT_TRUE(forced.ok());
  EXPECT_EQ((*forced)->keys().size(), 1u);

  auto dir = ReadInputs({t.path() + "/"}, as_text, nullptr);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(ReadInputs({}, InputOptions{}, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kv::preload
