#include "storage/key_cipher.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "base/random.h"
#include "gtest/gtest.h"

namespace kv {
namespace {

MasterKey MakeMaster(uint64_t seed) {
  MasterKey m;
  SeededRandom(seed).Fill(m.bytes.data(), m.bytes.size());
  return m;
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string MasterBytes(const MasterKey& m) {
  return std::string(reinterpret_cast<const char*>(m.bytes.data()), m.bytes.size());
}

// Decrypts with a fresh EVP context and independently derived key, so the sealed format
// (nonce || ciphertext || tag) and the derivation are pinned, not just self-consistent.
std::string ReferenceOpen(const MasterKey& m, std::string_view sealed, std::string_view aad) {
  const std::string enc = Hmac(MasterBytes(m), "keyvend/v1/enc");
  const auto* u = reinterpret_cast<const unsigned char*>(sealed.data());
  const size_t ct_len = sealed.size() - 28;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::string out(ct_len, '\0');
  int len = 0;
  bool ok =
      EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(),
                          reinterpret_cast<const unsigned char*>(enc.data()), u, nullptr) == 1;
  ok = ok &&
       EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                         static_cast<int>(aad.size())) == 1;
  ok = ok && EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, u + 12,
                               static_cast<int>(ct_len)) == 1;
  std::string tag(sealed.substr(12 + ct_len));
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1;
  unsigned char fin[16];
  ok = ok && EVP_DecryptFinal_ex(ctx, fin, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? out : "<reference open failed>";
}

void ExpectRefused(const absl::StatusOr<std::string>& r) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), "card key failed authentication");
}

TEST(KeyCipherTest, SealOpenRoundTrip) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(1));
  SeededRandom rnd(7);
  std::string big(512, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  for (const std::string& pt : {std::string(), std::string("ABCD-EFGH-IJKL-MNOP"), big}) {
    for (const std::string& aad : {std::string(), std::string("product 7 seq 42")}) {
      const std::string sealed = c.Seal(pt, aad, &rnd);
      EXPECT_EQ(sealed.size(), pt.size() + KeyCipher::kSealOverhead);
      const absl::StatusOr<std::string> opened = c.Open(sealed, aad);
      ASSERT_TRUE(opened.ok()) << opened.status();
      EXPECT_EQ(*opened, pt);
    }
  }
}

TEST(KeyCipherTest, SealedFormatMatchesReferenceAesGcm) {
  const MasterKey m = MakeMaster(2);
  const KeyCipher c = KeyCipher::Derive(m);
  SeededRandom rnd(3);
  const std::string sealed = c.Seal("XXXX-YYYY-ZZZZ", "aad", &rnd);
  EXPECT_EQ(ReferenceOpen(m, sealed, "aad"), "XXXX-YYYY-ZZZZ");
  // The nonce is the first 12 bytes drawn from the Random.
  uint8_t nonce[12];
  SeededRandom(3).Fill(nonce, sizeof(nonce));
  EXPECT_EQ(sealed.substr(0, 12), std::string(reinterpret_cast<char*>(nonce), 12));
}

TEST(KeyCipherTest, SealOverheadIs28) { EXPECT_EQ(KeyCipher::kSealOverhead, 28u); }

TEST(KeyCipherTest, EveryByteFlipIsRefused) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(1));
  SeededRandom rnd(11);
  const std::string sealed = c.Seal("0123456789abcdef0123", "aad", &rnd);
  // Covers nonce (0..11), ciphertext and tag (last 16).
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (const char mask : {'\x01', '\x80', '\xff'}) {
      std::string bad = sealed;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      SCOPED_TRACE(testing::Message() << "byte " << i << " mask " << int{mask});
      ExpectRefused(c.Open(bad, "aad"));
    }
  }
  // The original still opens after all those failures on this thread's context.
  ASSERT_TRUE(c.Open(sealed, "aad").ok());
}

TEST(KeyCipherTest, EmptyPlaintextTagIsAuthenticated) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(1));
  SeededRandom rnd(12);
  const std::string sealed = c.Seal("", "", &rnd);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    ExpectRefused(c.Open(bad, ""));
  }
}

TEST(KeyCipherTest, TruncatedOrExtendedInputIsRefused) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(1));
  SeededRandom rnd(13);
  const std::string sealed = c.Seal("key", "", &rnd);
  for (size_t n = 0; n < sealed.size(); ++n) {
    SCOPED_TRACE(n);
    ExpectRefused(c.Open(sealed.substr(0, n), ""));
  }
  ExpectRefused(c.Open(sealed + "x", ""));
  ExpectRefused(c.Open(sealed.substr(1), ""));
}

TEST(KeyCipherTest, WrongAadIsRefused) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(1));
  SeededRandom rnd(14);
  const std::string sealed = c.Seal("key", "product 1 seq 1", &rnd);
  ExpectRefused(c.Open(sealed, "product 1 seq 2"));
  ExpectRefused(c.Open(sealed, ""));
  ExpectRefused(c.Open(sealed, "product 1 seq 1 "));
  EXPECT_TRUE(c.Open(sealed, "product 1 seq 1").ok());

  const std::string no_aad = c.Seal("key", "", &rnd);
  ExpectRefused(c.Open(no_aad, "x"));
}

TEST(KeyCipherTest, OtherMasterKeyIsRefused) {
  const KeyCipher a = KeyCipher::Derive(MakeMaster(1));
  const KeyCipher b = KeyCipher::Derive(MakeMaster(2));
  SeededRandom rnd(15);
  const std::string sealed = a.Seal("key", "aad", &rnd);
  ExpectRefused(b.Open(sealed, "aad"));
  // Alternating instances on one thread must re-key the cached context each time.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(a.Open(sealed, "aad").ok());
    ExpectRefused(b.Open(sealed, "aad"));
  }
}

TEST(KeyCipherTest, SameMasterDerivesInteroperableCiphers) {
  const KeyCipher a = KeyCipher::Derive(MakeMaster(5));
  const KeyCipher b = KeyCipher::Derive(MakeMaster(5));
  SeededRandom rnd(16);
  const std::string sealed = a.Seal("key", "aad", &rnd);
  const absl::StatusOr<std::string> opened = b.Open(sealed, "aad");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "key");
}

TEST(KeyCipherTest, CopiesWork) {
  const KeyCipher a = KeyCipher::Derive(MakeMaster(6));
  std::string sealed;
  {
    const KeyCipher copy = a;  // NOLINT(performance-unnecessary-copy-initialization)
    SeededRandom rnd(17);
    sealed = copy.Seal("key", "aad", &rnd);
  }
  KeyCipher assigned = KeyCipher::Derive(MakeMaster(7));
  assigned = a;
  EXPECT_EQ(*assigned.Open(sealed, "aad"), "key");
  EXPECT_EQ(assigned.KeyCheckValue(), a.KeyCheckValue());
}

TEST(KeyCipherTest, TwoSealsOfSamePlaintextDiffer) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(1));
  SeededRandom rnd(18);
  const std::string s1 = c.Seal("same key", "aad", &rnd);
  const std::string s2 = c.Seal("same key", "aad", &rnd);
  EXPECT_NE(s1, s2);
  EXPECT_NE(s1.substr(0, KeyCipher::kNonceSize), s2.substr(0, KeyCipher::kNonceSize));
  EXPECT_EQ(*c.Open(s1, "aad"), "same key");
  EXPECT_EQ(*c.Open(s2, "aad"), "same key");

  SecureRandom* secure = SecureRandom::Get();
  EXPECT_NE(c.Seal("same key", "aad", secure), c.Seal("same key", "aad", secure));
}

TEST(KeyCipherTest, KeyCheckValue) {
  const MasterKey m1 = MakeMaster(1);
  const MasterKey m2 = MakeMaster(2);
  const std::string kcv1 = KeyCipher::Derive(m1).KeyCheckValue();
  EXPECT_EQ(kcv1.size(), 32u);
  EXPECT_EQ(kcv1.size(), KeyCipher::kKeyCheckValueSize);
  EXPECT_EQ(KeyCipher::Derive(m1).KeyCheckValue(), kcv1);
  EXPECT_NE(KeyCipher::Derive(m2).KeyCheckValue(), kcv1);
  // Pinned derivation: the stored value must not change between releases.
  EXPECT_EQ(kcv1, Hmac(MasterBytes(m1), "keyvend/v1/kcv"));
  // It is not the master key nor the other subkeys.
  EXPECT_NE(kcv1, MasterBytes(m1));
  EXPECT_NE(kcv1, Hmac(MasterBytes(m1), "keyvend/v1/enc"));
  EXPECT_NE(kcv1, Hmac(MasterBytes(m1), "keyvend/v1/uniq"));
}

TEST(KeyCipherTest, UniqueTag) {
  const MasterKey m1 = MakeMaster(1);
  const KeyCipher c1 = KeyCipher::Derive(m1);
  const KeyCipher c2 = KeyCipher::Derive(MakeMaster(2));
  const std::string t = c1.UniqueTag("ABCD-EFGH");
  EXPECT_EQ(t.size(), 16u);
  EXPECT_EQ(t.size(), KeyCipher::kUniqueTagSize);
  EXPECT_EQ(c1.UniqueTag("ABCD-EFGH"), t);
  EXPECT_EQ(KeyCipher::Derive(m1).UniqueTag("ABCD-EFGH"), t);
  EXPECT_NE(c1.UniqueTag("ABCD-EFGI"), t);
  EXPECT_NE(c1.UniqueTag("abcd-efgh"), t);
  EXPECT_NE(c2.UniqueTag("ABCD-EFGH"), t);
  EXPECT_EQ(c1.UniqueTag("").size(), 16u);
  EXPECT_NE(c1.UniqueTag(""), c2.UniqueTag(""));
  // Differs from the kcv (and its prefix): the subkeys are independent.
  EXPECT_NE(t, c1.KeyCheckValue().substr(0, 16));
  EXPECT_NE(c1.UniqueTag(c1.KeyCheckValue()), c1.KeyCheckValue().substr(0, 16));
  // Pinned derivation: first 16 bytes of HMAC-SHA256(uniq subkey, key).
  const std::string uniq = Hmac(MasterBytes(m1), "keyvend/v1/uniq");
  EXPECT_EQ(t, Hmac(uniq, "ABCD-EFGH").substr(0, 16));
  // Alternating instances on one thread re-key the cached HMAC context.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c1.UniqueTag("ABCD-EFGH"), t);
    EXPECT_NE(c2.UniqueTag("ABCD-EFGH"), t);
  }
}

TEST(KeyCipherTest, UniqueTagsOfManyKeysAreDistinct) {
  const KeyCipher c = KeyCipher::Derive(MakeMaster(3));
  std::set<std::string> tags;
  for (int i = 0; i < 10000; ++i) tags.insert(c.UniqueTag("KEY-" + std::to_string(i)));
  EXPECT_EQ(tags.size(), 10000u);
}

TEST(KeyCipherTest, ConcurrentUseFromManyThreads) {
  const KeyCipher a = KeyCipher::Derive(MakeMaster(1));
  const KeyCipher b = KeyCipher::Derive(MakeMaster(2));
  const std::string tag_a = a.UniqueTag("shared");
  const std::string tag_b = b.UniqueTag("shared");
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      SeededRandom rnd(100 + t);
      for (int i = 0; i < 500; ++i) {
        const KeyCipher& c = (i + t) % 2 == 0 ? a : b;
        const KeyCipher& other = (i + t) % 2 == 0 ? b : a;
        const std::string pt = "key-" + std::to_string(t) + "-" + std::to_string(i);
        const std::string aad = std::to_string(i);
        const std::string sealed = c.Seal(pt, aad, &rnd);
        const absl::StatusOr<std::string> opened = c.Open(sealed, aad);
        if (!opened.ok() || *opened != pt) ++failures[t];
        if (other.Open(sealed, aad).ok()) ++failures[t];
        if (a.UniqueTag("shared") != tag_a || b.UniqueTag("shared") != tag_b) ++failures[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace kv
