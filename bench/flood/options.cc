#include "flood/options.h"

#include <algorithm>
#include <cstdlib>

#include "absl/status/status.h"
#include "flood/flag_walk.h"

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
  const absl::Status walked = WalkFlags(args, [&](const std::string& a, FlagValue& v) {
    const auto num = [&v](double lo, double hi) { return v.Num(lo, hi); };
    if (a == "--url") {
      o.url = v.str();
    } else if (a == "--ops-url") {
      o.ops_url = v.str();
    } else if (a == "--product") {
      o.product = v.str();
    } else if (a == "--payment-secret") {
      o.secret = v.str();
    } else if (a == "--mode") {
      if (v != "flood" && v != "throughput") {
        return absl::InvalidArgumentError("--mode is flood or throughput");
      }
      o.mode = v.str();
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
    return absl::OkStatus();
  });
  if (!walked.ok()) return walked;
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
