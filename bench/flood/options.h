// flood_bench's command line (the usage is in main.cc's header comment).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kv::flood {

struct Options {
  std::string mode = "flood";  // "flood" or "throughput"
  std::string url;
  std::string ops_url;  // the prober's and the notifier's; defaults to url
  std::string product;
  std::string secret;  // the payment notify secret
  int connections = 256;
  int threads = 1;  // never more than connections
  double seconds = 10;
  int notify_every = 0;         // every K-th 201 is paid; 0 = none (flood: 20, throughput: 0)
  int probe_interval_ms = 0;    // /healthz period; 0 = no prober (flood: 10, throughput: 0)
  int64_t configured_rate = 0;  // for the report only (offered and accepted as multiples)
  double offered_rate = 0;      // requests/s started on a fixed schedule; 0 = closed loop
};

// The one-line usage printed after a usage error.
extern const char kUsage[];

// Parses the arguments after the program name: `--name VALUE` or `--name=VALUE`.
// env_secret is KEYVEND_PAYMENT_SECRET's value ("" when unset); --payment-secret wins over
// it. Fills in the mode's defaults. Returns InvalidArgumentError saying what is wrong on an
// unknown option, a missing or out-of-range value, no --url or --product, or notifies
// without a secret. URLs are checked (and resolved) by the caller.
absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& args,
                                  const std::string& env_secret);

}  // namespace kv::flood
