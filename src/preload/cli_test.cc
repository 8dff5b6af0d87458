#include "preload/cli.h"

#include <cstdio>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kit/shop_fixture.h"

namespace kv::preload {
namespace {

GetEnvFn Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ParseArgs, FixedFormAndDefaults) {
  auto a = ParseArgs({"--data-dir", "/srv/d/", "--product", "7", "x.txt", "y.csv"}, Env({}));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->opts.data_dir, "/srv/d");
  EXPECT_EQ(a->opts.master_key_file, "/srv/d.master-key");  // as `keyvend check`
  EXPECT_EQ(a->opts.product_id, 7u);
  EXPECT_EQ(a->opts.files, (std::vector<std::string>{"x.txt", "y.csv"}));
  EXPECT_FALSE(a->opts.dry_run);
  EXPECT_FALSE(a->opts.input.format.has_value());
  EXPECT_TRUE(a->progress);
}

TEST(ParseArgs, OptionsEnvironmentAndEquals) {
  auto a = ParseArgs({"--dry-run", "--product=3", "--format", "csv", "--column=Code", "--threads",
                      "4", "--no-progress", "--", "--odd-name.csv"},
                     Env({{"KEYVEND_DATA_DIR", "/env/d"}, {"KEYVEND_MASTER_KEY_FILE", "/k"}}));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->opts.data_dir, "/env/d");
  EXPECT_EQ(a->opts.master_key_file, "/k");
  EXPECT_TRUE(a->opts.dry_run);
  EXPECT_EQ(a->opts.product_id, 3u);
  EXPECT_EQ(a->opts.input.format, KeyFormat::kCsv);
  EXPECT_EQ(a->opts.input.csv_column, "Code");
  EXPECT_EQ(a->opts.threads, 4);
  EXPECT_FALSE(a->progress);
  EXPECT_EQ(a->opts.files, std::vector<std::string>{"--odd-name.csv"});
  // Flags win over the environment.
  auto b = ParseArgs({"--data-dir", "/flag", "--master-key-file", "/mk", "--product", "1", "f"},
                     Env({{"KEYVEND_DATA_DIR", "/env/d"}, {"KEYVEND_MASTER_KEY_FILE", "/k"}}));
  EXPECT_EQ(b->opts.data_dir, "/flag");
  EXPECT_EQ(b->opts.master_key_file, "/mk");
}

TEST(ParseArgs, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {"--product", "1", "f.txt"},                 // no data dir
      {"--data-dir", "d", "f.txt"},                // no product
      {"--data-dir", "d", "--product", "1"},       // no file
      {"--data-dir", "d", "--product", "0", "f"},  // product 0
      {"--data-dir", "d", "--product", "x", "f"},  // not a number
      {"--data-dir", "d", "--product", "1", "--format", "tsv", "f"},
      {"--data-dir", "d", "--product", "1", "--threads", "0", "f"},
      {"--data-dir", "d", "--product", "1", "--bogus", "f"},
      {"--data-dir", "d", "--product"},  // missing value
  };
  for (const auto& args : bad) {
    auto a = ParseArgs(args, Env({}));
    EXPECT_FALSE(a.ok()) << absl::StrJoin(args, " ");
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  EXPECT_TRUE(ParseArgs({"--help"}, Env({}))->help);
}

// Captures what Run writes to a FILE*.
class Capture {
 public:
  Capture() : f_(std::tmpfile()) {}
  ~Capture() { std::fclose(f_); }
  FILE* f() { return f_; }
  std::string Text() {
    std::fflush(f_);
    std::rewind(f_);
    std::string s;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f_)) > 0;) s.append(buf, n);
    return s;
  }

 private:
  FILE* f_;
};

class CliRunTest : public kv::testing::ShopTest {
 protected:
  int RunCli(std::vector<std::string> args, std::string* out, std::string* err) {
    Capture o, e;
    const int rc = preload::Run(args, Env({}), o.f(), e.f(), -1, false);
    *out = o.Text();
    *err = e.Text();
    return rc;
  }
};

TEST_F(CliRunTest, ExitCodesAndOutputNeverShowAKey) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1, "SECRET-OLD");
  const std::string f = tmp_.Sub("k.txt");
  std::ofstream(f) << "SECRET-NEW-1\nSECRET-NEW-1\nSECRET-OLD-0-XXXX-YYYY\nbad\x01SECRET\n";
  const std::vector<std::string> base = {"--data-dir",        tmp_.Sub("data"),
                                         "--master-key-file", tmp_.Sub("master.key"),
                                         "--product",         std::to_string(pid)};
  std::string out, err;
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };

  // Running shop (shop_ holds the lock): 1, with the endpoint to use instead.
  EXPECT_EQ(RunCli(with({f}), &out, &err), kExitError);
  EXPECT_NE(err.find("/keys instead"), std::string::npos) << err;
  EXPECT_TRUE(out.empty());
  shop_.reset();

  EXPECT_EQ(RunCli(with({"--bogus", f}), &out, &err), kExitUsage);
  EXPECT_NE(err.find("unknown option '--bogus'"), std::string::npos) << err;
  EXPECT_EQ(RunCli({"--help"}, &out, &err), kExitLoaded);
  EXPECT_NE(out.find("exit codes:"), std::string::npos);
  EXPECT_NE(out.find("examples:"), std::string::npos);
  EXPECT_EQ(RunCli(with({tmp_.Sub("missing.txt")}), &out, &err), kExitError);
  EXPECT_NE(err.find("missing.txt"), std::string::npos) << err;

  EXPECT_EQ(RunCli(with({f}), &out, &err), kExitLoaded) << err;
  EXPECT_EQ(out, f + ":2: duplicate_in_input\n" + f + ":3: already_stored\n" + f +
                     ":4: non_printable\n" +
                     absl::StrCat("keyvend-preload: loaded 1 key into product ", pid,
                                  " (batch 2); rejected 1 line; duplicates 2 (in input 1, "
                                  "already stored 1)\n"));
  EXPECT_TRUE(err.empty()) << err;  // not a terminal: no progress bar
  // All keys are duplicates now: still exit 0, 0 loaded.
  EXPECT_EQ(RunCli(with({f}), &out, &err), kExitLoaded);
  EXPECT_NE(out.find("loaded 0 keys"), std::string::npos) << out;
  EXPECT_EQ(out.find("SECRET"), std::string::npos);
  EXPECT_EQ(err.find("SECRET"), std::string::npos);
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv::preload
