// Reads one request body off a connection, bounded by the matched route's limit WHILE it
// is read, whatever its framing (issue 9, review finding 2).
//
// cpp-httplib 0.11.4 reads `Transfer-Encoding: chunked` and length-less bodies with no cap
// and inflates `Content-Encoding` bodies before any keyvend code runs. keyvend therefore
// reads every body itself, after the route, admin auth and the body limit have been decided
// from the header (server.cc, Screen), and hands cpp-httplib a request whose body is already
// in `req.body` (with `Content-Length: 0`, so the engine reads nothing more).
//
// Contract:
// - Never reads past the end of this body: a pipelined next request stays in the stream.
// - Content: never more than `limit` bytes are stored (0 = no limit). A chunked body is
//   refused (kTooLarge) as soon as a chunk-size line announces more than the limit, before
//   that chunk's data is read; a fixed-length body over the limit is refused before any
//   byte is read.
// - Framing (chunk-size lines, CRLFs, trailers) is bounded too: each line by
//   kChunkLineBytesMax, the trailer section by kChunkTrailerBytesMax, all framing bytes
//   together by ChunkFramingBytesMax(limit). So the bytes read are at most the limit plus
//   bounded framing.
// - Deadlines are the stream's (ConnStream's whole-body deadline and per-read timeout): a
//   read that gives up yields kIncomplete, as does a peer that closes early.
// - Not thread-safe (one connection, one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "httplib.h"

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
  kOk,          // *out holds the whole body
  kTooLarge,    // over the limit (content, or framing past its bound): answer 413, close
  kMalformed,   // not valid chunked framing: answer 400, close
  kIncomplete,  // the peer closed, or a read gave up (deadline / timeout): 408 or close
};

// Reads exactly `length` bytes (a Content-Length body). length > limit (limit != 0) is
// kTooLarge without reading.
BodyRead ReadFixedBody(httplib::Stream& s, uint64_t length, uint64_t limit, std::string* out);

// Reads a chunked body (RFC 9112 §7.1), decoded, into *out; chunk extensions and trailers
// are read and dropped. *raw_bytes: bytes consumed from the stream (content + framing).
BodyRead ReadChunkedBody(httplib::Stream& s, uint64_t limit, std::string* out, uint64_t* raw_bytes);

}  // namespace kv::http
