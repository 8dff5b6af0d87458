// The backup library on a real shop's database: create, list, verify, restore, purge, the
// incremental copy, corruption named by file, refusals that change nothing, and a backup
// taken while orders are being created.
#include "backup/backup.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "backup/dir_lock.h"
#include "gtest/gtest.h"
#include "kit/shop_fixture.h"
#include "rocksdb/utilities/backup_engine.h"

namespace kv::backup {
namespace {

namespace fs = std::filesystem;

class BackupTest : public kv::testing::ShopTest {
 protected:
  std::string BackupDir() const { return tmp_.Sub("backups"); }
  std::string KeyCheck() {
    auto kcv = shop_->db()->Get(storage::kCfMeta, storage::kMetaKeyCheck);
    EXPECT_TRUE(kcv.ok() && kcv->has_value());
    return kcv.ok() && kcv->has_value() ? **kcv : std::string();
  }
  absl::StatusOr<BackupInfo> Backup(const std::string& source = "offline") {
    CreateOptions o;
    o.source = source;
    o.clock = &clock_;
    return Create(*shop_->db(), BackupDir(), o);
  }
  // A shop with two products, keys, and orders in several states.
  void Populate() {
    const uint64_t p1 = MakeProduct();
    const uint64_t p2 = MakeProduct(StockMode::kOnPayment, /*backorder=*/true);
    Import(p1, 50);
    Import(p2, 5);
    for (int i = 0; i < 5; ++i) orders_.push_back(Order(p1, 2));
    orders_.push_back(Order(p2, 1));
    EXPECT_EQ(Pay(orders_[0]).outcome, PaymentOutcome::kApplied);
    EXPECT_EQ(Pay(orders_[1]).outcome, PaymentOutcome::kApplied);
    EXPECT_EQ(Pay(orders_.back()).outcome, PaymentOutcome::kApplied);
  }
  std::unique_ptr<Shop> OpenShopOn(const std::string& dir) {
    ShopOptions o = Options();
    o.data_dir = dir;
    o.create_if_missing = false;
    auto s = Shop::Open(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::vector<std::string> SharedTableFiles() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(BackupDir() + "/shared_checksum")) {
      if (e.path().extension() == ".sst") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // The table files (relative to the backup dir) that every backup uses, asked of
  // RocksDB's own engine.
  std::vector<std::string> FilesOfEveryBackup() {
    rocksdb::BackupEngineReadOnly* raw = nullptr;
    EXPECT_TRUE(rocksdb::BackupEngineReadOnly::Open(rocksdb::BackupEngineOptions(BackupDir()),
                                                    rocksdb::Env::Default(), &raw)
                    .ok());
    std::unique_ptr<rocksdb::BackupEngineReadOnly> engine(raw);
    std::vector<rocksdb::BackupInfo> infos;
    engine->GetBackupInfo(&infos, /*include_file_details=*/true);
    std::map<std::string, size_t> uses;
    for (const auto& i : infos) {
      for (const auto& f : i.file_details) {
        if (absl::EndsWith(f.relative_filename, ".sst")) ++uses[f.relative_filename];
      }
    }
    std::vector<std::string> out;
    for (const auto& [name, n] : uses) {
      if (n == infos.size()) out.push_back(name);
    }
    return out;
  }
  static void FlipByte(const std::string& path, size_t at) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << path;
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(c ^ 0x01));
    ASSERT_TRUE(f.good());
  }

  std::vector<OrderView> orders_;
};

TEST_F(BackupTest, CreateListVerifyRestoreGivesTheSameShop) {
  Populate();
  auto b = Backup("api");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->id, 1u);
  EXPECT_GT(b->size_bytes, 0u);
  EXPECT_GT(b->files, 0u);
  ASSERT_TRUE(b->metadata.has_value()) << b->metadata_error;
  EXPECT_EQ(b->metadata->source, "api");
  EXPECT_EQ(b->metadata->products, 2u);
  EXPECT_EQ(b->metadata->keys, 55u);
  EXPECT_EQ(b->metadata->keys_in_pool, 55u - 2 - 2 - 1);
  EXPECT_EQ(b->metadata->orders, 6u);
  EXPECT_EQ(b->metadata->key_check, KeyCheck());
  EXPECT_EQ((fs::status(BackupDir()).permissions() & fs::perms::all), fs::perms::owner_all);

  auto list = List(BackupDir());
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->backups.size(), 1u);
  EXPECT_EQ(list->backups[0].id, 1u);
  EXPECT_EQ(list->backups[0].metadata, b->metadata);
  EXPECT_TRUE(list->unreadable.empty());
  EXPECT_EQ(list->bytes_on_disk, b->size_bytes);

  const std::string kcv = KeyCheck();
  auto v = Verify(BackupDir(), std::nullopt, &kcv);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->ok()) << v->problems[0].what << " " << v->problems[0].detail;
  EXPECT_EQ(v->verified, std::vector<BackupId>{1});

  const std::string to = tmp_.Sub("restored");
  auto r = Restore(BackupDir(), std::nullopt, to, kcv);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, 1u);
  EXPECT_TRUE(CheckDir(to).empty());
  // The restored shop serves every order with its token, keys included.
  std::vector<OrderView> before;
  for (const OrderView& o : orders_) {
    auto got = shop_->GetOrder(o.order_id, o.token);
    ASSERT_TRUE(got.ok());
    before.push_back(*got);
  }
  shop_.reset();
  auto restored = OpenShopOn(to);
  ASSERT_NE(restored, nullptr);
  for (const OrderView& o : before) {
    auto got = restored->GetOrder(o.order_id, orders_[&o - before.data()].token);
    ASSERT_TRUE(got.ok()) << o.order_id;
    EXPECT_EQ(got->status, o.status);
    EXPECT_EQ(got->keys, o.keys);
  }
  EXPECT_EQ(restored->Stock(1).available, 50 - 10);
}

TEST_F(BackupTest, SecondBackupSharesTheTableFilesOfTheFirst) {
  Populate();
  auto b1 = Backup();
  ASSERT_TRUE(b1.ok()) << b1.status();
  const std::vector<std::string> after_first = SharedTableFiles();
  ASSERT_FALSE(after_first.empty());
  Order(1, 1);
  auto b2 = Backup();
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_EQ(b2->id, 2u);
  EXPECT_EQ(b2->metadata->orders, 7u);
  const std::vector<std::string> after_second = SharedTableFiles();
  // Every table file of the first backup is still there, unchanged, and used again: the
  // second backup copied only what is new.
  for (const std::string& f : after_first) {
    EXPECT_TRUE(std::binary_search(after_second.begin(), after_second.end(), f)) << f;
  }
  EXPECT_GT(after_second.size(), after_first.size());
  auto list = List(BackupDir());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->backups.size(), 2u);
  EXPECT_LT(list->bytes_on_disk, b1->size_bytes + b2->size_bytes);
  EXPECT_GT(list->bytes_on_disk, b2->size_bytes);
}

TEST_F(BackupTest, OneFlippedByteIsNamedByVerifyAndStopsARestore) {
  Populate();
  ASSERT_TRUE(Backup().ok());
  Order(1, 1);
  ASSERT_TRUE(Backup().ok());  // backup 2 shares backup 1's table files
  // A table file both backups use (compactions between them may have replaced some).
  const std::vector<std::string> shared = FilesOfEveryBackup();
  ASSERT_FALSE(shared.empty());
  const std::string rel = shared.front();
  const std::string victim = BackupDir() + "/" + rel;
  FlipByte(victim, static_cast<size_t>(fs::file_size(victim) / 2));

  auto v = Verify(BackupDir(), std::nullopt, nullptr);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_FALSE(v->ok());
  ASSERT_EQ(v->problems.size(), 2u);  // the file is shared: both backups need it
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(v->problems[i].id, i + 1);
    EXPECT_EQ(v->problems[i].file, rel) << v->problems[i].detail;
    EXPECT_EQ(v->problems[i].what, "checksum mismatch") << v->problems[i].detail;
  }
  EXPECT_TRUE(v->verified.empty());
  auto one = Verify(BackupDir(), 2, nullptr);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->problems.size(), 1u);
  EXPECT_EQ(one->problems[0].id, 2u);

  const std::string to = tmp_.Sub("restored");
  auto r = Restore(BackupDir(), std::nullopt, to, KeyCheck());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_FALSE(fs::exists(to)) << "a failed restore leaves nothing behind";
}

TEST_F(BackupTest, AFlippedByteInThePrivateFilesIsNamedToo) {
  Populate();
  ASSERT_TRUE(Backup().ok());
  std::string manifest;
  for (const auto& e : fs::directory_iterator(BackupDir() + "/private/1")) {
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0) manifest = e.path().string();
  }
  ASSERT_FALSE(manifest.empty());
  FlipByte(manifest, 10);
  auto v = Verify(BackupDir(), 1, nullptr);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->problems.size(), 1u);
  EXPECT_EQ(v->problems[0].file, fs::relative(manifest, BackupDir()).string());
}

TEST_F(BackupTest, VerifyReportsAWrongKeyAndAnUnknownId) {
  Populate();
  ASSERT_TRUE(Backup().ok());
  const std::string wrong(32, '\x01');
  auto v = Verify(BackupDir(), std::nullopt, &wrong);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->problems.size(), 1u);
  EXPECT_EQ(v->problems[0].what, "wrong master key");
  auto missing = Verify(BackupDir(), 7, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto no_dir = Verify(tmp_.Sub("nowhere"), std::nullopt, nullptr);
  EXPECT_EQ(no_dir.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BackupTest, RestoreRefusesANonEmptyDirAndAWrongKeyWritingNothing) {
  Populate();
  ASSERT_TRUE(Backup().ok());
  const std::string to = tmp_.Sub("occupied");
  fs::create_directories(to);
  { std::ofstream(to + "/precious.txt") << "keep me"; }
  auto r = Restore(BackupDir(), std::nullopt, to, KeyCheck());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("not empty"), std::string::npos);
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(to)) entries.push_back(e.path().filename());
  EXPECT_EQ(entries, std::vector<std::string>{"precious.txt"});

  const std::string fresh = tmp_.Sub("fresh");
  auto wrong = Restore(BackupDir(), std::nullopt, fresh, std::string(32, '\x02'));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_FALSE(fs::exists(fresh));

  auto inside = Restore(BackupDir(), std::nullopt, BackupDir() + "/x", KeyCheck());
  EXPECT_EQ(inside.status().code(), absl::StatusCode::kInvalidArgument) << inside.status();
  auto no_such = Restore(BackupDir(), 9, fresh, KeyCheck());
  EXPECT_EQ(no_such.status().code(), absl::StatusCode::kNotFound) << no_such.status();
  EXPECT_FALSE(fs::exists(fresh));

  // An existing, empty dir is fine.
  fs::create_directories(fresh);
  auto ok = Restore(BackupDir(), 1, fresh, KeyCheck());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(CheckDir(fresh).empty());
}

TEST_F(BackupTest, PurgeKeepsExactlyTheNewestN) {
  Populate();
  for (int i = 0; i < 5; ++i) {
    Order(1, 1);
    ASSERT_TRUE(Backup().ok());
  }
  auto zero = Purge(BackupDir(), 0);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  auto p = Purge(BackupDir(), 2);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->deleted, (std::vector<BackupId>{1, 2, 3}));
  EXPECT_EQ(p->kept, (std::vector<BackupId>{4, 5}));
  auto list = List(BackupDir());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->backups.size(), 2u);
  EXPECT_EQ(list->backups[0].id, 4u);
  EXPECT_EQ(list->backups[1].id, 5u);
  auto v = Verify(BackupDir(), std::nullopt, nullptr);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok()) << "purge must keep every file the kept backups need";
  auto again = Purge(BackupDir(), 2);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->deleted.empty());
  auto more = Purge(BackupDir(), 10);
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->kept.size(), 2u);
  // The next backup continues the numbering.
  auto next = Backup();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->id, 6u);
}

TEST_F(BackupTest, EnsureBackupDirMakesAnEmptyListableDirAlsoFromARelativePath) {
  // A relative path has no parent component to create (a bug once reported "cannot
  // create : No such file or directory" for `--backup-dir ./backups`).
  const fs::path cwd = fs::current_path();
  fs::current_path(tmp_.path());
  const absl::Status s = EnsureBackupDir("./rel-backups");
  const bool made = fs::is_directory(tmp_.Sub("rel-backups"));
  fs::current_path(cwd);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_TRUE(made);
  EXPECT_EQ(fs::status(tmp_.Sub("rel-backups")).permissions() & fs::perms::all,
            fs::perms::owner_all);
  auto list = List(tmp_.Sub("rel-backups"));
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_TRUE(list->backups.empty());
  EXPECT_TRUE(EnsureBackupDir(tmp_.Sub("rel-backups")).ok()) << "an existing dir is fine";
}

TEST_F(BackupTest, BusyDirIsRefusedAndNothingChanges) {
  Populate();
  ASSERT_TRUE(Backup().ok());
  {
    auto held = DirLock::Acquire(BackupDir(), BackupOp::kAppend);
    ASSERT_TRUE(held.ok());
    auto b = Backup();
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kAborted) << b.status();
    EXPECT_EQ(Purge(BackupDir(), 1, absl::ZeroDuration()).status().code(),
              absl::StatusCode::kAborted);
    EXPECT_TRUE(List(BackupDir(), absl::ZeroDuration()).ok());  // reading beside an append
  }
  {
    auto reading = DirLock::Acquire(BackupDir(), BackupOp::kRead);
    ASSERT_TRUE(reading.ok());
    EXPECT_EQ(Purge(BackupDir(), 1, absl::ZeroDuration()).status().code(),
              absl::StatusCode::kAborted);
    EXPECT_TRUE(Backup().ok());  // appending beside a reader is allowed
  }
  auto list = List(BackupDir());
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->backups.size(), 2u);
}

TEST_F(BackupTest, RefusesABackupDirThatOverlapsTheDataDir) {
  Populate();
  CreateOptions o;
  auto inside = Create(*shop_->db(), tmp_.Sub("data") + "/backups", o);
  EXPECT_EQ(inside.status().code(), absl::StatusCode::kInvalidArgument) << inside.status();
  auto around = Create(*shop_->db(), tmp_.path(), o);
  EXPECT_EQ(around.status().code(), absl::StatusCode::kInvalidArgument) << around.status();
  EXPECT_FALSE(fs::exists(tmp_.Sub("data") + "/backups"));
  EXPECT_TRUE(CheckDirsApart(tmp_.Sub("a"), "a", tmp_.Sub("ab"), "b").ok());
}

TEST_F(BackupTest, AStoppedTokenCancelsAndLeavesNoBackup) {
  Populate();
  StopToken stop;
  stop.Stop();
  CreateOptions o;
  o.stop = &stop;
  auto b = Create(*shop_->db(), BackupDir(), o);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kCancelled) << b.status();
  auto list = List(BackupDir());
  if (list.ok()) {
    EXPECT_TRUE(list->backups.empty());
  }
}

// Orders keep being created while the backup runs; every order acknowledged before Create
// was called is in the restored shop, and the restored shop passes the check.
TEST_F(BackupTest, BackupUnderOrderLoadHoldsEveryOrderAcknowledgedBeforeIt) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, false, 1);
  Import(pid, 20000);
  std::mutex mu;
  std::vector<OrderView> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load() && i < 4000; ++i) {
        auto r = shop_->CreateOrder(OrderRequest{pid, 1, absl::StrCat("w", t, "@x.test")});
        if (!r.ok()) continue;
        std::lock_guard<std::mutex> l(mu);
        acked.push_back(*r);
      }
    });
  }
  // Let some orders in first.
  while (true) {
    std::this_thread::yield();
    std::lock_guard<std::mutex> l(mu);
    if (acked.size() >= 500) break;
  }
  size_t before_backup;
  {
    std::lock_guard<std::mutex> l(mu);
    before_backup = acked.size();
  }
  auto b = Backup();
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GE(b->metadata->orders, before_backup);

  const std::string to = tmp_.Sub("restored");
  ASSERT_TRUE(Restore(BackupDir(), b->id, to, KeyCheck()).ok());
  EXPECT_TRUE(CheckDir(to).empty());
  shop_.reset();
  auto restored = OpenShopOn(to);
  ASSERT_NE(restored, nullptr);
  for (size_t i = 0; i < before_backup; ++i) {
    auto got = restored->GetOrder(acked[i].order_id, acked[i].token);
    ASSERT_TRUE(got.ok()) << "order " << i << " of " << before_backup << " acknowledged "
                          << "before the backup is missing";
  }
}

}  // namespace
}  // namespace kv::backup
