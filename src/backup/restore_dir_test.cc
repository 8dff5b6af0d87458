// The restore's staging dir (backup/restore_dir.h): a restore goes through it and leaves
// none behind; leftovers of dead restores are removed by the next restore into the same
// target — and only they: a dir with the wrong name, no marker, another marker, a symlink,
// or one a live restore holds is left alone, as is everything in a refused target.
#include "backup/restore_dir.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "backup/backup.h"
#include "gtest/gtest.h"
#include "kit/shop_fixture.h"

namespace kv::backup {
namespace {

namespace fs = std::filesystem;

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

// What a restore killed before its rename leaves: the marker and a half-filled db/.
void MakeDeadStaging(const std::string& dir, const std::string& marker = kMarkerText) {
  fs::create_directories(dir + "/db");
  WriteFile(dir + "/" + kMarkerName, marker);
  WriteFile(dir + "/db/000012.sst", "half a table");
}

class RestoreDirTest : public kv::testing::ShopTest {
 protected:
  std::string BackupDir() const { return tmp_.Sub("backups"); }
  std::string Parent() const { return tmp_.Sub("restores"); }
  std::string Target() const { return Parent() + "/shop"; }
  std::string KeyCheck() {
    auto kcv = shop_->db()->Get(storage::kCfMeta, storage::kMetaKeyCheck);
    EXPECT_TRUE(kcv.ok() && kcv->has_value());
    return kcv.ok() && kcv->has_value() ? **kcv : std::string();
  }
  void SetUp() override {
    ShopTest::SetUp();
    const uint64_t p = MakeProduct();
    Import(p, 5);
    EXPECT_EQ(Pay(Order(p, 2)).outcome, PaymentOutcome::kApplied);
    CreateOptions o;
    o.clock = &clock_;
    ASSERT_TRUE(Create(*shop_->db(), BackupDir(), o).ok());
    fs::create_directories(Parent());
  }
};

TEST_F(RestoreDirTest, ARestoreLeavesOnlyTheTargetAPrivateCompleteShop) {
  auto r = Restore(BackupDir(), std::nullopt, Target(), KeyCheck());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Names(Parent()), std::set<std::string>{"shop"});
  struct stat st {};
  ASSERT_EQ(::stat(Target().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(Names(Target()).count(kMarkerName), 0u);
  EXPECT_TRUE(CheckDir(Target()).empty());
}

TEST_F(RestoreDirTest, AnExistingEmptyTargetIsReplacedWhole) {
  fs::create_directories(Target());
  ::chmod(Target().c_str(), 0755);
  auto r = Restore(BackupDir(), std::nullopt, Target(), KeyCheck());
  ASSERT_TRUE(r.ok()) << r.status();
  struct stat st {};
  ASSERT_EQ(::stat(Target().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(Names(Parent()), std::set<std::string>{"shop"});
  EXPECT_TRUE(CheckDir(Target()).empty());
}

TEST_F(RestoreDirTest, LeftoversOfDeadRestoresAreRemovedAndTheRestoreSucceeds) {
  const std::string before = Target() + ".restoring-0123456789ab";  // died before the rename
  const std::string after = Target() + ".restoring-ba9876543210";   // died after it: marker only
  MakeDeadStaging(before);
  fs::create_directories(after);
  WriteFile(after + "/" + kMarkerName, kMarkerText);
  auto r = Restore(BackupDir(), std::nullopt, Target(), KeyCheck());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Names(Parent()), std::set<std::string>{"shop"});
  EXPECT_TRUE(CheckDir(Target()).empty());
}

TEST_F(RestoreDirTest, WhatIsNotClearlyOursIsNeverRemoved) {
  const std::string t = Target();
  // Each fails one condition: the name pattern, the marker's presence, type or text.
  MakeDeadStaging(t + ".restoring-0123456789AB");               // upper-case hex
  MakeDeadStaging(t + ".restoring-0123456789a");                // 11 hex digits
  MakeDeadStaging(t + ".restoring-0123456789abc");              // 13
  MakeDeadStaging(Parent() + "/other.restoring-0123456789ab");  // another target's
  MakeDeadStaging(t + ".restoring-111111111111", "my notes\n");
  MakeDeadStaging(t + ".restoring-222222222222", std::string(kMarkerText) + "x");
  fs::create_directories(t + ".restoring-333333333333/db");              // no marker
  fs::create_directories(t + ".restoring-444444444444/" + kMarkerName);  // marker is a dir
  // A marker that is a symlink to a genuine marker elsewhere.
  MakeDeadStaging(tmp_.Sub("elsewhere"));
  fs::create_directories(t + ".restoring-555555555555");
  fs::create_symlink(tmp_.Sub("elsewhere") + "/" + kMarkerName,
                     t + ".restoring-555555555555/" + kMarkerName);
  // A symlink named like a staging dir, pointing at a genuine-looking one elsewhere.
  fs::create_directory_symlink(tmp_.Sub("elsewhere"), t + ".restoring-666666666666");
  // A regular file named like one.
  WriteFile(t + ".restoring-777777777777", kMarkerText);
  // A live restore: its marker is flock'd.
  const std::string live = t + ".restoring-888888888888";
  MakeDeadStaging(live);
  const int fd = ::open((live + "/" + kMarkerName).c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  const std::set<std::string> before = Names(Parent());
  ASSERT_EQ(before.size(), 12u);

  auto removed = RemoveLeftovers(t);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed->empty());
  auto r = Restore(BackupDir(), std::nullopt, t, KeyCheck());
  ASSERT_TRUE(r.ok()) << r.status();
  std::set<std::string> expected = before;
  expected.insert("shop");
  EXPECT_EQ(Names(Parent()), expected);
  EXPECT_TRUE(fs::exists(live + "/db/000012.sst"));
  EXPECT_TRUE(fs::exists(tmp_.Sub("elsewhere") + "/db/000012.sst"));

  // The live restore dies (its flock goes): then it is a leftover like any other.
  ::close(fd);
  removed = RemoveLeftovers(t);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, std::vector<std::string>{live});
  EXPECT_FALSE(fs::exists(live));
}

TEST_F(RestoreDirTest, ANonEmptyTargetIsRefusedAndKeptButDeadStagingIsCleared) {
  fs::create_directories(Target());
  WriteFile(Target() + "/precious.txt", "keep me");
  const std::string dead = Target() + ".restoring-0123456789ab";
  MakeDeadStaging(dead);
  auto r = Restore(BackupDir(), std::nullopt, Target(), KeyCheck());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("not empty"), std::string::npos) << r.status();
  EXPECT_EQ(Names(Target()), std::set<std::string>{"precious.txt"});
  EXPECT_EQ(Names(Parent()), std::set<std::string>{"shop"});
}

TEST_F(RestoreDirTest, AFailedRestoreLeavesNoStagingDirAndTheTargetAsItWas) {
  // A target whose parent is missing: Begin fails, nothing is created.
  auto r = Restore(BackupDir(), std::nullopt, Parent() + "/no/such/shop", KeyCheck());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot create " + Parent() + "/no/such/shop.restoring-"),
            std::string::npos)
      << r.status();
  EXPECT_TRUE(Names(Parent()).empty());
  // A corrupt backup: the copy fails in the staging dir, which is removed.
  for (const auto& e : fs::recursive_directory_iterator(BackupDir() + "/shared_checksum")) {
    if (e.path().extension() != ".sst") continue;
    ::chmod(e.path().c_str(), 0600);
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x5a');
  }
  fs::create_directories(Target());
  auto bad = Restore(BackupDir(), std::nullopt, Target(), KeyCheck());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(Names(Parent()), std::set<std::string>{"shop"});
  EXPECT_TRUE(Names(Target()).empty());
}

TEST_F(RestoreDirTest, TargetsThatNameNoDirectoryAreRefused) {
  for (const char* t : {"/", "..", "."}) {
    EXPECT_EQ(RestoreDir::Begin(t).status().code(), absl::StatusCode::kInvalidArgument) << t;
    EXPECT_EQ(RemoveLeftovers(t).status().code(), absl::StatusCode::kInvalidArgument) << t;
  }
}

TEST_F(RestoreDirTest, BeginThenDropRemovesTheStagingDir) {
  std::string path;
  {
    auto d = RestoreDir::Begin(Target() + "/");
    ASSERT_TRUE(d.ok()) << d.status();
    path = d->path();
    EXPECT_TRUE(fs::is_directory(d->db_dir()));
    EXPECT_EQ(kv::testing::ReadFile(path + "/" + kMarkerName), kMarkerText);
    // Live: a cleaner leaves it alone.
    auto removed = RemoveLeftovers(Target());
    ASSERT_TRUE(removed.ok());
    EXPECT_TRUE(removed->empty());
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(Target()));
}

}  // namespace
}  // namespace kv::backup
