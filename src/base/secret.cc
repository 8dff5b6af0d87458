#include "base/secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>

namespace kv {
namespace {

constexpr size_t kSha256Bytes = 32;

void Sha256(std::string_view s, unsigned char out[EVP_MAX_MD_SIZE]) {
  static const char kEmpty[1] = {0};  // EVP_Digest wants a pointer even for no bytes
  unsigned int n = 0;
  EVP_Digest(s.empty() ? kEmpty : s.data(), s.size(), out, &n, EVP_sha256(), nullptr);
}

}  // namespace

bool SecretEquals(std::string_view a, std::string_view b) {
  unsigned char da[EVP_MAX_MD_SIZE] = {0};
  unsigned char db[EVP_MAX_MD_SIZE] = {0};
  Sha256(a, da);
  Sha256(b, db);
  return CRYPTO_memcmp(da, db, kSha256Bytes) == 0;
}

std::optional<std::string> TakeSecretFromEnv(const char* name) {
  char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  std::string out(value);
  // getenv points into the "NAME=value" string of the environment block itself.
  OPENSSL_cleanse(value, out.size());
  ::unsetenv(name);
  return out;
}

}  // namespace kv
