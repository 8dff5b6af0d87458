// Binary coding for keys and values stored in RocksDB.
//
// Keys use fixed-width big-endian integers so that byte order equals numeric order.
// Values use a tiny self-describing-free format: fixed ints are little-endian, variable
// ints are LEB128 varints, strings are varint-length-prefixed. Every record value starts
// with its own format version byte (see storage/schema.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv {

// --- writing (appends to *dst) ---------------------------------------------------------
void PutFixed32BE(std::string* dst, uint32_t v);
void PutFixed64BE(std::string* dst, uint64_t v);
void PutFixed64LE(std::string* dst, uint64_t v);
void PutVarint64(std::string* dst, uint64_t v);
// Signed varint via zigzag.
void PutVarsint64(std::string* dst, int64_t v);
void PutLengthPrefixed(std::string* dst, std::string_view s);

// --- reading -----------------------------------------------------------------------------
uint32_t DecodeFixed32BE(const char* p);
uint64_t DecodeFixed64BE(const char* p);
uint64_t DecodeFixed64LE(const char* p);

// Reads a value written with the Put* functions above, front to back. Every getter
// returns false (and leaves the output unspecified) when the input is short or malformed;
// once a getter fails, all later getters fail too, so a caller may check only at the end
// via ok(). Does not own the input, which must outlive the reader.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool GetU8(uint8_t* v);
  bool GetFixed64BE(uint64_t* v);
  bool GetFixed64LE(uint64_t* v);
  bool GetVarint64(uint64_t* v);
  bool GetVarsint64(int64_t* v);
  bool GetVarint32(uint32_t* v);
  bool GetLengthPrefixed(std::string* v);
  bool GetBytes(size_t n, std::string* v);
  // True when no getter has failed.
  bool ok() const { return ok_; }
  // True when no getter has failed and the whole input was consumed.
  bool done() const { return ok_ && in_.empty(); }
  size_t remaining() const { return in_.size(); }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }
  std::string_view in_;
  bool ok_ = true;
};

// Lowercase hex of bytes, and back. HexDecode returns false on odd length or a non-hex
// character.
std::string HexEncode(std::string_view bytes);
bool HexDecode(std::string_view hex, std::string* out);

}  // namespace kv
