#include "http/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <vector>

#include "base/coding.h"
#include "limits/limits.h"

namespace kv::http {
namespace {

std::string Mac(std::string_view secret, std::string_view t, std::string_view body) {
  std::string msg;
  msg.reserve(t.size() + 1 + body.size());
  msg.append(t);
  msg.push_back('.');
  msg.append(body);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(out), len));
}

}  // namespace

std::string SignNotify(std::string_view secret, int64_t t, std::string_view body) {
  const std::string ts = std::to_string(t);
  return "t=" + ts + ",v1=" + Mac(secret, ts, body);
}

bool VerifyNotify(std::string_view header, std::string_view body, std::string_view secret,
                  int64_t now_unix, int64_t tolerance_seconds) {
  if (secret.empty() || header.empty() || header.size() > limits::kNotifySignatureHeaderBytesMax) {
    return false;
  }
  std::string_view t;
  bool t_seen = false;
  std::vector<std::string_view> v1s;  // every v1 value, in order (secret rotation)
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view part = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.substr(0, 2) == "t=") {
      if (t_seen) return false;  // two timestamps: which one did the MAC cover?
      t_seen = true;
      t = part.substr(2);
    } else if (part.substr(0, 3) == "v1=") {
      if (v1s.size() == limits::kNotifySignaturesMax) return false;
      v1s.push_back(part.substr(3));
    }  // other schemes (e.g. a gateway's v0=) are ignored
  }
  if (t.empty() || t.size() > 12 || v1s.empty()) return false;
  int64_t ts = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), ts);
  if (ec != std::errc() || ptr != t.data() + t.size() || ts < 0) return false;
  if (ts > now_unix + tolerance_seconds || ts < now_unix - tolerance_seconds) return false;
  const std::string want = Mac(secret, t, body);
  // Every value is compared, each in constant time, and the results are combined without
  // branching on them: the time taken says nothing about which value (if any) matched.
  int matched = 0;
  for (std::string_view v1 : v1s) {
    if (v1.size() != want.size()) continue;  // a length is not a secret
    std::string got(v1);
    for (char& c : got) c = static_cast<char>(c >= 'A' && c <= 'F' ? c + 32 : c);
    matched |= CRYPTO_memcmp(want.data(), got.data(), want.size()) == 0 ? 1 : 0;
  }
  return matched != 0;
}

}  // namespace kv::http
