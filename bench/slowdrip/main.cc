// Issue 11's edge benchmarks against a running `keyvend serve` on loopback (one epoll
// thread per role; tools/bench-slowloris.sh and tools/bench-idle.sh start the server):
//
//   --mode slowdrip (default): --connections N (5000) slow-drip connections, --per-address K
//     (20) from each of the addresses 127.0.1.1, 127.0.1.2, … (under the shipped per-client
//     caps of 64 connections and 64 waiting ones). Each sends "POST /api/v1/orders
//     HTTP/1.1\r\n", then one header byte every --drip-ms (500), and is re-opened
//     --reopen-delay-ms (100) after the server cuts it. After --warmup-seconds (3), for
//     --seconds (30): a buyer starts an order (POST /api/v1/orders for --product, a new
//     contact each) every --buyer-interval-ms (100) from 127.0.250.x, and a probe GETs
//     /healthz every --probe-interval-ms (10) from 127.0.251.1, each on a fresh connection
//     (--keep-alive yes: reused ones), on a fixed schedule (a slow answer never delays the
//     next start), timing out after --timeout-ms (5000). Reports the buyer's 201 share and
//     latency (connect included), the probe's, how they failed, and how many drips were
//     open (connected from the client's view, not yet cut) on average.
//   --mode idle: --connections N (10000) keep-alive connections, K (50) per address, each
//     sends GET /healthz, reads the 200, then stays idle. With --server-pid: the server's
//     VmRSS before and after (extra MiB, bytes per connection) and its thread count. Then
//     holds them --hold-seconds (5), and sends GET /healthz again on every one still open.
//
// Prints a table for people, then one line for scripts: `RESULT mode=... key=value ...`.
// Exit status: 0 when the run completed (whatever it measured), 1 when nothing connected
// at all (a wrong URL), 2 on a usage error.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "slowdrip/engine.h"
#include "slowdrip/options.h"

namespace {

using namespace kv::slowdrip;

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "slowdrip_bench: %s\n%s\n", why.c_str(), kUsage);
  std::exit(2);
}

struct ProcStatus {
  int64_t rss_kib = -1;
  int64_t threads = -1;
};

// VmRSS and Threads of /proc/PID/status (-1 when unreadable or pid is 0).
ProcStatus ReadStatus(int pid) {
  ProcStatus s;
  if (pid <= 0) return s;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::atoll(line.c_str() + 6);
    if (line.rfind("Threads:", 0) == 0) s.threads = std::atoll(line.c_str() + 8);
  }
  return s;
}

double Pct(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

std::string Addresses(int block, int count) {
  return AddressText(SourceAddress(block, 0)) + " .. " +
         AddressText(SourceAddress(block, count - 1)) + " (" + std::to_string(count) + ")";
}

int RunSlowdrip(const Options& o, const Endpoint& ep) {
  const int addresses = (o.connections + o.per_address - 1) / o.per_address;
  const int buyer_addresses = BuyerAddresses(o);
  Engine drips(ep, o.max_connecting);
  for (int i = 0; i < o.connections; ++i) {
    drips.AddDrip(SourceAddress(kConnBlock, i / o.per_address), o.drip_ms, o.reopen_delay_ms);
  }
  const int64_t t0 = NowNs();
  const int64_t from = t0 + static_cast<int64_t>(o.warmup_seconds * 1e9);
  const int64_t to = from + static_cast<int64_t>(o.seconds * 1e9);
  drips.SampleDrips(from, to);

  RequesterSpec buyer;
  for (int i = 0; i < buyer_addresses; ++i) buyer.sources.push_back(SourceAddress(kBuyerBlock, i));
  buyer.start_ns = from;
  buyer.stop_ns = to;
  buyer.interval_ns = int64_t{o.buyer_interval_ms} * 1'000'000;
  buyer.timeout_ms = o.timeout_ms;
  buyer.keep_alive = o.keep_alive;
  buyer.expected_status = 201;
  const std::string conn_header = o.keep_alive ? "" : "Connection: close\r\n";
  buyer.make = [&](uint64_t seq) {
    const std::string body = "{\"product_id\":\"" + o.product +
                             "\",\"quantity\":1,\"contact\":\"buyer-" + std::to_string(seq) +
                             "@example.com\"}";
    return "POST /api/v1/orders HTTP/1.1\r\nHost: " + ep.host_header +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + conn_header + "\r\n" + body;
  };
  RequesterSpec probe = buyer;
  probe.sources = {SourceAddress(kProbeBlock, 0)};
  probe.interval_ns = int64_t{o.probe_interval_ms} * 1'000'000;
  probe.expected_status = 200;
  const std::string probe_req =
      "GET /healthz HTTP/1.1\r\nHost: " + ep.host_header + "\r\n" + conn_header + "\r\n";
  probe.make = [&](uint64_t) { return probe_req; };

  Engine buyer_engine(ep, 1), probe_engine(ep, 1);
  buyer_engine.SetRequester(std::move(buyer));
  probe_engine.SetRequester(std::move(probe));
  std::atomic<bool> stop{false};
  const int64_t until = to + int64_t{o.timeout_ms} * 1'000'000 + 1'000'000'000;
  std::thread drip_thread([&] { drips.Run(INT64_MAX, &stop, false); });
  std::thread buyer_thread([&] { buyer_engine.Run(until, nullptr, true); });
  std::thread probe_thread([&] { probe_engine.Run(until, nullptr, true); });
  std::this_thread::sleep_for(
      std::chrono::nanoseconds(std::max<int64_t>(0, (from + to) / 2 - NowNs())));
  const ProcStatus mid = ReadStatus(o.server_pid);
  buyer_thread.join();
  probe_thread.join();
  stop = true;
  drip_thread.join();
  drips.CloseAll();

  const DripStats& d = drips.drips();
  const RequestStats& b = buyer_engine.requests();
  const RequestStats& p = probe_engine.requests();
  std::printf(
      "slowdrip: %d drip connections, %d per address from %s, a header byte every %d ms,"
      " re-opened %d ms after a cut\n",
      o.connections, o.per_address, Addresses(kConnBlock, addresses).c_str(), o.drip_ms,
      o.reopen_delay_ms);
  std::printf("  measured %.1f s after a %.1f s warm-up; %s connections for the buyer and probe\n",
              o.seconds, o.warmup_seconds, o.keep_alive ? "keep-alive" : "fresh");
  std::printf("  drips open: avg %.0f, min %" PRIu64 ", max %" PRIu64
              " (of %d); established %" PRIu64 ", connect failures %" PRIu64 "; cuts: %s\n",
              d.OpenAverage(), d.open_min, d.open_max, o.connections, d.established,
              d.connect_failures, CountsText(d.cuts).c_str());
  std::printf("  buyer: %" PRIu64 " orders (every %d ms from %s), 201: %" PRIu64
              " (%.2f %%), p50 %.2f ms, p99 %.2f ms, max %.2f ms; failures: %s\n",
              b.started, o.buyer_interval_ms, Addresses(kBuyerBlock, buyer_addresses).c_str(), b.ok,
              Pct(b.ok, b.started), kv::flood::Ms(b.latency.Quantile(0.5)),
              kv::flood::Ms(b.latency.Quantile(0.99)), kv::flood::Ms(b.latency.max()),
              CountsText(b.failures).c_str());
  std::printf("  /healthz: %" PRIu64 " probes (every %d ms), 200: %" PRIu64
              " (%.2f %%), p50 %.2f ms, p99 %.2f ms, max %.2f ms; failures: %s\n",
              p.started, o.probe_interval_ms, p.ok, Pct(p.ok, p.started),
              kv::flood::Ms(p.latency.Quantile(0.5)), kv::flood::Ms(p.latency.Quantile(0.99)),
              kv::flood::Ms(p.latency.max()), CountsText(p.failures).c_str());
  if (mid.rss_kib >= 0) {
    std::printf("  server mid-run: VmRSS %.1f MiB, %" PRId64 " threads\n", mid.rss_kib / 1024.0,
                mid.threads);
  }
  std::printf(
      "RESULT mode=slowdrip connections=%d per_address=%d addresses=%d seconds=%.1f "
      "drips_open_avg=%.0f drips_open_min=%" PRIu64 " drips_open_max=%" PRIu64
      " drips_established=%" PRIu64 " drips_connect_failures=%" PRIu64
      " drips_cuts=%s buyer_orders=%" PRIu64 " buyer_ok=%" PRIu64
      " buyer_ok_pct=%.2f buyer_p50_ms=%.2f buyer_p99_ms=%.2f buyer_max_ms=%.2f "
      "buyer_failures=%s probe_count=%" PRIu64 " probe_ok=%" PRIu64
      " probe_p50_ms=%.2f probe_p99_ms=%.2f probe_max_ms=%.2f probe_failures=%s "
      "server_rss_kib=%" PRId64 " server_threads=%" PRId64 "\n",
      o.connections, o.per_address, addresses, o.seconds, d.OpenAverage(), d.open_min, d.open_max,
      d.established, d.connect_failures, CountsText(d.cuts).c_str(), b.started, b.ok,
      Pct(b.ok, b.started), kv::flood::Ms(b.latency.Quantile(0.5)),
      kv::flood::Ms(b.latency.Quantile(0.99)), kv::flood::Ms(b.latency.max()),
      CountsText(b.failures).c_str(), p.started, p.ok, kv::flood::Ms(p.latency.Quantile(0.5)),
      kv::flood::Ms(p.latency.Quantile(0.99)), kv::flood::Ms(p.latency.max()),
      CountsText(p.failures).c_str(), mid.rss_kib, mid.threads);
  return d.established == 0 && b.ok == 0 && p.ok == 0 ? 1 : 0;
}

int RunIdle(const Options& o, const Endpoint& ep) {
  const int addresses = (o.connections + o.per_address - 1) / o.per_address;
  const ProcStatus before = ReadStatus(o.server_pid);
  Engine e(ep, o.max_connecting);
  for (int i = 0; i < o.connections; ++i) e.AddIdle(SourceAddress(kConnBlock, i / o.per_address));
  const int64_t t0 = NowNs();
  e.RunUntilIdleSettled(t0 + 120'000'000'000);
  const double open_seconds = static_cast<double>(NowNs() - t0) / 1e9;
  e.Run(NowNs() + 2'000'000'000, nullptr, false);  // let the server settle; watch for closes
  const ProcStatus after = ReadStatus(o.server_pid);
  const size_t open_at_rss = e.idle_open();
  e.Run(NowNs() + static_cast<int64_t>(o.hold_seconds * 1e9), nullptr, false);
  const size_t open_after_hold = e.idle_open();
  e.Resend();
  e.RunUntilIdleSettled(NowNs() + 60'000'000'000);
  const IdleStats& s = e.idle();
  e.CloseAll();

  const int64_t extra_kib =
      before.rss_kib >= 0 && after.rss_kib >= 0 ? after.rss_kib - before.rss_kib : -1;
  const double per_conn = extra_kib >= 0 && open_at_rss > 0
                              ? extra_kib * 1024.0 / static_cast<double>(open_at_rss)
                              : -1;
  std::printf("idle: %d keep-alive connections, %d per address from %s\n", o.connections,
              o.per_address, Addresses(kConnBlock, addresses).c_str());
  std::printf("  ready (GET /healthz answered 200, then idle): %" PRIu64
              " in %.1f s; failures: %s\n",
              s.ready, open_seconds, CountsText(s.failures).c_str());
  if (o.server_pid > 0) {
    std::printf(
        "  server VmRSS %.1f MiB before, %.1f MiB with %zu open: +%.1f MiB, %.0f bytes"
        " per connection; threads %" PRId64 " -> %" PRId64 "\n",
        before.rss_kib / 1024.0, after.rss_kib / 1024.0, open_at_rss, extra_kib / 1024.0, per_conn,
        before.threads, after.threads);
  }
  std::printf("  held %.1f s more: %zu still open, %" PRIu64
              " closed by the server;"
              " GET /healthz again on each: 200 on %" PRIu64 "; failures: %s\n",
              o.hold_seconds, open_after_hold, s.closed_by_server, s.resend_ok,
              CountsText(s.resend_failures).c_str());
  std::printf("RESULT mode=idle connections=%d per_address=%d addresses=%d ready=%" PRIu64
              " failures=%s open_seconds=%.1f open_at_rss=%zu rss_before_kib=%" PRId64
              " rss_after_kib=%" PRId64
              " extra_mib=%.1f bytes_per_conn=%.0f threads_before=%" PRId64
              " threads_after=%" PRId64 " open_after_hold=%zu closed_by_server=%" PRIu64
              " resend_ok=%" PRIu64 " resend_failures=%s\n",
              o.connections, o.per_address, addresses, s.ready, CountsText(s.failures).c_str(),
              open_seconds, open_at_rss, before.rss_kib, after.rss_kib, extra_kib / 1024.0,
              per_conn, before.threads, after.threads, open_after_hold, s.closed_by_server,
              s.resend_ok, CountsText(s.resend_failures).c_str());
  return s.ready == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = ParseArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) Usage(std::string(parsed.status().message()));
  const Options& o = *parsed;
  Endpoint ep;
  if (!kv::flood::ParseUrl(o.url, &ep) || ep.addr.ss_family != AF_INET) {
    Usage("cannot use --url " + o.url + " (an IPv4 loopback address)");
  }
  // Thousands of sockets: the soft descriptor limit up to the hard one.
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < static_cast<rlim_t>(o.connections) + 200) {
    std::fprintf(stderr,
                 "slowdrip_bench: the descriptor limit (%llu) is below --connections + 200;"
                 " raise `ulimit -Hn`\n",
                 static_cast<unsigned long long>(lim.rlim_cur));
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return o.mode == "idle" ? RunIdle(o, ep) : RunSlowdrip(o, ep);
}
