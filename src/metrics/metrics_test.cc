#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "kit/exposition.h"

namespace kv {
namespace {

using testing::CheckExposition;

std::string Fmt(double v) {
  std::string s;
  AppendDouble(&s, v);
  return s;
}

#define EXPECT_VALID_EXPOSITION(text)                          \
  do {                                                         \
    absl::Status st_ = CheckExposition(text);                  \
    EXPECT_TRUE(st_.ok()) << st_.ToString() << "\n" << (text); \
  } while (0)

TEST(MetricsNames, Grammar) {
  EXPECT_TRUE(IsValidMetricName("keyvend_http_requests_total"));
  EXPECT_TRUE(IsValidMetricName(":a:b_1"));
  EXPECT_TRUE(IsValidMetricName("_x"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_FALSE(IsValidMetricName("a b"));
  EXPECT_TRUE(IsValidLabelName("route"));
  EXPECT_TRUE(IsValidLabelName("_a1"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
  EXPECT_FALSE(IsValidLabelName(""));
}

TEST(MetricsFormat, Doubles) {
  EXPECT_EQ(Fmt(0), "0");
  EXPECT_EQ(Fmt(1), "1");
  EXPECT_EQ(Fmt(-5), "-5");
  EXPECT_EQ(Fmt(2.5), "2.5");
  EXPECT_EQ(Fmt(0.0005), "0.0005");
  EXPECT_EQ(Fmt(0.1), "0.1");
  EXPECT_EQ(Fmt(1e-5), "1e-05");
  EXPECT_EQ(Fmt(123456789012), "123456789012");
  EXPECT_EQ(Fmt(1e20), "100000000000000000000");
  EXPECT_EQ(Fmt(1.5e21), "1.5e+21");
  EXPECT_EQ(Fmt(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(Fmt(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(Fmt(std::nan("")), "NaN");
  // Shortest round trip.
  for (double v : {0.1 + 0.2, 1.0 / 3, 20.023, 6.02214076e23, 5e-324}) {
    EXPECT_EQ(std::strtod(Fmt(v).c_str(), nullptr), v) << Fmt(v);
  }
}

TEST(MetricsRender, CountersAndGaugesExact) {
  Registry r;
  r.GetGauge("kv_g", "A gauge.")->Set(-5);
  r.GetCounter("kv_a_total", "A things.")->Inc(3);
  r.GetCounter("kv_b_total", "B by kind.", {{"kind", "x"}})->Inc();
  r.GetCounter("kv_b_total", "B by kind.", {{"kind", "a"}})->Inc(2);
  Gauge* g2 = r.GetGauge("kv_conns", "Open connections.");
  g2->Inc();
  g2->Inc();
  g2->Dec();
  const std::string want =
      "# HELP kv_a_total A things.\n"
      "# TYPE kv_a_total counter\n"
      "kv_a_total 3\n"
      "# HELP kv_b_total B by kind.\n"
      "# TYPE kv_b_total counter\n"
      "kv_b_total{kind=\"a\"} 2\n"
      "kv_b_total{kind=\"x\"} 1\n"
      "# HELP kv_conns Open connections.\n"
      "# TYPE kv_conns gauge\n"
      "kv_conns 1\n"
      "# HELP kv_g A gauge.\n"
      "# TYPE kv_g gauge\n"
      "kv_g -5\n";
  const std::string got = r.Render();
  EXPECT_EQ(got, want);
  EXPECT_VALID_EXPOSITION(got);
}

TEST(MetricsRender, HistogramExact) {
  Registry r;
  Histogram* h = r.GetHistogram("kv_lat_seconds", "Latency.", {{"route", "r"}});
  h->Observe(0.003);
  h->Observe(0.02);
  h->Observe(20);
  const std::string want =
      "# HELP kv_lat_seconds Latency.\n"
      "# TYPE kv_lat_seconds histogram\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.0005\"} 0\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.001\"} 0\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.0025\"} 0\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.005\"} 1\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.01\"} 1\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.025\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.05\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.1\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.25\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"0.5\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"1\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"2.5\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"5\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"10\"} 2\n"
      "kv_lat_seconds_bucket{route=\"r\",le=\"+Inf\"} 3\n"
      "kv_lat_seconds_sum{route=\"r\"} 20.023\n"
      "kv_lat_seconds_count{route=\"r\"} 3\n";
  const std::string got = r.Render();
  EXPECT_EQ(got, want);
  EXPECT_VALID_EXPOSITION(got);
}

TEST(MetricsRender, HistogramWithoutLabels) {
  Registry r;
  r.GetHistogram("kv_h", "H.")->Observe(0.5);
  const std::string got = r.Render();
  EXPECT_NE(got.find("kv_h_bucket{le=\"0.25\"} 0\nkv_h_bucket{le=\"0.5\"} 1\n"), std::string::npos)
      << got;
  EXPECT_NE(got.find("kv_h_sum 0.5\nkv_h_count 1\n"), std::string::npos) << got;
  EXPECT_VALID_EXPOSITION(got);
}

TEST(MetricsRender, LabelAndHelpEscaping) {
  Registry r;
  r.GetCounter("kv_esc_total", "Help with \\ and\nnewline \"quoted\".",
               {{"a", "back\\slash"}, {"b", "quote\"d"}, {"c", "new\nline"}})
      ->Inc();
  const std::string got = r.Render();
  EXPECT_EQ(got,
            "# HELP kv_esc_total Help with \\\\ and\\nnewline \"quoted\".\n"
            "# TYPE kv_esc_total counter\n"
            "kv_esc_total{a=\"back\\\\slash\",b=\"quote\\\"d\",c=\"new\\nline\"} 1\n");
  EXPECT_VALID_EXPOSITION(got);
}

TEST(MetricsRender, SameNameAndLabelsIsSameChild) {
  Registry r;
  Counter* a = r.GetCounter("kv_x_total", "X.", {{"k", "1"}});
  Counter* b = r.GetCounter("kv_x_total", "X.", {{"k", "1"}});
  Counter* c = r.GetCounter("kv_x_total", "X.", {{"k", "2"}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(r.GetGauge("kv_y", "Y."), r.GetGauge("kv_y", "Y."));
  EXPECT_EQ(r.GetHistogram("kv_z", "Z."), r.GetHistogram("kv_z", "Z."));
}

TEST(MetricsRender, EmptyRegistry) {
  Registry r;
  EXPECT_EQ(r.Render(), "");
  EXPECT_VALID_EXPOSITION(r.Render());
}

TEST(Histogram, BoundsAreInclusive) {
  for (size_t i = 0; i < Histogram::kNumBounds; ++i) {
    const double b = Histogram::kBounds[i];
    EXPECT_EQ(Histogram::BucketIndex(b), i) << b;
    EXPECT_EQ(Histogram::BucketIndex(std::nextafter(b, 1e300)), i + 1) << b;
    EXPECT_EQ(Histogram::BucketIndex(std::nextafter(b, -1e300)), i) << b;
    EXPECT_EQ(std::stod(std::string(Histogram::kBoundLabels[i])), b);
  }
  EXPECT_EQ(Histogram::BucketIndex(0), 0u);
  EXPECT_EQ(Histogram::BucketIndex(-1), 0u);
  EXPECT_EQ(Histogram::BucketIndex(1e9), Histogram::kNumBounds);
  EXPECT_EQ(Histogram::BucketIndex(std::numeric_limits<double>::infinity()), Histogram::kNumBounds);
  EXPECT_EQ(Histogram::BucketIndex(std::nan("")), Histogram::kNumBounds);
}

TEST(Histogram, CumulativeBucketsAtBoundaries) {
  Registry r;
  Histogram* h = r.GetHistogram("kv_b_seconds", "B.");
  // One observation exactly on every bound, and one just above 10 s.
  for (double b : Histogram::kBounds) h->Observe(b);
  h->Observe(10.000001);
  EXPECT_EQ(h->Count(), Histogram::kNumBounds + 1);
  for (size_t i = 0; i < Histogram::kNumBuckets; ++i) EXPECT_EQ(h->BucketCount(i), 1u) << i;
  const std::string got = r.Render();
  for (size_t i = 0; i < Histogram::kNumBuckets; ++i) {
    const std::string line = "kv_b_seconds_bucket{le=\"" + std::string(Histogram::kBoundLabels[i]) +
                             "\"} " + std::to_string(i + 1) + "\n";
    EXPECT_NE(got.find(line), std::string::npos) << line << got;
  }
  EXPECT_NE(got.find("kv_b_seconds_count 15\n"), std::string::npos) << got;
  // 0.0005+0.001+...+10 = 19.444, + 10.000001
  EXPECT_EQ(h->SumNanos(), 29'444'001'000);
  EXPECT_NE(got.find("kv_b_seconds_sum 29.444001\n"), std::string::npos) << got;
  EXPECT_VALID_EXPOSITION(got);
}

TEST(Histogram, NaNAndNegative) {
  Histogram h;
  h.Observe(std::nan(""));
  h.Observe(-0.25);
  EXPECT_EQ(h.BucketCount(Histogram::kNumBounds), 1u);
  EXPECT_EQ(h.BucketCount(0), 1u);
  EXPECT_EQ(h.Count(), 2u);
  EXPECT_EQ(h.SumNanos(), -250'000'000);
  h.Observe(1e300);  // clamped in the sum, no UB
  EXPECT_EQ(h.Count(), 3u);
}

TEST(MetricsConcurrency, CountersFrom64Threads) {
  Registry r;
  Counter* c = r.GetCounter("kv_hits_total", "Hits.");
  Gauge* g = r.GetGauge("kv_level", "Level.");
  constexpr int kThreads = 64;
  constexpr int kPerThread = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        c->Inc();
        g->Add(i % 2 == 0 ? 3 : -1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->Value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(g->Value(), int64_t{kThreads} * kPerThread);  // (+3 -1) per two iterations
  EXPECT_NE(r.Render().find("kv_hits_total 6400000\n"), std::string::npos);
}

TEST(RequestMetrics, RendersRoutesAndCodes) {
  Registry r;
  RequestMetrics m(&r, {"POST /api/v1/orders", "GET /api/v1/products", "unmatched"});
  m.Observe(1, 200, 0.001);
  m.Observe(1, 200, 0.002);
  m.Observe(0, 201, 0.004);
  m.Observe(0, 409, 0.003);
  m.Observe(2, 404, 0.0001);
  m.Observe(99, 404, 0.0001);  // out of range: counts as the last route ("unmatched")
  m.Observe(0, 42, 0.001);     // out-of-range status: code="other"
  EXPECT_EQ(m.Count(2, 404), 2u);
  EXPECT_EQ(m.Count(0, 42), 1u);
  EXPECT_EQ(m.Count(0, 700), 1u);  // the same "other" slot
  EXPECT_EQ(m.Latency(2).Count(), 2u);
  const std::string got = r.Render();
  const std::string requests =
      "# HELP keyvend_http_requests_total HTTP requests answered, by route and status code.\n"
      "# TYPE keyvend_http_requests_total counter\n"
      "keyvend_http_requests_total{route=\"GET /api/v1/products\",code=\"200\"} 2\n"
      "keyvend_http_requests_total{route=\"POST /api/v1/orders\",code=\"201\"} 1\n"
      "keyvend_http_requests_total{route=\"POST /api/v1/orders\",code=\"409\"} 1\n"
      "keyvend_http_requests_total{route=\"POST /api/v1/orders\",code=\"other\"} 1\n"
      "keyvend_http_requests_total{route=\"unmatched\",code=\"404\"} 2\n";
  EXPECT_NE(got.find(requests), std::string::npos) << got;
  // Duration family sorts before requests_total; its routes are sorted by name too.
  EXPECT_LT(got.find("# TYPE keyvend_http_request_duration_seconds histogram\n"),
            got.find("# TYPE keyvend_http_requests_total counter\n"));
  EXPECT_NE(got.find("keyvend_http_request_duration_seconds_bucket{route=\"GET "
                     "/api/v1/products\",le=\"0.001\"} 1\n"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find("keyvend_http_request_duration_seconds_count{route=\"unmatched\"} 2\n"),
            std::string::npos)
      << got;
  EXPECT_NE(got.find("keyvend_http_request_duration_seconds_sum{route=\"POST "
                     "/api/v1/orders\"} 0.008\n"),
            std::string::npos)
      << got;
  EXPECT_VALID_EXPOSITION(got);
}

TEST(RequestMetrics, ExactTotalsFromManyThreads) {
  Registry r;
  const std::vector<std::string> routes = {"GET /a", "POST /b", "GET /c", "unmatched"};
  RequestMetrics m(&r, routes);
  const int statuses[] = {200, 201, 404, 409, 429, 503};
  constexpr int kThreads = 32;
  constexpr int kPerThread = 20'000;
  std::atomic<bool> stop{false};
  // A scraper renders throughout; every render must be a valid exposition.
  std::thread scraper([&] {
    int renders = 0;
    while (!stop.load() || renders == 0) {
      const std::string text = r.Render();
      absl::Status st = CheckExposition(text);
      ASSERT_TRUE(st.ok()) << st.ToString();
      ++renders;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const size_t route = static_cast<size_t>((t + i) % 4);
        m.Observe(route, statuses[i % 6], 0.001 * (i % 7));
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  scraper.join();

  // Expected per (route, status), computed the same way.
  uint64_t want[4][6] = {};
  int64_t want_sum_ns[4] = {};
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      ++want[(t + i) % 4][i % 6];
      want_sum_ns[(t + i) % 4] += std::llround(0.001 * (i % 7) * 1e9);
    }
  }
  uint64_t total = 0;
  for (size_t route = 0; route < 4; ++route) {
    uint64_t route_total = 0;
    for (int s = 0; s < 6; ++s) {
      EXPECT_EQ(m.Count(route, statuses[s]), want[route][s]) << route << " " << statuses[s];
      route_total += m.Count(route, statuses[s]);
    }
    EXPECT_EQ(m.Latency(route).Count(), route_total);
    EXPECT_EQ(m.Latency(route).SumNanos(), want_sum_ns[route]);
    total += route_total;
  }
  EXPECT_EQ(total, uint64_t{kThreads} * kPerThread);
  const std::string got = r.Render();
  EXPECT_VALID_EXPOSITION(got);
  const std::string line = "keyvend_http_requests_total{route=\"GET /a\",code=\"200\"} " +
                           std::to_string(want[0][0]) + "\n";
  EXPECT_NE(got.find(line), std::string::npos) << line << got;
}

TEST(Collector, SamplesAppearInNameOrder) {
  Registry r;
  int calls = 0;
  r.AddCollector("kv_stock", "Available keys per product.", "gauge",
                 [&calls](std::vector<Sample>* out) {
                   ++calls;
                   out->push_back({{{"product", "p1"}}, 42});
                   out->push_back({{{"product", "p\"2"}}, 0.5});
                   out->push_back({{{"bad-label", "x"}}, 1});   // dropped
                   out->push_back({{{"__reserved", "x"}}, 1});  // dropped
                   out->push_back({{}, 7});
                 });
  r.AddCollector("kv_backlog_age_seconds", "Age of the oldest entry.", "gauge",
                 [](std::vector<Sample>* out) {
                   out->push_back({{}, 1.25});
                 });
  r.AddCollector("kv_stalls_total", "Write stalls.", "counter", [](std::vector<Sample>* out) {
    out->push_back({{}, 3});
  });
  r.AddCollector("kv_empty", "Nothing yet.", "untyped", [](std::vector<Sample>*) {});
  r.GetGauge("kv_pending", "Pending holds.")->Set(2);
  const std::string got = r.Render();
  EXPECT_EQ(got,
            "# HELP kv_backlog_age_seconds Age of the oldest entry.\n"
            "# TYPE kv_backlog_age_seconds gauge\n"
            "kv_backlog_age_seconds 1.25\n"
            "# HELP kv_empty Nothing yet.\n"
            "# TYPE kv_empty untyped\n"
            "# HELP kv_pending Pending holds.\n"
            "# TYPE kv_pending gauge\n"
            "kv_pending 2\n"
            "# HELP kv_stalls_total Write stalls.\n"
            "# TYPE kv_stalls_total counter\n"
            "kv_stalls_total 3\n"
            "# HELP kv_stock Available keys per product.\n"
            "# TYPE kv_stock gauge\n"
            "kv_stock{product=\"p1\"} 42\n"
            "kv_stock{product=\"p\\\"2\"} 0.5\n"
            "kv_stock 7\n");
  EXPECT_EQ(calls, 1);
  EXPECT_VALID_EXPOSITION(got);
}

TEST(Collector, RunsWithoutTheRegistryLock) {
  Registry r;
  // A collector that registers (takes the registry lock) would deadlock if Render held it.
  r.AddCollector("kv_lazy", "Lazy.", "gauge", [&r](std::vector<Sample>* out) {
    r.GetGauge("kv_made_in_collector", "Made while rendering.")->Set(1);
    out->push_back({{}, 1});
  });
  EXPECT_NE(r.Render().find("kv_lazy 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("kv_made_in_collector 1\n"), std::string::npos);
}

using MetricsDeathTest = ::testing::Test;

TEST_F(MetricsDeathTest, RegistrationMistakesAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetCounter("bad-name", "x");
      },
      "invalid metric name");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetCounter("kv_a", "x", {{"bad:label", "v"}});
      },
      "invalid label name");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetCounter("kv_a", "x", {{"__name__", "v"}});
      },
      "invalid label name");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetCounter("kv_a", "x");
        r.GetGauge("kv_a", "x");
      },
      "registered as counter, now as gauge");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetCounter("kv_a", "x", {{"k", "1"}});
        r.GetCounter("kv_a", "x", {{"j", "1"}});
      },
      "other label names");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetCounter("kv_a", "x", {{"k", "1"}});
        r.GetCounter("kv_a", "x");
      },
      "other label names");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetHistogram("kv_h", "x", {{"le", "1"}});
      },
      "le");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetHistogram("kv_h", "x");
        r.GetGauge("kv_h_count", "x");
      },
      "clashes");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetGauge("kv_h_sum", "x");
        r.GetHistogram("kv_h", "x");
      },
      "clashes");
  EXPECT_DEATH(
      {
        Registry r;
        r.GetGauge("kv_c", "x");
        r.AddCollector("kv_c", "x", "gauge", [](std::vector<Sample>*) {});
      },
      "already registered");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddCollector("kv_c", "x", "histogram", [](std::vector<Sample>*) {});
      },
      "want gauge");
  EXPECT_DEATH(
      {
        Registry r;
        RequestMetrics m(&r, {"a", "a"});
      },
      "duplicate route");
}

// --- the validator itself ------------------------------------------------------------------

TEST(CheckExposition, AcceptsValidText) {
  EXPECT_TRUE(CheckExposition("").ok());
  const std::string text =
      "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
      "\n# just a comment\n"
      "# TYPE b gauge\n# HELP b B \\\\ \\n.\n"
      "b{x=\"1\",y=\"\\\"\\\\\\n\",} -2.5e-3 1700000000000\n"
      "# HELP c C.\n# TYPE c summary\nc{quantile=\"0.5\"} 1\nc_sum 3\nc_count 2\n";
  const absl::Status st = CheckExposition(text);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(CheckExposition("# HELP h H.\n# TYPE h histogram\n"
                              "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"
                              "h_bucket{k=\"v\",le=\"0.5\"} 0\nh_bucket{le=\"+Inf\",k=\"v\"} 0\n"
                              "h_sum{k=\"v\"} 0\nh_count{k=\"v\"} 0\n")
                  .ok());
}

TEST(CheckExposition, RejectsBrokenText) {
  const std::string head = "# HELP h H.\n# TYPE h histogram\n";
  const char* bad[] = {
      // no trailing newline
      "# HELP a A.\n# TYPE a gauge\na 1",
      // sample without HELP/TYPE
      "a 1\n",
      "# TYPE a gauge\na 1\n",
      // HELP/TYPE twice, TYPE after samples, non-contiguous family
      "# HELP a A.\n# HELP a A.\n# TYPE a gauge\na 1\n",
      "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",
      "# HELP a A.\na 1\n# TYPE a gauge\n",
      "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\n# HELP a A.\n",
      // a sample of another family under the current one
      "# HELP a A.\n# TYPE a gauge\nab 1\n",
      "# HELP a A.\n# TYPE a gauge\na_count 1\n",
      // bad type, names, labels, escapes, values
      "# HELP a A.\n# TYPE a gauges\na 1\n",
      "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",
      "# HELP a A.\n# TYPE a gauge\na{1x=\"1\"} 1\n",
      "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",
      "# HELP a A.\n# TYPE a gauge\na{x=\"1\"\n",
      "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",
      "# HELP a A \\t.\n# TYPE a gauge\na 1\n",
      "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
      "# HELP a A.\n# TYPE a gauge\na 1x\n",
      "# HELP a A.\n# TYPE a gauge\na inf\n",
      "# HELP a A.\n# TYPE a gauge\na\n",
      "# HELP a A.\n# TYPE a gauge\na 1 2 3\n",
      "# HELP a A.\n# TYPE a gauge\na 1 1.5\n",
      // duplicate series (label order does not matter)
      "# HELP a A.\n# TYPE a gauge\na{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\n",
      // negative counter
      "# HELP a A.\n# TYPE a counter\na -1\n",
  };
  for (const char* text : bad) {
    EXPECT_FALSE(CheckExposition(text).ok()) << text;
  }
  const std::string bad_histograms[] = {
      // no +Inf
      head + "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
      // _count != +Inf
      head + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
      // not cumulative
      head + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
      // le not increasing
      head +
          "h_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count "
          "1\n",
      // missing _sum / _count / buckets, le missing, plain sample name
      head + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n",
      head + "h_bucket{le=\"+Inf\"} 1\nh_sum 1\n",
      head + "h_sum 1\nh_count 1\n",
      head + "h_bucket 1\n",
      head + "h 1\n",
      head + "h_bucket{le=\"x\"} 1\n",
  };
  for (const std::string& text : bad_histograms) {
    EXPECT_FALSE(CheckExposition(text).ok()) << text;
  }
}

// Not a timing assertion: prints the hot path's cost under contention.
TEST(RequestMetrics, MicroBenchmark) {
  Registry r;
  RequestMetrics m(&r, {"GET /api/v1/products", "POST /api/v1/orders", "unmatched"});
  Counter* c = r.GetCounter("kv_bench_total", "Bench.");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1'000'000;
  auto run = [&](auto&& body) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) body(t, i);
      });
    }
    for (auto& t : threads) t.join();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    return ns / (double{kThreads} * kPerThread);
  };
  const double same_route = run([&](int, int i) { m.Observe(0, 200, 0.0001 * (i & 63)); });
  const double mixed = run([&](int t, int i) {
    m.Observe(static_cast<size_t>((t + i) % 3), i % 5 == 0 ? 404 : 200, 0.0001 * (i & 63));
  });
  const double counter = run([&](int, int) { c->Inc(); });
  // Uncontended cost, for comparison.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kPerThread; ++i) m.Observe(1, 201, 0.0001 * (i & 63));
  const double single =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
      kPerThread;
  std::printf(
      "[ bench ] %d threads x %d: RequestMetrics::Observe same route %.1f ns/op, mixed routes "
      "%.1f ns/op; Counter::Inc %.1f ns/op (wall time / total ops); 1 thread Observe "
      "%.1f ns/op\n",
      kThreads, kPerThread, same_route, mixed, counter, single);
  EXPECT_EQ(m.Latency(0).Count() + m.Latency(1).Count() + m.Latency(2).Count(),
            uint64_t{2} * kThreads * kPerThread + kPerThread);
  EXPECT_EQ(c->Value(), uint64_t{kThreads} * kPerThread);
  EXPECT_VALID_EXPOSITION(r.Render());
}

}  // namespace
}  // namespace kv
