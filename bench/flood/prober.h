// flood_bench's prober: GET /healthz on a fixed schedule on one keep-alive connection, to
// show whether the ops path stays fast while the buyers flood the shop.
#pragma once

#include <cstdint>
#include <string>

#include "flood/histogram.h"
#include "flood/http_client.h"

namespace kv::flood {

struct ProbeStats {
  Histogram latency;  // 200 answers only
  uint64_t probes = 0;
  uint64_t failures = 0;  // not a 200, or a transport failure / 2 s timeout
  uint64_t reconnects = 0;
  std::string last_failure;
};

// Probes every interval_ms (after a slow probe the next goes at once, never a burst) until
// stop_ns (NowNs()); each probe waits at most 2 s. Results go to *out, which only this
// thread touches until it returns.
void RunProber(const Endpoint& ep, int interval_ms, int64_t stop_ns, ProbeStats* out);

}  // namespace kv::flood
