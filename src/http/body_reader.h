// Decodes one chunked request body (RFC 9112 §7.1) incrementally, as its bytes arrive on an
// I/O thread, bounded by the matched route's limit WHILE it arrives (issue 9, review
// finding 2; issue 11: no thread waits for a body).
//
// cpp-httplib 0.11.4 reads `Transfer-Encoding: chunked` and length-less bodies with no cap
// and inflates `Content-Encoding` bodies before any keyvend code runs. keyvend therefore
// reads every body itself, after the route, admin auth and the body limit have been decided
// from the header (server.cc, Screen), and hands cpp-httplib a request whose body is already
// in `req.body` (with `Content-Length: 0`, so the engine reads nothing more). A
// Content-Length body needs no decoder: the I/O loop counts its bytes.
//
// Contract:
// - Feed never consumes past the end of this body: a pipelined next request stays in the
//   caller's buffer (*consumed tells how far the body went).
// - Content: never more than `limit` bytes are stored (0 = no limit). A chunk whose size
//   line announces more than the limit allows is refused (kTooLarge) on the announcement,
//   before any of its data is taken.
// - Framing (chunk-size lines, CRLFs, trailers) is bounded too: each line by
//   kChunkLineBytesMax, the trailer section by kChunkTrailerBytesMax, all framing bytes
//   together by ChunkFramingBytesMax(limit). So the bytes consumed are at most the limit
//   plus bounded framing, and the decoder's own state is a line of at most
//   kChunkLineBytesMax bytes.
// - Not thread-safe (one connection, one thread at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kv::http {

// One chunk-size line (hex size, extensions, CRLF) or trailer line, in bytes.
inline constexpr size_t kChunkLineBytesMax = 1024;
// The whole trailer section after the last chunk, in bytes.
inline constexpr size_t kChunkTrailerBytesMax = 8 * 1024;
// Framing allowed besides the content: a fixed part plus 1/64 of the limit (chunks of a
// kilobyte or more, as every real client sends, stay far below it; 1-byte chunks do not).
inline constexpr uint64_t kChunkFramingBytesBase = 4096;
inline constexpr uint64_t kChunkFramingLimitDivisor = 64;
constexpr uint64_t ChunkFramingBytesMax(uint64_t limit) {
  return limit == 0 ? UINT64_MAX : kChunkFramingBytesBase + limit / kChunkFramingLimitDivisor;
}

enum class BodyRead {
  kOk,         // the whole body is decoded
  kNeedMore,   // every byte given was taken; the body goes on
  kTooLarge,   // over the limit (content, or framing past its bound): answer 413, close
  kMalformed,  // not valid chunked framing: answer 400, close
};

class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(uint64_t limit = 0) : limit_(limit) {}

  // Takes bytes of the raw body: appends decoded content to *out and sets *consumed to the
  // bytes of [p, p+n) that belong to the body. kOk: the body ended at p + *consumed.
  // After kOk, kTooLarge or kMalformed the decoder must not be fed again.
  BodyRead Feed(const char* p, size_t n, size_t* consumed, std::string* out);

  // Bytes consumed so far (content + framing).
  uint64_t raw_bytes() const { return raw_; }

 private:
  enum class State { kSizeLine, kData, kDataEnd, kTrailer, kDone };
  // Appends one byte to the current line; kOk when the line is complete (CRLF), kNeedMore,
  // or kMalformed (bare LF, line too long).
  BodyRead LineByte(char ch, bool* complete);

  uint64_t limit_;
  State state_ = State::kSizeLine;
  std::string line_;
  uint64_t chunk_left_ = 0;
  uint64_t content_ = 0;
  uint64_t framing_ = 0;
  uint64_t trailer_ = 0;
  uint64_t raw_ = 0;
};

}  // namespace kv::http
