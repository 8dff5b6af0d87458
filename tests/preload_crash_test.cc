// Fault test of keyvend-preload: kill -9 it mid-run, then rerun it. After every kill the
// data dir must hold none or all of the batch (keys, tags, batch record and counters
// together) and pass the offline check; after the rerun it must hold every new key exactly
// once and nothing else: no duplicate, no loss.
//
//  - StopPointsLeaveNoneOrAll: deterministic stop points inside the write step
//    (tests/preload_crash_child.cc): after the SSTs are written, at several delays after
//    IngestExternalFiles was entered, and after it returned.
//  - RandomKillsThenRerun: the real keyvend-preload binary killed at seeded random moments
//    across a whole run (parse, dedupe, sealing, ingestion, exit).
//
// KEYVEND_PRELOAD_CRASH_SEED=<n> reproduces a kill schedule (up to timing).
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "preload_test_util.h"
#include "test_util.h"

#ifndef PRELOAD_BIN
#error "PRELOAD_BIN must name the keyvend-preload binary"
#endif
#ifndef PRELOAD_CRASH_CHILD
#error "PRELOAD_CRASH_CHILD must name the preload_crash_child binary"
#endif

namespace kv {
namespace {

using preloadtest::ReadPool;
using preloadtest::RunProc;
using testing::TempDir;

constexpr int kOldKeys = 500;
constexpr int kLines = 150'000;
constexpr int kKillsRandom = 10;
constexpr uint64_t kDefaultSeed = 20261121;

class PreloadCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(tmp_.Sub("template"));
    ASSERT_TRUE(preloadtest::MakeShop(Data("template"), Key("template"), kOldKeys));
    for (int i = 0; i < kOldKeys; ++i) old_.insert(absl::StrCat("OLD-", i));
    all_ = old_;
    std::ofstream f(input(), std::ios::binary);
    for (int i = 0; i < kLines; ++i) {
      if (i % 1000 == 999) {
        f << "\n";  // a bad line
      } else if (i % 100 == 50) {
        f << "CRASH-" << i - 7 << "-KEY\n";  // a duplicate within the input
      } else if (i % 1000 == 1) {
        f << "OLD-" << i / 1000 % kOldKeys << "\n";  // already stored
      } else {
        const std::string k = absl::StrCat("CRASH-", i, "-KEY");
        f << k << "\n";
        all_.insert(k);
      }
    }
    new_keys_ = all_.size() - old_.size();
  }

  std::string Data(const std::string& run) const { return tmp_.Sub(run + "/data"); }
  std::string Key(const std::string& run) const { return tmp_.Sub(run + "/master.key"); }
  std::string input() const { return tmp_.Sub("keys.txt"); }

  // A fresh copy of the template shop for one run.
  void Fresh(const std::string& run) {
    std::filesystem::create_directories(tmp_.Sub(run));
    std::filesystem::copy(Data("template"), Data(run), std::filesystem::copy_options::recursive);
    std::filesystem::copy_file(Key("template"), Key(run));
  }

  std::vector<std::string> PreloadCmd(const std::string& run) const {
    return {PRELOAD_BIN, "--data-dir", Data(run), "--master-key-file",
            Key(run),    "--product",  "1",       input()};
  }

  // After a kill: the check passes, and the pool holds the old keys, or the old keys and the
  // whole batch. Returns true when the batch is in.
  bool NoneOrAll(const std::string& run, const std::string& what) {
    auto report = testing::CheckDataDir(Data(run), Key(run));
    EXPECT_TRUE(report.ok()) << what << ": " << report.status();
    if (report.ok()) {
      EXPECT_TRUE(report->violations.empty()) << what << ":\n" << testing::FormatReport(*report);
    }
    const preloadtest::PoolContent pool = ReadPool(Data(run), Key(run), 1);
    EXPECT_EQ(pool.twice, 0u) << what;
    const bool none = pool.texts == old_ && pool.tags == old_.size();
    const bool all = pool.texts == all_ && pool.tags == all_.size();
    EXPECT_TRUE(none || all) << what << ": " << pool.entries << " keys and " << pool.tags
                             << " tags: neither none (" << old_.size() << ") nor all ("
                             << all_.size() << ")";
    return all;
  }

  // Reruns the binary to completion: every new key exactly once, nothing else.
  void RerunIsExact(const std::string& run, bool batch_was_in, const std::string& what) {
    auto r = RunProc(PreloadCmd(run));
    ASSERT_EQ(r.exit_code, 0) << what << ": " << r.err;
    // The rerun loads exactly what the kill left out.
    const std::string loaded = absl::StrCat("loaded ", batch_was_in ? 0 : new_keys_, " keys into");
    EXPECT_NE(r.out.find(loaded), std::string::npos) << what << ": want \"" << loaded << "\"";
    const preloadtest::PoolContent pool = ReadPool(Data(run), Key(run), 1);
    EXPECT_EQ(pool.twice, 0u) << what;
    EXPECT_EQ(pool.entries, all_.size()) << what;
    EXPECT_EQ(pool.tags, all_.size()) << what;
    EXPECT_TRUE(pool.texts == all_) << what;
    auto report = testing::CheckDataDir(Data(run), Key(run));
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->violations.empty()) << what << ":\n" << testing::FormatReport(*report);
  }

  TempDir tmp_;
  std::set<std::string> old_, all_;
  size_t new_keys_ = 0;
};

TEST_F(PreloadCrashTest, StopPointsLeaveNoneOrAll) {
  struct Stop {
    std::string point;
    int delay_us;
  };
  std::vector<Stop> stops = {{"ssts", 0}, {"ingested", 0}};
  for (int d : {0, 100, 300, 1'000, 3'000, 10'000, 30'000, 100'000, 300'000})
    stops.push_back({"ingesting", d});
  int in = 0, out = 0;
  for (size_t i = 0; i < stops.size(); ++i) {
    const std::string run = absl::StrCat("stop", i);
    const std::string what = absl::StrCat(stops[i].point, " +", stops[i].delay_us, "us");
    Fresh(run);
    auto r = RunProc({PRELOAD_CRASH_CHILD, Data(run), Key(run), "1", input(), stops[i].point,
                      std::to_string(stops[i].delay_us)});
    ASSERT_TRUE(r.signal == SIGKILL || r.exit_code == 0) << what << ": " << r.err;
    const bool batch_in = NoneOrAll(run, what);
    if (stops[i].point == "ssts") {
      EXPECT_FALSE(batch_in);
    } else if (stops[i].point == "ingested") {
      EXPECT_TRUE(batch_in);
    }
    (batch_in ? in : out)++;
    std::printf("preload_crash_test: %-22s killed=%d batch %s\n", what.c_str(), r.signal == SIGKILL,
                batch_in ? "in" : "absent");
    RerunIsExact(run, batch_in, what);
  }
  std::printf("preload_crash_test: stop points: batch in %d times, absent %d times\n", in, out);
}

TEST_F(PreloadCrashTest, RandomKillsThenRerun) {
  uint64_t seed = kDefaultSeed;
  if (const char* s = std::getenv("KEYVEND_PRELOAD_CRASH_SEED"))
    seed = std::strtoull(s, nullptr, 10);
  std::printf("preload_crash_test: seed %llu (KEYVEND_PRELOAD_CRASH_SEED)\n",
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  // How long an uninterrupted run takes here, so kills spread over all of it.
  Fresh("full");
  const auto t0 = std::chrono::steady_clock::now();
  auto full = RunProc(PreloadCmd("full"));
  const auto full_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_EQ(full.exit_code, 0) << full.err;
  ASSERT_TRUE(NoneOrAll("full", "uninterrupted run"));

  int in = 0, out = 0;
  for (int k = 0; k < kKillsRandom; ++k) {
    const std::string run = absl::StrCat("kill", k);
    Fresh(run);
    const int64_t delay_us =
        static_cast<int64_t>(rng() % static_cast<uint64_t>(full_us * 11 / 10 + 1));
    const std::string what =
        absl::StrCat("kill ", k, " at ", delay_us / 1000, " ms of ~", full_us / 1000);
    testing::Child p;
    std::string error;
    ASSERT_TRUE(p.Start(PreloadCmd(run),
                        {.env = {},
                         .out = testing::Output::File(tmp_.Sub(run + "/out")),
                         .err = testing::Output::File(tmp_.Sub(run + "/err"))},
                        &error))
        << error;
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    const int status = p.Kill9();  // a child that finished first is reaped with its status
    const bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    const bool exited_zero = testing::ExitedZero(status);
    ASSERT_TRUE(killed || exited_zero) << what << ": " << testing::DescribeWait(status) << ": "
                                       << testing::ReadFile(tmp_.Sub(run + "/err"));
    const bool batch_in = NoneOrAll(run, what);
    if (exited_zero) {
      EXPECT_TRUE(batch_in) << what;  // it finished before the kill
    }
    (batch_in ? in : out)++;
    std::printf("preload_crash_test: %s: batch %s\n", what.c_str(), batch_in ? "in" : "absent");
    RerunIsExact(run, batch_in, what);
  }
  std::printf("preload_crash_test: random kills: batch in %d times, absent %d times\n", in, out);
}

}  // namespace
}  // namespace kv
