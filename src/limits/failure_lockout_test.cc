#include "limits/failure_lockout.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kv {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

// A 16-byte key (a contact tag or an order id in the shop).
std::string Key(int i) {
  std::string k = absl::StrCat("key-", i);
  k.resize(FailureLockout::kKeyBytes, '.');
  return k;
}

// One try: Begin, and when it is let through, Finish. Returns Begin's answer.
int64_t Try(FailureLockout& l, const std::string& key, bool failed) {
  const int64_t wait = l.Begin(key);
  if (wait == 0) l.Finish(key, failed);
  return wait;
}

TEST(FailureLockout, LocksAfterMaxFailuresInTheWindowRightSecretIncluded) {
  FakeClock clock;
  FailureLockout l(&clock, LockoutPolicy{});  // 10 in 600 s, 60 s doubling to a day
  for (int i = 0; i < 9; ++i) {
    ASSERT_EQ(l.Begin(Key(1)), 0) << i;
    EXPECT_EQ(l.Finish(Key(1), true), 0) << i;
    clock.Advance(absl::Seconds(30));  // 9 failures over 4.5 minutes
  }
  ASSERT_EQ(l.Begin(Key(1)), 0);
  EXPECT_EQ(l.Finish(Key(1), true), 60 * kSecond) << "the 10th failure locks for 60 s";
  // Locked: every try is refused, whatever its secret would have been, with the time left.
  EXPECT_EQ(l.Begin(Key(1)), 60 * kSecond);
  clock.Advance(absl::Seconds(59));
  EXPECT_EQ(l.Begin(Key(1)), 1 * kSecond);
  // Another key is not affected.
  EXPECT_EQ(Try(l, Key(2), true), 0);
  // The lock ends; the count starts afresh.
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(Try(l, Key(1), false), 0);
}

TEST(FailureLockout, FailuresOutsideTheWindowDoNotAddUp) {
  FakeClock clock;
  FailureLockout l(&clock, LockoutPolicy{});
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 9; ++i) ASSERT_EQ(Try(l, Key(1), true), 0) << round << " " << i;
    clock.Advance(absl::Seconds(600));  // the window of the first failure has passed
  }
  EXPECT_EQ(Try(l, Key(1), true), 0);
}

TEST(FailureLockout, EachFurtherLockDoublesUpToTheMax) {
  FakeClock clock;
  FailureLockout l(&clock, LockoutPolicy{});
  std::vector<int64_t> locks;
  for (int lock = 0; lock < 14; ++lock) {
    for (int i = 0; i < 9; ++i) ASSERT_EQ(Try(l, Key(7), true), 0);
    ASSERT_EQ(l.Begin(Key(7)), 0);
    const int64_t ns = l.Finish(Key(7), true);
    locks.push_back(ns / kSecond);
    EXPECT_EQ(l.Begin(Key(7)), ns);
    clock.Advance(absl::Nanoseconds(ns));
  }
  EXPECT_EQ(locks, (std::vector<int64_t>{60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 30720,
                                         61440, 86400, 86400, 86400}));
  // The doubling is forgotten only after a whole lockout_seconds_max without a lock.
  clock.Advance(absl::Seconds(86400 - 1));
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Try(l, Key(7), true), 0);
  EXPECT_EQ(l.Begin(Key(7)), 86400 * kSecond);
  clock.Advance(absl::Seconds(86400 + 86400));
  for (int i = 0; i < 9; ++i) ASSERT_EQ(Try(l, Key(7), true), 0);
  ASSERT_EQ(l.Begin(Key(7)), 0);
  EXPECT_EQ(l.Finish(Key(7), true), 60 * kSecond);
}

TEST(FailureLockout, SuccessesResetNothing) {
  // A contact can have orders with different passwords (anyone may order under any
  // contact): knowing one must not buy unlimited guesses at the others.
  FakeClock clock;
  FailureLockout l(&clock, LockoutPolicy{});
  for (int i = 0; i < 9; ++i) {
    ASSERT_EQ(Try(l, Key(3), true), 0);
    ASSERT_EQ(Try(l, Key(3), false), 0);
  }
  ASSERT_EQ(l.Begin(Key(3)), 0);
  EXPECT_EQ(l.Finish(Key(3), true), 60 * kSecond);
}

TEST(FailureLockout, ConcurrentTriesCannotOvershootTheCount) {
  FakeClock clock;
  FailureLockout l(&clock, LockoutPolicy{});
  for (int i = 0; i < 8; ++i) ASSERT_EQ(Try(l, Key(4), true), 0);
  // Two tries in flight reach the count: a third waits for their outcome.
  ASSERT_EQ(l.Begin(Key(4)), 0);
  ASSERT_EQ(l.Begin(Key(4)), 0);
  EXPECT_EQ(l.Begin(Key(4)), kSecond);
  EXPECT_EQ(l.Finish(Key(4), true), 0);
  EXPECT_EQ(l.Finish(Key(4), true), 60 * kSecond);
  EXPECT_EQ(l.Begin(Key(4)), 60 * kSecond);

  // Many threads, one key: exactly failures_max tries are evaluated before the lock.
  FailureLockout m(&clock, LockoutPolicy{});
  std::atomic<int> evaluated{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (m.Begin(Key(5)) != 0) continue;
        evaluated.fetch_add(1);
        m.Finish(Key(5), true);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(evaluated.load(), 10);
}

TEST(FailureLockout, OffKeepsNothing) {
  FakeClock clock;
  LockoutPolicy off;
  off.failures_max = 0;
  FailureLockout l(&clock, off);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(Try(l, Key(1), true), 0);
  EXPECT_EQ(l.keys(), 0u);
}

TEST(FailureLockout, SuccessfulTriesLeaveNoState) {
  FakeClock clock;
  FailureLockout l(&clock, LockoutPolicy{});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(Try(l, Key(i), false), 0);
  EXPECT_EQ(l.keys(), 0u);
}

TEST(FailureLockout, BoundedTableEvictsSprayBeforeRealCountsAndLocks) {
  FakeClock clock;
  LockoutPolicy p;
  p.keys_max = 160;  // 10 per shard
  FailureLockout l(&clock, p);
  // A victim with 9 failures and a locked key.
  for (int i = 0; i < 9; ++i) ASSERT_EQ(Try(l, Key(-1), true), 0);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Try(l, Key(-2), true), 0);
  ASSERT_GT(l.Begin(Key(-2)), 0);
  // An attacker sprays 100,000 keys with one failure each.
  for (int i = 0; i < 100'000; ++i) Try(l, Key(i), true);
  EXPECT_LE(l.keys(), 160u) << "memory stays bounded";
  // The victim's count and the lock survived the spray.
  ASSERT_EQ(l.Begin(Key(-1)), 0);
  EXPECT_EQ(l.Finish(Key(-1), true), 60 * kSecond);
  EXPECT_EQ(l.Begin(Key(-2)), 60 * kSecond);
}

TEST(FailureLockout, ATableFullOfLocksRefusesNewKeysUntilALockEnds) {
  FakeClock clock;
  LockoutPolicy p;
  p.failures_max = 1;  // every failure locks
  p.keys_max = 16;     // one per shard
  FailureLockout l(&clock, p);
  for (int i = 0; i < 1000 && l.keys() < 16; ++i) Try(l, Key(i), true);
  ASSERT_EQ(l.keys(), 16u);
  // Every shard holds a locked key: a new key is refused (fail closed), not counted.
  int refused = 0;
  for (int i = 1000; i < 1100; ++i) {
    const int64_t wait = l.Begin(Key(i));
    if (wait == 0) {
      l.Finish(Key(i), false);
    } else {
      EXPECT_LE(wait, 60 * kSecond);
      ++refused;
    }
  }
  EXPECT_EQ(refused, 100);
  EXPECT_EQ(l.keys(), 16u);
  clock.Advance(absl::Seconds(60));
  EXPECT_EQ(Try(l, Key(1000), false), 0) << "the locks ended: room again";
}

}  // namespace
}  // namespace kv
