#include "base/clock.h"

#include <time.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "base/random.h"
#include "base/time_format.h"
#include "gtest/gtest.h"

namespace kv {
namespace {

TEST(FakeClock, AdvanceMovesBothClocks) {
  FakeClock c(absl::FromUnixSeconds(1000), 5);
  c.Advance(absl::Seconds(3));
  EXPECT_EQ(c.WallNow(), absl::FromUnixSeconds(1003));
  EXPECT_EQ(c.MonoNowNs(), 5 + 3'000'000'000LL);
}

TEST(FakeClock, WallStepLeavesMonotonicAlone) {
  FakeClock c(absl::FromUnixSeconds(1000), 5);
  c.StepWall(absl::Hours(24));
  EXPECT_EQ(c.WallNow(), absl::FromUnixSeconds(1000 + 86400));
  EXPECT_EQ(c.MonoNowNs(), 5);
  c.StepWall(-absl::Hours(48));
  EXPECT_EQ(c.MonoNowNs(), 5);
}

// Our conversion, not the kernel's clock: MonoNowNs is CLOCK_MONOTONIC in nanoseconds (a
// reading in another unit, or of CLOCK_REALTIME, falls outside the bracket).
TEST(RealClock, MonoNowIsClockMonotonicInNanoseconds) {
  const auto ns = [](const timespec& ts) {
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  };
  timespec before, after;
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &before), 0);
  const int64_t got = RealClock::Get()->MonoNowNs();
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &after), 0);
  EXPECT_GE(got, ns(before));
  EXPECT_LE(got, ns(after));
}

TEST(TimeFormat, Rfc3339Utc) {
  EXPECT_EQ(FormatRfc3339(absl::FromUnixSeconds(1795793045)), "2026-11-27T15:24:05Z");
  EXPECT_EQ(FormatRfc3339(absl::FromUnixMillis(1999)), "1970-01-01T00:00:01Z");
}

TEST(TimeFormat, Rfc3339MillisTruncatesToThreeDigits) {
  EXPECT_EQ(FormatRfc3339Millis(absl::FromUnixMillis(1795793045123)), "2026-11-27T15:24:05.123Z");
  EXPECT_EQ(FormatRfc3339Millis(absl::FromUnixMicros(1999999)), "1970-01-01T00:00:01.999Z");
  EXPECT_EQ(FormatRfc3339Millis(absl::FromUnixSeconds(0)), "1970-01-01T00:00:00.000Z");
}

TEST(Random, SeededIsDeterministicAndSecureVaries) {
  SeededRandom a(7), b(7);
  uint8_t x[32], y[32];
  a.Fill(x, sizeof x);
  b.Fill(y, sizeof y);
  EXPECT_EQ(0, memcmp(x, y, sizeof x));
  uint8_t p[16] = {}, q[16] = {};
  SecureRandom::Get()->Fill(p, sizeof p);
  SecureRandom::Get()->Fill(q, sizeof q);
  EXPECT_NE(0, memcmp(p, q, sizeof p));
}

TEST(Random, BufferedSecureRandomNeverRepeatsAcrossBlocks) {
  BufferedSecureRandom r;
  // 12-byte nonces straddle the 4096-byte block boundary (4096 is not a multiple of 12).
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    uint8_t n[12];
    r.Fill(n, sizeof n);
    EXPECT_TRUE(seen.insert(std::string(reinterpret_cast<char*>(n), sizeof n)).second) << i;
  }
  // A fill larger than a block spans several refills.
  std::vector<uint8_t> big(3 * BufferedSecureRandom::kBlockBytes + 5, 0);
  r.Fill(big.data(), big.size());
  size_t zeros = 0;
  for (uint8_t b : big) zeros += b == 0;
  EXPECT_LT(zeros, big.size() / 64);  // ~1/256 expected; all-zero would mean "not filled"
}

}  // namespace
}  // namespace kv
