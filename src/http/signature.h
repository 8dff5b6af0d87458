// The payment notify signature (SPEC §4):
//   Keyvend-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
// (one or more v1 values: `t=...,v1=<under the new secret>,v1=<under the old one>`)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kv::http {

// The header value for `body` signed at unix time t.
std::string SignNotify(std::string_view secret, int64_t t, std::string_view body);

// True when `header` carries a v1 signature of `body` under `secret` made within
// ±tolerance_seconds of now_unix. The header may carry several v1 values (a gateway rotating
// its secret signs with each): valid when ANY of them matches, each compared in constant
// time. Parts other than t= and v1= are ignored. False on any malformation (no or two t=,
// no v1=), an empty secret, an empty header, more than limits::kNotifySignaturesMax v1
// values or a header longer than limits::kNotifySignatureHeaderBytesMax.
bool VerifyNotify(std::string_view header, std::string_view body, std::string_view secret,
                  int64_t now_unix, int64_t tolerance_seconds);

}  // namespace kv::http
