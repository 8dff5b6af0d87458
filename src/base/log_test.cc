#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/time_format.h"
#include "gtest/gtest.h"
#include "kit/files.h"

namespace kv {
namespace {

// Points fd 2 at a temp file for its lifetime; Take() puts fd 2 back and returns what was
// written to it meanwhile.
class StderrCapture {
 public:
  StderrCapture() : path_(dir_.Sub("stderr")) {
    saved_ = ::dup(STDERR_FILENO);
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    EXPECT_GE(saved_, 0);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::dup2(fd, STDERR_FILENO), STDERR_FILENO);
    ::close(fd);
  }
  ~StderrCapture() { Restore(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  std::string Take() {
    Restore();
    return testing::ReadFile(path_);
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

  testing::TempDir dir_;
  std::string path_;
  int saved_ = -1;
};

// Sets the process log level and puts the previous one back.
class ScopedLogLevel {
 public:
  explicit ScopedLogLevel(LogLevel level) : old_(GetLogLevel()) { SetLogLevel(level); }
  ~ScopedLogLevel() { SetLogLevel(old_); }

 private:
  LogLevel old_;
};

// "2026-11-21T15:04:05.123Z " is 25 bytes.
constexpr size_t kTimestampBytes = 24;
const std::regex kTimestamp(R"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z)");

// The message part of a line "<timestamp> <level> keyvend: <message>", checking the rest.
std::string MessageOf(const std::string& line, std::string_view level) {
  EXPECT_GT(line.size(), kTimestampBytes) << line;
  if (line.size() <= kTimestampBytes) return "";
  EXPECT_TRUE(std::regex_match(line.substr(0, kTimestampBytes), kTimestamp)) << line;
  const std::string middle =
      absl::StrCat(" ", absl::string_view(level.data(), level.size()), " keyvend: ");
  EXPECT_EQ(line.substr(kTimestampBytes, middle.size()), middle) << line;
  return line.substr(kTimestampBytes + middle.size());
}

TEST(LogLevel, ParsesTheFourNames) {
  const std::pair<std::string_view, LogLevel> cases[] = {{"debug", LogLevel::kDebug},
                                                         {"info", LogLevel::kInfo},
                                                         {"warn", LogLevel::kWarn},
                                                         {"error", LogLevel::kError}};
  for (const auto& [name, level] : cases) {
    LogLevel got = level == LogLevel::kDebug ? LogLevel::kError : LogLevel::kDebug;
    ASSERT_TRUE(ParseLogLevel(name, &got)) << name;
    EXPECT_EQ(got, level) << name;
    EXPECT_EQ(LogLevelName(level), name);
  }
}

TEST(LogLevel, RefusesOtherTextAndLeavesOutputAlone) {
  for (std::string_view bad :
       {"", "INFO", "Warn", "warning", "err", "info ", " info", "trace", "fatal", "debugx"}) {
    LogLevel got = LogLevel::kWarn;
    EXPECT_FALSE(ParseLogLevel(bad, &got)) << "'" << bad << "'";
    EXPECT_EQ(got, LogLevel::kWarn);
  }
  LogLevel got = LogLevel::kWarn;
  EXPECT_FALSE(ParseLogLevel(std::string_view("info\0", 5), &got));
  EXPECT_EQ(got, LogLevel::kWarn);
}

TEST(Log, DefaultLevelIsInfo) {
  EXPECT_EQ(GetLogLevel(), LogLevel::kInfo);
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
}

TEST(Log, LineShapeAndClock) {
  StderrCapture capture;
  const absl::Time before = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  const int n = 3;
  KV_LOG(kWarn, "delivery failed for ", n, " orders");
  const absl::Time after = absl::Now();
  const std::vector<std::string> lines = testing::SplitLines(capture.Take());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(MessageOf(lines[0], "warn"), "delivery failed for 3 orders");
  absl::Time ts;
  std::string err;
  ASSERT_TRUE(
      absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", lines[0].substr(0, kTimestampBytes), &ts, &err))
      << err;
  EXPECT_LE(before, ts);
  EXPECT_LE(ts, after);
}

TEST(Log, FiltersByLevelAndSkipsArgumentsOfDisabledLevels) {
  ScopedLogLevel level(LogLevel::kWarn);
  int evaluated = 0;
  const auto arg = [&evaluated] { return ++evaluated; };
  StderrCapture capture;
  KV_LOG(kDebug, "debug ", arg());
  KV_LOG(kInfo, "info ", arg());
  Log(LogLevel::kInfo, "direct info");
  KV_LOG(kWarn, "warn ", arg());
  KV_LOG(kError, "error ", arg());
  Log(LogLevel::kError, "direct error");
  const std::vector<std::string> lines = testing::SplitLines(capture.Take());
  EXPECT_EQ(evaluated, 2);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(MessageOf(lines[0], "warn"), "warn 1");
  EXPECT_EQ(MessageOf(lines[1], "error"), "error 2");
  EXPECT_EQ(MessageOf(lines[2], "error"), "direct error");
}

TEST(Log, DebugLevelWritesEverything) {
  ScopedLogLevel level(LogLevel::kDebug);
  StderrCapture capture;
  const std::string_view sv = "view";
  KV_LOG(kDebug, "std::string_view: ", sv, ", std::string: ", std::string("str"));
  const std::vector<std::string> lines = testing::SplitLines(capture.Take());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(MessageOf(lines[0], "debug"), "std::string_view: view, std::string: str");
}

TEST(Log, EscapesControlCharactersSoNoLineCanBeForged) {
  StderrCapture capture;
  Log(LogLevel::kWarn, "ok\n2026-11-21T15:04:05.123Z error keyvend: forged");
  Log(LogLevel::kWarn, "cr\r tab\t esc\x1b[31m del\x7f nul" + std::string(1, '\0') +
                           " backslash\\n c1\xc2\x9b utf8 \xc3\xa9\xe2\x82\xac bad \xff\xc3 end");
  const std::vector<std::string> lines = testing::SplitLines(capture.Take());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(MessageOf(lines[0], "warn"), "ok\\n2026-11-21T15:04:05.123Z error keyvend: forged");
  EXPECT_EQ(MessageOf(lines[1], "warn"),
            "cr\\r tab\\t esc\\x1b[31m del\\x7f nul\\x00 backslash\\\\n c1\\xc2\\x9b utf8 "
            "\xc3\xa9\xe2\x82\xac bad \\xff\\xc3 end");
}

// "<24-byte timestamp> warn keyvend: " is 39 bytes; with '\n' that leaves 4056 for the
// message in a kLogLineBytesMax line.
constexpr size_t kWarnMessageBytesMax = kLogLineBytesMax - 39 - 1;

TEST(Log, BoundsTheLineAndCutsAtCharacterBoundaries) {
  StderrCapture capture;
  Log(LogLevel::kWarn, std::string(kWarnMessageBytesMax, 'a'));      // fits exactly
  Log(LogLevel::kWarn, std::string(kWarnMessageBytesMax + 1, 'b'));  // one byte too many
  Log(LogLevel::kWarn, std::string(1 << 20, 'c'));                   // far too long
  // The escapes for \x01 are 4 bytes: the first no longer leaves room for "...".
  Log(LogLevel::kWarn, std::string(kWarnMessageBytesMax - 6, 'd') + "\x01\x01\x01");
  // A 3-byte character is never split.
  Log(LogLevel::kWarn, std::string(kWarnMessageBytesMax - 4, 'e') + "\xe2\x82\xac\xe2\x82\xac");
  const std::vector<std::string> lines = testing::SplitLines(capture.Take());
  ASSERT_EQ(lines.size(), 5u);
  for (const std::string& line : lines) EXPECT_LE(line.size() + 1, kLogLineBytesMax);
  EXPECT_EQ(MessageOf(lines[0], "warn"), std::string(kWarnMessageBytesMax, 'a'));
  EXPECT_EQ(lines[0].size() + 1, kLogLineBytesMax);
  EXPECT_EQ(MessageOf(lines[1], "warn"), std::string(kWarnMessageBytesMax - 3, 'b') + "...");
  EXPECT_EQ(lines[1].size() + 1, kLogLineBytesMax);
  EXPECT_EQ(MessageOf(lines[2], "warn"), std::string(kWarnMessageBytesMax - 3, 'c') + "...");
  EXPECT_EQ(MessageOf(lines[3], "warn"), std::string(kWarnMessageBytesMax - 6, 'd') + "...");
  EXPECT_EQ(MessageOf(lines[4], "warn"), std::string(kWarnMessageBytesMax - 4, 'e') + "...");
}

TEST(Log, LinesFromManyThreadsNeverInterleave) {
  constexpr int kThreads = 8;
  constexpr int kLinesPerThread = 1000;
  // Long lines make a torn write likelier to show, should there be one.
  const std::string padding(300, '.');
  StderrCapture capture;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &padding] {
      for (int i = 0; i < kLinesPerThread; ++i) {
        KV_LOG(kInfo, "thread ", t, " line ", i, " ", padding);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const std::vector<std::string> lines = testing::SplitLines(capture.Take());
  ASSERT_EQ(lines.size(), size_t{kThreads * kLinesPerThread});
  const std::regex message(R"(thread ([0-9]+) line ([0-9]+) \.{300})");
  std::set<std::pair<int, int>> seen;
  for (const std::string& line : lines) {
    std::smatch m;
    const std::string msg = MessageOf(line, "info");
    ASSERT_TRUE(std::regex_match(msg, m, message)) << line;
    EXPECT_TRUE(seen.emplace(std::stoi(m[1]), std::stoi(m[2])).second) << line;
  }
  EXPECT_EQ(seen.size(), size_t{kThreads * kLinesPerThread});
}

}  // namespace
}  // namespace kv
