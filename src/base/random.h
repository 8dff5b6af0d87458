// Random: the only source of randomness for ids, tokens and nonces, injected so tests can
// be deterministic where they need to be.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

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

// A deterministic generator for tests (splitmix64). NOT for secrets. Thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  void Fill(uint8_t* out, size_t n) override;

 private:
  std::mutex mu_;
  uint64_t state_;
};

}  // namespace kv
