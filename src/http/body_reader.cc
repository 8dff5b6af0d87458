#include "http/body_reader.h"

#include <algorithm>

namespace kv::http {
namespace {

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

}  // namespace

BodyRead ChunkedDecoder::LineByte(char ch, bool* complete) {
  *complete = false;
  if (ch == '\n') {
    if (line_.empty() || line_.back() != '\r') return BodyRead::kMalformed;  // bare LF
    line_.pop_back();
    *complete = true;
    return BodyRead::kOk;
  }
  if (line_.size() >= kChunkLineBytesMax) return BodyRead::kMalformed;
  line_.push_back(ch);
  return BodyRead::kNeedMore;
}

BodyRead ChunkedDecoder::Feed(const char* p, size_t n, size_t* consumed, std::string* out) {
  const uint64_t framing_max = ChunkFramingBytesMax(limit_);
  size_t i = 0;
  const auto done = [&](BodyRead r) {
    *consumed = i;
    raw_ += i;
    return r;
  };
  while (i < n) {
    if (state_ == State::kData) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(chunk_left_, n - i));
      out->append(p + i, take);
      i += take;
      chunk_left_ -= take;
      if (chunk_left_ == 0) state_ = State::kDataEnd;
      continue;
    }
    bool complete = false;
    const BodyRead r = LineByte(p[i++], &complete);
    if (r == BodyRead::kMalformed) return done(r);
    if (state_ == State::kTrailer) {
      if (++trailer_ > kChunkTrailerBytesMax) return done(BodyRead::kMalformed);
    } else if (++framing_ > framing_max) {
      return done(BodyRead::kTooLarge);
    }
    if (!complete) continue;
    switch (state_) {
      case State::kSizeLine: {
        uint64_t size = 0;
        if (!ParseChunkSize(line_, &size)) return done(BodyRead::kMalformed);
        line_.clear();
        if (size == 0) {
          state_ = State::kTrailer;
          break;
        }
        // Refused on the announcement, before the chunk's data is taken.
        if (limit_ != 0 && (size > limit_ || content_ > limit_ - size)) {
          return done(BodyRead::kTooLarge);
        }
        content_ += size;
        chunk_left_ = size;
        state_ = State::kData;
        break;
      }
      case State::kDataEnd:
        if (!line_.empty()) return done(BodyRead::kMalformed);  // data longer than announced
        state_ = State::kSizeLine;
        break;
      case State::kTrailer:
        if (line_.empty()) {  // the empty line ends the trailer section and the body
          state_ = State::kDone;
          return done(BodyRead::kOk);
        }
        line_.clear();  // trailer fields are dropped
        break;
      case State::kData:
      case State::kDone:
        break;
    }
  }
  return done(BodyRead::kNeedMore);
}

}  // namespace kv::http
