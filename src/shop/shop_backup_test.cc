// The shop's backup methods: refusals (off, busy, already running), statistics, the
// scheduled round with its purge, stopping at shutdown, and the option checks of Open.
#include <thread>

#include "backup/dir_lock.h"
#include "base/time_format.h"
#include "gtest/gtest.h"
#include "kit/shop_fixture.h"

namespace kv {
namespace {

class ShopBackupTest : public kv::testing::ShopTest {
 protected:
  std::string BackupDir() const { return tmp_.Sub("backups"); }
  void ReopenWith(const std::function<void(ShopOptions*)>& change) {
    shop_.reset();
    ShopOptions o = Options();
    o.backup_dir = BackupDir();
    change(&o);
    auto s = Shop::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    shop_ = std::move(*s);
  }
  void Populate() {
    const uint64_t pid = MakeProduct();
    Import(pid, 20);
    Order(pid, 2);
  }
};

TEST_F(ShopBackupTest, OffWithoutABackupDir) {
  auto c = shop_->CreateBackup("api");
  ASSERT_TRUE(c.refused());
  EXPECT_EQ(c.refusal(), Refusal::kInvalidState);
  EXPECT_NE(c.message().find("backup_dir"), std::string::npos) << c.message();
  auto l = shop_->ListBackups();
  ASSERT_TRUE(l.refused());
  EXPECT_EQ(l.refusal(), Refusal::kInvalidState);
  const BackupRunStats s = shop_->BackupStats();
  EXPECT_EQ(s.succeeded + s.failed, 0u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopBackupTest, CreatesListsAndCounts) {
  ReopenWith([](ShopOptions*) {});
  Populate();
  auto none = shop_->ListBackups();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->backups.empty());
  clock_.Advance(absl::Seconds(5));
  auto c = shop_->CreateBackup("api");
  ASSERT_TRUE(c.ok()) << (c.refused() ? c.message() : c.status().ToString());
  EXPECT_EQ(c->id, 1u);
  EXPECT_EQ(c->metadata->source, "api");
  EXPECT_EQ(c->metadata->orders, 1u);
  const BackupRunStats s = shop_->BackupStats();
  EXPECT_EQ(s.succeeded, 1u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_FALSE(s.running);
  EXPECT_EQ(s.last_success_unix_ms, UnixMs(clock_.WallNow()));
  EXPECT_EQ(s.last_failure_unix_ms, 0);
  auto l = shop_->ListBackups();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->backups.size(), 1u);
  EXPECT_EQ(l->backups[0].id, 1u);

  // After a restart the newest backup in the dir is the last success.
  ReopenWith([](ShopOptions*) {});
  const BackupRunStats again = shop_->BackupStats();
  EXPECT_EQ(again.succeeded, 0u);
  EXPECT_EQ(again.last_success_unix_ms, l->backups[0].finished_unix_seconds * 1000);
  EXPECT_GT(again.last_success_unix_ms, 0);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopBackupTest, ABusyBackupDirIsARefusalAndCountsAsAFailure) {
  ReopenWith([](ShopOptions*) {});
  Populate();
  ASSERT_TRUE(shop_->CreateBackup("api").ok());
  {
    auto purge_running = backup::DirLock::Acquire(BackupDir(), backup::BackupOp::kDelete);
    ASSERT_TRUE(purge_running.ok());
    auto c = shop_->CreateBackup("api");
    ASSERT_TRUE(c.refused());
    EXPECT_EQ(c.refusal(), Refusal::kInvalidState);
    EXPECT_NE(c.message().find("busy"), std::string::npos) << c.message();
    // A listing waits for the purge to end (purges are short) instead of failing.
    std::thread purge_ends([&purge_running] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      purge_running = absl::AbortedError("released");  // drops the lock
    });
    auto l = shop_->ListBackups();
    purge_ends.join();
    ASSERT_TRUE(l.ok()) << (l.refused() ? l.message() : l.status().ToString());
    EXPECT_EQ(l->backups.size(), 1u);
  }
  const BackupRunStats s = shop_->BackupStats();
  EXPECT_EQ(s.succeeded, 1u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_GT(s.last_failure_unix_ms, 0);
  EXPECT_NE(s.last_error.find("busy"), std::string::npos);
  EXPECT_EQ(shop_->ListBackups()->backups.size(), 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

// A backup slowed down by its rate limit is running; a second one is refused, and
// StopBackups ends the first one (Cancelled) and refuses later ones.
TEST_F(ShopBackupTest, OneAtATimeAndStoppedAtShutdown) {
  ReopenWith([](ShopOptions* o) { o->backup_rate_limit_bytes_per_second = 4096; });
  Populate();
  Result<backup::BackupInfo> first = absl::InternalError("not run");
  std::thread t([&] { first = shop_->CreateBackup("api"); });
  while (!shop_->BackupStats().running) std::this_thread::yield();
  auto second = shop_->CreateBackup("api");
  ASSERT_TRUE(second.refused());
  EXPECT_EQ(second.refusal(), Refusal::kInvalidState);
  EXPECT_NE(second.message().find("already running"), std::string::npos) << second.message();
  shop_->StopBackups();
  t.join();
  ASSERT_TRUE(first.failed());
  EXPECT_EQ(first.status().code(), absl::StatusCode::kCancelled) << first.status();
  auto later = shop_->CreateBackup("api");
  ASSERT_TRUE(later.failed());
  EXPECT_EQ(later.status().code(), absl::StatusCode::kCancelled);
  auto l = shop_->ListBackups();
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->backups.empty()) << "a stopped backup is not a backup";
  const BackupRunStats s = shop_->BackupStats();
  EXPECT_EQ(s.succeeded, 0u);
  EXPECT_EQ(s.failed, 2u);  // the stopped one and the one refused after the stop
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopBackupTest, ScheduledRoundsKeepTheNewestN) {
  ReopenWith([](ShopOptions* o) { o->backup_keep = 2; });
  Populate();
  for (int i = 0; i < 4; ++i) {
    Order(1, 1);
    ASSERT_TRUE(shop_->RunScheduledBackup().ok());
  }
  auto l = shop_->ListBackups();
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->backups.size(), 2u);
  EXPECT_EQ(l->backups[0].id, 3u);
  EXPECT_EQ(l->backups[1].id, 4u);
  EXPECT_EQ(l->backups[1].metadata->source, "schedule");
  EXPECT_EQ(l->backups[1].metadata->orders, 5u);
  EXPECT_EQ(shop_->BackupStats().succeeded, 4u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopBackupTest, OpenRefusesOverlappingDirsAndAKeyInsideTheBackupDir) {
  shop_.reset();
  ShopOptions inside = Options();
  inside.backup_dir = inside.data_dir + "/backups";
  auto a = Shop::Open(inside);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << a.status();

  ShopOptions key_in_backup = Options();
  key_in_backup.backup_dir = tmp_.path();  // holds master.key (and the data dir)
  auto b = Shop::Open(key_in_backup);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << b.status();

  ShopOptions key_only = Options();
  key_only.backup_dir = tmp_.Sub("keys-and-backups");
  key_only.master_key_file = tmp_.Sub("keys-and-backups/master.key");
  auto c = Shop::Open(key_only);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("must not be inside backup dir"), std::string::npos)
      << c.status();
}

}  // namespace
}  // namespace kv
