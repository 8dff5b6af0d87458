#include "flood/options.h"

#include <algorithm>
#include <cstdlib>

#include "absl/status/status.h"

namespace kv::flood {

const char kUsage[] =
    "usage: flood_bench --url http://HOST:PORT --product ID "
    "[--ops-url URL] [--mode flood|throughput] [--connections N] [--seconds S] "
    "[--threads T] [--payment-secret S] [--notify-every K] "
    "[--probe-interval-ms MS] [--configured-rate R] [--offered-rate X]";

absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& args,
                                  const std::string& env_secret) {
  Options o;
  o.secret = env_secret;
  int notify_every = -1;  // -1: the mode's default
  int probe_interval_ms = -1;
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
    bool bad = false;
    const auto num = [&](double lo, double hi) {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(d >= lo && d <= hi)) {  // NaN too
        bad = true;
        return lo;  // never converted out of range; the caller returns the error
      }
      return d;
    };
    if (a == "--url") {
      o.url = v;
    } else if (a == "--ops-url") {
      o.ops_url = v;
    } else if (a == "--product") {
      o.product = v;
    } else if (a == "--payment-secret") {
      o.secret = v;
    } else if (a == "--mode") {
      if (v != "flood" && v != "throughput") {
        return absl::InvalidArgumentError("--mode is flood or throughput");
      }
      o.mode = v;
    } else if (a == "--connections") {
      o.connections = static_cast<int>(num(1, 20000));
    } else if (a == "--threads") {
      o.threads = static_cast<int>(num(1, 64));
    } else if (a == "--seconds") {
      o.seconds = num(0.1, 3600);
    } else if (a == "--notify-every") {
      notify_every = static_cast<int>(num(0, 1e9));
    } else if (a == "--offered-rate") {
      o.offered_rate = num(0, 1e7);
    } else if (a == "--configured-rate") {
      o.configured_rate = static_cast<int64_t>(num(0, 1e9));
    } else if (a == "--probe-interval-ms") {
      probe_interval_ms = static_cast<int>(num(0, 60000));
    } else {
      return absl::InvalidArgumentError("unknown option " + a);
    }
    if (bad) return absl::InvalidArgumentError("bad value for " + a + ": " + v);
  }
  if (o.url.empty()) return absl::InvalidArgumentError("--url is required");
  if (o.product.empty()) return absl::InvalidArgumentError("--product is required");
  if (o.ops_url.empty()) o.ops_url = o.url;
  const bool flood = o.mode == "flood";
  o.notify_every = notify_every >= 0 ? notify_every : (flood ? 20 : 0);
  o.probe_interval_ms = probe_interval_ms >= 0 ? probe_interval_ms : (flood ? 10 : 0);
  if (o.notify_every > 0 && o.secret.empty()) {
    return absl::InvalidArgumentError("notifies need --payment-secret or KEYVEND_PAYMENT_SECRET");
  }
  o.threads = std::min(o.threads, o.connections);
  return o;
}

}  // namespace kv::flood
