// DiskSpaceGuard (storage/disk_space.h) on the real file system of the test's temp dir.
#include "storage/disk_space.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "kit/files.h"

namespace kv::storage {
namespace {

TEST(DiskSpaceGuardTest, RefusesBelowTheMinimumAndSaysWhy) {
  kv::testing::TempDir tmp;
  DiskSpaceGuard more_than_any_disk(tmp.path(), uint64_t{1} << 62);
  EXPECT_TRUE(more_than_any_disk.low());  // read at construction: the first write is refused
  EXPECT_GT(more_than_any_disk.free_bytes(), 0);
  const absl::Status s = more_than_any_disk.Check();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(DiskSpaceGuard::IsRefusal(s)) << s;
  EXPECT_NE(s.message().find("min_free_disk_mb"), absl::string_view::npos) << s;

  DiskSpaceGuard one_byte(tmp.path(), 1);
  EXPECT_FALSE(one_byte.low());
  EXPECT_TRUE(one_byte.Check().ok());
}

TEST(DiskSpaceGuardTest, OtherFailuresAreNotItsRefusal) {
  EXPECT_FALSE(DiskSpaceGuard::IsRefusal(absl::OkStatus()));
  EXPECT_FALSE(DiskSpaceGuard::IsRefusal(absl::UnavailableError("IO error: No space left")));
  EXPECT_FALSE(DiskSpaceGuard::IsRefusal(absl::InternalError("disk almost full: 1 MiB")));
}

TEST(DiskSpaceGuardTest, AnUnreadableDirLeavesTheDecisionToTheDatabase) {
  DiskSpaceGuard g("/nonexistent/keyvend-disk-guard", uint64_t{1} << 62);
  EXPECT_FALSE(g.low());
  EXPECT_EQ(g.free_bytes(), -1);
  EXPECT_TRUE(g.Check().ok());
}

}  // namespace
}  // namespace kv::storage
