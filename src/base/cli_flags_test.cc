#include "base/cli_flags.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kv {
namespace {

using Args = std::vector<std::string>;

const CliGrammar kTool = {{{"--data-dir"}, {"--product"}, {"--dry-run", false}},
                          /*positional=*/true};
const CliGrammar kStrict = {{{"--backup-dir"}, {"--json", false}},
                            /*positional=*/false,
                            /*repeat_ok=*/false,
                            /*empty_ok=*/false};

EnvLookup EnvOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string ErrorOf(const Args& args, const CliGrammar& g) {
  absl::StatusOr<CliFlags> f = CliFlags::Parse(args, g);
  if (f.ok()) return "<parsed>";
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(f.status().message());
}

TEST(CliFlags, BothValueFormsSwitchesAndPositionals) {
  absl::StatusOr<CliFlags> f =
      CliFlags::Parse({"--data-dir", "/d", "a.txt", "--product=7", "--dry-run", "-", "b"}, kTool);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->help());
  EXPECT_EQ(f->Get("--data-dir"), "/d");
  EXPECT_EQ(f->Get("--product"), "7");
  EXPECT_TRUE(f->Has("--dry-run"));
  EXPECT_FALSE(f->Has("--nothing"));
  EXPECT_EQ(f->Get("--nothing"), "");
  EXPECT_EQ(f->positional(), (Args{"a.txt", "-", "b"}));
  EXPECT_EQ(f->given(), (Args{"--data-dir", "--product", "--dry-run"}));
}

TEST(CliFlags, TheNextWordIsTheValueWhateverItIs) {
  absl::StatusOr<CliFlags> f = CliFlags::Parse({"--data-dir", "--product"}, kTool);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Get("--data-dir"), "--product");
  EXPECT_FALSE(f->Has("--product"));
}

TEST(CliFlags, DoubleDashEndsTheFlags) {
  absl::StatusOr<CliFlags> f = CliFlags::Parse({"--dry-run", "--", "--odd.csv", "-h"}, kTool);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->help());
  EXPECT_EQ(f->positional(), (Args{"--odd.csv", "-h"}));
}

TEST(CliFlags, HelpStopsParsing) {
  for (const char* h : {"--help", "-h"}) {
    absl::StatusOr<CliFlags> f = CliFlags::Parse({"--dry-run", h, "--bogus"}, kTool);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_TRUE(f->help());
  }
  // As a value it is a value.
  EXPECT_EQ(CliFlags::Parse({"--data-dir", "--help"}, kTool)->Get("--data-dir"), "--help");
}

TEST(CliFlags, LastRepeatWinsUnlessTheGrammarRefusesIt) {
  absl::StatusOr<CliFlags> f = CliFlags::Parse({"--data-dir=a", "--data-dir", "b"}, kTool);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Get("--data-dir"), "b");
  EXPECT_EQ(f->given(), Args{"--data-dir"});
  EXPECT_EQ(ErrorOf({"--backup-dir", "a", "--backup-dir=b"}, kStrict),
            "--backup-dir is given twice");
}

TEST(CliFlags, UsageErrors) {
  EXPECT_EQ(ErrorOf({"--bogus", "x"}, kTool), "unknown option '--bogus'");
  EXPECT_EQ(ErrorOf({"--bogus=1"}, kTool), "unknown option '--bogus'");
  EXPECT_EQ(ErrorOf({"-x"}, kTool), "unknown option '-x'");
  EXPECT_EQ(ErrorOf({"--data-dir"}, kTool), "--data-dir needs a value");
  EXPECT_EQ(ErrorOf({"--dry-run=yes"}, kTool), "--dry-run takes no value");
  EXPECT_EQ(ErrorOf({"x"}, kStrict), "unexpected argument 'x'");
  EXPECT_EQ(ErrorOf({"--backup-dir="}, kStrict), "--backup-dir needs a non-empty value");
  EXPECT_EQ(ErrorOf({"--backup-dir", ""}, kStrict), "--backup-dir needs a non-empty value");
  EXPECT_TRUE(CliFlags::Parse({"--data-dir="}, kTool).ok());  // empty_ok
  // Echoed words are escaped and bounded.
  EXPECT_EQ(ErrorOf({"--a\x01z"}, kTool), "unknown option '--a\\x01z'");
  const std::string msg = ErrorOf({"--" + std::string(1000, 'x')}, kTool);
  EXPECT_LT(msg.size(), 100u);
  EXPECT_EQ(msg.substr(msg.size() - 4), "...'");
}

TEST(CliFlags, GetOrEnvTakesTheFlagThenTheEnvironment) {
  const EnvLookup env = EnvOf({{"KEYVEND_DATA_DIR", "/env"}});
  EXPECT_EQ(CliFlags::Parse({"--data-dir", "/flag"}, kTool)
                ->GetOrEnv("--data-dir", "KEYVEND_DATA_DIR", env),
            "/flag");
  EXPECT_EQ(CliFlags::Parse({}, kTool)->GetOrEnv("--data-dir", "KEYVEND_DATA_DIR", env), "/env");
  // An empty flag value counts as not given.
  EXPECT_EQ(
      CliFlags::Parse({"--data-dir="}, kTool)->GetOrEnv("--data-dir", "KEYVEND_DATA_DIR", env),
      "/env");
  EXPECT_EQ(CliFlags::Parse({}, kTool)->GetOrEnv("--data-dir", "KEYVEND_DATA_DIR", EnvOf({})), "");
}

}  // namespace
}  // namespace kv
