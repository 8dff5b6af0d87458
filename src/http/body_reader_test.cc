// The body reader: bodies bounded by the route's limit while they are read, whatever their
// framing; nothing past the body consumed; malformed chunked framing refused.
#include "http/body_reader.h"

#include <string>

#include "gtest/gtest.h"

namespace kv::http {
namespace {

// A stream over a fixed input that hands out at most `step` bytes per read and counts what
// was consumed (so a test can see how far a refused body was read).
class StringStream final : public httplib::Stream {
 public:
  explicit StringStream(std::string in, size_t step = 1 << 20) : in_(std::move(in)), step_(step) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min({size, step_, in_.size() - pos_});
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);  // 0 at the end: the peer closed
  }
  ssize_t write(const char*, size_t size) override { return static_cast<ssize_t>(size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 1;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 2;
  }
  socket_t socket() const override { return -1; }
  size_t consumed() const { return pos_; }
  std::string rest() const { return in_.substr(pos_); }

 private:
  std::string in_;
  size_t step_;
  size_t pos_ = 0;
};

TEST(BodyReader, FixedBodyIsReadExactlyAndLeavesThePipelinedRest) {
  StringStream s("hello worldGET / HTTP/1.1\r\n", 3);
  std::string out;
  EXPECT_EQ(ReadFixedBody(s, 11, 100, &out), BodyRead::kOk);
  EXPECT_EQ(out, "hello world");
  EXPECT_EQ(s.rest(), "GET / HTTP/1.1\r\n");
}

TEST(BodyReader, FixedBodyOverTheLimitIsRefusedBeforeOneByteIsRead) {
  StringStream s(std::string(1000, 'x'));
  std::string out;
  EXPECT_EQ(ReadFixedBody(s, 1000, 999, &out), BodyRead::kTooLarge);
  EXPECT_EQ(s.consumed(), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(BodyReader, FixedBodyCutShortIsIncomplete) {
  StringStream s("abc");
  std::string out;
  EXPECT_EQ(ReadFixedBody(s, 10, 0, &out), BodyRead::kIncomplete);
}

TEST(BodyReader, ChunkedBodyIsDecodedWithExtensionsAndTrailersDropped) {
  StringStream s("5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT", 2);
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 100, &out, &raw), BodyRead::kOk);
  EXPECT_EQ(out, "hello world");
  EXPECT_EQ(s.rest(), "NEXT") << "nothing past the body is consumed";
  EXPECT_EQ(raw, s.consumed());
}

TEST(BodyReader, UppercaseHexAndLeadingZerosAreAccepted) {
  StringStream s("00A\r\n0123456789\r\n0\r\n\r\n");
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 100, &out, &raw), BodyRead::kOk);
  EXPECT_EQ(out, "0123456789");
}

TEST(BodyReader, ChunkedBodyIsRefusedOnTheAnnouncementBeforeItsDataIsRead) {
  // Limit 100: the first chunk (60) fits, the second announces 60 more: refused before its
  // data, so the reader consumed the first chunk and the second's size line only.
  const std::string first = "3c\r\n" + std::string(60, 'a') + "\r\n";
  const std::string second_line = "3c\r\n";
  StringStream s(first + second_line + std::string(60, 'b') + "\r\n0\r\n\r\n");
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 100, &out, &raw), BodyRead::kTooLarge);
  EXPECT_EQ(s.consumed(), first.size() + second_line.size());
  EXPECT_LE(out.size(), 100u);
}

TEST(BodyReader, AHugeChunkSizeIsRefusedWithoutReading) {
  StringStream s("ffffffffffffffff\r\nxyz");
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 1 << 20, &out, &raw), BodyRead::kTooLarge);
  EXPECT_EQ(s.rest(), "xyz");
}

TEST(BodyReader, TinyChunksAreBoundedByTheFramingAllowance) {
  // 1-byte chunks: 6 framing bytes per content byte. Within the content limit, but the
  // framing passes 4096 + limit/64 long before: refused, having read a bounded amount.
  const uint64_t limit = 64 * 1024;
  std::string in;
  for (int i = 0; i < 20000; ++i) in += "1\r\nx\r\n";
  in += "0\r\n\r\n";
  StringStream s(in);
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, limit, &out, &raw), BodyRead::kTooLarge);
  EXPECT_LE(raw, out.size() + ChunkFramingBytesMax(limit) + kChunkLineBytesMax);
  EXPECT_LT(s.consumed(), in.size());
}

TEST(BodyReader, ChunkedFramingErrorsAreMalformed) {
  const char* bad[] = {
      "zz\r\nabc\r\n0\r\n\r\n",   // not hex
      "\r\nabc\r\n0\r\n\r\n",     // no size
      "3\r\nabcd\r\n0\r\n\r\n",   // data longer than announced
      "3\nabc\r\n0\r\n\r\n",      // bare LF
      "3 x\r\nabc\r\n0\r\n\r\n",  // junk after the size
      "11111111111111111\r\n",    // 17 hex digits: more than 64 bits
  };
  for (const char* in : bad) {
    StringStream s(in);
    std::string out;
    uint64_t raw = 0;
    EXPECT_EQ(ReadChunkedBody(s, 1000, &out, &raw), BodyRead::kMalformed) << in;
  }
  // A size line longer than kChunkLineBytesMax (extensions without end).
  StringStream s("5;" + std::string(kChunkLineBytesMax + 10, 'e') + "\r\nhello\r\n0\r\n\r\n");
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 1000, &out, &raw), BodyRead::kMalformed);
  EXPECT_LE(raw, kChunkLineBytesMax + 1);
}

TEST(BodyReader, ChunkedBodyCutShortIsIncomplete) {
  for (const char* in : {"5\r\nhel", "5\r\nhello", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n"}) {
    StringStream s(in);
    std::string out;
    uint64_t raw = 0;
    EXPECT_EQ(ReadChunkedBody(s, 1000, &out, &raw), BodyRead::kIncomplete) << in;
  }
}

TEST(BodyReader, OversizedTrailersAreRefused) {
  std::string in = "1\r\nx\r\n0\r\n";
  for (int i = 0; i < 200; ++i) in += "X-T: " + std::string(100, 't') + "\r\n";
  in += "\r\n";
  StringStream s(in);
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 1000, &out, &raw), BodyRead::kMalformed);
  EXPECT_LE(raw, 20u + kChunkTrailerBytesMax + kChunkLineBytesMax + 2);
}

TEST(BodyReader, ZeroLimitMeansNoLimit) {
  const std::string big(300000, 'k');
  std::string in;
  for (size_t off = 0; off < big.size(); off += 50000)
    in += "c350\r\n" + big.substr(off, 50000) + "\r\n";
  in += "0\r\n\r\n";
  StringStream s(in);
  std::string out;
  uint64_t raw = 0;
  EXPECT_EQ(ReadChunkedBody(s, 0, &out, &raw), BodyRead::kOk);
  EXPECT_EQ(out, big);
}

}  // namespace
}  // namespace kv::http
