// A string as a JSON string literal (RFC 8259), the one escaper every JSON writer in keyvend
// uses (API responses, the access log, the tools' --json output).
//
// `"` and `\` are backslash-escaped; control characters (U+0000..U+001F, DEL and the C1
// range U+0080..U+009F) become \u00XX; every byte that is not part of well-formed UTF-8
// becomes \u00XX of its value. So the output is always valid JSON and printable, whatever
// the input (a client's bytes included). Valid UTF-8 text passes through unchanged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kv {

// Appends s, quoted and escaped, to *out. With max_bytes > 0 an input longer than
// max_bytes is cut (never inside a character) to at most max_bytes - 3 input bytes followed
// by "..." inside the quotes.
void AppendJsonString(std::string* out, std::string_view s, size_t max_bytes = 0);

}  // namespace kv
