// flood_bench's pure parts: the command line, the response parser and body fields, URLs,
// the latency histogram, the steady-rate statistics, the notify request, the notify queue
// and the report's RESULT line (which tools/bench-flood.sh and tools/bench-backup.sh read).
#include <map>
#include <string>
#include <vector>

#include "flood/buyers.h"
#include "flood/histogram.h"
#include "flood/http_client.h"
#include "flood/notifier.h"
#include "flood/options.h"
#include "flood/prober.h"
#include "flood/report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "http/signature.h"

namespace kv::flood {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// --- options ----------------------------------------------------------------------------------

absl::StatusOr<Options> Parse(std::vector<std::string> args, const std::string& env = "") {
  return ParseArgs(args, env);
}

std::string Error(std::vector<std::string> args, const std::string& env = "") {
  const auto o = Parse(std::move(args), env);
  EXPECT_FALSE(o.ok());
  return o.ok() ? "" : std::string(o.status().message());
}

TEST(FloodOptions, FloodModeDefaults) {
  const auto o = Parse({"--url", "http://127.0.0.1:1", "--product", "7"}, "env-secret");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->mode, "flood");
  EXPECT_EQ(o->url, "http://127.0.0.1:1");
  EXPECT_EQ(o->ops_url, "http://127.0.0.1:1");  // the main listener unless told
  EXPECT_EQ(o->product, "7");
  EXPECT_EQ(o->secret, "env-secret");
  EXPECT_EQ(o->connections, 256);
  EXPECT_EQ(o->threads, 1);
  EXPECT_DOUBLE_EQ(o->seconds, 10);
  EXPECT_EQ(o->notify_every, 20);
  EXPECT_EQ(o->probe_interval_ms, 10);
  EXPECT_EQ(o->configured_rate, 0);
  EXPECT_DOUBLE_EQ(o->offered_rate, 0);
}

TEST(FloodOptions, ThroughputModeNeedsNoSecret) {
  const auto o = Parse({"--url=http://h:1", "--product=1", "--mode=throughput"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->mode, "throughput");
  EXPECT_EQ(o->notify_every, 0);
  EXPECT_EQ(o->probe_interval_ms, 0);
  EXPECT_EQ(o->secret, "");
}

TEST(FloodOptions, EveryOptionBothSpellings) {
  const auto o = Parse({"--url",
                        "http://a:1",
                        "--ops-url=http://b:2",
                        "--product",
                        "p",
                        "--mode",
                        "flood",
                        "--connections=64",
                        "--threads",
                        "4",
                        "--seconds",
                        "2.5",
                        "--notify-every=5",
                        "--probe-interval-ms",
                        "0",
                        "--configured-rate",
                        "500",
                        "--offered-rate=5000",
                        "--payment-secret",
                        "flag-secret"},
                       "env-secret");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->ops_url, "http://b:2");
  EXPECT_EQ(o->connections, 64);
  EXPECT_EQ(o->threads, 4);
  EXPECT_DOUBLE_EQ(o->seconds, 2.5);
  EXPECT_EQ(o->notify_every, 5);
  EXPECT_EQ(o->probe_interval_ms, 0);  // an explicit 0 is not the mode's default
  EXPECT_EQ(o->configured_rate, 500);
  EXPECT_DOUBLE_EQ(o->offered_rate, 5000);
  EXPECT_EQ(o->secret, "flag-secret");  // the flag wins over the environment
}

TEST(FloodOptions, ThreadsNeverExceedConnections) {
  const auto o = Parse({"--url", "http://a:1", "--product", "p", "--mode", "throughput",
                        "--connections", "3", "--threads", "8"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->threads, 3);
}

TEST(FloodOptions, FloodWithoutNotifiesNeedsNoSecret) {
  const auto o = Parse({"--url", "http://a:1", "--product", "p", "--notify-every", "0"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->notify_every, 0);
  EXPECT_EQ(o->probe_interval_ms, 10);
}

TEST(FloodOptions, Errors) {
  const std::vector<std::string> base = {"--url", "http://a:1", "--product",
                                         "p",     "--mode",     "throughput"};
  const auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> a = base;
    a.insert(a.end(), more.begin(), more.end());
    return Error(a);
  };
  EXPECT_EQ(Error({"--product", "p"}), "--url is required");
  EXPECT_EQ(Error({"--url", "http://a:1"}), "--product is required");
  EXPECT_EQ(with({"--bogus", "1"}), "unknown option --bogus");
  EXPECT_EQ(with({"--seconds"}), "--seconds needs a value");
  EXPECT_EQ(with({"--mode", "fast"}), "--mode is flood or throughput");
  EXPECT_EQ(with({"--connections", "0"}), "bad value for --connections: 0");
  EXPECT_EQ(with({"--connections", "20001"}), "bad value for --connections: 20001");
  EXPECT_EQ(with({"--connections", "1e300"}), "bad value for --connections: 1e300");
  EXPECT_EQ(with({"--threads", "65"}), "bad value for --threads: 65");
  EXPECT_EQ(with({"--seconds", "0.05"}), "bad value for --seconds: 0.05");
  EXPECT_EQ(with({"--seconds", "ten"}), "bad value for --seconds: ten");
  EXPECT_EQ(with({"--seconds", "5s"}), "bad value for --seconds: 5s");
  EXPECT_EQ(with({"--seconds="}), "bad value for --seconds: ");
  EXPECT_EQ(with({"--seconds", "nan"}), "bad value for --seconds: nan");
  EXPECT_EQ(with({"--offered-rate", "-1"}), "bad value for --offered-rate: -1");
  EXPECT_EQ(with({"--probe-interval-ms", "60001"}), "bad value for --probe-interval-ms: 60001");
  EXPECT_THAT(Error({"--url", "http://a:1", "--product", "p"}),
              HasSubstr("notifies need --payment-secret"));
}

// --- HTTP pieces ------------------------------------------------------------------------------

TEST(FloodHttp, ParsesAWholeResponse) {
  const std::string buf =
      "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
      "{\"a\":1}HTTP/1.1 200 OK";  // the start of a pipelined next one
  Response r;
  ASSERT_EQ(ParseResponse(buf, &r), 1);
  EXPECT_EQ(r.status, 201);
  EXPECT_FALSE(r.close);
  EXPECT_EQ(r.body, "{\"a\":1}");
  EXPECT_EQ(r.total_bytes, buf.find("HTTP/1.1 200"));
}

TEST(FloodHttp, HeaderNamesAndConnectionValueIgnoreCase) {
  Response r;
  ASSERT_EQ(
      ParseResponse("HTTP/1.1 503 X\r\ncontent-LENGTH:  2 \r\nCONNECTION: Close\r\n\r\nab", &r), 1);
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(r.close);
  EXPECT_EQ(r.body, "ab");
}

TEST(FloodHttp, Http10ClosesUnlessToldOtherwise) {
  Response r;
  ASSERT_EQ(ParseResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", &r), 1);
  EXPECT_TRUE(r.close);
  ASSERT_EQ(
      ParseResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", &r),
      1);
  EXPECT_FALSE(r.close);
}

TEST(FloodHttp, IncompleteIsNotYet) {
  Response r;
  EXPECT_EQ(ParseResponse("", &r), 0);
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n", &r), 0);
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabc", &r), 0);
}

TEST(FloodHttp, MalformedIsRefused) {
  Response r;
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\n\r\n", &r), -1);  // no Content-Length
  EXPECT_EQ(ParseResponse("HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &r), -1);
  EXPECT_EQ(ParseResponse("HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", &r), -1);
  EXPECT_EQ(ParseResponse("HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n", &r), -1);
  EXPECT_EQ(ParseResponse("HTTP/1.1\r\n\r\n", &r), -1);
  EXPECT_EQ(ParseResponse(std::string(65537, 'x'), &r), -1);  // no head end in 64 KiB
}

TEST(FloodHttp, BodyFields) {
  const std::string body =
      R"({"order_id":"abc","amount_cents":1250,"currency":"EUR","code":"rate_limited","n":-3})";
  EXPECT_EQ(JsonString(body, "order_id"), "abc");
  EXPECT_EQ(JsonString(body, "currency"), "EUR");
  EXPECT_EQ(JsonString(body, "missing"), "");
  EXPECT_EQ(JsonString(body, "amount_cents"), "");  // not a string
  EXPECT_EQ(JsonString(R"({"a":"unterminated)", "a"), "");
  EXPECT_EQ(JsonInt(body, "amount_cents"), 1250);
  EXPECT_EQ(JsonInt(body, "n"), -1);  // only non-negative integers
  EXPECT_EQ(JsonInt(body, "order_id"), -1);
  EXPECT_EQ(JsonInt(body, "missing"), -1);
  EXPECT_EQ(JsonInt(R"({"a":)", "a"), -1);
}

TEST(FloodHttp, Urls) {
  Endpoint ep;
  ASSERT_TRUE(ParseUrl("http://127.0.0.1:8080/", &ep));
  EXPECT_EQ(ep.host, "127.0.0.1");
  EXPECT_EQ(ep.port, 8080);
  EXPECT_EQ(ep.host_header, "127.0.0.1:8080");
  EXPECT_GT(ep.addr_len, 0u);
  Endpoint v6;
  ASSERT_TRUE(ParseUrl("http://[::1]:9", &v6));
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.host_header, "[::1]:9");
  for (const char* bad : {"127.0.0.1:80", "https://127.0.0.1:80", "http://127.0.0.1", "http://:80",
                          "http://127.0.0.1:0", "http://127.0.0.1:65536", "http://127.0.0.1:x"}) {
    Endpoint e;
    EXPECT_FALSE(ParseUrl(bad, &e)) << bad;
  }
}

// --- histogram and statistics ------------------------------------------------------------------

TEST(FloodHistogram, EmptyIsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.Quantile(0.5), 0u);
  EXPECT_EQ(h.Quantile(0.99), 0u);
}

TEST(FloodHistogram, ExactBelow64) {
  Histogram h;
  for (uint64_t v = 0; v < 64; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 64u);
  EXPECT_EQ(h.max(), 63u);
  EXPECT_EQ(h.Quantile(0.5), 31u);  // rank 32 of 64
  EXPECT_EQ(h.Quantile(0.0), 0u);   // rank clamped to 1
  EXPECT_EQ(h.Quantile(1.0), 63u);
  EXPECT_EQ(h.Quantile(0.99), 63u);  // rank ceil(63.36) = 64
}

TEST(FloodHistogram, RelativeErrorAndExactMax) {
  for (uint64_t v :
       {64ull, 65ull, 100ull, 1000ull, 4097ull, 123456ull, 99999999ull, (1ull << 40) + 12345}) {
    Histogram h;
    h.Record(v);
    h.Record(v * 10);  // so the quantile is not capped by the max
    const uint64_t q = h.Quantile(0.5);
    EXPECT_GE(q, v);
    EXPECT_LE(static_cast<double>(q), static_cast<double>(v) * (1 + 1.0 / 64)) << v;
    EXPECT_EQ(h.Quantile(1.0), v * 10);  // never above the exact max
    EXPECT_EQ(h.max(), v * 10);
  }
  Histogram top;
  top.Record(~uint64_t{0});
  EXPECT_EQ(top.Quantile(0.5), ~uint64_t{0});
}

TEST(FloodHistogram, Merge) {
  Histogram a, b;
  for (int i = 0; i < 10; ++i) a.Record(5);
  for (int i = 0; i < 30; ++i) b.Record(40);
  b.Record(7000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 41u);
  EXPECT_EQ(a.max(), 7000u);
  EXPECT_EQ(a.Quantile(0.2), 5u);
  EXPECT_EQ(a.Quantile(0.5), 40u);
  EXPECT_EQ(a.Quantile(1.0), 7000u);
}

TEST(FloodStats, SteadySecondsSkipTheFirstAndThePartialLast) {
  const std::vector<uint64_t> per_second = {2000, 10, 30, 20, 40, 7, 0, 0};
  const Steady s = SteadyAccepted(per_second, 5);
  EXPECT_EQ(s.seconds, 4u);  // seconds 1..4
  EXPECT_EQ(s.min, 10u);
  EXPECT_EQ(s.median, 30u);  // the upper of the two middle ones
  EXPECT_EQ(s.max, 40u);
  const Steady odd = SteadyAccepted(per_second, 4.9);  // whole seconds only: 1..3
  EXPECT_EQ(odd.seconds, 3u);
  EXPECT_EQ(odd.median, 20u);
  const Steady none = SteadyAccepted(per_second, 1);
  EXPECT_EQ(none.seconds, 0u);
  EXPECT_EQ(none.min, 0u);
  EXPECT_EQ(none.median, 0u);
  EXPECT_EQ(none.max, 0u);
  const Steady short_vector = SteadyAccepted({1, 2}, 10);  // never past the vector
  EXPECT_EQ(short_vector.seconds, 1u);
  EXPECT_EQ(short_vector.median, 2u);
}

TEST(FloodStats, StatusClasses) {
  EXPECT_EQ(ClassOf(201), k201);
  EXPECT_EQ(ClassOf(429), k429);
  EXPECT_EQ(ClassOf(503), k503);
  EXPECT_EQ(ClassOf(200), kOther);
  EXPECT_EQ(ClassOf(409), kOther);
  EXPECT_EQ(ClassOf(500), kOther);
}

TEST(FloodStats, MergeBuyerStats) {
  BuyerStats all, a, b;
  all.accepted_per_second.assign(3, 0);
  a.accepted_per_second = {1, 2, 3};
  b.accepted_per_second = {10, 20, 30, 40};  // a longer one grows the total
  a.latency[k201].Record(100);
  b.latency[k429].Record(5);
  b.latency[kOther].Record(6);
  a.codes["429 rate_limited"] = 2;
  b.codes["429 rate_limited"] = 3;
  b.codes["503 overloaded"] = 1;
  a.sent = 4;
  b.sent = 6;
  a.reconnects = 1;
  b.not_started = 2;
  all.Merge(a);
  all.Merge(b);
  EXPECT_EQ(all.accepted_per_second, (std::vector<uint64_t>{11, 22, 33, 40}));
  EXPECT_EQ(all.answered(), 3u);
  EXPECT_EQ(all.latency[k201].count(), 1u);
  EXPECT_EQ(all.codes["429 rate_limited"], 5u);
  EXPECT_EQ(all.codes["503 overloaded"], 1u);
  EXPECT_EQ(all.sent, 10u);
  EXPECT_EQ(all.reconnects, 1u);
  EXPECT_EQ(all.not_started, 2u);
}

// --- notifies -----------------------------------------------------------------------------------

TEST(FloodNotify, SignedRequest) {
  const Sold s{"0123abcd", 1250, "EUR"};
  const std::string body = NotifyBody(s, "flood-1-2-3");
  EXPECT_EQ(body, R"({"order_id":"0123abcd","payment_id":"flood-1-2-3","amount_cents":1250,)"
                  R"("currency":"EUR","status":"succeeded"})");
  const std::string req = NotifyRequest("127.0.0.1:9", "secret", 1'790'000'000, body);
  ASSERT_THAT(req, testing::StartsWith("POST /api/v1/payments/notify HTTP/1.1\r\n"));
  EXPECT_THAT(req, HasSubstr("\r\nHost: 127.0.0.1:9\r\n"));
  EXPECT_THAT(req, HasSubstr("\r\nContent-Type: application/json\r\n"));
  EXPECT_THAT(req, HasSubstr("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"));
  const size_t head_end = req.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_EQ(req.substr(head_end + 4), body);
  const std::string name = "\r\nKeyvend-Signature: ";
  const size_t sig = req.find(name);
  ASSERT_NE(sig, std::string::npos);
  const std::string header =
      req.substr(sig + name.size(), req.find("\r\n", sig + name.size()) - sig - name.size());
  EXPECT_TRUE(kv::http::VerifyNotify(header, body, "secret", 1'790'000'000, 300));
  EXPECT_FALSE(kv::http::VerifyNotify(header, body, "other", 1'790'000'000, 300));
}

TEST(FloodNotify, QueueOrderCloseAbandonAndDrop) {
  NotifyQueue q;
  q.Push({"a", 1, "EUR"});
  q.Push({"b", 2, "EUR"});
  Sold s;
  ASSERT_TRUE(q.Pop(&s));
  EXPECT_EQ(s.order_id, "a");
  q.Close();
  ASSERT_TRUE(q.Pop(&s));  // closed, but what was queued still comes out
  EXPECT_EQ(s.order_id, "b");
  EXPECT_FALSE(q.Pop(&s));

  NotifyQueue full;
  for (size_t i = 0; i < NotifyQueue::kMax + 3; ++i) full.Push({"x", 1, "EUR"});
  EXPECT_EQ(full.dropped(), 3u);
  EXPECT_EQ(full.Abandon(), NotifyQueue::kMax);
  EXPECT_FALSE(full.Pop(&s));
}

// --- the report ---------------------------------------------------------------------------------

// The RESULT line's fields.
std::map<std::string, std::string> ResultFields(const std::string& report) {
  const size_t at = report.rfind("\nRESULT ");
  EXPECT_NE(at, std::string::npos) << report;
  std::map<std::string, std::string> out;
  if (at == std::string::npos) return out;
  const std::string line = report.substr(at + 8, report.find('\n', at + 1) - at - 8);
  size_t pos = 0;
  while (pos < line.size()) {
    size_t end = line.find(' ', pos);
    if (end == std::string::npos) end = line.size();
    const std::string kv = line.substr(pos, end - pos);
    const size_t eq = kv.find('=');
    EXPECT_NE(eq, std::string::npos) << kv;
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
    pos = end + 1;
  }
  return out;
}

TEST(FloodReport, ResultLineCarriesWhatTheScriptsRead) {
  auto o = Parse({"--url", "http://a:1", "--ops-url", "http://b:2", "--product", "p", "--seconds",
                  "4", "--configured-rate", "500", "--payment-secret", "s", "--offered-rate",
                  "5000", "--connections", "8"});
  ASSERT_TRUE(o.ok()) << o.status();
  BuyerStats all;
  all.accepted_per_second = {900, 500, 498, 503, 12, 0, 0, 0};
  for (int i = 0; i < 2413; ++i) all.latency[k201].Record(1023);  // its bucket's top
  all.latency[k201].Record(20000);                                // 20 ms max
  for (int i = 0; i < 100; ++i) all.latency[k429].Record(300);
  all.latency[k503].Record(50);
  all.sent = 2515 + 5;
  all.connect_errors = 2;
  all.closed_mid_request = 1;
  all.codes["429 rate_limited"] = 100;
  ProbeStats probe;
  probe.probes = 400;
  probe.failures = 1;
  for (int i = 0; i < 399; ++i) probe.latency.Record(400);
  NotifyStats notify;
  notify.sent = 120;
  notify.ok = 119;
  notify.other = 1;
  notify.unsent = 3;
  for (int i = 0; i < 119; ++i) notify.latency.Record(2000);

  const std::string report = Report(*o, all, probe, notify, 5.0);
  auto r = ResultFields(report);
  EXPECT_EQ(r["mode"], "flood");
  EXPECT_EQ(r["seconds"], "5.00");
  EXPECT_EQ(r["connections"], "8");
  EXPECT_EQ(r["paced_rate"], "5000");
  EXPECT_EQ(r["offered_per_s"], "504.0");   // 2520 sent / 5 s
  EXPECT_EQ(r["answered_per_s"], "503.0");  // 2515 answered / 5 s
  EXPECT_EQ(r["accepted_per_s"], "482.8");  // 2414 / 5 s
  EXPECT_EQ(r["accepted_steady_seconds"], "3");
  EXPECT_EQ(r["accepted_steady_min"], "498");
  EXPECT_EQ(r["accepted_steady_median"], "500");
  EXPECT_EQ(r["accepted_steady_max"], "503");
  EXPECT_EQ(r["p50_accepted_ms"], "1.02");
  EXPECT_EQ(r["p99_accepted_ms"], "1.02");
  EXPECT_EQ(r["max_accepted_ms"], "20.00");
  EXPECT_EQ(r["status_201"], "2414");
  EXPECT_EQ(r["status_429"], "100");
  EXPECT_EQ(r["status_503"], "1");
  EXPECT_EQ(r["status_other"], "0");
  EXPECT_EQ(r["p99_429_ms"], "0.30");
  EXPECT_EQ(r["conn_errors"], "2");
  EXPECT_EQ(r["closed_mid_request"], "1");
  EXPECT_EQ(r["unfinished"], "0");
  EXPECT_EQ(r["healthz_probes"], "400");
  EXPECT_EQ(r["healthz_failures"], "1");
  EXPECT_EQ(r["healthz_p99_ms"], "0.40");
  EXPECT_EQ(r["healthz_max_ms"], "0.40");
  EXPECT_EQ(r["notify_sent"], "120");
  EXPECT_EQ(r["notify_ok"], "119");
  EXPECT_EQ(r["notify_other"], "1");
  EXPECT_EQ(r["notify_failed"], "0");
  EXPECT_EQ(r["notify_unsent"], "3");
  EXPECT_EQ(r["notify_p99_ms"], "2.00");
  EXPECT_EQ(r.size(), 37u);  // no field lost or added unnoticed

  EXPECT_THAT(report, testing::StartsWith("flood_bench mode=flood url=http://a:1 "
                                          "ops_url=http://b:2 connections=8 threads=1 "
                                          "load=paced 5000/s seconds=4.0 (measured 5.00)\n"));
  EXPECT_THAT(report, HasSubstr("(configured 500/s: offered = 1.0x, accepted = 0.97x)"));
  EXPECT_THAT(report, HasSubstr("after the first (3 s): min 498, median 500, max 503\n"));
  EXPECT_THAT(report, HasSubstr("  answered 429 rate_limited"));
  EXPECT_THAT(report, HasSubstr("\nhealthz (GET /healthz every 10 ms on http://b:2)\n"));
  EXPECT_THAT(report, HasSubstr("\nnotify (signed, every 20-th accepted order, on http://b:2)\n"));
  EXPECT_THAT(report, HasSubstr("paced: 0 requests started late"));
}

TEST(FloodReport, ThroughputModeLeavesOutProberAndNotifier) {
  auto o = Parse({"--url", "http://a:1", "--product", "p", "--mode", "throughput"});
  ASSERT_TRUE(o.ok()) << o.status();
  BuyerStats all;
  all.accepted_per_second.assign(18, 0);
  all.latency[k201].Record(2500);
  all.sent = 1;
  const std::string report = Report(*o, all, ProbeStats{}, NotifyStats{}, 0.5);
  EXPECT_THAT(report, HasSubstr("load=closed loop "));
  EXPECT_THAT(report, Not(HasSubstr("healthz (")));
  EXPECT_THAT(report, Not(HasSubstr("notify (")));
  EXPECT_THAT(report, Not(HasSubstr("paced:")));
  EXPECT_THAT(report, HasSubstr("after the first (9 s): min 0, median 0, max 0\n"));
  auto r = ResultFields(report);
  EXPECT_EQ(r["accepted_per_s"], "2.0");
  EXPECT_EQ(r["p50_accepted_ms"], "2.50");
  EXPECT_EQ(r["accepted_steady_seconds"], "9");  // seconds 1..9 of a 10 s run, all zero
  EXPECT_EQ(r["accepted_steady_median"], "0");
}

}  // namespace
}  // namespace kv::flood
