// ConnStream over a socketpair: header completeness and limits, deadlines that a dripping
// peer cannot extend, buffered writes, pipelined input.
#include "http/conn_stream.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace kv::http {
namespace {

using HR = ConnStream::HeaderResult;

class ConnStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0);
    fcntl(fds_[0], F_SETFL, fcntl(fds_[0], F_GETFL) | O_NONBLOCK);
  }
  void TearDown() override {
    close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
  }
  ConnStream Stream(int64_t read_timeout_ms = 2000, int64_t write_timeout_ms = 2000) {
    return ConnStream(fds_[0], "10.0.0.9", 4321, "127.0.0.1", 80, read_timeout_ms,
                      write_timeout_ms);
  }
  void Send(const std::string& s) {
    ASSERT_EQ(::write(fds_[1], s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  std::string ReadPeer() {
    std::string out;
    char buf[4096];
    while (true) {
      const ssize_t n = recv(fds_[1], buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  static int64_t In(int64_t ms) { return MonoNowNs() + ms * 1'000'000; }

  int fds_[2] = {-1, -1};
};

TEST_F(ConnStreamTest, CompleteHeaderIsBufferedAndReadBack) {
  ConnStream s = Stream();
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n";
  Send(req);
  size_t got = 0;
  ASSERT_EQ(s.ReadHeader(In(1000), 0, 0, &got), HR::kComplete);
  EXPECT_EQ(got, req.size());
  EXPECT_EQ(s.buffered(), req.size());
  std::string back(req.size(), '\0');
  EXPECT_EQ(s.read(back.data(), back.size()), static_cast<ssize_t>(req.size()));
  EXPECT_EQ(back, req);
  std::string ip;
  int port = 0;
  s.get_remote_ip_and_port(ip, port);
  EXPECT_EQ(ip, "10.0.0.9");
  EXPECT_EQ(port, 4321);
}

TEST_F(ConnStreamTest, PipelinedRequestsStayBufferedAndLeadingEmptyLinesAreSkipped) {
  ConnStream s = Stream();
  const std::string a = "GET /a HTTP/1.1\r\n\r\n";
  const std::string b = "GET /b HTTP/1.1\r\n\r\n";
  Send("\r\n" + a + b);
  size_t got = 0;
  ASSERT_EQ(s.ReadHeader(In(1000), 0, 0, &got), HR::kComplete);
  EXPECT_EQ(got, a.size());
  std::string first(a.size(), '\0');
  ASSERT_EQ(s.read(first.data(), first.size()), static_cast<ssize_t>(a.size()));
  EXPECT_EQ(first, a);
  ASSERT_EQ(s.ReadHeader(In(1000), 0, 0, &got), HR::kComplete);
  EXPECT_EQ(got, b.size());
  EXPECT_EQ(s.buffered(), b.size());
}

TEST_F(ConnStreamTest, HeaderLineCountLimit) {
  std::string req = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 3; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  {
    ConnStream s = Stream();
    Send(req + "\r\n");
    size_t got = 0;
    EXPECT_EQ(s.ReadHeader(In(1000), 0, 3, &got), HR::kComplete) << "exactly at the limit";
    std::string sink(got, '\0');
    s.read(sink.data(), sink.size());
    Send(req + "X-3: v\r\n\r\n");
    EXPECT_EQ(s.ReadHeader(In(1000), 0, 3, &got), HR::kTooManyLines);
  }
}

TEST_F(ConnStreamTest, HeaderByteLimitCountsTheWholeHeader) {
  const std::string req = "GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n";
  ConnStream s = Stream();
  Send(req);
  size_t got = 0;
  EXPECT_EQ(s.ReadHeader(In(1000), req.size() - 1, 0, &got), HR::kTooLarge);
  ConnStream s2 = Stream();  // s holds the first copy in its buffer
  Send(req);
  EXPECT_EQ(s2.ReadHeader(In(1000), req.size(), 0, &got), HR::kComplete);
}

TEST_F(ConnStreamTest, AnUnfinishedHeaderOverTheLimitIsRefusedWithoutItsEnd) {
  ConnStream s = Stream();
  Send("GET / HTTP/1.1\r\nX-Long: " + std::string(5000, 'a'));  // no end in sight
  size_t got = 0;
  EXPECT_EQ(s.ReadHeader(In(5000), 1024, 0, &got), HR::kTooLarge);
}

TEST_F(ConnStreamTest, DripFeedingCannotOutliveTheHeaderDeadline) {
  // One byte every 20 ms is well inside the per-read timeout (2 s); only the deadline of
  // the whole header (300 ms) can end it.
  ConnStream s = Stream(/*read_timeout_ms=*/2000);
  std::atomic<bool> stop{false};
  std::thread drip([&] {
    const std::string req = "GET / HTTP/1.1\r\nX-Drip: " + std::string(1000, 'd');
    for (char c : req) {
      if (stop) return;
      if (::write(fds_[1], &c, 1) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  size_t got = 0;
  const HR r = s.ReadHeader(In(300), 0, 0, &got);
  stop = true;
  drip.join();
  EXPECT_EQ(r, HR::kTimeout);
  EXPECT_GT(got, 0u) << "some bytes arrived";
  EXPECT_TRUE(s.deadline_hit());
  EXPECT_TRUE(s.timed_out());
}

TEST_F(ConnStreamTest, SilentPeerTimesOutWithNothingReceived) {
  ConnStream s = Stream(/*read_timeout_ms=*/50);
  size_t got = 7;
  EXPECT_EQ(s.ReadHeader(In(10'000), 0, 0, &got), HR::kTimeout);
  EXPECT_EQ(got, 0u);
}

TEST_F(ConnStreamTest, PeerCloseIsClosedNotTimeout) {
  ConnStream s = Stream();
  Send("GET / HTT");
  close(fds_[1]);
  fds_[1] = -1;
  size_t got = 0;
  EXPECT_EQ(s.ReadHeader(In(1000), 0, 0, &got), HR::kClosed);
  EXPECT_EQ(got, 9u);
}

TEST_F(ConnStreamTest, BodyReadsStopAtTheDeadlineButAnAnswerCanStillBeWritten) {
  ConnStream s = Stream(/*read_timeout_ms=*/2000);
  Send("0123456789");
  s.set_deadline(In(100));
  char buf[64];
  EXPECT_EQ(s.read(buf, sizeof buf), 10);
  EXPECT_EQ(s.read(buf, sizeof buf), -1) << "nothing more before the deadline";
  EXPECT_TRUE(s.deadline_hit());
  EXPECT_TRUE(s.failed());
  EXPECT_TRUE(s.is_writable());
  EXPECT_EQ(s.write("408", 3), 3);
  EXPECT_TRUE(s.Flush());
  EXPECT_EQ(ReadPeer(), "408");
}

TEST_F(ConnStreamTest, WritesAreBufferedUntilFlushAndFlushedBeforeAWaitingRead) {
  ConnStream s = Stream();
  EXPECT_EQ(s.write("HTTP/1.1 100 Continue\r\n\r\n", 25), 25);
  EXPECT_EQ(ReadPeer(), "") << "buffered, not sent yet";
  // A read that has to wait sends what is buffered first: the peer may be waiting for it.
  std::thread peer([&] {
    std::string seen;
    for (int i = 0; i < 200 && seen.empty(); ++i) {
      seen = ReadPeer();
      if (seen.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(seen, "HTTP/1.1 100 Continue\r\n\r\n");
    Send("body");
  });
  char buf[8];
  EXPECT_EQ(s.read(buf, sizeof buf), 4);
  peer.join();
  EXPECT_EQ(s.bytes_written(), 25u);
  EXPECT_EQ(s.bytes_read(), 4u);
}

TEST_F(ConnStreamTest, APeerThatDoesNotReadFailsTheWriteAfterTheWriteTimeout) {
  ConnStream s = Stream(2000, /*write_timeout_ms=*/100);
  const std::string big(1 << 20, 'x');
  bool ok = true;
  for (int i = 0; i < 64 && ok; ++i) ok = s.write(big.data(), big.size()) > 0 && s.Flush();
  EXPECT_FALSE(ok);
  EXPECT_TRUE(s.failed());
  EXPECT_FALSE(s.is_writable());
}

}  // namespace
}  // namespace kv::http
