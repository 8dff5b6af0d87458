#include "base/json_string.h"

#include <cstdint>

#include "base/utf8.h"

namespace kv {
namespace {

constexpr std::string_view kEllipsis = "...";

void AppendUnicodeEscape(std::string* out, uint32_t c) {  // c <= 0xff
  static constexpr char kHex[] = "0123456789abcdef";
  const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
  out->append(esc, sizeof esc);
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s, size_t max_bytes) {
  const bool cut = max_bytes > kEllipsis.size() && s.size() > max_bytes;
  const size_t end = cut ? max_bytes - kEllipsis.size() : s.size();
  out->reserve(out->size() + end + 2 + (cut ? kEllipsis.size() : 0));
  out->push_back('"');
  for (size_t i = 0; i < end;) {
    // A run of printable ASCII other than '"' and '\\' (one byte per character, nothing to
    // escape, never split at the cut) is copied whole: the bulk of what keyvend writes (ids,
    // names, statuses, times) takes no per-character decoding.
    size_t run = i;
    while (run < end) {
      const auto b = static_cast<uint8_t>(s[run]);
      if (b < 0x20 || b > 0x7e || b == '"' || b == '\\') break;
      ++run;
    }
    if (run > i) {
      out->append(s.data() + i, run - i);
      i = run;
      continue;
    }
    char32_t cp = 0;
    const size_t len = Utf8SequenceLength(s.substr(i), &cp);
    if (len == 0) {
      AppendUnicodeEscape(out, static_cast<uint8_t>(s[i]));
      i += 1;
      continue;
    }
    if (i + len > end) break;  // never split a character at the cut
    if (cp == '"' || cp == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
      AppendUnicodeEscape(out, cp);
    } else {
      out->append(s.data() + i, len);
    }
    i += len;
  }
  if (cut) out->append(kEllipsis);
  out->push_back('"');
}

}  // namespace kv
