#include "base/crash_point.h"

#include <signal.h>

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace kv::crash {
namespace {

TEST(CrashPointTest, EveryNameIsUniqueDottedAndFound) {
  ASSERT_GE(kPointCount, 16);
  std::set<std::string> seen;
  for (int i = 0; i < kPointCount; ++i) {
    const std::string name = kPoints[i].name;
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_NE(name.find('.'), std::string::npos) << name;
    EXPECT_EQ(IndexOf(name), i);
    EXPECT_NE(std::string(kPoints[i].where), "");
  }
  EXPECT_EQ(IndexOf("payment.nowhere"), -1);
  EXPECT_EQ(IndexOf(""), -1);
  static_assert(IndexOf("payment.before_write") >= 0);
}

TEST(CrashPointTest, ArmRefusesUnknownPointsBadPassesAndPowerWithoutAHook) {
  EXPECT_EQ(Arm("payment.nowhere", Mode::kKill).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Arm("nope", Mode::kKill).message().find("known: order.before_write"),
            std::string::npos);
  for (const char* bad :
       {"payment.before_write:", "payment.before_write:0", "payment.before_write:-1",
        "payment.before_write:1x", "payment.before_write:1000001"}) {
    EXPECT_EQ(Arm(bad, Mode::kKill).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // No hook was set in this process.
  EXPECT_EQ(Arm("payment.before_write", Mode::kPower).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Armed(), "");  // nothing was armed by the refusals
}

// A passed point that is not armed does nothing; the armed one dies at its nth pass with
// SIGKILL and says where (in a death-test child: the parent never arms).
TEST(CrashPointDeathTest, DiesAtTheNthPassOfTheArmedPointOnly) {
  KV_CRASH_POINT("payment.before_write");  // not armed: nothing
  EXPECT_EXIT(
      {
        if (!Arm("import.after_write:3", Mode::kKill).ok()) std::_Exit(3);
        for (int i = 0; i < 5; ++i) KV_CRASH_POINT("payment.before_write");
        KV_CRASH_POINT("import.after_write");
        KV_CRASH_POINT("import.after_write");
        std::fputs("two passes survived\n", stderr);
        KV_CRASH_POINT("import.after_write");
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGKILL),
      "two passes survived\ncrash point import.after_write: pass 3, kill");
}

TEST(CrashPointDeathTest, PowerModeRunsTheHookFirst) {
  EXPECT_EXIT(
      {
        SetPowerCutHook([] { std::fputs("hook ran\n", stderr); });
        if (!Arm("order.after_write", Mode::kPower).ok()) std::_Exit(3);
        KV_CRASH_POINT("order.after_write");
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "crash point order.after_write: pass 1, power\nhook ran");
}

}  // namespace
}  // namespace kv::crash
