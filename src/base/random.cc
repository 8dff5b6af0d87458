#include "base/random.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kv {

void SecureRandom::Fill(uint8_t* out, size_t n) {
  while (n > 0) {
    const int chunk = n > INT_MAX ? INT_MAX : static_cast<int>(n);
    if (RAND_bytes(out, chunk) != 1) {
      std::fputs("keyvend: fatal: RAND_bytes failed\n", stderr);
      std::abort();
    }
    out += chunk;
    n -= static_cast<size_t>(chunk);
  }
}

SecureRandom* SecureRandom::Get() {
  static SecureRandom* r = new SecureRandom();
  return r;
}

BufferedSecureRandom::~BufferedSecureRandom() { OPENSSL_cleanse(block_, sizeof(block_)); }

void BufferedSecureRandom::Fill(uint8_t* out, size_t n) {
  MutexLock lock(&mu_);
  while (n > 0) {
    if (used_ == kBlockBytes) {
      SecureRandom::Get()->Fill(block_, kBlockBytes);
      used_ = 0;
    }
    const size_t take = std::min(n, kBlockBytes - used_);
    std::memcpy(out, block_ + used_, take);
    // Bytes handed out are never handed out again.
    OPENSSL_cleanse(block_ + used_, take);
    used_ += take;
    out += take;
    n -= take;
  }
}

void SeededRandom::Fill(uint8_t* out, size_t n) {
  MutexLock lock(&mu_);
  for (size_t i = 0; i < n; ++i) {
    if (i % 8 == 0) {
      state_ += 0x9e3779b97f4a7c15ULL;
    }
    uint64_t z = state_ + i / 8;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    out[i] = static_cast<uint8_t>(z >> (8 * (i % 8)));
  }
}

}  // namespace kv
