#include "slowdrip/options.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "flood/flag_walk.h"

namespace kv::slowdrip {

const char kUsage[] =
    "usage: slowdrip_bench --url http://HOST:PORT [--mode slowdrip|idle] [--product ID] "
    "[--connections N] [--per-address K] [--seconds S] [--warmup-seconds W] [--drip-ms MS] "
    "[--reopen-delay-ms MS] [--buyer-interval-ms MS] [--probe-interval-ms MS] "
    "[--buyer-addresses B] [--keep-alive yes|no] [--timeout-ms MS] [--max-connecting C] "
    "[--server-pid PID] [--hold-seconds S]";

absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& args) {
  using flood::FlagValue;
  using flood::WalkFlags;
  Options o;
  const absl::Status walked = WalkFlags(args, [&](const std::string& a, FlagValue& v) {
    const auto num = [&v](double lo, double hi) { return v.Num(lo, hi); };
    const auto integer = [&v](int lo, int hi) { return v.Int(lo, hi); };
    if (a == "--url") {
      o.url = v.str();
    } else if (a == "--product") {
      o.product = v.str();
    } else if (a == "--mode") {
      if (v != "slowdrip" && v != "idle") {
        return absl::InvalidArgumentError("--mode is slowdrip or idle");
      }
      o.mode = v.str();
    } else if (a == "--connections") {
      o.connections = integer(1, 200000);
    } else if (a == "--per-address") {
      o.per_address = integer(1, 10000);
    } else if (a == "--seconds") {
      o.seconds = num(0.1, 3600);
    } else if (a == "--warmup-seconds") {
      o.warmup_seconds = num(0, 600);
    } else if (a == "--drip-ms") {
      o.drip_ms = integer(1, 600000);
    } else if (a == "--reopen-delay-ms") {
      o.reopen_delay_ms = integer(0, 600000);
    } else if (a == "--buyer-interval-ms") {
      o.buyer_interval_ms = integer(1, 600000);
    } else if (a == "--probe-interval-ms") {
      o.probe_interval_ms = integer(1, 600000);
    } else if (a == "--buyer-addresses") {
      o.buyer_addresses = integer(1, 254);
    } else if (a == "--keep-alive") {
      if (v != "yes" && v != "no") return absl::InvalidArgumentError("--keep-alive is yes or no");
      o.keep_alive = v == "yes";
    } else if (a == "--timeout-ms") {
      o.timeout_ms = integer(1, 600000);
    } else if (a == "--max-connecting") {
      o.max_connecting = integer(1, 100000);
    } else if (a == "--server-pid") {
      o.server_pid = integer(1, 1 << 30);
    } else if (a == "--hold-seconds") {
      o.hold_seconds = num(0, 3600);
    } else {
      return absl::InvalidArgumentError("unknown option " + a);
    }
    return absl::OkStatus();
  });
  if (!walked.ok()) return walked;
  if (o.url.empty()) return absl::InvalidArgumentError("--url is required");
  const bool drip = o.mode == "slowdrip";
  if (drip && o.product.empty()) return absl::InvalidArgumentError("--product is required");
  if (o.connections == 0) o.connections = drip ? 5000 : 10000;
  if (o.per_address == 0) o.per_address = drip ? 20 : 50;
  const int64_t addresses = (int64_t{o.connections} + o.per_address - 1) / o.per_address;
  if (addresses > int64_t{kConnBlocks} * 254) {
    return absl::InvalidArgumentError("--connections / --per-address needs more than " +
                                      std::to_string(kConnBlocks * 254) + " source addresses");
  }
  return o;
}

int BuyerAddresses(const Options& o) {
  if (o.buyer_addresses > 0) return o.buyer_addresses;
  const double orders = o.seconds * 1000.0 / o.buyer_interval_ms;
  return std::clamp(static_cast<int>(std::ceil(orders / 15.0)), 8, 254);
}

}  // namespace kv::slowdrip
