// Random: the only source of randomness for ids, tokens and nonces, injected so tests can
// be deterministic where they need to be.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/mutex.h"

namespace kv {

class Random {
 public:
  virtual ~Random() = default;
  // Fills out[0..n) with random bytes. Thread-safe. Aborts if the system CSPRNG fails
  // (an id or nonce from a broken generator would break secrecy; there is no safe fallback).
  virtual void Fill(uint8_t* out, size_t n) = 0;
};

// OpenSSL's CSPRNG (RAND_bytes). Thread-safe.
class SecureRandom final : public Random {
 public:
  void Fill(uint8_t* out, size_t n) override;
  static SecureRandom* Get();
};

// OpenSSL's CSPRNG drawn in blocks: RAND_bytes costs about 1 us per call whatever the size,
// so a bulk loader sealing millions of keys (a 12-byte nonce each) asks for
// kBlockBytes at a time and hands them out. Thread-safe (a mutex; give each thread its own
// instance to avoid contention). Buffered bytes live in this object's memory until used;
// do not fork() while an instance holds some (both processes would hand out the same bytes).
class BufferedSecureRandom final : public Random {
 public:
  static constexpr size_t kBlockBytes = 4096;
  BufferedSecureRandom() = default;
  ~BufferedSecureRandom() override;
  BufferedSecureRandom(const BufferedSecureRandom&) = delete;
  BufferedSecureRandom& operator=(const BufferedSecureRandom&) = delete;
  void Fill(uint8_t* out, size_t n) override;

 private:
  Mutex mu_;
  uint8_t block_[kBlockBytes] ABSL_GUARDED_BY(mu_);
  size_t used_ ABSL_GUARDED_BY(mu_) = kBlockBytes;  // bytes of block_ already handed out
};

// A deterministic generator for tests (splitmix64). NOT for secrets. Thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  void Fill(uint8_t* out, size_t n) override;

 private:
  Mutex mu_;
  uint64_t state_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv
