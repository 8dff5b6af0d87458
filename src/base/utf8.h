// UTF-8 (RFC 3629) decoding, for the escapers of the process log and the access log and the
// checks of outbound mail.
#pragma once

#include <cstddef>
#include <string_view>

namespace kv {

// The length (1..4) of the well-formed UTF-8 sequence at the start of s, or 0 if s is empty
// or does not start with one (a stray continuation byte, a truncated sequence, an overlong
// form, a surrogate U+D800..U+DFFF, or a code point above U+10FFFF). When it returns > 0
// and code_point is not null, *code_point is the decoded code point. Thread-safe.
size_t Utf8SequenceLength(std::string_view s, char32_t* code_point = nullptr);

// Whether all of s is well-formed UTF-8 (as Utf8SequenceLength judges each sequence; the
// empty string is). Thread-safe.
bool IsValidUtf8(std::string_view s);

}  // namespace kv
