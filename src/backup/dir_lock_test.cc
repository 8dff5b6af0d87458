#include "backup/dir_lock.h"

#include <optional>
#include <thread>

#include "gtest/gtest.h"
#include "kit/files.h"

namespace kv::backup {
namespace {

bool Busy(const absl::StatusOr<DirLock>& l) {
  return !l.ok() && l.status().code() == absl::StatusCode::kAborted &&
         l.status().message().find("is busy") != std::string::npos;
}

TEST(DirLock, FollowsTheCompatibilityTable) {
  kv::testing::TempDir dir;
  const std::string d = dir.path();
  {
    auto append = DirLock::Acquire(d, BackupOp::kAppend);
    ASSERT_TRUE(append.ok()) << append.status();
    EXPECT_TRUE(Busy(DirLock::Acquire(d, BackupOp::kAppend)));
    EXPECT_TRUE(Busy(DirLock::Acquire(d, BackupOp::kDelete)));
    EXPECT_TRUE(DirLock::Acquire(d, BackupOp::kRead).ok());  // a reader sees the old state
  }
  {
    auto read = DirLock::Acquire(d, BackupOp::kRead);
    ASSERT_TRUE(read.ok()) << read.status();
    auto read2 = DirLock::Acquire(d, BackupOp::kRead);
    EXPECT_TRUE(read2.ok()) << read2.status();
    EXPECT_TRUE(DirLock::Acquire(d, BackupOp::kAppend).ok());
    auto del = DirLock::Acquire(d, BackupOp::kDelete);
    EXPECT_TRUE(Busy(del)) << del.status();
  }
  {
    auto del = DirLock::Acquire(d, BackupOp::kDelete);
    ASSERT_TRUE(del.ok()) << del.status();
    EXPECT_TRUE(Busy(DirLock::Acquire(d, BackupOp::kRead)));
    EXPECT_TRUE(Busy(DirLock::Acquire(d, BackupOp::kAppend)));
    EXPECT_TRUE(Busy(DirLock::Acquire(d, BackupOp::kDelete)));
  }
  // All released: everything is free again.
  for (BackupOp op : {BackupOp::kRead, BackupOp::kAppend, BackupOp::kDelete}) {
    EXPECT_TRUE(DirLock::Acquire(d, op).ok());
  }
}

TEST(DirLock, AFailedDeleteLockHoldsNothing) {
  kv::testing::TempDir dir;
  auto read = DirLock::Acquire(dir.path(), BackupOp::kRead);
  ASSERT_TRUE(read.ok());
  // The purge gets the append lock, then fails on the delete lock: it must let the append
  // lock go again.
  EXPECT_TRUE(Busy(DirLock::Acquire(dir.path(), BackupOp::kDelete)));
  EXPECT_TRUE(DirLock::Acquire(dir.path(), BackupOp::kAppend).ok());
}

TEST(DirLock, MovedLockStaysHeldUntilItsLastOwnerGoes) {
  kv::testing::TempDir dir;
  std::optional<DirLock> held;
  {
    auto l = DirLock::Acquire(dir.path(), BackupOp::kAppend);
    ASSERT_TRUE(l.ok());
    held.emplace(std::move(*l));
  }
  EXPECT_TRUE(Busy(DirLock::Acquire(dir.path(), BackupOp::kAppend)));
  held.reset();
  EXPECT_TRUE(DirLock::Acquire(dir.path(), BackupOp::kAppend).ok());
}

TEST(DirLock, WaitsForAHolderThatLetsGo) {
  kv::testing::TempDir dir;
  std::optional<DirLock> purge;
  {
    auto l = DirLock::Acquire(dir.path(), BackupOp::kDelete);
    ASSERT_TRUE(l.ok());
    purge.emplace(std::move(*l));
  }
  std::thread done([&purge] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    purge.reset();
  });
  auto read = DirLock::Acquire(dir.path(), BackupOp::kRead, absl::Seconds(30));
  done.join();
  EXPECT_TRUE(read.ok()) << read.status();
}

TEST(DirLock, MissingDirIsAnError) {
  auto l = DirLock::Acquire("/nonexistent-keyvend-dir/x", BackupOp::kAppend);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), absl::StatusCode::kNotFound) << l.status();
}

}  // namespace
}  // namespace kv::backup
