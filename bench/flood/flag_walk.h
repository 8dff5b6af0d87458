// The benchmark programs' command lines (flood_bench, slowdrip_bench): one walk over
// `--name=value | --name value` words and one way to read a bounded number, so the two
// programs parse alike. Header-only; bench code, not the product's (base/cli_flags.h).
#pragma once

#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kv::flood {

// One flag's value as given; Num/Int record a value that is not a number in [lo, hi].
class FlagValue {
 public:
  explicit FlagValue(std::string v) : v_(std::move(v)) {}
  const std::string& str() const { return v_; }
  bool operator==(const char* s) const { return v_ == s; }
  bool operator!=(const char* s) const { return v_ != s; }
  double Num(double lo, double hi) {
    char* end = nullptr;
    const double d = std::strtod(v_.c_str(), &end);
    if (v_.empty() || *end != '\0' || !(d >= lo && d <= hi)) {  // NaN too
      bad_ = true;
      return lo;  // never converted out of range; WalkFlags returns the error
    }
    return d;
  }
  int Int(int lo, int hi) {
    const double d = Num(lo, hi);
    if (d != std::floor(d)) bad_ = true;
    return static_cast<int>(d);
  }
  bool bad() const { return bad_; }

 private:
  std::string v_;
  bool bad_ = false;
};

// Calls on_flag(name, value) for each flag; every flag takes a value. Errors: a flag
// without one, what on_flag returns (e.g. "unknown option"), a value Num/Int refused
// ("bad value for --x: v").
inline absl::Status WalkFlags(
    const std::vector<std::string>& args,
    const std::function<absl::Status(const std::string& name, FlagValue& value)>& on_flag) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], v;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(a + " needs a value");
      v = args[++i];
    }
    FlagValue value(v);
    if (absl::Status s = on_flag(a, value); !s.ok()) return s;
    if (value.bad()) return absl::InvalidArgumentError("bad value for " + a + ": " + v);
  }
  return absl::OkStatus();
}

}  // namespace kv::flood
