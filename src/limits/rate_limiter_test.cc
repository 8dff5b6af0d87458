#include "limits/rate_limiter.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kv {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(TokenBucket, BurstThenRate) {
  TokenBucket b(RateLimit{10, 5}, 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.Take(0), 0) << i;  // the burst
  const int64_t wait = b.Take(0);
  EXPECT_EQ(wait, kSecond / 10);  // one token every 100 ms
  EXPECT_GT(b.Take(kSecond / 10 - 1), 0);
  EXPECT_EQ(b.Take(kSecond / 10), 0);
  // A long pause refills only up to the burst.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.Take(100 * kSecond), 0) << i;
  EXPECT_GT(b.Take(100 * kSecond), 0);
}

TEST(TokenBucket, FractionalRatesAndRetryAfter) {
  TokenBucket b(RateLimit{0.5, 1}, 0);  // one every 2 s
  EXPECT_EQ(b.Take(0), 0);
  EXPECT_EQ(b.Take(0), 2 * kSecond);
  EXPECT_EQ(b.Take(kSecond), kSecond);
  EXPECT_EQ(b.Take(2 * kSecond), 0);
}

TEST(TokenBucket, UnlimitedAndBackwardTime) {
  TokenBucket u(RateLimit{0, 1}, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(u.Take(0), 0);
  TokenBucket b(RateLimit{1, 1}, 10 * kSecond);
  EXPECT_EQ(b.Take(10 * kSecond), 0);
  EXPECT_GT(b.Take(5 * kSecond), 0);  // time going back adds nothing
  EXPECT_EQ(b.Take(11 * kSecond), 0);
  EXPECT_TRUE(b.FullAt(12 * kSecond));
  EXPECT_FALSE(b.FullAt(11 * kSecond + kSecond / 2));
}

TEST(RateLimiter, OneAbusiveClientDoesNotStarveAnother) {
  FakeClock clock;
  RateLimiter rl(&clock, RateLimit{1000, 1000}, RateLimit{2, 2}, 1024);
  EXPECT_EQ(rl.Admit("10.0.0.1"), 0);
  EXPECT_EQ(rl.Admit("10.0.0.1"), 0);
  for (int i = 0; i < 50; ++i) EXPECT_GT(rl.Admit("10.0.0.1"), 0);
  EXPECT_EQ(rl.Admit("10.0.0.2"), 0);  // another client is unaffected
  clock.Advance(absl::Milliseconds(500));
  EXPECT_EQ(rl.Admit("10.0.0.1"), 0);  // refilled at 2/s
}

TEST(RateLimiter, GlobalBucketCapsEveryone) {
  FakeClock clock;
  RateLimiter rl(&clock, RateLimit{10, 3}, RateLimit{0, 1}, 1024);
  int admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += rl.Admit("ip" + std::to_string(i)) == 0;
  EXPECT_EQ(admitted, 3);
  clock.Advance(absl::Seconds(1));
  admitted = 0;
  for (int i = 0; i < 100; ++i) admitted += rl.Admit("ip" + std::to_string(i)) == 0;
  EXPECT_EQ(admitted, 3);  // the burst again, not 10 + 3
}

TEST(RateLimiter, MemoryIsBoundedAndIdleClientsAreEvicted) {
  FakeClock clock;
  RateLimiter rl(&clock, RateLimit{0, 1}, RateLimit{1, 1}, 64);
  for (int i = 0; i < 10'000; ++i) rl.Admit("c" + std::to_string(i));
  EXPECT_LE(rl.clients(), 64u);
  // Clients that come and go: each is idle (its bucket full again) a second later, so its
  // slot is reused and every newcomer is admitted.
  for (int i = 0; i < 1'000; ++i) {
    clock.Advance(absl::Seconds(1));
    EXPECT_EQ(rl.Admit("n" + std::to_string(i)), 0) << i;
  }
  EXPECT_LE(rl.clients(), 64u);
  // A flood of distinct addresses within one instant: nobody is idle, so newcomers beyond
  // the table's room are refused instead of growing memory.
  int refused = 0;
  for (int i = 0; i < 1'000; ++i) refused += rl.Admit("flood" + std::to_string(i)) > 0;
  EXPECT_GT(refused, 900);
  EXPECT_LE(rl.clients(), 64u);
}

TEST(RateLimiter, ExactUnderManyThreads) {
  FakeClock clock;  // time stands still: exactly the bursts get through
  RateLimiter rl(&clock, RateLimit{1, 500}, RateLimit{1, 10}, 4096);
  std::atomic<int> admitted{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        if (rl.Admit("client-" + std::to_string((t * 1000 + i) % 100)) == 0) ++admitted;
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(admitted.load(), 500);  // 100 clients × 10 would be 1,000: the global 500 caps it
}

}  // namespace
}  // namespace kv
