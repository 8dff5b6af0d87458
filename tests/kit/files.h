// Files for tests: a temp dir that removes itself, a whole file's content, lines.
#pragma once

#include <string>
#include <vector>

namespace kv::testing {

// A fresh directory under /tmp (/tmp/kvtest.XXXXXX), removed with everything in it on
// destruction. path() is "/tmp/kvtest.failed" when mkdtemp failed (every use then fails).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The whole content of a file; "" if it cannot be read (the one ReadFile of the tests).
std::string ReadFile(const std::string& path);

// The lines of text without their '\n'; text after the last '\n' is a last line of its own
// (so a torn line shows up instead of vanishing).
std::vector<std::string> SplitLines(const std::string& text);

}  // namespace kv::testing
