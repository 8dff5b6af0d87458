// The example alert rules (data/alerts/keyvend.rules.yml) against the real server:
//  - the file's structure, with a line scanner for the layout the file promises (2-space
//    indentation, one key per line, an expr inline or as a block scalar): every rule has
//    alert, expr, for, labels.severity (warning | critical) and annotations.summary;
//  - every keyvend_* metric an expr names is a family the real `keyvend serve` declares on
//    GET /metrics (`# TYPE`), every label an expr selects on or groups by exists on it, and
//    every `label="value"` matcher matches a series (the server runs with an access log so
//    its families are declared too).
#include <cstdio>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/exposition.h"

#ifndef KEYVEND_SOURCE_DIR
#error "KEYVEND_SOURCE_DIR must name the source tree"
#endif

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-alert-rules-5d1e-0123456789abcdef012";
constexpr char kPaymentSecret[] = "pay-alert-rules-8c2f";

std::string RulesPath() {
  return std::string(KEYVEND_SOURCE_DIR) + "/data/alerts/keyvend.rules.yml";
}

// --- the rules file ---------------------------------------------------------------------------

struct Rule {
  int line = 0;
  std::string alert;
  std::string expr;
  std::string for_duration;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct RulesFile {
  bool saw_groups = false;
  int groups = 0;
  std::vector<Rule> rules;
  std::vector<std::string> problems;  // "line N: ..." for layout the scanner cannot read
};

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

std::string Unquote(const std::string& v) {
  if (v.size() >= 2 &&
      ((v.front() == '"' && v.back() == '"') || (v.front() == '\'' && v.back() == '\''))) {
    return v.substr(1, v.size() - 2);
  }
  return v;
}

// "key: value" -> (key, value); false when there is no "key:".
bool SplitKey(const std::string& s, std::string* key, std::string* value) {
  const size_t colon = s.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  *key = s.substr(0, colon);
  if (key->find(' ') != std::string::npos) return false;
  *value = Trim(s.substr(colon + 1));
  return true;
}

// Reads the layout this file uses:
//   groups:                     (indent 0)
//     - name: G                 (2)
//       rules:                  (4)
//         - alert: A            (6)
//           expr: ... | >-      (8: expr, for, labels, annotations, keep_firing_for)
//             severity: ...     (10: under labels / annotations; or an expr block's lines)
RulesFile ParseRules(const std::string& text) {
  RulesFile f;
  Rule* rule = nullptr;
  std::string section;  // "labels" / "annotations" / "" under the current rule
  bool in_expr_block = false;
  std::set<std::string> rule_keys;
  int n = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++n;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
    const std::string where = "line " + std::to_string(n) + ": ";
    if (line.find('\t') != std::string::npos) f.problems.push_back(where + "a tab");
    const size_t indent = line.find_first_not_of(' ');
    if (indent == std::string::npos) continue;  // blank
    const std::string content = line.substr(indent);
    if (in_expr_block) {
      if (indent >= 10) {
        if (!rule->expr.empty()) rule->expr += ' ';
        rule->expr += content;
        continue;
      }
      in_expr_block = false;
    }
    if (content[0] == '#') continue;
    if (indent % 2 != 0) {
      f.problems.push_back(where + "odd indentation");
      continue;
    }
    std::string key, value;
    switch (indent) {
      case 0:
        if (content != "groups:") f.problems.push_back(where + "want `groups:`");
        f.saw_groups = true;
        break;
      case 2:
        if (content.rfind("- name: ", 0) != 0 || Trim(content.substr(8)).empty()) {
          f.problems.push_back(where + "want `- name: GROUP`");
        }
        ++f.groups;
        rule = nullptr;
        break;
      case 4:
        if (content != "rules:") f.problems.push_back(where + "want `rules:`");
        break;
      case 6:
        if (content.rfind("- alert: ", 0) != 0) {
          f.problems.push_back(where + "want `- alert: NAME` (recording rules are not expected)");
          rule = nullptr;
          break;
        }
        f.rules.emplace_back();
        rule = &f.rules.back();
        rule->line = n;
        rule->alert = Unquote(Trim(content.substr(9)));
        section.clear();
        rule_keys.clear();
        break;
      case 8:
        if (rule == nullptr || !SplitKey(content, &key, &value)) {
          f.problems.push_back(where + "want `key: value` inside a rule");
          break;
        }
        if (!rule_keys.insert(key).second) f.problems.push_back(where + "duplicate " + key);
        section.clear();
        if (key == "expr") {
          if (value == ">-" || value == ">" || value == "|" || value == "|-") {
            in_expr_block = true;
          } else {
            rule->expr = Unquote(value);
          }
        } else if (key == "for") {
          rule->for_duration = Unquote(value);
        } else if (key == "labels" || key == "annotations") {
          if (!value.empty()) f.problems.push_back(where + key + " must be a block");
          section = key;
        } else if (key != "keep_firing_for") {
          f.problems.push_back(where + "unknown rule key " + key);
        }
        break;
      case 10:
        if (rule == nullptr || section.empty() || !SplitKey(content, &key, &value)) {
          f.problems.push_back(where + "want `name: value` under labels or annotations");
          break;
        }
        (section == "labels" ? rule->labels : rule->annotations)[key] = Unquote(value);
        break;
      default:
        f.problems.push_back(where + "unexpected indentation " + std::to_string(indent));
    }
  }
  return f;
}

// --- metric references in an expr --------------------------------------------------------------

struct MetricRef {
  std::string name;                         // as written (maybe with _bucket/_sum/_count)
  std::vector<std::string> matcher_labels;  // every label a matcher names
  std::vector<std::pair<std::string, std::string>> equal;  // label="value" matchers
};

struct ExprRefs {
  std::vector<MetricRef> metrics;
  std::vector<std::string> grouping;  // labels of by (...) / without (...)
};

ExprRefs ParseExpr(const std::string& expr) {
  ExprRefs out;
  static const std::regex metric_re(R"((^|[^A-Za-z0-9_:])(keyvend_[a-z0-9_]+)\s*(\{([^}]*)\})?)");
  static const std::regex matcher_re(R"(([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)\")");
  static const std::regex grouping_re(R"((^|[^A-Za-z0-9_])(by|without)\s*\(([^)]*)\))");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), metric_re);
       it != std::sregex_iterator(); ++it) {
    MetricRef ref;
    ref.name = (*it)[2];
    const std::string selector = (*it)[4];
    for (auto m = std::sregex_iterator(selector.begin(), selector.end(), matcher_re);
         m != std::sregex_iterator(); ++m) {
      ref.matcher_labels.push_back((*m)[1]);
      if ((*m)[2] == "=") ref.equal.emplace_back((*m)[1], (*m)[3]);
    }
    out.metrics.push_back(std::move(ref));
  }
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), grouping_re);
       it != std::sregex_iterator(); ++it) {
    const std::string list = (*it)[3];
    size_t p = 0;
    while (p <= list.size()) {
      size_t comma = list.find(',', p);
      if (comma == std::string::npos) comma = list.size();
      const std::string label = Trim(list.substr(p, comma - p));
      if (!label.empty()) out.grouping.push_back(label);
      p = comma + 1;
    }
  }
  return out;
}

// --- the exposition ----------------------------------------------------------------------------

// The label names a family's samples carry, and every (name, value) pair they use.
struct LabelsSeen {
  std::set<std::string> names;
  std::set<std::pair<std::string, std::string>> values;
};

LabelsSeen LabelsOf(const testing::MetricFamily& f) {
  LabelsSeen seen;
  for (const testing::Sample& s : f.samples) {
    for (const auto& [name, value] : s.labels) {
      seen.names.insert(name);
      seen.values.emplace(name, value);
    }
  }
  return seen;
}

std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& x : s) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// --- tests ------------------------------------------------------------------------------------

TEST(AlertRulesTest, EveryRuleIsComplete) {
  const std::string text = ReadFile(RulesPath());
  ASSERT_FALSE(text.empty()) << "cannot read " << RulesPath();
  const RulesFile f = ParseRules(text);
  for (const std::string& p : f.problems) ADD_FAILURE() << RulesPath() << " " << p;
  EXPECT_TRUE(f.saw_groups) << "no top-level `groups:`";
  EXPECT_GE(f.groups, 1);
  ASSERT_FALSE(f.rules.empty()) << "no `- alert:` rule found";
  static const std::regex name_re("[A-Z][A-Za-z0-9]*");
  static const std::regex duration_re("([0-9]+(ms|s|m|h|d|w|y))+");
  std::set<std::string> names;
  for (const Rule& r : f.rules) {
    SCOPED_TRACE("rule `" + r.alert + "` at line " + std::to_string(r.line));
    EXPECT_TRUE(std::regex_match(r.alert, name_re)) << "alert name";
    EXPECT_TRUE(names.insert(r.alert).second) << "duplicate alert name";
    EXPECT_FALSE(r.expr.empty()) << "no expr";
    EXPECT_TRUE(std::regex_match(r.for_duration, duration_re))
        << "for: `" << r.for_duration << "` is missing or not a duration";
    const auto sev = r.labels.find("severity");
    ASSERT_NE(sev, r.labels.end()) << "no labels.severity";
    EXPECT_TRUE(sev->second == "warning" || sev->second == "critical") << sev->second;
    const auto summary = r.annotations.find("summary");
    EXPECT_TRUE(summary != r.annotations.end() && !summary->second.empty())
        << "no annotations.summary";
    EXPECT_FALSE(ParseExpr(r.expr).metrics.empty()) << "expr names no keyvend_* metric";
  }
}

TEST(AlertRulesTest, EveryMetricIsExportedWithItsLabels) {
  const RulesFile f = ParseRules(ReadFile(RulesPath()));
  ASSERT_FALSE(f.rules.empty()) << "cannot read rules from " << RulesPath();

  ServerProcess server({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                        std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret,
                        "KEYVEND_WEBHOOK_SECRET=whk-alert-rules-3b9e"});
  std::string error;
  // A webhook (to a closed loopback port) so the outbound families are declared too.
  ASSERT_TRUE(server.Start(
      {"--access-log=" + server.root() + "/access.log", "--webhook-url=http://127.0.0.1:9/hook"},
      &error))
      << error;
  std::string exposition;
  {
    // A few requests so the per-route series the rules select on exist: a product, an
    // order, its signed payment notify, the probes.
    Api api(server.port(), kAdminToken);
    Reply r = api.AdminPost("/api/v1/admin/products",
                            R"({"name":"Alert rules","price_cents":300,"currency":"EUR"})");
    ASSERT_EQ(r.status, 201) << r;
    const std::string pid = r.json()["id"].str();
    r = api.AdminPost("/api/v1/admin/products/" + pid + "/keys", "ALERT-RULES-KEY-1\n",
                      "text/plain");
    ASSERT_EQ(r.status, 200) << r;
    r = api.Post("/api/v1/orders",
                 "{\"product_id\":" + Quote(pid) + R"(,"quantity":1,"contact":"a@x.test"})");
    ASSERT_EQ(r.status, 201) << r;
    const Json order = r.json();
    r = SendNotify(api, kPaymentSecret,
                   NotifyBody(order["order_id"].str(), "pay-alert-rules-1",
                              order["amount_cents"].num(), order["currency"].str()));
    ASSERT_EQ(r.status, 200) << r;
    EXPECT_EQ(api.Get("/healthz").status, 200);
    EXPECT_EQ(api.Get("/readyz").status, 200);
    r = api.Get("/metrics");
    ASSERT_EQ(r.status, 200) << r;
    exposition = r.body;
  }
  const absl::StatusOr<testing::Exposition> parsed = testing::ParseExposition(exposition);
  ASSERT_TRUE(parsed.ok()) << parsed.status();

  std::set<std::string> checked;
  for (const Rule& rule : f.rules) {
    SCOPED_TRACE("rule `" + rule.alert + "` (line " + std::to_string(rule.line) +
                 "): " + rule.expr);
    const ExprRefs refs = ParseExpr(rule.expr);
    std::set<std::string> expr_labels;  // labels of the exported families this expr reads
    bool all_found = true;
    for (const MetricRef& ref : refs.metrics) {
      const testing::MetricFamily* fam = parsed->FamilyOf(ref.name);
      if (fam == nullptr) {
        all_found = false;
        ADD_FAILURE() << ref.name << " is not declared (# TYPE) on GET /metrics";
        continue;
      }
      const std::string& family = fam->name;
      checked.insert(family);
      const LabelsSeen labels = LabelsOf(*fam);
      expr_labels.insert(labels.names.begin(), labels.names.end());
      for (const std::string& label : ref.matcher_labels) {
        EXPECT_EQ(labels.names.count(label), 1u)
            << ref.name << " has no label `" << label << "` (it has: " << Join(labels.names) << ")";
      }
      for (const auto& [label, value] : ref.equal) {
        EXPECT_EQ(labels.values.count({label, value}), 1u)
            << "no " << family << " series has " << label << "=\"" << value << "\"";
      }
    }
    if (!all_found && expr_labels.empty()) continue;  // nothing exported to check against
    for (const std::string& label : refs.grouping) {
      EXPECT_EQ(expr_labels.count(label), 1u)
          << "by/without (" << label << "): no metric of this expr has that label";
    }
  }
  std::printf("[ note ] checked %zu families against GET /metrics\n", checked.size());
  EXPECT_FALSE(checked.empty());

  const int status = server.Terminate();
  EXPECT_TRUE(ExitedZero(status)) << "SIGTERM: " << DescribeWait(status);
  const RunResult check = RunKeyvendCheck(server.data_dir(), server.key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
}

// The scanner itself, on a small file with the mistakes it must catch.
TEST(AlertRulesTest, ScannerCatchesLayoutMistakes) {
  const RulesFile f = ParseRules(
      "groups:\n"
      "  - name: g\n"
      "    rules:\n"
      "      - alert: A\n"
      "        expr: >-\n"
      "          sum by (class) (rate(keyvend_x_total{class=\"order\",code=~\"5..\"}[5m]))\n"
      "          / sum(rate(keyvend_y_bucket[5m])) > 1\n"
      "        for: 5m\n"
      "        labels:\n"
      "          severity: warning\n"
      "        annotations:\n"
      "          summary: \"s: {{ $value }}\"\n"
      "      - alert: B\n"
      "         expr: x\n"
      "        colour: red\n");
  ASSERT_EQ(f.rules.size(), 2u);
  EXPECT_EQ(f.rules[0].expr,
            "sum by (class) (rate(keyvend_x_total{class=\"order\",code=~\"5..\"}[5m])) / "
            "sum(rate(keyvend_y_bucket[5m])) > 1");
  EXPECT_EQ(f.rules[0].for_duration, "5m");
  EXPECT_EQ(f.rules[0].labels.at("severity"), "warning");
  EXPECT_EQ(f.rules[0].annotations.at("summary"), "s: {{ $value }}");
  EXPECT_EQ(f.problems.size(), 2u);  // odd indentation, unknown key
  const ExprRefs refs = ParseExpr(f.rules[0].expr);
  ASSERT_EQ(refs.metrics.size(), 2u);
  EXPECT_EQ(refs.metrics[0].name, "keyvend_x_total");
  EXPECT_EQ(refs.metrics[0].matcher_labels, (std::vector<std::string>{"class", "code"}));
  ASSERT_EQ(refs.metrics[0].equal.size(), 1u);
  EXPECT_EQ(refs.metrics[0].equal[0].second, "order");
  EXPECT_EQ(refs.metrics[1].name, "keyvend_y_bucket");
  EXPECT_EQ(refs.grouping, (std::vector<std::string>{"class"}));
  // The kit's exposition reader (strict: HELP and TYPE, and a histogram's _sum and _count).
  const absl::StatusOr<testing::Exposition> fams = testing::ParseExposition(
      "# HELP keyvend_y Y.\n# TYPE keyvend_y histogram\n"
      "keyvend_y_bucket{route=\"r\",le=\"+Inf\"} 1\nkeyvend_y_sum{route=\"r\"} 0\n"
      "keyvend_y_count{route=\"r\"} 1\n");
  ASSERT_TRUE(fams.ok()) << fams.status();
  ASSERT_NE(fams->FamilyOf("keyvend_y_bucket"), nullptr);
  EXPECT_EQ(fams->FamilyOf("keyvend_y_bucket")->name, "keyvend_y");
  EXPECT_EQ(fams->FamilyOf("keyvend_x_total"), nullptr);
  EXPECT_EQ(LabelsOf(*fams->Family("keyvend_y")).names, (std::set<std::string>{"le", "route"}));
}

}  // namespace
}  // namespace kv::httptest
