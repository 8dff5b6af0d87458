#include "kit/exposition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <system_error>

#include "gtest/gtest.h"

namespace kv::testing {
namespace {

bool IsNameStart(char c, bool colon_ok) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}
bool IsNameChar(char c, bool colon_ok) {
  return IsNameStart(c, colon_ok) || (c >= '0' && c <= '9');
}
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Reads a metric (colon_ok) or label name at *pos.
bool ReadName(std::string_view line, size_t* pos, bool colon_ok, std::string* name) {
  size_t p = *pos;
  if (p >= line.size() || !IsNameStart(line[p], colon_ok)) return false;
  while (p < line.size() && IsNameChar(line[p], colon_ok)) ++p;
  *name = std::string(line.substr(*pos, p - *pos));
  *pos = p;
  return true;
}

// A float as Go's strconv.ParseFloat reads it in the text format.
bool ParseValue(std::string_view s, double* v) {
  if (s == "+Inf" || s == "Inf") {
    *v = HUGE_VAL;
    return true;
  }
  if (s == "-Inf") {
    *v = -HUGE_VAL;
    return true;
  }
  if (s == "NaN") {
    *v = std::nan("");
    return true;
  }
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  // Digits, optional fraction, optional exponent; no inf/nan/hex spellings here.
  if (s.empty() || !((s[0] >= '0' && s[0] <= '9') || s[0] == '.')) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return false;
    }
  }
  double d = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), d, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    // Overflow/underflow: Go gives ±Inf / 0; accept as a parse.
    d = HUGE_VAL;
  } else if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    return false;
  }
  *v = neg ? -d : d;
  return true;
}

bool ParseTimestamp(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty()) return false;
  int64_t t = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), t);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Reads `{name="value",...}` at *pos (which is at '{'); values unescaped into *labels.
bool ReadLabels(std::string_view line, size_t* pos,
                std::vector<std::pair<std::string, std::string>>* labels, std::string* err) {
  size_t p = *pos + 1;
  auto skip_blanks = [&] {
    while (p < line.size() && IsBlank(line[p])) ++p;
  };
  for (;;) {
    skip_blanks();
    if (p < line.size() && line[p] == '}') {
      ++p;
      break;
    }
    std::string name;
    if (!ReadName(line, &p, /*colon_ok=*/false, &name)) {
      *err = "bad label name";
      return false;
    }
    skip_blanks();
    if (p >= line.size() || line[p] != '=') {
      *err = "expected '=' after label name " + name;
      return false;
    }
    ++p;
    skip_blanks();
    if (p >= line.size() || line[p] != '"') {
      *err = "expected '\"' to open the value of label " + name;
      return false;
    }
    ++p;
    std::string value;
    bool closed = false;
    while (p < line.size()) {
      const char c = line[p++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c == '\\') {
        if (p >= line.size()) break;
        const char e = line[p++];
        if (e == '\\') {
          value.push_back('\\');
        } else if (e == '"') {
          value.push_back('"');
        } else if (e == 'n') {
          value.push_back('\n');
        } else {
          *err = std::string("invalid escape \\") + e + " in the value of label " + name;
          return false;
        }
      } else {
        value.push_back(c);
      }
    }
    if (!closed) {
      *err = "unterminated value of label " + name;
      return false;
    }
    for (const auto& l : *labels) {
      if (l.first == name) {
        *err = "duplicate label " + name;
        return false;
      }
    }
    labels->emplace_back(std::move(name), std::move(value));
    skip_blanks();
    if (p < line.size() && line[p] == ',') {
      ++p;
      continue;
    }
    if (p < line.size() && line[p] == '}') {
      ++p;
      break;
    }
    *err = "expected ',' or '}' in the label set";
    return false;
  }
  *pos = p;
  return true;
}

// A canonical key for a label set (sorted by label name).
std::string LabelKey(std::vector<std::pair<std::string, std::string>> labels) {
  std::sort(labels.begin(), labels.end());
  std::string key;
  for (const auto& [n, v] : labels) {
    key.append(n);
    key.push_back('=');
    for (char c : v) {
      if (c == '\\' || c == '"') key.push_back('\\');
      key.push_back(c);
    }
    key.append("\",");  // a quote closes every value, so keys cannot collide
  }
  return key;
}

struct HistogramSeries {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  bool has_inf = false;
  bool has_sum = false;
  bool has_count = false;
  double count = 0;
  int first_line = 0;
};

struct FamilyState {
  std::string name;
  std::string type;  // empty until # TYPE
  bool help_seen = false;
  bool type_seen = false;
  bool has_samples = false;
  int first_line = 0;
  std::map<std::string, HistogramSeries> histograms;  // by label key without "le"
};

std::string Where(int line_no, std::string_view line) {
  std::string shown(line.substr(0, 200));
  if (line.size() > 200) shown += "...";
  return "line " + std::to_string(line_no) + " `" + shown + "`: ";
}

absl::Status CloseFamily(const FamilyState& f) {
  if (f.type != "histogram") return absl::OkStatus();
  for (const auto& [key, h] : f.histograms) {
    const std::string series = f.name + "{" + key + "}";
    if (h.buckets.empty()) {
      return absl::InvalidArgumentError("histogram series " + series + " (from line " +
                                        std::to_string(h.first_line) + ") has no _bucket lines");
    }
    if (!h.has_inf) {
      return absl::InvalidArgumentError("histogram series " + series +
                                        " has no le=\"+Inf\" bucket");
    }
    if (!h.has_count || !h.has_sum) {
      return absl::InvalidArgumentError("histogram series " + series + " lacks " +
                                        (h.has_count ? "_sum" : "_count"));
    }
    if (h.count != h.buckets.back().second) {
      return absl::InvalidArgumentError("histogram series " + series + ": _count " +
                                        std::to_string(h.count) + " != +Inf bucket " +
                                        std::to_string(h.buckets.back().second));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Exposition> ParseExposition(std::string_view text) {
  Exposition parsed;
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("the exposition does not end with a newline");
  }
  std::set<std::string> closed;  // families already finished
  std::set<std::string> series_seen;
  FamilyState cur;
  bool have_cur = false;
  int line_no = 0;

  // Starts (or continues) the family `name` for a HELP/TYPE line.
  auto enter_family = [&](const std::string& name, int n) -> absl::Status {
    if (have_cur && cur.name == name) return absl::OkStatus();
    if (have_cur) {
      absl::Status s = CloseFamily(cur);
      if (!s.ok()) return s;
      closed.insert(cur.name);
    }
    if (closed.count(name) != 0) {
      return absl::InvalidArgumentError("family " + name + " appears again at line " +
                                        std::to_string(n) + " (its lines are not contiguous)");
    }
    cur = FamilyState();
    cur.name = name;
    cur.first_line = n;
    have_cur = true;
    parsed.families.push_back(MetricFamily{name, "", {}});
    return absl::OkStatus();
  };

  size_t start = 0;
  while (start < text.size()) {
    const size_t nl = text.find('\n', start);
    const std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    const std::string where = Where(line_no, line);

    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank

    if (line[0] == '#') {
      size_t p = 1;
      while (p < line.size() && IsBlank(line[p])) ++p;
      const std::string_view rest = line.substr(p);
      const bool is_help = rest.substr(0, 4) == "HELP" && (rest.size() == 4 || IsBlank(rest[4]));
      const bool is_type = rest.substr(0, 4) == "TYPE" && (rest.size() == 4 || IsBlank(rest[4]));
      if (!is_help && !is_type) continue;  // a plain comment
      p += 4;
      while (p < line.size() && IsBlank(line[p])) ++p;
      std::string name;
      if (!ReadName(line, &p, /*colon_ok=*/true, &name)) {
        return absl::InvalidArgumentError(where + "bad metric name");
      }
      if (p < line.size() && !IsBlank(line[p])) {
        return absl::InvalidArgumentError(where + "bad metric name");
      }
      while (p < line.size() && IsBlank(line[p])) ++p;
      const std::string_view arg = line.substr(p);
      absl::Status s = enter_family(name, line_no);
      if (!s.ok()) return s;
      if (is_help) {
        if (cur.help_seen) return absl::InvalidArgumentError(where + "second HELP for " + name);
        if (cur.has_samples) {
          return absl::InvalidArgumentError(where + "HELP after the samples of " + name);
        }
        for (size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] != '\\') continue;
          if (i + 1 >= arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n')) {
            return absl::InvalidArgumentError(where + "invalid escape in HELP text");
          }
          ++i;
        }
        cur.help_seen = true;
      } else {
        if (cur.type_seen) return absl::InvalidArgumentError(where + "second TYPE for " + name);
        if (cur.has_samples) {
          return absl::InvalidArgumentError(where + "TYPE after the samples of " + name);
        }
        std::string_view type = arg;
        while (!type.empty() && IsBlank(type.back())) type.remove_suffix(1);
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
            type != "untyped") {
          return absl::InvalidArgumentError(where + "unknown TYPE \"" + std::string(type) + "\"");
        }
        cur.type = std::string(type);
        cur.type_seen = true;
        parsed.families.back().type = cur.type;
      }
      continue;
    }

    // A sample line.
    size_t p = 0;
    while (p < line.size() && IsBlank(line[p])) ++p;
    std::string name;
    if (!ReadName(line, &p, /*colon_ok=*/true, &name)) {
      return absl::InvalidArgumentError(where + "bad metric name");
    }
    std::vector<std::pair<std::string, std::string>> labels;
    size_t q = p;
    while (q < line.size() && IsBlank(line[q])) ++q;
    if (q < line.size() && line[q] == '{') {
      p = q;
      std::string err;
      if (!ReadLabels(line, &p, &labels, &err)) {
        return absl::InvalidArgumentError(where + err);
      }
    }
    if (p >= line.size() || !IsBlank(line[p])) {
      return absl::InvalidArgumentError(where + "expected a blank before the value");
    }
    while (p < line.size() && IsBlank(line[p])) ++p;
    size_t vend = p;
    while (vend < line.size() && !IsBlank(line[vend])) ++vend;
    double value = 0;
    if (!ParseValue(line.substr(p, vend - p), &value)) {
      return absl::InvalidArgumentError(where + "bad value");
    }
    p = vend;
    while (p < line.size() && IsBlank(line[p])) ++p;
    if (p < line.size()) {
      size_t tend = p;
      while (tend < line.size() && !IsBlank(line[tend])) ++tend;
      if (!ParseTimestamp(line.substr(p, tend - p))) {
        return absl::InvalidArgumentError(where + "bad timestamp");
      }
      p = tend;
      while (p < line.size() && IsBlank(line[p])) ++p;
      if (p < line.size()) return absl::InvalidArgumentError(where + "trailing text");
    }

    // Which family does it belong to? It must be the current one.
    std::string suffix;
    bool belongs = false;
    if (have_cur) {
      if (name == cur.name) {
        belongs = cur.type != "histogram";
      } else if (name.size() > cur.name.size() && name.compare(0, cur.name.size(), cur.name) == 0) {
        suffix = name.substr(cur.name.size());
        if (cur.type == "histogram") {
          belongs = suffix == "_bucket" || suffix == "_sum" || suffix == "_count";
        } else if (cur.type == "summary") {
          belongs = suffix == "_sum" || suffix == "_count";
        }
      }
    }
    if (!belongs) {
      return absl::InvalidArgumentError(where + "sample of " + name +
                                        " without its own preceding # HELP/# TYPE (current "
                                        "family: " +
                                        (have_cur ? cur.name : "none") + ")");
    }
    if (!cur.help_seen || !cur.type_seen) {
      return absl::InvalidArgumentError(where + "sample before the family's " +
                                        (cur.help_seen ? "# TYPE" : "# HELP"));
    }
    cur.has_samples = true;
    parsed.families.back().samples.push_back(Sample{name, labels, value});

    if (!series_seen.insert(name + "{" + LabelKey(labels) + "}").second) {
      return absl::InvalidArgumentError(where + "duplicate series");
    }
    if (cur.type == "counter" && (value < 0 || std::isnan(value))) {
      return absl::InvalidArgumentError(where + "counter value is negative or NaN");
    }
    if (cur.type == "summary" && suffix.empty()) {
      bool has_quantile = false;
      for (const auto& l : labels) has_quantile |= l.first == "quantile";
      if (!has_quantile) {
        return absl::InvalidArgumentError(where + "summary sample without a quantile label");
      }
    }
    if (cur.type == "histogram") {
      std::string le;
      bool has_le = false;
      std::vector<std::pair<std::string, std::string>> rest;
      for (auto& l : labels) {
        if (l.first == "le") {
          has_le = true;
          le = l.second;
        } else {
          rest.push_back(l);
        }
      }
      HistogramSeries& h = cur.histograms[LabelKey(rest)];
      if (h.first_line == 0) h.first_line = line_no;
      if (suffix == "_bucket") {
        if (!has_le) return absl::InvalidArgumentError(where + "_bucket without an le label");
        double bound = 0;
        if (!ParseValue(le, &bound) || std::isnan(bound)) {
          return absl::InvalidArgumentError(where + "bad le value");
        }
        if (h.has_inf) return absl::InvalidArgumentError(where + "bucket after le=\"+Inf\"");
        if (!h.buckets.empty()) {
          if (!(bound > h.buckets.back().first)) {
            return absl::InvalidArgumentError(where + "le not increasing");
          }
          if (value < h.buckets.back().second) {
            return absl::InvalidArgumentError(where + "bucket counts not cumulative");
          }
        }
        if (value < 0 || std::isnan(value)) {
          return absl::InvalidArgumentError(where + "negative bucket count");
        }
        h.buckets.emplace_back(bound, value);
        if (std::isinf(bound) && bound > 0) h.has_inf = true;
      } else {
        if (has_le) return absl::InvalidArgumentError(where + "le label on " + suffix);
        if (!h.buckets.empty() && !h.has_inf) {
          return absl::InvalidArgumentError(where + suffix + " before the +Inf bucket");
        }
        if (suffix == "_sum") {
          h.has_sum = true;
        } else {
          if (value < 0 || std::isnan(value)) {
            return absl::InvalidArgumentError(where + "bad _count");
          }
          h.has_count = true;
          h.count = value;
        }
      }
    }
  }
  if (have_cur) {
    absl::Status s = CloseFamily(cur);
    if (!s.ok()) return s;
  }
  return parsed;
}

absl::Status CheckExposition(std::string_view text) { return ParseExposition(text).status(); }

const MetricFamily* Exposition::Family(std::string_view name) const {
  for (const MetricFamily& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const MetricFamily* Exposition::FamilyOf(std::string_view name) const {
  if (const MetricFamily* f = Family(name)) return f;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() <= suffix.size() || !name.ends_with(suffix)) continue;
    const MetricFamily* f = Family(name.substr(0, name.size() - suffix.size()));
    if (f != nullptr && (f->type == "histogram" || f->type == "summary")) return f;
  }
  return nullptr;
}

std::optional<double> Exposition::Value(std::string_view name, const Labels& labels) const {
  Labels want = labels;
  std::sort(want.begin(), want.end());
  for (const MetricFamily& f : families) {
    for (const Sample& s : f.samples) {
      if (s.name != name) continue;
      Labels got = s.labels;
      std::sort(got.begin(), got.end());
      if (got == want) return s.value;
    }
  }
  return std::nullopt;
}

std::optional<double> MetricValue(std::string_view exposition, std::string_view name,
                                  const Labels& labels) {
  const absl::StatusOr<Exposition> parsed = ParseExposition(exposition);
  if (!parsed.ok()) {
    ADD_FAILURE() << "not a valid exposition: " << parsed.status() << "\n"
                  << exposition.substr(0, 2000);
    return std::nullopt;
  }
  return parsed->Value(name, labels);
}

}  // namespace kv::testing
