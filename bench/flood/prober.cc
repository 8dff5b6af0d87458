#include "flood/prober.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace kv::flood {

void RunProber(const Endpoint& ep, int interval_ms, int64_t stop_ns, ProbeStats* out) {
  BlockingConn conn(ep);
  const std::string req = "GET /healthz HTTP/1.1\r\nHost: " + ep.host_header + "\r\n\r\n";
  const int64_t interval_ns = int64_t{interval_ms} * 1'000'000;
  int64_t next = NowNs();
  bool first = true;
  while (next < stop_ns) {
    const int64_t t0 = NowNs();
    int status = 0;
    std::string body, error;
    bool reconnected = false;
    const bool ok = conn.Exchange(req, 2000, &status, &body, &error, &reconnected);
    const int64_t t1 = NowNs();
    ++out->probes;
    if (reconnected && !first) ++out->reconnects;
    first = false;
    if (ok && status == 200) {
      out->latency.Record(static_cast<uint64_t>((t1 - t0) / 1000));
    } else {
      ++out->failures;
      out->last_failure = ok ? "HTTP " + std::to_string(status) : error;
    }
    // Fixed schedule; after a slow probe the next one goes at once (never a burst).
    next = std::max(next + interval_ns, NowNs());
    const int64_t sleep_ns = next - NowNs();
    if (sleep_ns > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(sleep_ns));
  }
}

}  // namespace kv::flood
