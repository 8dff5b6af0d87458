#include "http/body_reader.h"

#include <algorithm>

namespace kv::http {
namespace {

// Bodies grow as they arrive: a client that announces the limit and sends nothing costs no
// more than what it sent.
constexpr size_t kReadStepBytes = 64 * 1024;

// Appends exactly n bytes from s to *out; false if the stream ends or gives up first.
bool ReadExactly(httplib::Stream& s, uint64_t n, std::string* out) {
  while (n > 0) {
    const size_t step = static_cast<size_t>(std::min<uint64_t>(n, kReadStepBytes));
    const size_t old = out->size();
    out->resize(old + step);
    const ssize_t got = s.read(out->data() + old, step);
    if (got <= 0) {
      out->resize(old);
      return false;
    }
    out->resize(old + static_cast<size_t>(got));
    n -= static_cast<uint64_t>(got);
  }
  return true;
}

enum class Line { kOk, kTooLong, kIncomplete, kBareLf };

// Reads one CRLF-terminated line (without the CRLF) of at most kChunkLineBytesMax bytes,
// one byte at a time so nothing past the line is consumed (ConnStream buffers, so a byte
// read is a copy, not a syscall).
Line ReadLine(httplib::Stream& s, std::string* line, uint64_t* raw) {
  line->clear();
  char ch = 0;
  while (true) {
    const ssize_t got = s.read(&ch, 1);
    if (got <= 0) return Line::kIncomplete;
    ++*raw;
    if (ch == '\n') {
      if (line->empty() || line->back() != '\r') return Line::kBareLf;
      line->pop_back();
      return Line::kOk;
    }
    if (line->size() >= kChunkLineBytesMax) return Line::kTooLong;
    line->push_back(ch);
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// chunk-size [ BWS ";" extensions ]: false unless 1..16 hex digits, then nothing, or
// optional spaces/tabs and a ';'.
bool ParseChunkSize(const std::string& line, uint64_t* size) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < line.size() && HexDigit(line[i]) >= 0) {
    if (i >= 16) return false;  // more than 64 bits
    v = (v << 4) | static_cast<uint64_t>(HexDigit(line[i]));
    ++i;
  }
  if (i == 0) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i < line.size() && line[i] != ';') return false;
  *size = v;
  return true;
}

BodyRead FromLine(Line l) {
  switch (l) {
    case Line::kOk:
      return BodyRead::kOk;
    case Line::kIncomplete:
      return BodyRead::kIncomplete;
    case Line::kTooLong:
    case Line::kBareLf:
      return BodyRead::kMalformed;
  }
  return BodyRead::kMalformed;
}

}  // namespace

BodyRead ReadFixedBody(httplib::Stream& s, uint64_t length, uint64_t limit, std::string* out) {
  out->clear();
  if (limit != 0 && length > limit) return BodyRead::kTooLarge;
  out->reserve(static_cast<size_t>(std::min<uint64_t>(length, kReadStepBytes)));
  return ReadExactly(s, length, out) ? BodyRead::kOk : BodyRead::kIncomplete;
}

BodyRead ReadChunkedBody(httplib::Stream& s, uint64_t limit, std::string* out,
                         uint64_t* raw_bytes) {
  out->clear();
  *raw_bytes = 0;
  const uint64_t framing_max = ChunkFramingBytesMax(limit);
  uint64_t framing = 0;
  std::string line;
  while (true) {
    uint64_t raw = 0;
    const Line l = ReadLine(s, &line, &raw);
    *raw_bytes += raw;
    framing += raw;
    if (l != Line::kOk) return FromLine(l);
    if (framing > framing_max) return BodyRead::kTooLarge;
    uint64_t size = 0;
    if (!ParseChunkSize(line, &size)) return BodyRead::kMalformed;
    if (size == 0) break;
    // Refused on the announcement, before the chunk's data is read.
    if (limit != 0 && (size > limit || out->size() > limit - size)) return BodyRead::kTooLarge;
    const size_t before = out->size();
    const bool whole = ReadExactly(s, size, out);
    *raw_bytes += out->size() - before;
    if (!whole) return BodyRead::kIncomplete;
    raw = 0;
    const Line end = ReadLine(s, &line, &raw);
    *raw_bytes += raw;
    framing += raw;
    if (end != Line::kOk) return FromLine(end);
    if (!line.empty()) return BodyRead::kMalformed;  // data longer than announced
  }
  // Trailer section: header lines up to an empty line, dropped.
  uint64_t trailer = 0;
  while (true) {
    uint64_t raw = 0;
    const Line l = ReadLine(s, &line, &raw);
    *raw_bytes += raw;
    trailer += raw;
    if (l != Line::kOk) return FromLine(l);
    if (line.empty()) return BodyRead::kOk;
    if (trailer > kChunkTrailerBytesMax) return BodyRead::kMalformed;
  }
}

}  // namespace kv::http
