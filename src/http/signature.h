// The payment notify signature (SPEC §4):
//   Keyvend-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::http {

// The header value for `body` signed at unix time t.
std::string SignNotify(std::string_view secret, int64_t t, std::string_view body);

// True when `header` carries a v1 signature of `body` under `secret` made within
// ±tolerance_seconds of now_unix. Constant-time comparison; false on any malformation,
// an empty secret, or an empty header.
bool VerifyNotify(std::string_view header, std::string_view body, std::string_view secret,
                  int64_t now_unix, int64_t tolerance_seconds);

}  // namespace kv::http
