// keyvend-backup's command line, in-process: usage errors (exit 2, nothing done), the
// offline create and every other command on a real shop's data dir, corruption named by
// verify (exit 1), refusals that write nothing, and no card key in any output. The online
// create and a locked data dir need a running server: tests/backup_test.cc.
#include "app/backup_cli.h"

#include <stdio.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "gtest/gtest.h"
#include "kit/shop_fixture.h"
#include "simdjson.h"

namespace kv {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int code = -1;
  std::string out, err;
  std::string all() const { return out + err; }
};

class BackupCliTest : public kv::testing::ShopTest {
 protected:
  CliRun Cli(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    char* out_buf = nullptr;
    char* err_buf = nullptr;
    size_t out_len = 0, err_len = 0;
    FILE* out = open_memstream(&out_buf, &out_len);
    FILE* err = open_memstream(&err_buf, &err_len);
    const auto lookup = [&env](const std::string& n) -> std::optional<std::string> {
      auto it = env.find(n);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    CliRun r;
    r.code = RunBackupCli(args, lookup, out, err);
    std::fclose(out);
    std::fclose(err);
    r.out.assign(out_buf, out_len);
    r.err.assign(err_buf, err_len);
    std::free(out_buf);
    std::free(err_buf);
    printed_ += r.all();
    return r;
  }
  std::string DataDir() const { return tmp_.Sub("data"); }
  std::string Key() const { return tmp_.Sub("master.key"); }
  std::string Backups() const { return tmp_.Sub("backups"); }
  // A stopped shop with keys, paid and unpaid orders.
  void MakeStoppedShop() {
    const uint64_t pid = MakeProduct();
    keys_ = Import(pid, 30, "CLI-SECRET-KEY");
    for (int i = 0; i < 4; ++i) EXPECT_EQ(Pay(Order(pid, 2)).outcome, PaymentOutcome::kApplied);
    Order(pid, 1);
    shop_.reset();
  }
  CliRun CreateOffline() {
    return Cli(
        {"create", "--data-dir", DataDir(), "--backup-dir", Backups(), "--master-key-file", Key()});
  }
  void TearDown() override {
    for (const std::string& k : keys_) {
      EXPECT_EQ(printed_.find(k), std::string::npos) << "a card key was printed";
    }
  }

  std::vector<std::string> keys_;
  std::string printed_;
};

TEST_F(BackupCliTest, HelpDocumentsCommandsExitCodesExamplesAndTheKey) {
  const CliRun r = Cli({"--help"});
  EXPECT_EQ(r.code, kExitOk);
  for (const char* part :
       {"create  --data-dir DIR --backup-dir B", "create  --url http://HOST:PORT", "list", "verify",
        "restore", "purge", "exit codes:", "examples:", "KEYVEND_ADMIN_TOKEN",
        "master key is NOT in any backup"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part;
  }
  EXPECT_EQ(Cli({"verify", "--help"}).code, kExitOk);
}

TEST_F(BackupCliTest, UsageErrorsExitTwoAndDoNothing) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"backup"},
      {"list"},
      {"list", "--backup-dir"},
      {"list", "--backup-dir", Backups(), "--frobnicate"},
      {"list", "--backup-dir", Backups(), "--id", "abc"},
      {"list", "--backup-dir", Backups(), "--id", "0"},
      {"verify", "--backup-dir", Backups(), "--to", "x"},
      {"purge", "--backup-dir", Backups()},
      {"purge", "--backup-dir", Backups(), "--keep", "0"},
      {"purge", "--backup-dir", Backups(), "--keep", "-1"},
      {"restore", "--backup-dir", Backups()},
      {"create", "--backup-dir", Backups()},
      {"create", "--url", "http://127.0.0.1:1", "--backup-dir", Backups()},
      {"create", "--url", "ftp://127.0.0.1:1"},
      {"create", "--url", "http://127.0.0.1:1/api"},
      {"create", "--url", "http://127.0.0.1:1"},  // no KEYVEND_ADMIN_TOKEN
      {"create", "--data-dir", DataDir(), "--backup-dir", Backups(), "--timeout-seconds", "5"},
      {"list", "--backup-dir", Backups(), "--json=yes"},
      {"list", "--backup-dir", Backups(), "--backup-dir", Backups()},
  };
  for (const auto& args : cases) {
    SCOPED_TRACE(::testing::PrintToString(args));
    const CliRun r = Cli(args);
    EXPECT_EQ(r.code, kExitUsage) << r.all();
    EXPECT_NE(r.err.find("--help"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_FALSE(fs::exists(Backups()));
}

TEST_F(BackupCliTest, CreateListVerifyRestorePurgeOnAStoppedShop) {
  MakeStoppedShop();
  CliRun c = CreateOffline();
  ASSERT_EQ(c.code, kExitOk) << c.all();
  EXPECT_NE(c.out.find("backup 1 of "), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("30 keys (22 in the pool), 5 orders"), std::string::npos) << c.out;
  // From the environment this time.
  c = Cli({"create"}, {{"KEYVEND_DATA_DIR", DataDir()},
                       {"KEYVEND_BACKUP_DIR", Backups()},
                       {"KEYVEND_MASTER_KEY_FILE", Key()}});
  ASSERT_EQ(c.code, kExitOk) << c.all();
  EXPECT_NE(c.out.find("backup 2 of "), std::string::npos) << c.out;

  CliRun l = Cli({"list", "--backup-dir", Backups(), "--master-key-file", Key()});
  ASSERT_EQ(l.code, kExitOk) << l.all();
  EXPECT_NE(l.out.find("ID     CREATED (UTC)"), std::string::npos) << l.out;
  EXPECT_NE(l.out.find("(this key)"), std::string::npos) << l.out;
  EXPECT_NE(l.out.find("2 backups in "), std::string::npos) << l.out;

  CliRun j = Cli({"list", "--backup-dir", Backups(), "--id", "2", "--json"});
  ASSERT_EQ(j.code, kExitOk) << j.all();
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(simdjson::padded_string(j.out)).get(root), simdjson::SUCCESS) << j.out;
  simdjson::dom::array backups;
  ASSERT_EQ(root["backups"].get(backups), simdjson::SUCCESS);
  ASSERT_EQ(backups.size(), 1u);
  std::string_view id;
  ASSERT_EQ(backups.at(0)["id"].get(id), simdjson::SUCCESS);
  EXPECT_EQ(id, "2");
  uint64_t orders = 0;
  ASSERT_EQ(backups.at(0)["orders"].get(orders), simdjson::SUCCESS);
  EXPECT_EQ(orders, 5u);
  EXPECT_EQ(Cli({"list", "--backup-dir", Backups(), "--id", "9"}).code, kExitFailed);

  CliRun v = Cli({"verify", "--backup-dir", Backups(), "--master-key-file", Key()});
  ASSERT_EQ(v.code, kExitOk) << v.all();
  EXPECT_NE(v.out.find("backup 1: OK"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("verify: OK"), std::string::npos) << v.out;

  const std::string to = tmp_.Sub("restored");
  CliRun r = Cli({"restore", "--backup-dir", Backups(), "--to", to, "--master-key-file", Key()});
  ASSERT_EQ(r.code, kExitOk) << r.all();
  EXPECT_NE(r.out.find("restored backup 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("keyvend check: OK"), std::string::npos) << r.out;

  CliRun p = Cli({"purge", "--backup-dir", Backups(), "--keep", "1"});
  ASSERT_EQ(p.code, kExitOk) << p.all();
  EXPECT_NE(p.out.find("purged 1; kept 2"), std::string::npos) << p.out;
}

TEST_F(BackupCliTest, VerifyNamesTheFlippedFileAndExitsOne) {
  MakeStoppedShop();
  ASSERT_EQ(CreateOffline().code, kExitOk);
  std::string victim;
  for (const auto& e : fs::directory_iterator(Backups() + "/shared_checksum")) {
    if (e.path().extension() == ".sst") victim = e.path().string();
  }
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\xA5');  // the SST's byte 100 is in its first data block: anything else differs
  }
  const CliRun v = Cli({"verify", "--backup-dir", Backups()});
  EXPECT_EQ(v.code, kExitFailed) << v.all();
  const std::string rel = fs::relative(victim, Backups()).string();
  EXPECT_NE(v.out.find("backup 1: CORRUPT " + rel + ": checksum mismatch"), std::string::npos)
      << v.out;
  EXPECT_NE(v.err.find("1 of 1 backups have problems"), std::string::npos) << v.err;
  // And a restore of it stops, leaving nothing behind.
  const std::string to = tmp_.Sub("restored");
  const CliRun r =
      Cli({"restore", "--backup-dir", Backups(), "--to", to, "--master-key-file", Key()});
  EXPECT_EQ(r.code, kExitFailed) << r.all();
  EXPECT_FALSE(fs::exists(to));
}

TEST_F(BackupCliTest, RestoreRefusesANonEmptyDirAWrongKeyAndAMissingKey) {
  MakeStoppedShop();
  ASSERT_EQ(CreateOffline().code, kExitOk);
  const std::string busy = tmp_.Sub("busy");
  fs::create_directories(busy);
  { std::ofstream(busy + "/file") << "x"; }
  CliRun r = Cli({"restore", "--backup-dir", Backups(), "--to", busy, "--master-key-file", Key()});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;

  // Another shop's key.
  const std::string other_key = tmp_.Sub("other.key");
  SeededRandom rnd(7);
  ASSERT_TRUE(CreateMasterKeyFile(other_key, &rnd).ok());
  const std::string to = tmp_.Sub("restored");
  r = Cli({"restore", "--backup-dir", Backups(), "--to", to, "--master-key-file", other_key});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.err.find("wrong master key"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(to));
  r = Cli({"verify", "--backup-dir", Backups(), "--master-key-file", other_key});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.out.find("wrong master key"), std::string::npos) << r.out;

  // No key at all: the default <to>.master-key does not exist.
  r = Cli({"restore", "--backup-dir", Backups(), "--to", to});
  EXPECT_EQ(r.code, kExitFailed);
  EXPECT_NE(r.err.find("it is not in the backup"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(to));
}

TEST_F(BackupCliTest, CreateRefusesAMissingDataDirAndAKeyInsideTheBackupDir) {
  CliRun r = Cli({"create", "--data-dir", tmp_.Sub("nothing"), "--backup-dir", Backups()});
  EXPECT_EQ(r.code, kExitFailed) << r.all();
  MakeStoppedShop();
  r = Cli(
      {"create", "--data-dir", DataDir(), "--backup-dir", tmp_.path(), "--master-key-file", Key()});
  EXPECT_EQ(r.code, kExitFailed) << r.all();
  EXPECT_NE(r.err.find("must not be inside backup dir"), std::string::npos) << r.err;
  r = Cli({"create", "--data-dir", DataDir(), "--backup-dir", Backups(), "--master-key-file",
           tmp_.Sub("missing.key")});
  EXPECT_EQ(r.code, kExitFailed) << r.all();
  EXPECT_FALSE(fs::exists(Backups() + "/meta"));
}

}  // namespace
}  // namespace kv
