// Test-only helpers shared by the unit tests (never linked into the product).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace kv::testing {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kvtest.XXXXXX";
    char* p = mkdtemp(tmpl);
    path_ = p == nullptr ? std::string("/tmp/kvtest.failed") : std::string(p);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace kv::testing
