// KeyCipher: how card keys are kept secret at rest.
//
// Three independent 32-byte subkeys are derived from the master key (storage/master_key.h):
//   enc  = HMAC-SHA256(master, "keyvend/v1/enc")   AES-256-GCM key sealing card keys
//   uniq = HMAC-SHA256(master, "keyvend/v1/uniq")  HMAC key for the shop-wide uniqueness tag
//   kcv  = HMAC-SHA256(master, "keyvend/v1/kcv")   stored in the data dir to recognise the
//                                                  master key (a wrong key is refused)
// HMAC-SHA256 is a PRF, so knowing one subkey (kcv is stored in the clear) reveals nothing
// about the others or the master key.
//
// Sealed format: nonce(12, random) || ciphertext(len(plaintext)) || tag(16). The aad binds a
// sealed key to its context (e.g. product and sequence), so a sealed value moved to another
// record fails to open.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/random.h"
#include "storage/master_key.h"

namespace kv {

class KeyCipher {
 public:
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  // Sealed size = plaintext size + kSealOverhead.
  static constexpr size_t kSealOverhead = kNonceSize + kTagSize;
  static constexpr size_t kUniqueTagSize = 16;
  static constexpr size_t kKeyCheckValueSize = 32;

  // Derives the subkeys from `master`. Pure and deterministic; aborts the process only if
  // OpenSSL itself fails. The result does not refer to `master`.
  static KeyCipher Derive(const MasterKey& master);

  // Copyable. Every copy is immutable; the destructor wipes its subkeys.
  KeyCipher(const KeyCipher&) = default;
  KeyCipher& operator=(const KeyCipher&) = default;
  ~KeyCipher();

  // All methods below are const and safe to call concurrently from any number of threads,
  // on one instance or on several. Each thread keeps its own OpenSSL contexts, keyed with the
  // subkeys of the instance it used last, until the thread exits.

  // The 32-byte kcv subkey, to be stored in the data dir and compared (with CRYPTO_memcmp)
  // against the value of a candidate master key at startup.
  std::string KeyCheckValue() const;

  // Encrypts and authenticates `plaintext`, binding it to `aad` (not stored; the same aad
  // must be given to Open). The 12-byte nonce comes from `random` (not owned, non-null; a
  // CSPRNG outside tests, since a repeated nonce breaks GCM). Returns
  // nonce || ciphertext || tag, plaintext.size() + kSealOverhead bytes. Never fails; aborts
  // the process only if OpenSSL itself fails, which cannot happen with valid inputs.
  std::string Seal(std::string_view plaintext, std::string_view aad, Random* random) const;

  // Verifies and decrypts a value produced by Seal with the same subkeys and aad. Returns
  // DataLoss("card key failed authentication") when `sealed` is shorter than kSealOverhead
  // or when any byte of it, or the aad, or the key differs; no plaintext is released then.
  absl::StatusOr<std::string> Open(std::string_view sealed, std::string_view aad) const;

  // The key-position rule, written once: a card key in product `pid` at sequence `seq` is
  // sealed with aad = storage::PoolKey(pid, seq), the key of its CF "pool" record, so a
  // sealed key copied to another product, seq or order fails to open. It keeps that aad for
  // life (also once delivered into an order record). Every seal and open of a card key goes
  // through these two; Seal/Open above stay for other uses and tests.
  std::string SealPoolKey(std::string_view key_text, uint64_t pid, uint64_t seq,
                          Random* random) const;
  absl::StatusOr<std::string> OpenPoolKey(std::string_view sealed, uint64_t pid,
                                          uint64_t seq) const;

  // The 16-byte uniqueness tag of a card key: the first 16 bytes of HMAC-SHA256(uniq, key).
  // Deterministic for one master key, so it can index "has this code been stocked before"
  // without the index holding the code itself.
  std::string UniqueTag(std::string_view key) const;

 private:
  using Subkey = std::array<uint8_t, 32>;

  KeyCipher() = default;

  Subkey enc_{};
  Subkey uniq_{};
  Subkey kcv_{};
};

}  // namespace kv
