// keyvend's metrics: counters, gauges, latency histograms and scrape-time collectors,
// rendered in the Prometheus text exposition format 0.0.4 for `GET /metrics` (SPEC §4).
//
// Hot path (Counter::Inc, Gauge::Set/Add, Histogram::Observe, RequestMetrics::Observe):
// relaxed atomics only — no mutex, no allocation, no formatting. Safe to call on every
// HTTP request from any number of threads. Registration and Render() take a registry
// mutex, which the hot path never touches.
//
//   kv::Registry reg;
//   kv::Gauge* in_flight = reg.GetGauge("keyvend_http_requests_in_flight", "Requests being
//   served."); kv::RequestMetrics http(&reg, {"GET /api/v1/products", "POST /api/v1/orders",
//   "unmatched"}); http.Observe(1, 201, 0.0042);           // route index, status, seconds
//   std::string body = reg.Render();        // Content-Type: text/plain; version=0.0.4
//
// Registration mistakes (an invalid name, the same name with another type or other label
// names, a label count that does not match) are programming errors: the process aborts
// with a message, in every build type (registration happens at start-up, so a mistake
// shows at once; an assert() would vanish under NDEBUG and emit a broken exposition).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/mutex.h"

namespace kv {

// Label (name, value) pairs, in the order the family declared its label names.
using Labels = std::vector<std::pair<std::string, std::string>>;

// One sample of a collector: its labels (no "le"; names valid) and its value.
struct Sample {
  Labels labels;
  double value = 0;
};

// Prometheus grammar: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]* (names starting "__" are reserved and refused by the registry).
bool IsValidMetricName(std::string_view name);
bool IsValidLabelName(std::string_view name);

// Text-format helpers (exposed for tests and for other exporters).
// A double the way Prometheus parses it: shortest round-trip digits, fixed notation for
// decimal exponents in [-4, 21) and scientific outside (like Go's FormatFloat 'g', -1):
// 0.0005, 2.5, 10, 1e-05, 1.5e+21; "+Inf", "-Inf", "NaN".
void AppendDouble(std::string* out, double v);
// Label value escaping: \ -> \\, " -> \", newline -> \n.
void AppendEscapedLabelValue(std::string* out, std::string_view v);
// HELP text escaping: \ -> \\, newline -> \n.
void AppendEscapedHelp(std::string* out, std::string_view v);

// A monotonic counter (uint64, wraps only after 2^64).
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A value that goes up and down (int64): in-flight requests, open connections, ...
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  void Inc() { Add(1); }
  void Dec() { Add(-1); }
  int64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// A latency histogram with fixed buckets (seconds; `le` is inclusive, as in Prometheus):
//   0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf
// i.e. 0.5 ms .. 10 s, about 1-2.5-5 per decade. Observe() is two relaxed fetch_adds:
// one bucket and the sum. The count is the sum of the buckets, so a rendered histogram is
// always self-consistent (+Inf bucket == _count) even under concurrent Observe() calls;
// _sum may lag or lead the buckets by the observations in flight.
// The sum is kept in integer nanoseconds (exact, no CAS loop): observations are rounded
// to 1 ns; NaN counts in +Inf and adds 0 to the sum; values beyond ±9.2e9 s are clamped
// in the sum.
class alignas(64) Histogram {
 public:
  static constexpr size_t kNumBounds = 14;
  static constexpr std::array<double, kNumBounds> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  // The same bounds as written in the `le` label.
  static constexpr std::array<std::string_view, kNumBounds + 1> kBoundLabels = {
      "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
      "0.25",   "0.5",   "1",      "2.5",   "5",    "10",    "+Inf"};
  static constexpr size_t kNumBuckets = kNumBounds + 1;  // the last one is +Inf

  Histogram() = default;
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double seconds) {
    buckets_[BucketIndex(seconds)].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ToNanos(seconds), std::memory_order_relaxed);
  }

  // The first bucket whose bound is >= seconds (kNumBounds for +Inf, and for NaN).
  static size_t BucketIndex(double seconds) {
    size_t i = 0;
    while (i < kNumBounds && !(seconds <= kBounds[i])) ++i;
    return i;
  }

  // Observations in bucket i alone (not cumulative); i < kNumBuckets.
  uint64_t BucketCount(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  // A snapshot of the per-bucket counts (not cumulative).
  std::array<uint64_t, kNumBuckets> Buckets() const;
  uint64_t Count() const;
  double Sum() const { return static_cast<double>(SumNanos()) / 1e9; }
  int64_t SumNanos() const { return sum_ns_.load(std::memory_order_relaxed); }

 private:
  static int64_t ToNanos(double seconds) {
    if (!(seconds == seconds)) return 0;  // NaN
    constexpr double kMax = 9.2e9;        // seconds; 9.2e18 ns < INT64_MAX
    if (seconds > kMax) seconds = kMax;
    if (seconds < -kMax) seconds = -kMax;
    const double ns = seconds * 1e9;
    return static_cast<int64_t>(ns >= 0 ? ns + 0.5 : ns - 0.5);
  }

  std::array<std::atomic<uint64_t>, kNumBuckets> buckets_{};
  std::atomic<int64_t> sum_ns_{0};
};

// All of keyvend's metrics. Families (one metric name, its HELP and TYPE) hold children
// by label values. Thread-safe; returned pointers live as long as the registry.
class Registry {
 public:
  // Scrape-time samples of a collector family. Called by Render() with no registry lock
  // held (it may take its own locks, read atomics, even register metrics); must be
  // thread-safe if Render() runs concurrently, and must not call Render().
  using CollectFn = std::function<void(std::vector<Sample>*)>;

  Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // The child of family `name` with these labels, created on first use. The first call
  // fixes the family's type, help and label names (in order); a later call must use the
  // same type and the same label names in the same order (else abort). Label values are
  // free text (escaped on output). Histograms may not use the label name "le".
  Counter* GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge* GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram* GetHistogram(std::string_view name, std::string_view help, const Labels& labels = {});

  // A family whose samples are computed at scrape time (stock per product, delivery
  // backlog, RocksDB stats, ...). type: "gauge", "counter" or "untyped". One collector per
  // name; the name may not be used by any other family (abort). Samples with an invalid
  // or reserved label name are dropped at render time.
  void AddCollector(std::string_view name, std::string_view help, std::string_view type,
                    CollectFn collect);

  // The whole exposition (text format 0.0.4): families sorted by name, each with
  // `# HELP` and `# TYPE` once, then its samples; children sorted by label values;
  // histograms as _bucket{...,le="..."} (cumulative, ending with +Inf), _sum, _count.
  // Safe against concurrent hot-path updates and registrations.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram, kUntyped };
  struct Child;
  struct Family;

  Child* GetChild(std::string_view name, std::string_view help, Type type, const Labels& labels);
  // Aborts if `name` (type `type`) would produce sample names that collide with another
  // family's (e.g. a gauge "x_count" next to a histogram "x"). mu_ held.
  void CheckNoSuffixClash(const std::string& name, Type type) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static const char* TypeName(Type type);

  mutable Mutex mu_;
  // Sorted by name; families are never removed, so Family* stay valid.
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// HTTP request metrics by route and status code, for a route list fixed at start-up:
//   keyvend_http_requests_total{route,code}            counter (only non-zero codes shown)
//   keyvend_http_request_duration_seconds{route}       histogram (every route shown)
// Observe() is three relaxed fetch_adds. In-flight and open-connection gauges are plain
// Gauges the server registers itself. One RequestMetrics per registry (the family names
// are fixed). The registry must outlive this object; the counts outlive this object if
// the registry does (they are shared with the registry's collector).
class RequestMetrics {
 public:
  static constexpr int kMinStatus = 100;
  static constexpr int kMaxStatus = 599;
  static constexpr std::string_view kRequestsName = "keyvend_http_requests_total";
  static constexpr std::string_view kDurationName = "keyvend_http_request_duration_seconds";

  // route_names: non-empty, distinct (e.g. "GET /api/v1/products", ..., "unmatched").
  RequestMetrics(Registry* registry, std::vector<std::string> route_names);

  // Hot path. route: an index into route_names (an index out of range counts as the
  // last route, conventionally "unmatched"); status: 100..599 (any other value counts
  // under code="other"); seconds: the request's latency.
  void Observe(size_t route, int status, double seconds);

  size_t num_routes() const;
  // For tests and stats: requests of `route` answered with `status` (or "other").
  uint64_t Count(size_t route, int status) const;
  const Histogram& Latency(size_t route) const;

 private:
  static constexpr size_t kNumCodeSlots = kMaxStatus - kMinStatus + 2;  // + "other"
  struct Route {
    std::string name;
    Histogram* latency = nullptr;
    std::array<std::atomic<uint64_t>, kNumCodeSlots> codes{};
  };
  struct State {
    std::vector<std::unique_ptr<Route>> routes;
    std::vector<size_t> by_name;  // route indexes sorted by name, for rendering
  };
  static size_t CodeSlot(int status) {
    return status >= kMinStatus && status <= kMaxStatus ? static_cast<size_t>(status - kMinStatus)
                                                        : kNumCodeSlots - 1;
  }

  std::shared_ptr<State> state_;
};

}  // namespace kv
