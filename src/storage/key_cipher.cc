#include "storage/key_cipher.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstdlib>

#include "base/log.h"
#include "storage/schema.h"

namespace kv {
namespace {

using Subkey = std::array<uint8_t, 32>;

[[noreturn]] void Fatal(const char* what) {
  KV_LOG(kError, "fatal: OpenSSL ", what, " failed");
  std::abort();
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Fetched once: an implicit fetch on every init would take OpenSSL's store lock on every
// call. Never freed; it lives as long as the process.
const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* const cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (c == nullptr) Fatal("EVP_CIPHER_fetch(AES-256-GCM)");
    return c;
  }();
  return cipher;
}

const EVP_MAC* Hmac() {
  static const EVP_MAC* const mac = [] {
    EVP_MAC* m = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (m == nullptr) Fatal("EVP_MAC_fetch(HMAC)");
    return m;
  }();
  return mac;
}

// A thread's GCM context together with the key it holds. Re-keying costs an AES key
// schedule and a GHASH table, so a thread that keeps using one KeyCipher (the import and
// checkout loops) only sets a fresh nonce per call. Comparing the full key, not the
// KeyCipher's address, keeps this correct when instances are copied or destroyed.
struct ThreadGcm {
  EVP_CIPHER_CTX* ctx = nullptr;
  Subkey key{};
  bool keyed = false;

  ~ThreadGcm() {
    EVP_CIPHER_CTX_free(ctx);  // also wipes the key schedule
    OPENSSL_cleanse(key.data(), key.size());
  }
};

// Returns this thread's context, set up to encrypt (enc = 1) or decrypt (enc = 0) under
// `key` with `nonce`, ready for AAD.
EVP_CIPHER_CTX* GcmContext(const Subkey& key, int enc, const uint8_t* nonce) {
  thread_local ThreadGcm tg;
  if (tg.ctx == nullptr) {
    tg.ctx = EVP_CIPHER_CTX_new();
    if (tg.ctx == nullptr) Fatal("EVP_CIPHER_CTX_new");
  }
  if (tg.keyed && CRYPTO_memcmp(tg.key.data(), key.data(), key.size()) == 0) {
    // The GCM default nonce length is 12 bytes, so only the nonce needs setting; passing
    // no cipher and no key keeps the key schedule.
    if (EVP_CipherInit_ex2(tg.ctx, nullptr, nullptr, nonce, enc, nullptr) != 1) {
      Fatal("EVP_CipherInit_ex2");
    }
  } else {
    tg.keyed = false;
    if (EVP_CipherInit_ex2(tg.ctx, Aes256Gcm(), key.data(), nonce, enc, nullptr) != 1) {
      Fatal("EVP_CipherInit_ex2");
    }
    tg.key = key;
    tg.keyed = true;
  }
  return tg.ctx;
}

// EVP_CipherUpdate takes an int length; larger inputs go in chunks. `out` is null for AAD.
void GcmUpdate(EVP_CIPHER_CTX* ctx, uint8_t* out, const uint8_t* in, size_t n) {
  constexpr size_t kChunk = size_t{1} << 30;
  while (n > 0) {
    const int len = static_cast<int>(std::min(n, kChunk));
    int out_len = 0;
    if (EVP_CipherUpdate(ctx, out, &out_len, in, len) != 1) Fatal("EVP_CipherUpdate");
    if (out != nullptr) out += out_len;
    in += len;
    n -= static_cast<size_t>(len);
  }
}

// A thread's HMAC-SHA256 context and the key it holds, for the same reason as ThreadGcm:
// re-keying hashes the padded key twice and allocates inside OpenSSL.
struct ThreadHmac {
  EVP_MAC_CTX* ctx = nullptr;
  Subkey key{};
  bool keyed = false;

  ~ThreadHmac() {
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(key.data(), key.size());
  }
};

void HmacSha256(const Subkey& key, std::string_view data, uint8_t out[32]) {
  thread_local ThreadHmac th;
  if (th.ctx == nullptr) {
    th.ctx = EVP_MAC_CTX_new(const_cast<EVP_MAC*>(Hmac()));
    if (th.ctx == nullptr) Fatal("EVP_MAC_CTX_new");
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(th.ctx, params) != 1) Fatal("EVP_MAC_CTX_set_params");
  }
  if (th.keyed && CRYPTO_memcmp(th.key.data(), key.data(), key.size()) == 0) {
    // A null key restarts the MAC under the key already set.
    if (EVP_MAC_init(th.ctx, nullptr, 0, nullptr) != 1) Fatal("EVP_MAC_init");
  } else {
    th.keyed = false;
    if (EVP_MAC_init(th.ctx, key.data(), key.size(), nullptr) != 1) Fatal("EVP_MAC_init");
    th.key = key;
    th.keyed = true;
  }
  if (EVP_MAC_update(th.ctx, Bytes(data), data.size()) != 1) Fatal("EVP_MAC_update");
  size_t out_len = 0;
  if (EVP_MAC_final(th.ctx, out, &out_len, 32) != 1 || out_len != 32) Fatal("EVP_MAC_final");
}

// Derivation runs once per process, so the one-shot HMAC() is used; it keeps the master
// key out of the thread-local cache above.
void DeriveSubkey(const MasterKey& master, const char* label, Subkey* out) {
  unsigned int out_len = 0;
  const std::string_view l(label);
  if (HMAC(EVP_sha256(), master.bytes.data(), static_cast<int>(master.bytes.size()), Bytes(l),
           l.size(), out->data(), &out_len) == nullptr ||
      out_len != out->size()) {
    Fatal("HMAC");
  }
}

}  // namespace

KeyCipher KeyCipher::Derive(const MasterKey& master) {
  KeyCipher c;
  DeriveSubkey(master, "keyvend/v1/enc", &c.enc_);
  DeriveSubkey(master, "keyvend/v1/uniq", &c.uniq_);
  DeriveSubkey(master, "keyvend/v1/kcv", &c.kcv_);
  return c;
}

KeyCipher::~KeyCipher() {
  OPENSSL_cleanse(enc_.data(), enc_.size());
  OPENSSL_cleanse(uniq_.data(), uniq_.size());
  OPENSSL_cleanse(kcv_.data(), kcv_.size());
}

std::string KeyCipher::KeyCheckValue() const {
  return std::string(reinterpret_cast<const char*>(kcv_.data()), kcv_.size());
}

std::string KeyCipher::Seal(std::string_view plaintext, std::string_view aad,
                            Random* random) const {
  std::string sealed(plaintext.size() + kSealOverhead, '\0');
  uint8_t* const nonce = reinterpret_cast<uint8_t*>(sealed.data());
  uint8_t* const ciphertext = nonce + kNonceSize;
  uint8_t* const tag = ciphertext + plaintext.size();
  random->Fill(nonce, kNonceSize);

  EVP_CIPHER_CTX* ctx = GcmContext(enc_, 1, nonce);
  GcmUpdate(ctx, nullptr, Bytes(aad), aad.size());
  GcmUpdate(ctx, ciphertext, Bytes(plaintext), plaintext.size());
  int final_len = 0;
  // GCM is a stream mode: Final emits no bytes, it only computes the tag.
  if (EVP_EncryptFinal_ex(ctx, tag, &final_len) != 1 || final_len != 0) {
    Fatal("EVP_EncryptFinal_ex");
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
      OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_get_params(ctx, params) != 1) Fatal("EVP_CIPHER_CTX_get_params(tag)");
  return sealed;
}

absl::StatusOr<std::string> KeyCipher::Open(std::string_view sealed, std::string_view aad) const {
  static constexpr char kAuthFailed[] = "card key failed authentication";
  if (sealed.size() < kSealOverhead) return absl::DataLossError(kAuthFailed);
  const uint8_t* const nonce = Bytes(sealed);
  const uint8_t* const ciphertext = nonce + kNonceSize;
  const size_t ciphertext_len = sealed.size() - kSealOverhead;
  // The params API wants a mutable buffer.
  uint8_t tag[kTagSize];
  std::copy_n(ciphertext + ciphertext_len, kTagSize, tag);

  EVP_CIPHER_CTX* ctx = GcmContext(enc_, 0, nonce);
  GcmUpdate(ctx, nullptr, Bytes(aad), aad.size());
  std::string plaintext(ciphertext_len, '\0');
  GcmUpdate(ctx, reinterpret_cast<uint8_t*>(plaintext.data()), ciphertext, ciphertext_len);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagSize),
      OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_set_params(ctx, params) != 1) Fatal("EVP_CIPHER_CTX_set_params(tag)");
  int final_len = 0;
  uint8_t unused[16];
  if (EVP_DecryptFinal_ex(ctx, unused, &final_len) != 1) {
    // GCM decrypts before it verifies, so the buffer holds unauthenticated plaintext, which
    // must not outlive this call.
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    // A refused key is an expected outcome, not an OpenSSL error; leave nothing on this
    // thread's error queue for unrelated code to trip over.
    ERR_clear_error();
    return absl::DataLossError(kAuthFailed);
  }
  return plaintext;
}

std::string KeyCipher::SealPoolKey(std::string_view key_text, uint64_t pid, uint64_t seq,
                                   Random* random) const {
  return Seal(key_text, storage::PoolKey(pid, seq), random);
}

absl::StatusOr<std::string> KeyCipher::OpenPoolKey(std::string_view sealed, uint64_t pid,
                                                   uint64_t seq) const {
  return Open(sealed, storage::PoolKey(pid, seq));
}

std::string KeyCipher::UniqueTag(std::string_view key) const {
  uint8_t mac[32];
  HmacSha256(uniq_, key, mac);
  return std::string(reinterpret_cast<const char*>(mac), kUniqueTagSize);
}

}  // namespace kv
