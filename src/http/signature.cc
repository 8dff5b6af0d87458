#include "http/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

#include "base/coding.h"

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
  if (secret.empty() || header.empty() || header.size() > 512) return false;
  std::string_view t, v1;
  while (!header.empty()) {
    const size_t comma = header.find(',');
    std::string_view part = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.substr(0, 2) == "t=") t = part.substr(2);
    else if (part.substr(0, 3) == "v1=") v1 = part.substr(3);
  }
  if (t.empty() || t.size() > 12 || v1.size() != 64) return false;
  int64_t ts = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), ts);
  if (ec != std::errc() || ptr != t.data() + t.size() || ts < 0) return false;
  if (ts > now_unix + tolerance_seconds || ts < now_unix - tolerance_seconds) return false;
  const std::string want = Mac(secret, t, body);
  std::string got(v1);
  for (char& c : got) c = static_cast<char>(c >= 'A' && c <= 'F' ? c + 32 : c);
  return CRYPTO_memcmp(want.data(), got.data(), want.size()) == 0;
}

}  // namespace kv::http
