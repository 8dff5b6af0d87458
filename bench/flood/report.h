// flood_bench's report: a table for people, then one line for scripts,
//   RESULT mode=.. seconds=.. connections=.. offered_per_s=.. accepted_per_s=.. ...
// (tools/bench-flood.sh and tools/bench-backup.sh read its key=value fields by name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "flood/buyers.h"
#include "flood/notifier.h"
#include "flood/options.h"
#include "flood/prober.h"

namespace kv::flood {

// Accepted orders per whole second after the first (which also spends the rate limiter's
// burst) and before the deadline's partial second: how many such seconds, and their min,
// median (the upper one of an even count) and max; all 0 when there is none.
struct Steady {
  size_t seconds = 0;
  uint64_t min = 0;
  uint64_t median = 0;
  uint64_t max = 0;
};
Steady SteadyAccepted(const std::vector<uint64_t>& accepted_per_second, double seconds);

// The whole report for a run that took `elapsed` seconds (> 0) from the buyers' start to
// the last answer: rates are over elapsed, latencies in ms. The prober's and notifier's
// parts appear only when o enables them.
std::string Report(const Options& o, const BuyerStats& all, const ProbeStats& probe,
                   const NotifyStats& notify, double elapsed);

}  // namespace kv::flood
