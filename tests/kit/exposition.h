// The one Prometheus text-exposition reader of the tests: ParseExposition validates the
// format 0.0.4 strictly and returns the families with their samples; CheckExposition is
// its verdict alone; MetricValue reads one sample. Used by metrics_test (the registry's
// output), the HTTP black-box tests (a live `GET /metrics`) and alert_rules_test (the
// families and labels the alert rules may use).
//
// It checks, line by line:
//  - the text is empty or ends with "\n"; blank lines and plain `#` comments are ignored;
//  - `# HELP name text` and `# TYPE name type` (counter|gauge|histogram|summary|untyped)
//    appear at most once per family, both before the family's first sample; a family's
//    lines are contiguous (a family never reappears after another one started);
//  - every sample line is `name[{label="value",...}] value [timestamp]` with a valid metric
//    name belonging to the current family (histograms: name_bucket/_sum/_count; summaries:
//    name, name_sum, name_count), valid and distinct label names, label values escaped
//    only with \\ \" \n, HELP text escaped only with \\ \n, a value Go's ParseFloat takes
//    (incl. +Inf, -Inf, NaN), an optional integer timestamp;
//  - no series (name + label set) appears twice; counters are not negative;
//  - every histogram series has _bucket lines with an `le` label, `le` strictly increasing,
//    cumulative counts non-decreasing, an le="+Inf" bucket, and _sum and _count, with
//    _count == the +Inf bucket.
// Stricter than Prometheus itself in requiring HELP and TYPE for every family (keyvend's
// registry always writes both).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kv::testing {

using Labels = std::vector<std::pair<std::string, std::string>>;

// One sample line: its metric name (a histogram's name_bucket/_sum/_count), its labels (in
// the order written, values unescaped) and its value.
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// A family (a `# HELP`/`# TYPE` pair) and its samples, in the order of the text.
struct MetricFamily {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary or untyped
  std::vector<Sample> samples;
};

struct Exposition {
  std::vector<MetricFamily> families;

  // The family named `name`; nullptr when there is none.
  const MetricFamily* Family(std::string_view name) const;
  // The family a name in a query refers to: itself, or the histogram's (or summary's) for
  // name_bucket / name_sum / name_count; nullptr when the exposition declares neither.
  const MetricFamily* FamilyOf(std::string_view name) const;
  // The value of the sample `name` whose label set is exactly `labels` (any order);
  // nullopt when there is no such sample.
  std::optional<double> Value(std::string_view name, const Labels& labels = {}) const;
};

// The exposition in `text`, or InvalidArgument naming the first line that breaks a rule.
absl::StatusOr<Exposition> ParseExposition(std::string_view text);
// ParseExposition's verdict alone.
[[nodiscard]] absl::Status CheckExposition(std::string_view text);

// The value of `name{labels}` in `exposition`; nullopt when there is no such sample. An
// exposition that is not valid fails the test (and gives nullopt).
std::optional<double> MetricValue(std::string_view exposition, std::string_view name,
                                  const Labels& labels = {});

}  // namespace kv::testing
