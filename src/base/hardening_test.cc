#include "base/hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "kit/files.h"

namespace kv {
namespace {

unsigned ModeOf(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return 0xffff;
  return st.st_mode & 07777;
}

// The process-wide changes run in a forked child (a death-test fork), so they do not leak
// into the other tests of this binary. The child exits 0 when every check held, else with
// the number of the first check that failed.
int HardenThenAllowInChild() {
  rlimit core{};
  if (::getrlimit(RLIMIT_CORE, &core) != 0) return 1;
  // A soft limit the operator might have chosen, which AllowCoreDumps must put back.
  const rlim_t chosen = core.rlim_max == RLIM_INFINITY ? 1 << 20 : core.rlim_max;
  core.rlim_cur = chosen;
  if (::setrlimit(RLIMIT_CORE, &core) != 0) return 2;
  ::umask(022);
  if (!HardenProcess().ok()) return 3;
  if (::getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != 0) return 4;
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return 5;
  if (::umask(077) != 077) return 6;
  // Unset and false leave it hardened; a bad value is refused.
  if (!ApplyAllowCoreDumpsEnv(nullptr).ok() || !ApplyAllowCoreDumpsEnv("no").ok()) return 7;
  if (::getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != 0) return 8;
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return 9;
  const absl::Status bad = ApplyAllowCoreDumpsEnv("maybe");
  if (bad.code() != absl::StatusCode::kInvalidArgument ||
      bad.message() !=
          "invalid value \"maybe\" for KEYVEND_ALLOW_CORE_DUMPS: expected one of "
          "true|false|1|0|yes|no") {
    return 10;
  }
  // A second HardenProcess keeps the limit found first.
  if (!HardenProcess().ok()) return 11;
  if (!ApplyAllowCoreDumpsEnv("yes").ok()) return 12;
  if (::getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != chosen) return 13;
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1) return 14;
  if (::umask(077) != 077) return 15;  // the umask is not part of "allow"
  return 0;
}

TEST(HardenProcessDeathTest, CoreLimitZeroNotDumpableThenAllowPutsBackTheOperatorsLimit) {
  GTEST_FLAG_SET(death_test_style, "fast");
  EXPECT_EXIT(_exit(HardenThenAllowInChild()), ::testing::ExitedWithCode(0), "");
}

TEST(MakeDirPrivate, NarrowsEveryDirAndFileButFollowsNoSymlink) {
  kv::testing::TempDir t;
  const std::string dir = t.Sub("data");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir + "/sub").c_str(), 0755), 0);
  for (const std::string& f : {dir + "/a.sst", dir + "/sub/b", t.Sub("outside")}) {
    std::ofstream(f) << "x";
    ASSERT_EQ(::chmod(f.c_str(), 0644), 0);
  }
  ASSERT_EQ(::chmod((dir + "/sub/b").c_str(), 0640), 0);
  ASSERT_EQ(::symlink(t.Sub("outside").c_str(), (dir + "/link").c_str()), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);  // whatever the umask made of it

  auto changed = MakeDirPrivate(dir);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->dir_mode_before, 0755u);
  EXPECT_EQ(changed->entries_changed, 4u);  // data, sub, a.sst, sub/b
  EXPECT_EQ(ModeOf(dir), 0700u);
  EXPECT_EQ(ModeOf(dir + "/sub"), 0700u);
  EXPECT_EQ(ModeOf(dir + "/a.sst"), 0600u);
  EXPECT_EQ(ModeOf(dir + "/sub/b"), 0600u);
  EXPECT_EQ(ModeOf(t.Sub("outside")), 0644u) << "a symlink's target is not ours to change";

  // Already private: nothing to do.
  changed = MakeDirPrivate(dir);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->dir_mode_before, 0700u);
  EXPECT_EQ(changed->entries_changed, 0u);
}

TEST(MakeDirPrivate, MissingDirOrAFileIsAnError) {
  kv::testing::TempDir t;
  EXPECT_EQ(MakeDirPrivate(t.Sub("nope")).status().code(), absl::StatusCode::kNotFound);
  std::ofstream(t.Sub("file")) << "x";
  EXPECT_EQ(MakeDirPrivate(t.Sub("file")).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kv
