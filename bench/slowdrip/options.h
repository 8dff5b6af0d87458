// slowdrip_bench's command line (the usage is in main.cc's header comment) and the loopback
// address plan it implies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kv::slowdrip {

struct Options {
  std::string mode = "slowdrip";  // "slowdrip" or "idle"
  std::string url;
  std::string product;        // slowdrip: the buyer's product (needs keys)
  int connections = 0;        // drips or idle connections (mode default: 5000 / 10000)
  int per_address = 0;        // of them per source address (mode default: 20 / 50)
  double seconds = 30;        // slowdrip: the buyer's and the probe's run
  double warmup_seconds = 3;  // slowdrip: drips alone before it
  int drip_ms = 500;          // a drip's period between header bytes
  int reopen_delay_ms = 100;  // a cut drip is re-opened after it
  int buyer_interval_ms = 100;
  int probe_interval_ms = 10;
  int buyer_addresses = 0;   // 0: enough that each stays under the shipped per-client limits
  bool keep_alive = false;   // the buyer and the probe reuse connections (default: fresh ones)
  int timeout_ms = 5000;     // a buyer's or probe's request, connect included
  int max_connecting = 256;  // drips / idle connections opening at once
  int server_pid = 0;        // read the server's VmRSS and Threads (/proc/PID/status)
  double hold_seconds = 5;   // idle: held after VmRSS is read, before every one is re-used
};

extern const char kUsage[];

// Parses the arguments after the program name: `--name VALUE` or `--name=VALUE`. Fills in
// the mode's defaults. InvalidArgumentError saying what is wrong on an unknown option, a
// missing or out-of-range value, no --url, slowdrip without --product, or more source
// addresses than the drips' and idle connections' blocks hold (127.0.1.1 .. 127.0.249.254).
absl::StatusOr<Options> ParseArgs(const std::vector<std::string>& args);

// Source addresses: drips and idle connections from 127.0.1.1 on (connection i from address
// i / per_address), the buyer from 127.0.250.1 on, the probe from 127.0.251.1.
constexpr int kConnBlock = 1;
constexpr int kConnBlocks = 249;
constexpr int kBuyerBlock = 250;
constexpr int kProbeBlock = 251;

// How many addresses the buyer rotates over: o.buyer_addresses, or enough that each orders
// at most 15 times in the run (the shipped defaults allow 20 pending orders and 5 orders/s
// per client; an order is never paid here), at least 8, at most 254.
int BuyerAddresses(const Options& o);

}  // namespace kv::slowdrip
