// Black-box tests of backups (SPEC §8, issue 5) against the real binaries: `keyvend serve`
// with a backup_dir, and `keyvend-backup`.
//
//  - An online backup taken while orders are being created and paid: verify, restore to a
//    new dir, the restored dir passes `keyvend check`, a server started on it serves every
//    order acknowledged before the backup was requested (paid ones with their keys).
//  - One flipped byte in a backup file: verify exits 1 naming the file; restore refuses.
//  - purge keeps exactly N; a data dir in use is refused with a pointer to `create --url`.
//  - The admin routes' refusals, SIGTERM during a backup (503, nothing kept), the scheduler
//    (keep N) and the backup metrics.
// No tool output and no server output may hold a card key.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "http_test_util.h"

#ifndef KEYVEND_BACKUP_BIN
#error "KEYVEND_BACKUP_BIN must name the keyvend-backup binary"
#endif

namespace kv::httptest {
namespace {

namespace fs = std::filesystem;

constexpr char kAdminToken[] = "adm-backup-5e1f0c3a9d7b2e48-0123456789ab";
constexpr char kPaymentSecret[] = "pay-backup-8c2a4e6f0b1d3f57";

// Runs keyvend-backup with `extra_env` (NAME=value; nothing else of ours named KEYVEND_*).
RunResult RunTool(const std::vector<std::string>& args,
                  const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> argv = {KEYVEND_BACKUP_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, {.env = extra_env, .timeout = milliseconds(300000)});
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = NewServer();
    std::random_device rd;
    tag_ = std::to_string(rd() % 100000);
  }

  void TearDown() override {
    if (server_ != nullptr && server_->running()) {
      const int status = server_->Terminate();
      EXPECT_TRUE(ExitedZero(status)) << "SIGTERM: " << DescribeWait(status);
    }
    std::string printed = printed_;
    if (server_ != nullptr) printed += server_->AllOutput();
    if (restored_ != nullptr) printed += restored_->AllOutput();
    for (const std::string& k : imported_) {
      ASSERT_EQ(printed.find(k), std::string::npos) << "a card key was printed";
    }
  }

  std::unique_ptr<ServerProcess> NewServer() {
    return std::make_unique<ServerProcess>(
        std::vector<std::string>{std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                                 std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret});
  }
  void StartServer(const std::vector<std::string>& extra) {
    std::string error;
    ASSERT_TRUE(server_->Start(extra, &error)) << error;
    api_ = std::make_unique<Api>(server_->port(), kAdminToken);
  }
  std::string Root() const { return server_->root(); }
  std::string BackupDir() const { return Root() + "/backups"; }

  RunResult Tool(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    RunResult r = RunTool(args, env);
    printed_ += r.out;
    return r;
  }
  RunResult CreateOnline() {
    return Tool({"create", "--url", server_->url(), "--master-key-file", server_->key_file()},
                {std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken});
  }

  std::string MakeProduct(Api& api) {
    const Reply r = api.AdminPost(
        "/api/v1/admin/products",
        R"({"name":"backup test","price_cents":300,"currency":"EUR","max_per_order":2})");
    EXPECT_EQ(r.status, 201) << r;
    return r.json()["id"].str();
  }
  void ImportKeys(Api& api, const std::string& pid, int n) {
    std::string body;
    for (int i = 0; i < n; ++i) {
      imported_.push_back("BK-" + tag_ + "-" + std::to_string(imported_.size()) + "-Z9Q");
      body += imported_.back() + "\n";
    }
    const Reply r = api.AdminPost("/api/v1/admin/products/" + pid + "/keys", body, "text/plain");
    ASSERT_EQ(r.status, 200) << r;
    ASSERT_EQ(r.json()["imported"].num(), n) << r;
  }

  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<ServerProcess> restored_;
  std::unique_ptr<Api> api_;
  std::vector<std::string> imported_;
  std::string printed_;
  std::string tag_;
};

struct Acked {
  std::string order_id, token;
  bool paid = false;
  std::vector<std::string> keys;  // read back after the payment (delivered)
};

TEST_F(BackupTest, OnlineBackupUnderOrderLoadRestoresEveryAcknowledgedOrder) {
  StartServer({"--backup-dir", BackupDir()});
  const std::string pid = MakeProduct(*api_);
  ImportKeys(*api_, pid, 20000);

  // Buyers: create orders as fast as they can; every 4th is paid at once and its keys read.
  std::mutex mu;
  std::vector<Acked> acked;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> buyers;
  for (int t = 0; t < 8; ++t) {
    buyers.emplace_back([&, t] {
      Api api(server_->port(), kAdminToken);
      for (int i = 0; !stop.load(); ++i) {
        const std::string body = "{\"product_id\":" + Quote(pid) +
                                 ",\"quantity\":1,\"contact\":\"b" + std::to_string(t) +
                                 "@x.test\"}";
        const Reply r = api.Post("/api/v1/orders", body);
        if (r.status != 201) {
          ++errors;
          continue;
        }
        const Json j = r.json();
        Acked a{j["order_id"].str(), j["token"].str(), false, {}};
        if (i % 4 == 0) {
          const Reply paid = SendNotify(
              api, kPaymentSecret,
              NotifyBody(a.order_id, "pay-" + a.order_id, j["amount_cents"].num(), "EUR"));
          if (paid.status != 200) {
            ++errors;
            continue;
          }
          const Reply got = api.Get("/api/v1/orders/" + a.order_id + "?token=" + a.token);
          a.paid = true;
          for (const Json& k : got.json()["keys"].items()) a.keys.push_back(k.str());
          if (a.keys.size() != 1) ++errors;
        }
        std::lock_guard<std::mutex> l(mu);
        acked.push_back(std::move(a));
      }
    });
  }
  ASSERT_TRUE(PollUntil(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return acked.size() >= 400;
      },
      milliseconds(60000)));
  // Everything acknowledged up to here was acknowledged before the backup was requested.
  std::vector<Acked> before;
  {
    std::lock_guard<std::mutex> l(mu);
    before = acked;
  }
  const RunResult created = CreateOnline();
  // Let the buyers run a little past the backup, then stop them.
  std::this_thread::sleep_for(milliseconds(200));
  stop = true;
  for (std::thread& b : buyers) b.join();
  ASSERT_EQ(created.exit_code, 0) << created.out;
  EXPECT_NE(created.out.find("backup 1 of " + server_->url()), std::string::npos) << created.out;
  EXPECT_EQ(errors.load(), 0);
  size_t total = 0;
  {
    std::lock_guard<std::mutex> l(mu);
    total = acked.size();
  }
  EXPECT_GT(total, before.size()) << "selling went on during and after the backup";

  // While the shop runs, its data dir cannot be backed up offline.
  const RunResult offline = Tool({"create", "--data-dir", server_->data_dir(), "--backup-dir",
                                  Root() + "/offline", "--master-key-file", server_->key_file()});
  EXPECT_EQ(offline.exit_code, 1) << offline.out;
  EXPECT_NE(offline.out.find("create --url"), std::string::npos) << offline.out;

  const RunResult verified =
      Tool({"verify", "--backup-dir", BackupDir(), "--master-key-file", server_->key_file()});
  EXPECT_EQ(verified.exit_code, 0) << verified.out;
  EXPECT_NE(verified.out.find("backup 1: OK"), std::string::npos) << verified.out;

  const std::string to = Root() + "/restored";
  const RunResult restored = Tool({"restore", "--backup-dir", BackupDir(), "--to", to,
                                   "--master-key-file", server_->key_file()});
  ASSERT_EQ(restored.exit_code, 0) << restored.out;
  EXPECT_NE(restored.out.find("keyvend check: OK"), std::string::npos) << restored.out;

  ASSERT_TRUE(ExitedZero(server_->Terminate()));
  const RunResult check = RunKeyvendCheck(server_->data_dir(), server_->key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;

  // A server on the restored dir serves every order acknowledged before the backup.
  restored_ = NewServer();
  std::string error;
  ASSERT_TRUE(
      restored_->Start({"--data-dir", to, "--master-key-file", server_->key_file()}, &error))
      << error;
  Api api(restored_->port(), kAdminToken);
  size_t paid = 0;
  for (const Acked& a : before) {
    const Reply r = api.Get("/api/v1/orders/" + a.order_id + "?token=" + a.token);
    ASSERT_EQ(r.status, 200) << "order acknowledged before the backup is missing: " << r;
    const Json j = r.json();
    if (a.paid) {
      ++paid;
      EXPECT_EQ(j["status"].str(), "delivered") << r;
      std::vector<std::string> keys;
      for (const Json& k : j["keys"].items()) keys.push_back(k.str());
      EXPECT_EQ(keys, a.keys);
    } else {
      EXPECT_EQ(j["status"].str(), "pending_payment") << r;
    }
  }
  EXPECT_GT(paid, 0u);
  ASSERT_TRUE(ExitedZero(restored_->Terminate()));
  const RunResult check2 = RunKeyvendCheck(to, server_->key_file());
  EXPECT_EQ(check2.exit_code, 0) << check2.out;
}

TEST_F(BackupTest, FlippedByteFailsVerifyNamingTheFileAndRestoreRefuses) {
  StartServer({"--backup-dir", BackupDir()});
  const std::string pid = MakeProduct(*api_);
  ImportKeys(*api_, pid, 500);
  ASSERT_EQ(api_->AdminPost("/api/v1/admin/backups", "").status, 201);
  ASSERT_TRUE(ExitedZero(server_->Terminate()));
  std::string victim;
  for (const auto& e : fs::directory_iterator(BackupDir() + "/shared_checksum")) {
    if (e.path().extension() == ".sst" && fs::file_size(e.path()) > 4096) {
      victim = e.path().string();  // the pool's table: the imported keys
    }
  }
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(2000);
    char c = 0;
    f.get(c);
    f.seekp(2000);
    f.put(static_cast<char>(c ^ 0x40));
  }
  const std::string rel = fs::relative(victim, BackupDir()).string();
  const RunResult v = Tool({"verify", "--backup-dir", BackupDir()});
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_NE(v.out.find("backup 1: CORRUPT " + rel + ": checksum mismatch"), std::string::npos)
      << v.out;
  const std::string to = Root() + "/restored";
  const RunResult r = Tool({"restore", "--backup-dir", BackupDir(), "--to", to, "--master-key-file",
                            server_->key_file()});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_FALSE(fs::exists(to));
}

TEST_F(BackupTest, PurgeKeepsExactlyN) {
  StartServer({"--backup-dir", BackupDir()});
  const std::string pid = MakeProduct(*api_);
  for (int i = 0; i < 5; ++i) {
    ImportKeys(*api_, pid, 10);
    const Reply r = api_->AdminPost("/api/v1/admin/backups", "{}");
    ASSERT_EQ(r.status, 201) << r;
    EXPECT_EQ(r.json()["backup"]["id"].str(), std::to_string(i + 1));
    EXPECT_EQ(r.json()["backup"]["keys"].num(), 10 * (i + 1));
  }
  const RunResult p = Tool({"purge", "--backup-dir", BackupDir(), "--keep", "2"});
  ASSERT_EQ(p.exit_code, 0) << p.out;
  EXPECT_NE(p.out.find("purged 1, 2, 3; kept 4, 5"), std::string::npos) << p.out;
  const Reply list = api_->AdminGet("/api/v1/admin/backups");
  ASSERT_EQ(list.status, 200) << list;
  const Json j = list.json();
  ASSERT_EQ(j["backups"].size(), 2u) << list;
  EXPECT_EQ(j["backups"][0]["id"].str(), "4");
  EXPECT_EQ(j["backups"][1]["id"].str(), "5");
  EXPECT_EQ(j["backups"][1]["keys"].num(), 50);
  EXPECT_EQ(j["backup_dir"].str(), BackupDir());
  const RunResult v = Tool({"verify", "--backup-dir", BackupDir()});
  EXPECT_EQ(v.exit_code, 0) << v.out;
}

TEST_F(BackupTest, AdminRoutesRefuseWhenBackupsAreOffOrWithoutTheToken) {
  StartServer({});
  EXPECT_TRUE(IsError(api_->AdminPost("/api/v1/admin/backups", ""), 409, "invalid_state"));
  EXPECT_TRUE(IsError(api_->AdminGet("/api/v1/admin/backups"), 409, "invalid_state"));
  EXPECT_TRUE(IsError(api_->Post("/api/v1/admin/backups", ""), 401, "unauthorized"));
  EXPECT_TRUE(
      IsError(api_->AdminPost("/api/v1/admin/backups", R"({"dir":"/tmp"})"), 400, "unknown_field"));
  const RunResult c = CreateOnline();
  EXPECT_EQ(c.exit_code, 1) << c.out;
  EXPECT_NE(c.out.find("409 invalid_state"), std::string::npos) << c.out;
  const RunResult no_token = Tool({"create", "--url", server_->url()});
  EXPECT_EQ(no_token.exit_code, 2) << no_token.out;
  const RunResult wrong_token =
      Tool({"create", "--url", server_->url()}, {"KEYVEND_ADMIN_TOKEN=nope"});
  EXPECT_EQ(wrong_token.exit_code, 1) << wrong_token.out;
  EXPECT_NE(wrong_token.out.find("401 unauthorized"), std::string::npos) << wrong_token.out;
}

// SIGTERM while an online backup runs: the backup is stopped (its request answers 503
// not_ready), the drain is not held up, nothing of the backup is kept, the shop is intact.
TEST_F(BackupTest, SigtermStopsARunningBackup) {
  // 1 MiB/s: the backup of ~50,000 keys takes seconds, long enough to be caught running.
  StartServer({"--backup-dir", BackupDir(), "--backup-rate-limit-mb", "1"});
  const std::string pid = MakeProduct(*api_);
  ImportKeys(*api_, pid, 50000);
  Reply answer;
  std::thread request([&] {
    Api api(server_->port(), kAdminToken);
    answer = api.AdminPost("/api/v1/admin/backups", "");
  });
  const bool running = PollUntil(
      [&] {
        // The sample line, not the HELP text (which also reads "keyvend_backup_running 1 ...").
        return api_->Get("/metrics").body.find("\nkeyvend_backup_running 1\n") != std::string::npos;
      },
      milliseconds(30000));
  const int status = server_->Terminate();
  request.join();
  ASSERT_TRUE(running);
  EXPECT_TRUE(ExitedZero(status)) << DescribeWait(status);
  EXPECT_TRUE(IsError(answer, 503, "not_ready")) << answer;
  const RunResult l = Tool({"list", "--backup-dir", BackupDir(), "--json"});
  ASSERT_EQ(l.exit_code, 0) << l.out;
  EXPECT_EQ(Json::Parse(l.out)["backups"].size(), 0u) << l.out;
  const RunResult check = RunKeyvendCheck(server_->data_dir(), server_->key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

TEST_F(BackupTest, SchedulerKeepsNAndTheMetricsSayWhen) {
  StartServer(
      {"--backup-dir", BackupDir(), "--backup-interval-seconds", "1", "--backup-keep", "2"});
  const std::string pid = MakeProduct(*api_);
  ImportKeys(*api_, pid, 100);
  const auto successes = [&] {
    const Reply m = api_->Get("/metrics");
    const std::string line = "keyvend_backups_total{result=\"success\"} ";
    const size_t p = m.body.find(line);
    return p == std::string::npos ? -1 : std::atoi(m.body.c_str() + p + line.size());
  };
  ASSERT_TRUE(PollUntil([&] { return successes() >= 3; }, milliseconds(60000)));
  const Reply m = api_->Get("/metrics");
  EXPECT_NE(m.body.find("keyvend_backup_last_success_timestamp_seconds 1"), std::string::npos)
      << "a Unix time";
  EXPECT_NE(m.body.find("keyvend_backup_last_failure_timestamp_seconds 0"), std::string::npos);
  EXPECT_NE(m.body.find("keyvend_backups_total{result=\"failure\"} 0"), std::string::npos);
  const Reply list = api_->AdminGet("/api/v1/admin/backups");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.json()["schedule"]["interval_seconds"].num(), 1);
  EXPECT_EQ(list.json()["schedule"]["keep"].num(), 2);
  EXPECT_TRUE(list.json()["last_success_at"].is_string());
  ASSERT_TRUE(ExitedZero(server_->Terminate()));
  // After the shutdown no round is half done: exactly the newest 2 are left.
  const RunResult l = Tool({"list", "--backup-dir", BackupDir(), "--json"});
  ASSERT_EQ(l.exit_code, 0) << l.out;
  const Json j = Json::Parse(l.out);
  ASSERT_EQ(j["backups"].size(), 2u) << l.out;
  EXPECT_EQ(j["backups"][0]["source"].str(), "schedule");
  EXPECT_EQ(std::stoi(j["backups"][1]["id"].str()), std::stoi(j["backups"][0]["id"].str()) + 1);
}

}  // namespace
}  // namespace kv::httptest
