#include "metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <system_error>

#include "base/log.h"

namespace kv {
namespace {

// Registration mistakes are programming errors; unlike assert() this survives NDEBUG.
[[noreturn]] void Die(const std::string& msg) {
  KV_LOG(kError, "metrics: ", msg);  // one write(2): nothing left buffered at abort()
  std::abort();
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

template <typename Int>
void AppendInt(std::string* out, Int v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

bool IsReservedLabelName(std::string_view name) {
  return name.size() >= 2 && name[0] == '_' && name[1] == '_';
}

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

}  // namespace

bool IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = IsAlpha(c) || c == '_' || c == ':' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsValidLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = IsAlpha(c) || c == '_' || (i > 0 && IsDigit(c));
    if (!ok) return false;
  }
  return true;
}

void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buf[64];
  // Shortest round-trip digits in scientific form tell the decimal exponent.
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  const size_t e = sci.find('e');
  int exp = 0;
  if (e != std::string_view::npos) {
    const char* p = sci.data() + e + 1;
    if (*p == '+') ++p;
    std::from_chars(p, sci.data() + sci.size(), exp);
  }
  if (exp < -4 || exp >= 21) {
    out->append(sci);
    return;
  }
  r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  out->append(buf, r.ptr);
}

namespace {
// The exposition format's escapes: backslash and newline always, '"' in label values only.
void AppendEscaped(std::string* out, std::string_view v, bool quote) {
  for (char c : v) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quote) {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}
}  // namespace

void AppendEscapedLabelValue(std::string* out, std::string_view v) { AppendEscaped(out, v, true); }

void AppendEscapedHelp(std::string* out, std::string_view v) { AppendEscaped(out, v, false); }

// --- Histogram -----------------------------------------------------------------------------

std::array<uint64_t, Histogram::kNumBuckets> Histogram::Buckets() const {
  std::array<uint64_t, kNumBuckets> out;
  for (size_t i = 0; i < kNumBuckets; ++i) out[i] = BucketCount(i);
  return out;
}

uint64_t Histogram::Count() const {
  uint64_t n = 0;
  for (size_t i = 0; i < kNumBuckets; ++i) n += BucketCount(i);
  return n;
}

// --- Registry ------------------------------------------------------------------------------

struct Registry::Child {
  std::string label_text;  // `a="x",b="y"` (escaped), empty without labels
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct Registry::Family {
  std::string name;
  std::string help;
  Type type = Type::kUntyped;
  std::vector<std::string> label_names;
  // Keyed (and so rendered in the order of) the label values.
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children;
  CollectFn collect;  // set for collector families (then children is empty); immutable
};

Registry::Registry() = default;
Registry::~Registry() = default;

const char* Registry::TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
    case Type::kUntyped:
      return "untyped";
  }
  return "untyped";
}

void Registry::CheckNoSuffixClash(const std::string& name, Type type) const {
  if (type == Type::kHistogram) {
    for (std::string_view suffix : kHistogramSuffixes) {
      std::string other = name + std::string(suffix);
      if (families_.count(other) != 0) {
        Die("histogram " + name + " clashes with the existing family " + other);
      }
    }
  }
  for (std::string_view suffix : kHistogramSuffixes) {
    if (name.size() > suffix.size() &&
        std::string_view(name).substr(name.size() - suffix.size()) == suffix) {
      auto it = families_.find(std::string_view(name).substr(0, name.size() - suffix.size()));
      if (it != families_.end() && it->second->type == Type::kHistogram) {
        Die("family " + name + " clashes with the samples of histogram " + it->first);
      }
    }
  }
}

Registry::Child* Registry::GetChild(std::string_view name, std::string_view help, Type type,
                                    const Labels& labels) {
  const std::string sname(name);
  MutexLock lock(&mu_);
  auto it = families_.find(name);
  Family* f;
  if (it == families_.end()) {
    if (!IsValidMetricName(name)) Die("invalid metric name \"" + sname + "\"");
    std::set<std::string_view> seen;
    for (const auto& [label, value] : labels) {
      if (!IsValidLabelName(label) || IsReservedLabelName(label)) {
        Die("invalid label name \"" + label + "\" in " + sname);
      }
      if (type == Type::kHistogram && label == "le") {
        Die("histogram " + sname + " may not use the label name \"le\"");
      }
      if (!seen.insert(label).second) Die("duplicate label \"" + label + "\" in " + sname);
    }
    CheckNoSuffixClash(sname, type);
    auto fam = std::make_unique<Family>();
    fam->name = sname;
    fam->help = std::string(help);
    fam->type = type;
    for (const auto& kv : labels) fam->label_names.push_back(kv.first);
    f = fam.get();
    families_.emplace(sname, std::move(fam));
  } else {
    f = it->second.get();
    if (f->collect) Die("metric " + sname + " is already registered as a collector");
    if (f->type != type) {
      Die("metric " + sname + " registered as " + TypeName(f->type) + ", now as " + TypeName(type));
    }
    bool same = labels.size() == f->label_names.size();
    for (size_t i = 0; same && i < labels.size(); ++i) {
      same = labels[i].first == f->label_names[i];
    }
    if (!same) Die("metric " + sname + " registered again with other label names");
  }

  std::vector<std::string> values;
  values.reserve(labels.size());
  for (const auto& kv : labels) values.push_back(kv.second);
  auto cit = f->children.find(values);
  if (cit != f->children.end()) return cit->second.get();

  auto child = std::make_unique<Child>();
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) child->label_text.push_back(',');
    child->label_text.append(labels[i].first);
    child->label_text.append("=\"");
    AppendEscapedLabelValue(&child->label_text, labels[i].second);
    child->label_text.push_back('"');
  }
  switch (type) {
    case Type::kCounter:
      child->counter = std::make_unique<Counter>();
      break;
    case Type::kGauge:
      child->gauge = std::make_unique<Gauge>();
      break;
    case Type::kHistogram:
      child->histogram = std::make_unique<Histogram>();
      break;
    case Type::kUntyped:
      break;
  }
  Child* c = child.get();
  f->children.emplace(std::move(values), std::move(child));
  return c;
}

Counter* Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  return GetChild(name, help, Type::kCounter, labels)->counter.get();
}

Gauge* Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  return GetChild(name, help, Type::kGauge, labels)->gauge.get();
}

Histogram* Registry::GetHistogram(std::string_view name, std::string_view help,
                                  const Labels& labels) {
  return GetChild(name, help, Type::kHistogram, labels)->histogram.get();
}

void Registry::AddCollector(std::string_view name, std::string_view help, std::string_view type,
                            CollectFn collect) {
  const std::string sname(name);
  if (!IsValidMetricName(name)) Die("invalid metric name \"" + sname + "\"");
  if (!collect) Die("collector " + sname + " has no function");
  Type t;
  if (type == "gauge") {
    t = Type::kGauge;
  } else if (type == "counter") {
    t = Type::kCounter;
  } else if (type == "untyped") {
    t = Type::kUntyped;
  } else {
    Die("collector " + sname + " has type \"" + std::string(type) +
        "\" (want gauge, counter or untyped)");
  }
  MutexLock lock(&mu_);
  if (families_.count(sname) != 0) Die("metric " + sname + " is already registered");
  CheckNoSuffixClash(sname, t);
  auto fam = std::make_unique<Family>();
  fam->name = sname;
  fam->help = std::string(help);
  fam->type = t;
  fam->collect = std::move(collect);
  families_.emplace(sname, std::move(fam));
}

namespace {

void AppendSampleStart(std::string* out, std::string_view name, std::string_view suffix,
                       std::string_view label_text) {
  out->append(name);
  out->append(suffix);
  if (!label_text.empty()) {
    out->push_back('{');
    out->append(label_text);
    out->push_back('}');
  }
  out->push_back(' ');
}

// Collector labels are checked at render time: a bad sample is dropped, not fatal.
bool CollectorLabelText(const Labels& labels, std::string* text) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& n = labels[i].first;
    if (!IsValidLabelName(n) || IsReservedLabelName(n)) return false;
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == n) return false;
    }
    if (i > 0) text->push_back(',');
    text->append(n);
    text->append("=\"");
    AppendEscapedLabelValue(text, labels[i].second);
    text->push_back('"');
  }
  return true;
}

}  // namespace

std::string Registry::Render() const {
  struct Snap {
    const Family* family;
    std::vector<const Child*> children;
  };
  std::vector<Snap> snaps;
  {
    MutexLock lock(&mu_);
    snaps.reserve(families_.size());
    for (const auto& [name, f] : families_) {
      Snap s{f.get(), {}};
      s.children.reserve(f->children.size());
      for (const auto& [values, child] : f->children) s.children.push_back(child.get());
      snaps.push_back(std::move(s));
    }
  }

  // Everything below reads only immutable family/child data and atomics: no lock held.
  std::string out;
  out.reserve(4096);
  std::vector<Sample> samples;
  std::string label_text;
  for (const Snap& s : snaps) {
    const Family& f = *s.family;
    out.append("# HELP ");
    out.append(f.name);
    out.push_back(' ');
    AppendEscapedHelp(&out, f.help);
    out.append("\n# TYPE ");
    out.append(f.name);
    out.push_back(' ');
    out.append(TypeName(f.type));
    out.push_back('\n');

    if (f.collect) {
      samples.clear();
      f.collect(&samples);
      for (const Sample& sample : samples) {
        label_text.clear();
        if (!CollectorLabelText(sample.labels, &label_text)) continue;
        AppendSampleStart(&out, f.name, "", label_text);
        AppendDouble(&out, sample.value);
        out.push_back('\n');
      }
      continue;
    }

    for (const Child* c : s.children) {
      switch (f.type) {
        case Type::kCounter:
          AppendSampleStart(&out, f.name, "", c->label_text);
          AppendInt(&out, c->counter->Value());
          out.push_back('\n');
          break;
        case Type::kGauge:
          AppendSampleStart(&out, f.name, "", c->label_text);
          AppendInt(&out, c->gauge->Value());
          out.push_back('\n');
          break;
        case Type::kHistogram: {
          // One snapshot of the buckets: the +Inf bucket and _count come from the same
          // numbers, so they agree however many Observe() calls race with us.
          const auto buckets = c->histogram->Buckets();
          const double sum = c->histogram->Sum();
          uint64_t cumulative = 0;
          for (size_t i = 0; i < Histogram::kNumBuckets; ++i) {
            cumulative += buckets[i];
            out.append(f.name);
            out.append("_bucket{");
            if (!c->label_text.empty()) {
              out.append(c->label_text);
              out.push_back(',');
            }
            out.append("le=\"");
            out.append(Histogram::kBoundLabels[i]);
            out.append("\"} ");
            AppendInt(&out, cumulative);
            out.push_back('\n');
          }
          AppendSampleStart(&out, f.name, "_sum", c->label_text);
          AppendDouble(&out, sum);
          out.push_back('\n');
          AppendSampleStart(&out, f.name, "_count", c->label_text);
          AppendInt(&out, cumulative);
          out.push_back('\n');
          break;
        }
        case Type::kUntyped:
          break;
      }
    }
  }
  return out;
}

// --- RequestMetrics ------------------------------------------------------------------------

RequestMetrics::RequestMetrics(Registry* registry, std::vector<std::string> route_names)
    : state_(std::make_shared<State>()) {
  if (route_names.empty()) Die("RequestMetrics needs at least one route");
  std::set<std::string_view> seen;
  for (const std::string& name : route_names) {
    if (!seen.insert(name).second) Die("RequestMetrics: duplicate route \"" + name + "\"");
  }
  for (std::string& name : route_names) {
    auto route = std::make_unique<Route>();
    route->latency = registry->GetHistogram(
        kDurationName, "HTTP request latency in seconds, by route.", {{"route", name}});
    route->name = std::move(name);
    state_->routes.push_back(std::move(route));
  }
  state_->by_name.resize(state_->routes.size());
  for (size_t i = 0; i < state_->by_name.size(); ++i) state_->by_name[i] = i;
  std::sort(state_->by_name.begin(), state_->by_name.end(), [this](size_t a, size_t b) {
    return state_->routes[a]->name < state_->routes[b]->name;
  });

  std::shared_ptr<const State> state = state_;
  registry->AddCollector(kRequestsName, "HTTP requests answered, by route and status code.",
                         "counter", [state](std::vector<Sample>* out) {
                           for (size_t idx : state->by_name) {
                             const Route& r = *state->routes[idx];
                             for (size_t slot = 0; slot < kNumCodeSlots; ++slot) {
                               const uint64_t n = r.codes[slot].load(std::memory_order_relaxed);
                               if (n == 0) continue;
                               std::string code =
                                   slot == kNumCodeSlots - 1
                                       ? std::string("other")
                                       : std::to_string(kMinStatus + static_cast<int>(slot));
                               out->push_back(Sample{{{"route", r.name}, {"code", std::move(code)}},
                                                     static_cast<double>(n)});
                             }
                           }
                         });
}

void RequestMetrics::Observe(size_t route, int status, double seconds) {
  const auto& routes = state_->routes;
  if (route >= routes.size()) route = routes.size() - 1;
  Route& r = *routes[route];
  r.codes[CodeSlot(status)].fetch_add(1, std::memory_order_relaxed);
  r.latency->Observe(seconds);
}

size_t RequestMetrics::num_routes() const { return state_->routes.size(); }

uint64_t RequestMetrics::Count(size_t route, int status) const {
  return state_->routes.at(route)->codes[CodeSlot(status)].load(std::memory_order_relaxed);
}

const Histogram& RequestMetrics::Latency(size_t route) const {
  return *state_->routes.at(route)->latency;
}

}  // namespace kv
