// The load-protection benchmark of issue 4: a closed-loop (or paced) HTTP/1.1 load generator
// that floods order creation from many keep-alive connections while it probes /healthz and
// sends signed payment notifies for a sample of the accepted orders (on the ops listener
// when there is one). tools/bench-flood.sh starts the servers and runs it.
//
//   flood_bench --url http://127.0.0.1:PORT --product ID [--ops-url URL]
//               [--mode flood|throughput] [--connections N] [--seconds S] [--threads T]
//               [--payment-secret S]    (or KEYVEND_PAYMENT_SECRET)
//               [--notify-every K]      notify every K-th 201; 0 = none
//                                       (default: 20 in flood mode, 0 in throughput mode)
//               [--probe-interval-ms MS] /healthz period; 0 = no prober
//                                       (default: 10 in flood mode, 0 in throughput mode)
//               [--configured-rate R]   the server's order rate, to report multiples of it
//               [--offered-rate X]      open loop: start X order requests/s on a fixed
//                                       schedule over the N connections (0 = closed loop)
//
// One file per part: options (the command line), http_client (URL, response parser,
// blocking connection), histogram (latency per status, ≤ 1.6 % relative error), buyers
// (the epoll load loops), prober (/healthz), notifier (signed payment notifies), report
// (the table and the RESULT line for scripts). Rates are over the time until the last
// answer arrived (the deadline plus the drain of answers in flight, ≤ 5 s).
//
// Exit status: 0 when the run completed (whatever it measured), 1 when no request was
// answered at all, 2 on a usage error.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "flood/buyers.h"
#include "flood/http_client.h"
#include "flood/notifier.h"
#include "flood/options.h"
#include "flood/prober.h"
#include "flood/report.h"

namespace {

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "flood_bench: %s\n%s\n", why.c_str(), kv::flood::kUsage);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kv::flood;
  const char* env_secret = std::getenv("KEYVEND_PAYMENT_SECRET");
  const auto parsed = ParseArgs(std::vector<std::string>(argv + 1, argv + argc),
                                env_secret == nullptr ? "" : env_secret);
  if (!parsed.ok()) Usage(std::string(parsed.status().message()));
  const Options& o = *parsed;
  Endpoint main_ep, ops_ep;
  if (!ParseUrl(o.url, &main_ep)) Usage("cannot use --url " + o.url);
  if (!ParseUrl(o.ops_url, &ops_ep)) Usage("cannot use --ops-url " + o.ops_url);

  NotifyQueue queue;
  const int64_t start_ns = NowNs();
  const int64_t stop_ns = start_ns + static_cast<int64_t>(o.seconds * 1e9);
  ProbeStats probe;
  NotifyStats notify;
  std::thread prober, notifier;
  std::atomic<bool> notifier_done{false};
  if (o.probe_interval_ms > 0) {
    prober = std::thread([&] { RunProber(ops_ep, o.probe_interval_ms, stop_ns, &probe); });
  }
  if (o.notify_every > 0) {
    notifier = std::thread([&] {
      RunNotifier(ops_ep, o.secret, &queue, &notify);
      notifier_done = true;
    });
  }
  const BuyerStats all = RunBuyers(main_ep, o, start_ns, stop_ns, &queue);
  const int64_t buyers_done_ns = NowNs();
  if (prober.joinable()) prober.join();
  if (notifier.joinable()) {
    // Orders accepted at the end still get their notify, for at most 5 s more.
    queue.Close();
    const int64_t give_up = NowNs() + 5'000'000'000;
    while (!notifier_done.load() && NowNs() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    notify.unsent = queue.Abandon();
    notifier.join();
  }
  notify.unsent += queue.dropped();

  const double elapsed = static_cast<double>(buyers_done_ns - start_ns) / 1e9;
  std::fputs(Report(o, all, probe, notify, elapsed).c_str(), stdout);
  return all.answered() == 0 ? 1 : 0;
}
