// Finding and parsing a request head in an I/O loop's buffer: limits, leading empty lines,
// resumable scanning, strict parsing.
#include "http/request_head.h"

#include <string>

#include "gtest/gtest.h"

namespace kv::http {
namespace {

HeadScan Scan(const std::string& buf, size_t max_bytes, size_t max_lines, size_t* skip,
              size_t* len) {
  HeadScanState st;
  return ScanHead(buf, &st, max_bytes, max_lines, skip, len);
}

TEST(RequestHead, ACompleteHeadIsFoundAndThePipelinedRestIsNotPartOfIt) {
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t skip = 9, len = 0;
  EXPECT_EQ(Scan(head + "GET /next HTTP/1.1\r\n", 0, 0, &skip, &len), HeadScan::kComplete);
  EXPECT_EQ(skip, 0u);
  EXPECT_EQ(len, head.size());
}

TEST(RequestHead, LeadingEmptyLinesAreSkipped) {
  size_t skip = 0, len = 0;
  EXPECT_EQ(Scan("\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, 0, &skip, &len), HeadScan::kComplete);
  EXPECT_EQ(skip, 4u);
  EXPECT_EQ(len, std::string("GET / HTTP/1.1\r\n\r\n").size());
}

TEST(RequestHead, BareLineFeedsNeverEndAHead) {
  size_t skip = 0, len = 0;
  EXPECT_EQ(Scan("GET / HTTP/1.1\n\n\n\n", 0, 0, &skip, &len), HeadScan::kNeedMore);
}

TEST(RequestHead, ScanningResumesWhereItStoppedByteByByte) {
  const std::string head = "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
  HeadScanState st;
  size_t skip = 0, len = 0;
  for (size_t i = 1; i < head.size(); ++i) {
    ASSERT_EQ(ScanHead(head.substr(0, i), &st, 0, 0, &skip, &len), HeadScan::kNeedMore) << i;
    EXPECT_LE(st.scanned, i);
  }
  EXPECT_EQ(ScanHead(head, &st, 0, 0, &skip, &len), HeadScan::kComplete);
  EXPECT_EQ(len, head.size());
  EXPECT_EQ(st.lines, 3u);
}

TEST(RequestHead, TheByteLimitCountsTheWholeHeadAndAnUnfinishedOneOverItIsRefused) {
  const std::string head = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n";
  size_t skip = 0, len = 0;
  EXPECT_EQ(Scan(head, head.size(), 0, &skip, &len), HeadScan::kComplete);
  EXPECT_EQ(Scan(head, head.size() - 1, 0, &skip, &len), HeadScan::kTooLarge);
  EXPECT_EQ(Scan("GET / HTTP/1.1\r\nX: " + std::string(200, 'a'), 100, 0, &skip, &len),
            HeadScan::kTooLarge)
      << "no end needed to refuse";
}

TEST(RequestHead, TheLineLimitCountsHeaderLinesNotTheRequestLine) {
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 3; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  size_t skip = 0, len = 0;
  EXPECT_EQ(Scan(head + "\r\n", 0, 3, &skip, &len), HeadScan::kComplete);
  EXPECT_EQ(Scan(head + "X-3: v\r\n\r\n", 0, 3, &skip, &len), HeadScan::kTooManyLines);
}

TEST(RequestHead, AWellFormedHeadIsParsedAsCppHttplibDoes) {
  httplib::Request req;
  ASSERT_TRUE(
      ParseHead("POST /api/v1/orders/a%2Fb?x=1&y=%20z HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For:  "
                "1.2.3.4 , 5.6.7.8\t\r\ncontent-length: 12\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n",
                &req));
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.path, "/api/v1/orders/a/b");
  EXPECT_EQ(req.version, "HTTP/1.1");
  EXPECT_EQ(req.get_param_value("y"), " z");
  EXPECT_EQ(req.get_header_value("Content-Length"), "12") << "names are case-insensitive";
  EXPECT_EQ(req.get_header_value("X-Forwarded-For"), "1.2.3.4 , 5.6.7.8");
  EXPECT_EQ(req.get_header_value_count("X-Dup"), 2u);
}

TEST(RequestHead, MalformedHeadsAreRefused) {
  const char* bad[] = {
      "GET /\r\n\r\n",                              // no version
      "GET  / HTTP/1.1\r\n\r\n",                    // empty target
      "GET / HTTP/2.0\r\n\r\n",                     // not HTTP/1.x
      "G(T / HTTP/1.1\r\n\r\n",                     // method not a token
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",          // field without a colon
      "GET / HTTP/1.1\r\nX : v\r\n\r\n",            // space before the colon
      "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",  // obsolete line folding
      "GET / HTTP/1.1\r\n: v\r\n\r\n",              // empty name
      "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",        // control character in a value
  };
  for (const char* h : bad) {
    httplib::Request req;
    EXPECT_FALSE(ParseHead(h, &req)) << h;
  }
}

}  // namespace
}  // namespace kv::http
