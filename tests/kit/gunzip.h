// Gunzip for tests that check what the server compressed (header-only; its users link zlib).
#pragma once

#include <zlib.h>

#include <string>

#include "gtest/gtest.h"

namespace kv::testkit {

// The bytes of one gzip member (at most `max_out` of them); a failure is a test failure.
inline std::string Gunzip(const std::string& gz, size_t max_out = 8 << 20) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(max_out, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

}  // namespace kv::testkit
