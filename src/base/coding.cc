#include "base/coding.h"

namespace kv {

void PutFixed32BE(std::string* dst, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (24 - 8 * i));
  dst->append(b, 4);
}

void PutFixed64BE(std::string* dst, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (56 - 8 * i));
  dst->append(b, 8);
}

void PutFixed64LE(std::string* dst, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  dst->append(b, 8);
}

void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

void PutVarsint64(std::string* dst, int64_t v) {
  const uint64_t zz = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  PutVarint64(dst, zz);
}

void PutLengthPrefixed(std::string* dst, std::string_view s) {
  PutVarint64(dst, s.size());
  dst->append(s.data(), s.size());
}

uint32_t DecodeFixed32BE(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t DecodeFixed64BE(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t DecodeFixed64LE(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool Reader::GetU8(uint8_t* v) {
  if (!ok_ || in_.empty()) return Fail();
  *v = static_cast<uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}

bool Reader::GetFixed64BE(uint64_t* v) {
  if (!ok_ || in_.size() < 8) return Fail();
  *v = DecodeFixed64BE(in_.data());
  in_.remove_prefix(8);
  return true;
}

bool Reader::GetFixed64LE(uint64_t* v) {
  if (!ok_ || in_.size() < 8) return Fail();
  *v = DecodeFixed64LE(in_.data());
  in_.remove_prefix(8);
  return true;
}

bool Reader::GetVarint64(uint64_t* v) {
  if (!ok_) return false;
  uint64_t result = 0;
  for (int shift = 0; shift <= 63; shift += 7) {
    if (in_.empty()) return Fail();
    const uint8_t byte = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    if (shift == 63 && byte > 1) return Fail();  // would overflow 64 bits
    result |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return Fail();
}

bool Reader::GetVarsint64(int64_t* v) {
  uint64_t zz;
  if (!GetVarint64(&zz)) return false;
  *v = static_cast<int64_t>((zz >> 1) ^ (~(zz & 1) + 1));
  return true;
}

bool Reader::GetVarint32(uint32_t* v) {
  uint64_t w;
  if (!GetVarint64(&w)) return false;
  if (w > UINT32_MAX) return Fail();
  *v = static_cast<uint32_t>(w);
  return true;
}

bool Reader::GetLengthPrefixed(std::string* v) {
  uint64_t n;
  if (!GetVarint64(&n)) return false;
  return GetBytes(n, v);
}

bool Reader::GetBytes(size_t n, std::string* v) {
  if (!ok_ || in_.size() < n) return Fail();
  v->assign(in_.data(), n);
  in_.remove_prefix(n);
  return true;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.resize(bytes.size() * 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    const uint8_t b = static_cast<uint8_t>(bytes[i]);
    out[2 * i] = kDigits[b >> 4];
    out[2 * i + 1] = kDigits[b & 0xf];
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  std::string r;
  r.resize(hex.size() / 2);
  for (size_t i = 0; i < r.size(); ++i) {
    const int hi = HexValue(hex[2 * i]);
    const int lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    r[i] = static_cast<char>(hi << 4 | lo);
  }
  *out = std::move(r);
  return true;
}

}  // namespace kv
