#include "http/access_log.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "simdjson.h"

namespace kv::http {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// 2026-11-21T15:04:05.123Z
constexpr int64_t kSampleUnixMs = 1795273445123;

AccessRecord Sample() {
  AccessRecord r;
  r.unix_ms = kSampleUnixMs;
  r.request_id = "0123456789abcdef";
  r.listener = "main";
  r.method = "POST";
  r.route = "POST /api/v1/orders";
  r.status = 201;
  r.latency_us = 1234;
  r.client_ip = "127.0.0.1";
  r.bytes_in = 57;
  r.bytes_out = 300;
  return r;
}

AccessRecord Numbered(int i) {
  AccessRecord r = Sample();
  r.request_id = absl::StrFormat("%016x", i);
  return r;
}

uint64_t CounterValue(Registry* reg, std::string_view name) {
  return reg->GetCounter(name, "")->Value();
}

// The fields of one line parsed as JSON, in order: strings decoded, integers as decimal
// text, other numbers as "<number>". Fails the test unless the line is one JSON object.
Fields Parse(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  Fields fields;
  if (parser.parse(line).get(doc) != simdjson::SUCCESS || doc.get_object().get(obj)) {
    ADD_FAILURE() << "not a JSON object: " << line;
    return fields;
  }
  for (simdjson::dom::key_value_pair field : obj) {
    std::string value = "<number>";
    std::string_view s;
    int64_t i;
    if (field.value.get_string().get(s) == simdjson::SUCCESS) {
      value = std::string(s);
    } else if (field.value.get_int64().get(i) == simdjson::SUCCESS) {
      value = std::to_string(i);
    }
    fields.emplace_back(std::string(field.key), value);
  }
  return fields;
}

TEST(FormatAccessLine, SampleRecord) {
  EXPECT_EQ(FormatAccessLine(Sample()),
            R"({"ts":"2026-11-21T15:04:05.123Z","request_id":"0123456789abcdef",)"
            R"("listener":"main","method":"POST","route":"POST /api/v1/orders","status":201,)"
            R"("latency_ms":1.234,"client_ip":"127.0.0.1","bytes_in":57,"bytes_out":300})"
            "\n");
}

TEST(FormatAccessLine, HoldsOnlyTheRecordsFields) {
  // AccessRecord has exactly these ten fields: this binding stops compiling if one is
  // added, so that a new field (a path, a header value...) is a deliberate decision.
  AccessRecord r = Sample();
  auto& [unix_ms, request_id, listener, method, route, status, latency_us, client_ip, bytes_in,
         bytes_out] = r;
  (void)unix_ms, (void)latency_us;
  request_id = "00000000000000ff";
  listener = "ops";
  method = "GET";
  route = "GET /api/v1/orders/{order_id}";  // the pattern; the path is not in the record
  status = 404;
  client_ip = "2001:db8::1";
  bytes_in = 0;
  bytes_out = 99;
  const Fields expected = {{"ts", "2026-11-21T15:04:05.123Z"},
                           {"request_id", "00000000000000ff"},
                           {"listener", "ops"},
                           {"method", "GET"},
                           {"route", "GET /api/v1/orders/{order_id}"},
                           {"status", "404"},
                           {"latency_ms", "<number>"},
                           {"client_ip", "2001:db8::1"},
                           {"bytes_in", "0"},
                           {"bytes_out", "99"}};
  EXPECT_EQ(Parse(FormatAccessLine(r)), expected);
}

TEST(FormatAccessLine, LatencyIsMillisecondsWithThreeDecimals) {
  const std::pair<int64_t, std::string> cases[] = {
      {0, "0.000"},
      {5, "0.005"},
      {999, "0.999"},
      {1000, "1.000"},
      {1234, "1.234"},
      {60'000'000, "60000.000"},
      {-1500, "-1.500"},
      {std::numeric_limits<int64_t>::min(), "-9223372036854775.808"},
      {std::numeric_limits<int64_t>::max(), "9223372036854775.807"}};
  for (const auto& [us, text] : cases) {
    AccessRecord r = Sample();
    r.latency_us = us;
    EXPECT_NE(FormatAccessLine(r).find(",\"latency_ms\":" + text + ",\"client_ip\""),
              std::string::npos)
        << us;
  }
}

TEST(FormatAccessLine, EscapesQuotesBackslashesControlsAndInvalidUtf8) {
  AccessRecord r = Sample();
  r.method = std::string("GE\"T\\\n\r\t\x01\x1b[2J\x7f") + std::string(1, '\0') + "\xc2\x9b";
  r.route = "unmatched \xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91";  // well-formed: passes through
  r.client_ip = "\xff\xc3(\xed\xa0\x80";                       // not UTF-8: bytes escaped
  const std::string line = FormatAccessLine(r);
  EXPECT_NE(line.find(R"("method":"GE\"T\\\u000a\u000d\u0009\u0001\u001b[2J\u007f\u0000\u009b")"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("\"route\":\"unmatched \xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91\""),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(R"("client_ip":"\u00ff\u00c3(\u00ed\u00a0\u0080")"), std::string::npos)
      << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  // A JSON parser (which also checks UTF-8) reads the well-formed strings back unchanged.
  const Fields fields = Parse(line);
  ASSERT_EQ(fields.size(), 10u);
  EXPECT_EQ(fields[3].second, r.method);
  EXPECT_EQ(fields[4].second, r.route);
  EXPECT_EQ(fields[7].second, "\xc3\xbf\xc3\x83(\xc3\xad\xc2\xa0\xc2\x80");  // Latin-1 reading
}

TEST(FormatAccessLine, BoundsEachStringField) {
  AccessRecord r = Sample();
  r.method = std::string(kAccessFieldBytesMax, 'M');  // fits exactly
  r.route = std::string(100000, 'R');
  // A 3-byte character straddling the cut is left out whole.
  r.client_ip = std::string(kAccessFieldBytesMax - 4, 'c') + "\xe2\x82\xac" + "tail";
  const Fields fields = Parse(FormatAccessLine(r));
  ASSERT_EQ(fields.size(), 10u);
  EXPECT_EQ(fields[3].second, r.method);
  EXPECT_EQ(fields[4].second, std::string(kAccessFieldBytesMax - 3, 'R') + "...");
  EXPECT_EQ(fields[7].second, std::string(kAccessFieldBytesMax - 4, 'c') + "...");
}

TEST(AccessLog, OpenRefusesAZeroCapacityAndNamesAPathItCannotOpen) {
  Registry reg;
  testing::TempDir dir;
  auto zero = AccessLog::Open(dir.Sub("access.log"), 0, &reg);
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string missing = dir.Sub("no-such-dir/access.log");
  auto bad = AccessLog::Open(missing, 16, &reg);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(missing), absl::string_view::npos) << bad.status();
}

TEST(AccessLog, AppendsLinesInOrderAfterWhatTheFileHeld) {
  testing::TempDir dir;
  const std::string path = dir.Sub("access.log");
  { std::ofstream(path) << "earlier line\n"; }
  const mode_t old_umask = ::umask(0);
  Registry reg;
  auto log = AccessLog::Open(dir.Sub("new.log"), 16, &reg);
  ::umask(old_umask);
  ASSERT_TRUE(log.ok()) << log.status();
  struct stat st;
  ASSERT_EQ(::stat(dir.Sub("new.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  log->reset();

  Registry reg2;
  auto opened = AccessLog::Open(path, 4096, &reg2);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<AccessLog> access = std::move(opened).value();
  std::string expected = "earlier line\n";
  for (int i = 0; i < 1000; ++i) {
    access->Append(Numbered(i));
    expected += FormatAccessLine(Numbered(i));
  }
  access->Flush();
  EXPECT_EQ(testing::ReadFile(path), expected);
  EXPECT_EQ(CounterValue(&reg2, AccessLog::kLinesMetric), 1000u);
  EXPECT_EQ(CounterValue(&reg2, AccessLog::kDroppedMetric), 0u);
  EXPECT_EQ(CounterValue(&reg2, AccessLog::kWriteErrorsMetric), 0u);
  access->Append(Numbered(1000));
  access->Flush();
  expected += FormatAccessLine(Numbered(1000));
  EXPECT_EQ(testing::ReadFile(path), expected);
}

TEST(AccessLog, DestructorWritesWhatIsBuffered) {
  testing::TempDir dir;
  const std::string path = dir.Sub("access.log");
  Registry reg;
  std::string expected;
  {
    auto log = AccessLog::Open(path, 1000, &reg);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 500; ++i) {
      (*log)->Append(Numbered(i));
      expected += FormatAccessLine(Numbered(i));
    }
  }
  EXPECT_EQ(testing::ReadFile(path), expected);
}

// Points fd 2 at a file while it lives.
class ScopedStderrToFile {
 public:
  explicit ScopedStderrToFile(const std::string& path) : saved_(::dup(STDERR_FILENO)) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::dup2(fd, STDERR_FILENO), STDERR_FILENO);
    ::close(fd);
  }
  ~ScopedStderrToFile() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }

 private:
  int saved_;
};

TEST(AccessLog, DashIsStandardErrorAndIsLeftOpen) {
  testing::TempDir dir;
  const std::string path = dir.Sub("stderr");
  {
    ScopedStderrToFile redirect(path);
    Registry reg;
    {
      auto log = AccessLog::Open("-", 16, &reg);
      ASSERT_TRUE(log.ok()) << log.status();
      (*log)->Append(Sample());
    }
    EXPECT_NE(::fcntl(STDERR_FILENO, F_GETFD), -1) << "the log closed fd 2";
  }
  EXPECT_EQ(testing::ReadFile(path), FormatAccessLine(Sample()));
}

// Fills a pipe through its non-blocking write end until no byte fits; returns the bytes.
size_t FillPipe(int wfd) {
  size_t total = 0;
  const std::string chunk(4096, 'x');
  for (size_t len : {chunk.size(), size_t{1}}) {
    for (;;) {
      const ssize_t n = ::write(wfd, chunk.data(), len);
      if (n <= 0) break;
      total += static_cast<size_t>(n);
    }
    EXPECT_EQ(errno, EAGAIN);
  }
  return total;
}

TEST(AccessLog, DropsAndCountsWhileTheWriterIsStuck) {
  testing::TempDir dir;
  const std::string fifo = dir.Sub("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rfd, 0);
  const int wfd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(wfd, 0);
  const size_t filler = FillPipe(wfd);  // the log's writes block until the test reads
  ::close(wfd);
  // Room for one page: the log's first write puts one page in and then blocks (line 0 is
  // longer than PIPE_BUF, so the kernel may write it in parts).
  char page[4096];
  ASSERT_EQ(::read(rfd, page, sizeof page), ssize_t{sizeof page});
  AccessRecord big = Numbered(0);
  big.method = big.route = big.client_ip = std::string(kAccessFieldBytesMax, '\x01');
  ASSERT_GT(FormatAccessLine(big).size(), std::max(size_t{PIPE_BUF}, sizeof page));

  Registry reg;
  auto opened = AccessLog::Open(fifo, 16, &reg);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<AccessLog> log = std::move(opened).value();
  log->Append(big);
  // Once the page shows in the pipe, the writer has taken line 0 and is stuck writing it.
  int queued = 0;
  while (::ioctl(rfd, FIONREAD, &queued) == 0 && static_cast<size_t>(queued) < filler) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(static_cast<size_t>(queued), filler);

  std::string expected = FormatAccessLine(big);
  for (int i = 1; i < 100; ++i) {
    log->Append(Numbered(i));  // would hang here if Append waited for the writer
    if (i < 16) expected += FormatAccessLine(Numbered(i));
  }
  // Capacity counts every line not yet written, the writer's stuck batch included: line 0
  // and lines 1..15 are held, the other 84 dropped.
  EXPECT_EQ(CounterValue(&reg, AccessLog::kDroppedMetric), 84u);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kLinesMetric), 0u);

  // Unblock: read everything until the log (the last writer) closes the FIFO.
  ASSERT_EQ(::fcntl(rfd, F_SETFL, ::fcntl(rfd, F_GETFL) & ~O_NONBLOCK), 0);
  std::string got;
  std::thread reader([rfd, &got] {
    char buf[65536];
    ssize_t n;
    while ((n = ::read(rfd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  });
  log->Flush();
  EXPECT_EQ(CounterValue(&reg, AccessLog::kLinesMetric), 16u);
  log->Append(Numbered(100));  // room again
  expected += FormatAccessLine(Numbered(100));
  log.reset();
  reader.join();
  ::close(rfd);
  const size_t filler_left = filler - sizeof page;
  ASSERT_EQ(got.size(), filler_left + expected.size());
  EXPECT_EQ(got.substr(filler_left), expected);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kLinesMetric), 17u);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kDroppedMetric), 84u);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kWriteErrorsMetric), 0u);
}

TEST(AccessLog, AWriteErrorIsCountedNotFatal) {
  Registry reg;
  auto log = AccessLog::Open("/dev/full", 16, &reg);  // every write fails with ENOSPC
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->Append(Sample());
  (*log)->Flush();
  EXPECT_EQ(CounterValue(&reg, AccessLog::kWriteErrorsMetric), 1u);
  (*log)->Append(Sample());
  (*log)->Flush();
  EXPECT_EQ(CounterValue(&reg, AccessLog::kWriteErrorsMetric), 2u);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kLinesMetric), 0u);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kDroppedMetric), 0u);
}

std::atomic<int> g_sigpipes{0};

TEST(AccessLog, AClosedPipeIsAWriteErrorNotSigpipe) {
  // Count SIGPIPEs rather than die of one (the test's parent may also have ignored it).
  struct sigaction count = {}, old = {};
  count.sa_handler = [](int) { g_sigpipes.fetch_add(1); };
  sigemptyset(&count.sa_mask);
  ASSERT_EQ(::sigaction(SIGPIPE, &count, &old), 0);
  testing::TempDir dir;
  const std::string fifo = dir.Sub("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int rfd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rfd, 0);
  Registry reg;
  auto log = AccessLog::Open(fifo, 16, &reg);
  ASSERT_TRUE(log.ok()) << log.status();
  ::close(rfd);  // nobody reads any more: a write is EPIPE, and SIGPIPE unless blocked
  (*log)->Append(Sample());
  (*log)->Flush();
  log->reset();
  ::sigaction(SIGPIPE, &old, nullptr);
  EXPECT_EQ(g_sigpipes.load(), 0);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kWriteErrorsMetric), 1u);
  EXPECT_EQ(CounterValue(&reg, AccessLog::kLinesMetric), 0u);
}

TEST(AccessLog, ConcurrentAppendsAccountForEveryLine) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  testing::TempDir dir;
  const std::string path = dir.Sub("access.log");
  Registry reg;
  {
    // A small buffer, so that drops are likely (their number depends on the scheduling).
    auto log = AccessLog::Open(path, 64, &reg);
    ASSERT_TRUE(log.ok()) << log.status();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([t, &log] {
        for (int i = 0; i < kPerThread; ++i) (*log)->Append(Numbered(t * kPerThread + i));
      });
    }
    for (std::thread& th : threads) th.join();
    (*log)->Flush();
  }
  const uint64_t written = CounterValue(&reg, AccessLog::kLinesMetric);
  const uint64_t dropped = CounterValue(&reg, AccessLog::kDroppedMetric);
  EXPECT_EQ(written + dropped, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(CounterValue(&reg, AccessLog::kWriteErrorsMetric), 0u);
  const std::vector<std::string> lines = testing::SplitLines(testing::ReadFile(path));
  ASSERT_EQ(lines.size(), written);
  std::set<int> seen;
  std::vector<int> last(kThreads, -1);  // each thread's lines stay in its order
  for (const std::string& line : lines) {
    const Fields fields = Parse(line);
    ASSERT_EQ(fields.size(), 10u) << line;
    ASSERT_EQ(fields[1].first, "request_id");
    const int n = std::stoi(fields[1].second, nullptr, 16);
    EXPECT_EQ(line + "\n", FormatAccessLine(Numbered(n)));
    EXPECT_TRUE(seen.insert(n).second) << "written twice: " << line;
    ASSERT_LT(n / kPerThread, kThreads) << line;
    EXPECT_GT(n, last[n / kPerThread]) << line;
    last[n / kPerThread] = n;
  }
}

}  // namespace
}  // namespace kv::http
