#include "app/fd_budget.h"

#include <sys/resource.h>

#include <string>

#include "gtest/gtest.h"
#include "http/acceptor.h"  // only for the constant the budget copies

namespace kv {
namespace {

// The budget copies the acceptor's linger pool by value (the app does not include http).
static_assert(kFdLingerMax == static_cast<int64_t>(http::Acceptor::kLingerMax),
              "kFdLingerMax must equal Acceptor::kLingerMax");

Config Small() {
  Config c;
  c.max_connections = 100;
  c.reserve_connections = 2;
  c.waiting_connections_max = 10;
  c.ops_max_connections = 5;
  return c;
}

TEST(FdBudgetTest, SumsEveryPartOfOneListener) {
  const FdBudget b = ComputeFdBudget(Small(), 2);
  EXPECT_EQ(b.connections, 100);
  EXPECT_EQ(b.reserve, 2);
  EXPECT_EQ(b.ops_connections, 0);  // no ops_listen: its cap does not count
  EXPECT_EQ(b.listeners, 1);
  EXPECT_EQ(b.waiting_per_listener, 10);
  EXPECT_EQ(b.linger, kFdLingerMax);
  EXPECT_EQ(b.io_loops, 2 * kFdPerIoLoop);
  EXPECT_EQ(b.storage, kFdStorageMargin);
  EXPECT_EQ(b.process, kFdProcessMargin);
  EXPECT_EQ(b.total(),
            100 + 2 + 10 + kFdLingerMax + 2 * kFdPerIoLoop + kFdStorageMargin + kFdProcessMargin);
}

TEST(FdBudgetTest, OpsListenerAddsItsCapAndItsOwnWaitingSet) {
  Config c = Small();
  c.ops_listen = "127.0.0.1:0";
  const FdBudget b = ComputeFdBudget(c, 2);
  EXPECT_EQ(b.ops_connections, 5);
  EXPECT_EQ(b.listeners, 2);
  EXPECT_EQ(b.total(), ComputeFdBudget(Small(), 2).total() + 5 + 10);
}

TEST(FdBudgetTest, UnlimitedWaitingIsNotCountedAndAtLeastOneIoLoop) {
  Config c = Small();
  c.waiting_connections_max = 0;  // no limit
  EXPECT_EQ(ComputeFdBudget(c, 2).total(), ComputeFdBudget(Small(), 2).total() - 10);
  EXPECT_EQ(ComputeFdBudget(c, 0).io_loops, kFdPerIoLoop);
}

TEST(FdBudgetTest, OutboundClientsCountOnlyWhenConfigured) {
  const int64_t base = ComputeFdBudget(Small(), 2).total();
  EXPECT_EQ(ComputeFdBudget(Small(), 2).outbound, 0);
  Config c = Small();
  c.webhook_url = "https://hooks.example.com/keyvend";
  EXPECT_EQ(ComputeFdBudget(c, 2).outbound, (8 + 2) * 2);
  c.smtp_url = "smtp://mail.example.com";
  c.mail_parallel_sessions = 16;
  EXPECT_EQ(ComputeFdBudget(c, 2).outbound, (8 + 2) * 2 + 16 * 3);
  c.mail_parallel_sessions = 1;  // the idle pool keeps 4 sessions whatever the concurrency
  EXPECT_EQ(ComputeFdBudget(c, 2).outbound, (8 + 2) * 2 + 4 * 3);
  c.payment_gateways = "stripe";
  c.worker_threads_max = 256;
  const FdBudget b = ComputeFdBudget(c, 2);
  EXPECT_EQ(b.outbound, (8 + 2) * 2 + 4 * 3 + (8 + 256 + 1) * 2);
  EXPECT_EQ(b.total(), base + b.outbound);
  EXPECT_NE(b.Describe().find(std::to_string(b.outbound) + " for outbound HTTP and SMTP"),
            std::string::npos)
      << b.Describe();
}

TEST(FdBudgetTest, ShippedDefaultsFitTwentyThousandDescriptorsEvenWithTheOpsListener) {
  // This machine's (and many containers') hard limit; the shipped defaults must start.
  Config c;
  EXPECT_LE(ComputeFdBudget(c, 2).total(), 20000) << ComputeFdBudget(c, 2).Describe();
  c.ops_listen = "127.0.0.1:8081";
  EXPECT_LE(ComputeFdBudget(c, 2).total(), 20000) << ComputeFdBudget(c, 2).Describe();
}

TEST(FdBudgetTest, DescribeNamesEveryPart) {
  Config c = Small();
  c.ops_listen = "127.0.0.1:0";
  EXPECT_EQ(ComputeFdBudget(c, 1).Describe(),
            "100 max_connections + 2 reserve_connections + 5 ops_max_connections + 2 listeners "
            "x 10 waiting_connections_max + " +
                std::to_string(kFdLingerMax) + " lingering refusals + " +
                std::to_string(kFdPerIoLoop) + " for the I/O loops + " +
                std::to_string(kFdStorageMargin) + " for RocksDB + " +
                std::to_string(kFdProcessMargin) + " for the process");
}

TEST(FdBudgetTest, FitsWhenTheLimitCoversTheTotalOrIsUnlimited) {
  const FdBudget b = ComputeFdBudget(Small(), 2);
  EXPECT_TRUE(CheckFdBudget(b, b.total(), b.total()).ok());
  EXPECT_TRUE(CheckFdBudget(b, b.total() + 1, -1).ok());
  EXPECT_TRUE(CheckFdBudget(b, -1, -1).ok());
}

TEST(FdBudgetTest, RefusalNamesTheCountTheLimitAndTheFix) {
  const FdBudget b = ComputeFdBudget(Small(), 2);
  const std::string n = std::to_string(b.total());
  const absl::Status s = CheckFdBudget(b, b.total() - 1, 4096);
  ASSERT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  const std::string m(s.message());
  EXPECT_NE(m.find("needs " + n + " (" + b.Describe() + ")"), std::string::npos) << m;
  EXPECT_NE(m.find("RLIMIT_NOFILE) is " + std::to_string(b.total() - 1) + " (hard limit 4096)"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("`ulimit -n " + n + "`"), std::string::npos) << m;
  EXPECT_NE(m.find("LimitNOFILE=" + n), std::string::npos) << m;
  EXPECT_NE(m.find("lower max_connections or waiting_connections_max"), std::string::npos) << m;
  EXPECT_NE(std::string(CheckFdBudget(b, 10, -1).message()).find("(hard limit unlimited)"),
            std::string::npos);
}

// Restores the process's RLIMIT_NOFILE when a test ends.
class RlimitGuard {
 public:
  RlimitGuard() { getrlimit(RLIMIT_NOFILE, &saved_); }
  ~RlimitGuard() { setrlimit(RLIMIT_NOFILE, &saved_); }
  const rlimit& saved() const { return saved_; }

 private:
  rlimit saved_{};
};

TEST(FdBudgetTest, RaisesTheSoftLimitToTheHardOneThenChecks) {
  RlimitGuard guard;
  if (guard.saved().rlim_max == RLIM_INFINITY || guard.saved().rlim_max <= 64) {
    GTEST_SKIP() << "needs a finite hard limit above 64";
  }
  rlimit low = guard.saved();
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  FdBudget fits;  // all zero but the margins
  fits.storage = 1;
  EXPECT_TRUE(RaiseAndCheckFdLimit(fits).ok());
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, guard.saved().rlim_max);

  FdBudget too_big;
  too_big.connections = static_cast<int64_t>(guard.saved().rlim_max) + 1;
  const absl::Status s = RaiseAndCheckFdLimit(too_big);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(std::string(s.message()).find("is " + std::to_string(guard.saved().rlim_max)),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace kv
