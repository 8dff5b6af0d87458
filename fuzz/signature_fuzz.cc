// libFuzzer target for the payment notify signature (src/http/signature.h): VerifyNotify with
// an arbitrary Keyvend-Signature header and body.
//
// Input: "<header>\n<body>" (no newline: all header, empty body). Before verifying, "{t}" in
// the header becomes the current unix time and "{v}" the correct v1 MAC of the body at that
// time, so the fuzzer can build headers around a VALID signature (several v1=, spaces,
// unknown parts, bad order) as well as around garbage. Checks besides "never crashes":
//  - a header that verifies holds the correct MAC (nothing else can: no forgery), and the
//    same header never verifies for another body, another secret or an empty secret;
//  - the canonical SignNotify header of the body verifies, and not outside the tolerance.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "fuzz_check.h"
#include "http/signature.h"

namespace {

constexpr std::string_view kSecret = "whsec_fuzz_0123456789abcdef";
constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z
constexpr int64_t kTolerance = 300;

// The v1 hex of `body` signed at t: SignNotify's header is "t=<t>,v1=<hex>".
std::string MacHex(std::string_view secret, int64_t t, std::string_view body) {
  const std::string h = kv::http::SignNotify(secret, t, body);
  return h.substr(h.find(",v1=") + 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kv::http::SignNotify;
  using kv::http::VerifyNotify;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view raw_header = input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  const std::string mac = MacHex(kSecret, kNow, body);
  const std::string header =
      absl::StrReplaceAll(absl::string_view(raw_header.data(), raw_header.size()),
                          {{"{t}", std::to_string(kNow)}, {"{v}", mac}});

  if (VerifyNotify(header, body, kSecret, kNow, kTolerance)) {
    FUZZ_CHECK(absl::AsciiStrToLower(header).find(mac) != std::string::npos);
    FUZZ_CHECK(!VerifyNotify(header, body, "", kNow, kTolerance));
    FUZZ_CHECK(!VerifyNotify(header, body, "another secret", kNow, kTolerance));
    const std::string other_body = std::string(body) + "x";
    FUZZ_CHECK(!VerifyNotify(header, other_body, kSecret, kNow, kTolerance));
  }
  FUZZ_CHECK(!VerifyNotify(header, body, "", kNow, kTolerance));

  FUZZ_CHECK(VerifyNotify(SignNotify(kSecret, kNow, body), body, kSecret, kNow, kTolerance));
  FUZZ_CHECK(
      VerifyNotify(SignNotify(kSecret, kNow - kTolerance, body), body, kSecret, kNow, kTolerance));
  FUZZ_CHECK(!VerifyNotify(SignNotify(kSecret, kNow - kTolerance - 1, body), body, kSecret, kNow,
                           kTolerance));
  FUZZ_CHECK(!VerifyNotify(SignNotify(kSecret, kNow + kTolerance + 1, body), body, kSecret, kNow,
                           kTolerance));
  return 0;
}
