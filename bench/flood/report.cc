#include "flood/report.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace kv::flood {

Steady SteadyAccepted(const std::vector<uint64_t>& accepted_per_second, double seconds) {
  // Whole seconds after the first (which also spends the bucket's burst) and before the
  // deadline's partial second.
  std::vector<uint64_t> sorted;
  for (size_t i = 1; i < static_cast<size_t>(seconds) && i < accepted_per_second.size(); ++i) {
    sorted.push_back(accepted_per_second[i]);
  }
  std::sort(sorted.begin(), sorted.end());
  Steady s;
  s.seconds = sorted.size();
  if (!sorted.empty()) {
    s.min = sorted.front();
    s.median = sorted[sorted.size() / 2];
    s.max = sorted.back();
  }
  return s;
}

std::string Report(const Options& o, const BuyerStats& all, const ProbeStats& probe,
                   const NotifyStats& notify, double elapsed) {
  std::string out;
  const uint64_t answered = all.answered();
  const Histogram& acc = all.latency[k201];
  const double offered_per_s = static_cast<double>(all.sent) / elapsed;
  const double accepted_per_s = static_cast<double>(acc.count()) / elapsed;
  const Steady steady = SteadyAccepted(all.accepted_per_second, o.seconds);
  const std::string load =
      o.offered_rate > 0 ? absl::StrFormat("paced %.0f/s", o.offered_rate) : "closed loop";
  absl::StrAppendFormat(&out,
                        "flood_bench mode=%s url=%s ops_url=%s connections=%d threads=%d load=%s "
                        "seconds=%.1f (measured %.2f)\n",
                        o.mode.c_str(), o.url.c_str(), o.ops_url.c_str(), o.connections, o.threads,
                        load.c_str(), o.seconds, elapsed);
  out += "\norders (POST /api/v1/orders)\n";
  absl::StrAppendFormat(&out, "  %-6s %10s %10s %9s %9s %9s %9s\n", "status", "count", "per_s",
                        "p50_ms", "p99_ms", "p999_ms", "max_ms");
  for (int c = 0; c < kNumClasses; ++c) {
    const Histogram& h = all.latency[c];
    absl::StrAppendFormat(&out, "  %-6s %10llu %10.1f %9.2f %9.2f %9.2f %9.2f\n", kClassName[c],
                          static_cast<unsigned long long>(h.count()),
                          static_cast<double>(h.count()) / elapsed, Ms(h.Quantile(0.5)),
                          Ms(h.Quantile(0.99)), Ms(h.Quantile(0.999)), Ms(h.max()));
  }
  absl::StrAppendFormat(&out, "  offered (requests sent) %.1f/s, answered %.1f/s, accepted %.1f/s",
                        offered_per_s, static_cast<double>(answered) / elapsed, accepted_per_s);
  if (o.configured_rate > 0) {
    absl::StrAppendFormat(&out, " (configured %lld/s: offered = %.1fx, accepted = %.2fx)",
                          static_cast<long long>(o.configured_rate),
                          offered_per_s / o.configured_rate, accepted_per_s / o.configured_rate);
  }
  out += "\n";
  if (steady.seconds > 0) {
    absl::StrAppendFormat(
        &out,
        "  accepted per whole second after the first (%zu s): min %llu, median %llu, "
        "max %llu\n",
        steady.seconds, static_cast<unsigned long long>(steady.min),
        static_cast<unsigned long long>(steady.median),
        static_cast<unsigned long long>(steady.max));
  }
  for (const auto& [k, v] : all.codes) {
    absl::StrAppendFormat(&out, "  answered %-28s %llu\n", k.c_str(),
                          static_cast<unsigned long long>(v));
  }
  absl::StrAppendFormat(
      &out,
      "  connections: opened %llu (reopened %llu), closed by server %llu, closed or "
      "reset mid-request %llu, connect errors %llu, malformed %llu, unfinished %llu\n",
      static_cast<unsigned long long>(all.connects),
      static_cast<unsigned long long>(all.reconnects),
      static_cast<unsigned long long>(all.server_closes),
      static_cast<unsigned long long>(all.closed_mid_request),
      static_cast<unsigned long long>(all.connect_errors),
      static_cast<unsigned long long>(all.malformed),
      static_cast<unsigned long long>(all.unfinished));
  if (o.offered_rate > 0) {
    absl::StrAppendFormat(
        &out,
        "  paced: %llu requests started late (every connection busy), %llu due but "
        "never started\n",
        static_cast<unsigned long long>(all.started_late),
        static_cast<unsigned long long>(all.not_started));
  }
  if (o.probe_interval_ms > 0) {
    absl::StrAppendFormat(&out, "\nhealthz (GET /healthz every %d ms on %s)\n", o.probe_interval_ms,
                          o.ops_url.c_str());
    absl::StrAppendFormat(
        &out,
        "  probes %llu, failures %llu, reconnects %llu, p50 %.2f ms, p99 %.2f ms, "
        "max %.2f ms%s%s\n",
        static_cast<unsigned long long>(probe.probes),
        static_cast<unsigned long long>(probe.failures),
        static_cast<unsigned long long>(probe.reconnects), Ms(probe.latency.Quantile(0.5)),
        Ms(probe.latency.Quantile(0.99)), Ms(probe.latency.max()),
        probe.last_failure.empty() ? "" : ", last failure: ", probe.last_failure.c_str());
  }
  if (o.notify_every > 0) {
    absl::StrAppendFormat(&out, "\nnotify (signed, every %d-th accepted order, on %s)\n",
                          o.notify_every, o.ops_url.c_str());
    absl::StrAppendFormat(
        &out,
        "  sampled %llu, sent %llu, 200 %llu, other status %llu, transport failures "
        "%llu, unsent %llu, p50 %.2f ms, p99 %.2f ms, max %.2f ms%s%s\n",
        static_cast<unsigned long long>(all.sampled), static_cast<unsigned long long>(notify.sent),
        static_cast<unsigned long long>(notify.ok), static_cast<unsigned long long>(notify.other),
        static_cast<unsigned long long>(notify.failed),
        static_cast<unsigned long long>(notify.unsent), Ms(notify.latency.Quantile(0.5)),
        Ms(notify.latency.Quantile(0.99)), Ms(notify.latency.max()),
        notify.last_failure.empty() ? "" : ", last failure: ", notify.last_failure.c_str());
    for (const auto& [k, v] : notify.codes) {
      absl::StrAppendFormat(&out, "  answered %-28s %llu\n", k.c_str(),
                            static_cast<unsigned long long>(v));
    }
  }
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  absl::StrAppendFormat(
      &out,
      "\nRESULT mode=%s seconds=%.2f connections=%d paced_rate=%.0f offered_per_s=%.1f "
      "answered_per_s=%.1f accepted_per_s=%.1f accepted_steady_seconds=%zu "
      "accepted_steady_min=%llu "
      "accepted_steady_median=%llu accepted_steady_max=%llu p50_accepted_ms=%.2f "
      "p99_accepted_ms=%.2f max_accepted_ms=%.2f status_201=%llu status_429=%llu "
      "status_503=%llu status_other=%llu p99_429_ms=%.2f p99_503_ms=%.2f "
      "reconnects=%llu conn_errors=%llu closed_mid_request=%llu unfinished=%llu "
      "healthz_probes=%llu healthz_failures=%llu healthz_p50_ms=%.2f healthz_p99_ms=%.2f "
      "healthz_max_ms=%.2f notify_sent=%llu notify_ok=%llu notify_other=%llu "
      "notify_failed=%llu notify_unsent=%llu notify_p99_ms=%.2f started_late=%llu "
      "not_started=%llu\n",
      o.mode.c_str(), elapsed, o.connections, o.offered_rate, offered_per_s,
      static_cast<double>(answered) / elapsed, accepted_per_s, steady.seconds, u(steady.min),
      u(steady.median), u(steady.max), Ms(acc.Quantile(0.5)), Ms(acc.Quantile(0.99)), Ms(acc.max()),
      u(acc.count()), u(all.latency[k429].count()), u(all.latency[k503].count()),
      u(all.latency[kOther].count()), Ms(all.latency[k429].Quantile(0.99)),
      Ms(all.latency[k503].Quantile(0.99)), u(all.reconnects), u(all.connect_errors),
      u(all.closed_mid_request), u(all.unfinished), u(probe.probes), u(probe.failures),
      Ms(probe.latency.Quantile(0.5)), Ms(probe.latency.Quantile(0.99)), Ms(probe.latency.max()),
      u(notify.sent), u(notify.ok), u(notify.other), u(notify.failed), u(notify.unsent),
      Ms(notify.latency.Quantile(0.99)), u(all.started_late), u(all.not_started));
  return out;
}

}  // namespace kv::flood
