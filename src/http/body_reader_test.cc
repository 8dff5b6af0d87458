// The chunked decoder: bodies bounded by the route's limit while they arrive, in whatever
// pieces; nothing past the body consumed; malformed chunked framing refused.
#include "http/body_reader.h"

#include <algorithm>
#include <string>

#include "gtest/gtest.h"

namespace kv::http {
namespace {

// Feeds `in` to a decoder `step` bytes at a time (as an I/O loop's reads deliver it) until
// it answers other than kNeedMore or the input ends; *consumed: the bytes it took.
struct Fed {
  BodyRead result;
  std::string out;
  size_t consumed = 0;
  uint64_t raw = 0;
  std::string rest;
};
Fed Feed(const std::string& in, uint64_t limit, size_t step = 1 << 20) {
  ChunkedDecoder d(limit);
  Fed f{BodyRead::kNeedMore, "", 0, 0, ""};
  size_t pos = 0;
  while (pos < in.size()) {
    const size_t n = std::min(step, in.size() - pos);
    size_t used = 0;
    f.result = d.Feed(in.data() + pos, n, &used, &f.out);
    EXPECT_LE(used, n);
    pos += used;
    if (f.result != BodyRead::kNeedMore) break;
    EXPECT_EQ(used, n) << "a decoder that needs more takes every byte it is given";
  }
  f.consumed = pos;
  f.raw = d.raw_bytes();
  f.rest = in.substr(pos);
  return f;
}

TEST(BodyReader, ChunkedBodyIsDecodedWithExtensionsAndTrailersDropped) {
  const Fed f =
      Feed("5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nNEXT", 100, 2);
  EXPECT_EQ(f.result, BodyRead::kOk);
  EXPECT_EQ(f.out, "hello world");
  EXPECT_EQ(f.rest, "NEXT") << "nothing past the body is consumed";
  EXPECT_EQ(f.raw, f.consumed);
}

TEST(BodyReader, UppercaseHexAndLeadingZerosAreAccepted) {
  const Fed f = Feed("00A\r\n0123456789\r\n0\r\n\r\n", 100);
  EXPECT_EQ(f.result, BodyRead::kOk);
  EXPECT_EQ(f.out, "0123456789");
}

TEST(BodyReader, ChunkedBodyIsRefusedOnTheAnnouncementBeforeItsDataIsRead) {
  // Limit 100: the first chunk (60) fits, the second announces 60 more: refused before its
  // data, so the reader consumed the first chunk and the second's size line only.
  const std::string first = "3c\r\n" + std::string(60, 'a') + "\r\n";
  const std::string second_line = "3c\r\n";
  const Fed f = Feed(first + second_line + std::string(60, 'b') + "\r\n0\r\n\r\n", 100);
  EXPECT_EQ(f.result, BodyRead::kTooLarge);
  EXPECT_EQ(f.consumed, first.size() + second_line.size());
  EXPECT_LE(f.out.size(), 100u);
}

TEST(BodyReader, AHugeChunkSizeIsRefusedWithoutReading) {
  const Fed f = Feed("ffffffffffffffff\r\nxyz", 1 << 20);
  EXPECT_EQ(f.result, BodyRead::kTooLarge);
  EXPECT_EQ(f.rest, "xyz");
}

TEST(BodyReader, TinyChunksAreBoundedByTheFramingAllowance) {
  // 1-byte chunks: 6 framing bytes per content byte. Within the content limit, but the
  // framing passes 4096 + limit/64 long before: refused, having read a bounded amount.
  const uint64_t limit = 64 * 1024;
  std::string in;
  for (int i = 0; i < 20000; ++i) in += "1\r\nx\r\n";
  in += "0\r\n\r\n";
  const Fed f = Feed(in, limit, 1000);
  EXPECT_EQ(f.result, BodyRead::kTooLarge);
  EXPECT_LE(f.raw, f.out.size() + ChunkFramingBytesMax(limit) + kChunkLineBytesMax);
  EXPECT_LT(f.consumed, in.size());
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
    for (size_t step : {size_t{1}, size_t{3}, size_t{1} << 20}) {
      EXPECT_EQ(Feed(in, 1000, step).result, BodyRead::kMalformed) << in << " step " << step;
    }
  }
  // A size line longer than kChunkLineBytesMax (extensions without end).
  const Fed f =
      Feed("5;" + std::string(kChunkLineBytesMax + 10, 'e') + "\r\nhello\r\n0\r\n\r\n", 1000);
  EXPECT_EQ(f.result, BodyRead::kMalformed);
  EXPECT_LE(f.raw, kChunkLineBytesMax + 1);
}

TEST(BodyReader, ChunkedBodyCutShortNeedsMore) {
  for (const char* in : {"5\r\nhel", "5\r\nhello", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n"}) {
    const Fed f = Feed(in, 1000, 2);
    EXPECT_EQ(f.result, BodyRead::kNeedMore) << in;
    EXPECT_EQ(f.consumed, std::string(in).size()) << in;
  }
}

TEST(BodyReader, OversizedTrailersAreRefused) {
  std::string in = "1\r\nx\r\n0\r\n";
  for (int i = 0; i < 200; ++i) in += "X-T: " + std::string(100, 't') + "\r\n";
  in += "\r\n";
  const Fed f = Feed(in, 1000, 7);
  EXPECT_EQ(f.result, BodyRead::kMalformed);
  EXPECT_LE(f.raw, 20u + kChunkTrailerBytesMax + kChunkLineBytesMax + 2);
}

TEST(BodyReader, ZeroLimitMeansNoLimit) {
  const std::string big(300000, 'k');
  std::string in;
  for (size_t off = 0; off < big.size(); off += 50000)
    in += "c350\r\n" + big.substr(off, 50000) + "\r\n";
  in += "0\r\n\r\n";
  const Fed f = Feed(in, 0, 65536);
  EXPECT_EQ(f.result, BodyRead::kOk);
  EXPECT_EQ(f.out, big);
}

}  // namespace
}  // namespace kv::http
