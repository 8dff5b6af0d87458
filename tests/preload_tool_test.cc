// Black-box test of the keyvend-preload binary: one million generated lines over a .txt and
// a .csv file, with 1% duplicates (within the input, across the two files, and keys the
// shop already has) and 0.1% bad lines. The exact report, the exact summary, exit 0,
// `keyvend check` exit 0, and the decrypted pool equal to what the files should have added.
// Also: a running shop (locked data dir) and usage errors give their documented exit codes.
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "preload_test_util.h"
#include "shop/shop.h"

#ifndef PRELOAD_BIN
#error "PRELOAD_BIN must name the keyvend-preload binary"
#endif
#ifndef KEYVEND_BIN
#error "KEYVEND_BIN must name the keyvend binary"
#endif

namespace kv {
namespace {

using preloadtest::ReadPool;
using preloadtest::RunProc;
using testing::SplitLines;
using testing::TempDir;

constexpr int kEntries = 1'000'000;
constexpr int kTxtEntries = 700'000;  // the rest go to the CSV file
constexpr int kOldKeys = 1'000;

// What entry e of the generated input is.
enum class Kind { kKey, kBad, kDuplicate, kStored };

Kind KindOf(int e) {
  if (e % 1000 == 500) return Kind::kBad;      // 0.1%
  if (e % 1000 == 137) return Kind::kStored;   // 0.1%: a key the shop has
  if (e % 100 == 37) return Kind::kDuplicate;  // 0.9%: repeats DuplicateSource(e)
  return Kind::kKey;
}

// An earlier plain key: 50 entries back, which near the seam is in the other file.
int DuplicateSource(int e) { return e >= 50 ? e - 50 : 0; }

std::string KeyOf(int e) {
  return absl::StrFormat("K-%07d-%08x", e, (e * 2654435761u) & 0xffffffffu);
}

// The bad line of entry e and the reason the report must give.
std::pair<std::string, std::string> BadOf(int e) {
  switch (e / 1000 % 4) {
    case 0:
      return {"", "empty"};
    case 1:
      return {" \t ", "empty"};
    case 2:
      return {std::string(257, 'T'), "too_long"};
    default:
      return {absl::StrCat("bad\x01key-", e), "non_printable"};
  }
}

class PreloadToolTest : public ::testing::Test {
 protected:
  std::string data() const { return tmp_.Sub("data"); }
  std::string key() const { return tmp_.Sub("master.key"); }
  std::vector<std::string> Cmd(std::vector<std::string> extra) const {
    std::vector<std::string> a = {PRELOAD_BIN, "--data-dir", data(), "--master-key-file",
                                  key(),       "--product",  "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  TempDir tmp_;
};

TEST_F(PreloadToolTest, MillionLinesExactReportAndCheckPasses) {
  ASSERT_TRUE(preloadtest::MakeShop(data(), key(), kOldKeys));
  const std::string txt = tmp_.Sub("keys.txt");
  const std::string csv = tmp_.Sub("more.csv");
  std::vector<std::string> want_report;
  std::set<std::string> want_pool;
  for (int i = 0; i < kOldKeys; ++i) want_pool.insert(absl::StrCat("OLD-", i));
  {
    std::ofstream t(txt, std::ios::binary);
    std::ofstream c(csv, std::ios::binary);
    c << "n,key,note\n";
    for (int e = 0; e < kEntries; ++e) {
      const bool in_txt = e < kTxtEntries;
      const std::string& file = in_txt ? txt : csv;
      const int line = in_txt ? e + 1 : e - kTxtEntries + 2;
      std::string text;
      switch (KindOf(e)) {
        case Kind::kKey:
          text = KeyOf(e);
          want_pool.insert(text);
          break;
        case Kind::kBad: {
          auto [t2, reason] = BadOf(e);
          text = t2;
          want_report.push_back(absl::StrCat(file, ":", line, ": ", reason));
          break;
        }
        case Kind::kDuplicate:
          text = KeyOf(DuplicateSource(e));
          want_report.push_back(absl::StrCat(file, ":", line, ": duplicate_in_input"));
          break;
        case Kind::kStored:
          text = absl::StrCat("OLD-", e / 1000 % kOldKeys);
          want_report.push_back(absl::StrCat(file, ":", line, ": already_stored"));
          break;
      }
      if (in_txt) {
        t << text << (e % 10 == 3 ? "\r\n" : "\n");  // some Windows line ends
      } else if (e % 3 == 0) {
        c << e << ",\"" << text << "\",x\n";  // quoted
      } else {
        c << e << "," << text << ",y\n";
      }
    }
  }
  const size_t loaded = want_pool.size() - kOldKeys;
  ASSERT_EQ(loaded, 989'000u);
  want_report.push_back(
      "keyvend-preload: loaded 989000 keys into product 1 (batch 2); rejected 1000 lines; "
      "duplicates 10000 (in input 9000, already stored 1000)");

  auto r = RunProc(Cmd({txt, csv}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // stderr is a file, not a terminal: no progress bar
  const std::vector<std::string> got = SplitLines(r.out);
  ASSERT_EQ(got.size(), want_report.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want_report[i]) << "report line " << i;

  auto check = RunProc({KEYVEND_BIN, "check", "--data-dir", data(), "--master-key-file", key()});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_NE(check.out.find("keyvend check: OK"), std::string::npos) << check.out;

  const preloadtest::PoolContent pool = ReadPool(data(), key(), 1);
  EXPECT_EQ(pool.twice, 0u);
  EXPECT_EQ(pool.entries, want_pool.size());
  EXPECT_EQ(pool.tags, want_pool.size());
  EXPECT_TRUE(pool.texts == want_pool);
  // No key text in anything the tool printed.
  EXPECT_EQ(r.out.find("K-0"), std::string::npos);
  EXPECT_EQ(r.out.find("OLD-"), std::string::npos);
}

TEST_F(PreloadToolTest, RunningShopAndUsageErrorsHaveTheirExitCodes) {
  ASSERT_TRUE(preloadtest::MakeShop(data(), key(), 1));
  const std::string f = tmp_.Sub("k.txt");
  std::ofstream(f) << "LOCKED-1\n";
  {
    ShopOptions o;
    o.data_dir = data();
    o.master_key_file = key();
    o.start_workers = false;
    auto running = Shop::Open(o);  // holds the data dir's lock, as `keyvend serve` would
    ASSERT_TRUE(running.ok());
    auto r = RunProc(Cmd({f}));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("the shop is running"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("POST /api/v1/admin/products/1/keys"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  auto usage = RunProc({PRELOAD_BIN, "--product", "1", f});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_NE(usage.err.find("--data-dir is required"), std::string::npos) << usage.err;
  auto help = RunProc({PRELOAD_BIN, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("exit codes:"), std::string::npos);
  auto ok = RunProc(Cmd({f}));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ReadPool(data(), key(), 1).entries, 2u);
}

}  // namespace
}  // namespace kv
