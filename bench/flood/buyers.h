// flood_bench's buyers: N keep-alive connections over T epoll threads, each POSTing
// {"product_id":ID,"quantity":1,"contact":"b<i>@x.test"} as soon as the previous answer
// arrived (closed loop), or, with an offered rate, when a fixed schedule says (a request
// due while every connection is busy starts late, as soon as one is free, and is counted).
// Latency runs from the request's first byte sent to its last byte received (a fresh
// connection's connect time is not included). A connection the server closes is reopened
// and counted. At the deadline no new request starts; answers still in flight are awaited
// (≤ 5 s) and counted.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "flood/histogram.h"
#include "flood/http_client.h"
#include "flood/notifier.h"
#include "flood/options.h"

namespace kv::flood {

enum StatusClass { k201 = 0, k429, k503, kOther, kNumClasses };
inline constexpr const char* kClassName[kNumClasses] = {"201", "429", "503", "other"};

StatusClass ClassOf(int status);

// The buyers' results: one per thread while they run, merged at the end.
struct BuyerStats {
  std::array<Histogram, kNumClasses> latency;
  std::map<std::string, uint64_t> codes;      // refusals: "429 rate_limited" -> n
  std::vector<uint64_t> accepted_per_second;  // 201s by whole second since the start
  uint64_t sent = 0;
  uint64_t connects = 0;            // connections opened (the first ones included)
  uint64_t reconnects = 0;          // connections reopened after a close or an error
  uint64_t server_closes = 0;       // the server closed (Connection: close or EOF when idle)
  uint64_t closed_mid_request = 0;  // EOF or reset before the whole response
  uint64_t connect_errors = 0;
  uint64_t malformed = 0;
  uint64_t unfinished = 0;    // still waiting when the drain timed out
  uint64_t sampled = 0;       // handed to the notifier
  uint64_t started_late = 0;  // paced: started after their time (no free connection)
  uint64_t not_started = 0;   // paced: due but never started (no free connection)

  // Adds o's counts, histograms and per-second counts to these.
  void Merge(const BuyerStats& o);
  // Requests answered with any status.
  uint64_t answered() const;
};

// Runs o.connections buyers over o.threads threads against ep from start_ns until stop_ns
// (NowNs()), plus the drain; returns when every buyer thread has. Every o.notify_every-th
// 201 of a thread is pushed to *notify (when not null). The result's accepted_per_second
// has o.seconds + 8 entries.
BuyerStats RunBuyers(const Endpoint& ep, const Options& o, int64_t start_ns, int64_t stop_ns,
                     NotifyQueue* notify);

}  // namespace kv::flood
