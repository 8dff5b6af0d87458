#include "base/utf8.h"

#include <cstdint>

namespace kv {

size_t Utf8SequenceLength(std::string_view s, char32_t* code_point) {
  if (s.empty()) return 0;
  const auto byte = [&s](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(0);
  if (b0 < 0x80) {
    if (code_point != nullptr) *code_point = b0;
    return 1;
  }
  // The second byte's range depends on the first (Unicode Table 3-7); this is what rules
  // out overlong forms, surrogates and code points above U+10FFFF.
  size_t len;
  uint8_t lo = 0x80, hi = 0xbf;
  char32_t cp;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3;
    cp = b0 & 0x0f;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    return 0;  // a continuation byte, C0/C1 (overlong) or F5..FF
  }
  if (s.size() < len) return 0;
  if (byte(1) < lo || byte(1) > hi) return 0;
  cp = (cp << 6) | (byte(1) & 0x3f);
  for (size_t i = 2; i < len; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
    cp = (cp << 6) | (byte(i) & 0x3f);
  }
  if (code_point != nullptr) *code_point = cp;
  return len;
}

bool IsValidUtf8(std::string_view s) {
  while (!s.empty()) {
    const size_t n = Utf8SequenceLength(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

}  // namespace kv
