#include "config/config.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "storage/data_dir.h"

namespace kv {
namespace {

using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

std::function<std::optional<std::string>(const std::string&)> EnvOf(Env env) {
  return [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<Config> Load(const Args& args, const Env& env = {}) {
  return LoadConfig(args, EnvOf(env));
}

// The error message of a load that must fail (an InvalidArgument).
std::string ErrorOf(const Args& args, const Env& env = {}) {
  absl::StatusOr<Config> c = Load(args, env);
  if (c.ok()) return "<loaded fine>";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  return std::string(c.status().message());
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// A config file in a temp dir.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) { WriteFile(path(), text); }
  std::string path() const { return dir_.Sub("keyvend.conf"); }

 private:
  testing::TempDir dir_;
};

Config Defaults() {
  Config c;
  c.master_key_file = "./keyvend-data.master-key";
  return c;
}

// ---- defaults and the table ----

// The defaults SPEC §3 and §9 (and the README) promise.
TEST(Config, PromisedDefaults) {
  absl::StatusOr<Config> c = Load({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_dir, "./keyvend-data");
  EXPECT_EQ(c->listen, "127.0.0.1:8080");
  EXPECT_EQ(c->master_key_file, "./keyvend-data.master-key");
  EXPECT_FALSE(c->payment_sandbox);
  EXPECT_EQ(c->hold_seconds, 900);
  EXPECT_EQ(c->hold_grace_seconds, 120);
  EXPECT_EQ(c->log_level, "info");
  EXPECT_FALSE(c->allow_core_dumps);  // no core dumps unless asked for
}

// With no source a load gives exactly the default-constructed struct (the table's typed
// defaults), master_key_file derived from data_dir by the one function that does it.
TEST(Config, NoSourcesGiveTheStructDefaults) {
  absl::StatusOr<Config> c = Load({});
  ASSERT_TRUE(c.ok()) << c.status();
  Config want;
  EXPECT_EQ(want.master_key_file, "");
  want.master_key_file = storage::DefaultMasterKeyFile(want.data_dir);
  EXPECT_EQ(*c, want);
  EXPECT_EQ(*c, Defaults());
}

// The default text of every row (what --help, the docs and data/keyvend.conf show) is the
// struct's default, and reads back to it from each source.
TEST(Config, EveryDocumentedDefaultIsTheStructDefault) {
  const Config d;
  for (const OptionSpec& o : ConfigOptions()) {
    SCOPED_TRACE(o.name);
    std::string text;
    switch (o.type) {
      case OptionType::kInt:
        text = std::to_string(d.*std::get<int64_t Config::*>(o.field));
        break;
      case OptionType::kBool:
        text = d.*std::get<bool Config::*>(o.field) ? "true" : "false";
        break;
      case OptionType::kString:
        text = d.*std::get<std::string Config::*>(o.field);
        break;
    }
    EXPECT_EQ(o.default_value, text);
    const std::string shown = text.empty() ? "\"\"" : text;
    EXPECT_TRUE(absl::EndsWith(o.doc, absl::StrCat(" Default: ", shown, "."))) << o.doc;
    // Written once: the entry's own text never states a default.
    EXPECT_EQ(o.doc.find("Default:"), o.doc.rfind("Default:")) << o.doc;
    std::string flag = absl::StrCat("--", o.name);
    for (char& c : flag) c = c == '_' ? '-' : c;
    ConfigFile f(absl::StrCat(o.name, " = \"", text, "\"\n"));
    EXPECT_EQ(*Load({flag + "=" + text}), Defaults());
    EXPECT_EQ(*Load({"--config", f.path()}), Defaults());
  }
}

TEST(Config, TableIsWellFormed) {
  const std::vector<OptionSpec>& opts = ConfigOptions();
  // One row per KV_CONFIG_OPTIONS entry, each setting its own member.
#define KV_COUNT_ENTRY(...) +1
  constexpr size_t kEntries = 0 KV_CONFIG_OPTIONS(KV_COUNT_ENTRY, KV_COUNT_ENTRY, KV_COUNT_ENTRY);
#undef KV_COUNT_ENTRY
  EXPECT_EQ(opts.size(), kEntries);
  for (size_t i = 0; i < opts.size(); ++i) {
    for (size_t j = i + 1; j < opts.size(); ++j) {
      EXPECT_FALSE(opts[i].field == opts[j].field) << opts[i].name << " and " << opts[j].name;
    }
  }
  std::set<std::string> names;
  for (const OptionSpec& o : opts) {
    SCOPED_TRACE(o.name);
    std::string name = o.name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate";
    ASSERT_FALSE(name.empty());
    for (char c : name) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    std::string doc = o.doc;
    EXPECT_EQ(doc.find('\n'), std::string::npos);
    switch (o.type) {
      case OptionType::kString:
        EXPECT_TRUE(std::holds_alternative<std::string Config::*>(o.field));
        EXPECT_EQ(o.valid == nullptr, o.expected == nullptr);
        if (o.valid != nullptr) {
          EXPECT_TRUE(o.valid(o.default_value));
        }
        break;
      case OptionType::kBool:
        EXPECT_TRUE(std::holds_alternative<bool Config::*>(o.field));
        break;
      case OptionType::kInt: {
        EXPECT_TRUE(std::holds_alternative<int64_t Config::*>(o.field));
        EXPECT_LE(o.min, o.max);
        int64_t d = std::stoll(o.default_value);
        EXPECT_GE(d, o.min);
        EXPECT_LE(d, o.max);
        break;
      }
    }
  }
}

// ---- precedence: default < file < env < flag ----

TEST(Config, PrecedenceString) {
  ConfigFile f("data_dir = /from/file\n");
  Args file_only = {"--config", f.path()};
  EXPECT_EQ(Load(file_only)->data_dir, "/from/file");
  EXPECT_EQ(Load(file_only, {{"KEYVEND_DATA_DIR", "/from/env"}})->data_dir, "/from/env");
  Args with_flag = {"--config", f.path(), "--data-dir", "/from/flag"};
  EXPECT_EQ(Load(with_flag, {{"KEYVEND_DATA_DIR", "/from/env"}})->data_dir, "/from/flag");
  EXPECT_EQ(Load(with_flag, {{"KEYVEND_DATA_DIR", "/from/env"}})->master_key_file,
            "/from/flag.master-key");
}

TEST(Config, PrecedenceBool) {
  ConfigFile f("payment_sandbox = yes\n");
  Args file_only = {"--config", f.path()};
  EXPECT_TRUE(Load(file_only)->payment_sandbox);
  EXPECT_FALSE(Load(file_only, {{"KEYVEND_PAYMENT_SANDBOX", "0"}})->payment_sandbox);
  Args with_flag = {"--config", f.path(), "--payment-sandbox"};
  EXPECT_TRUE(Load(with_flag, {{"KEYVEND_PAYMENT_SANDBOX", "0"}})->payment_sandbox);
  Args flag_false = {"--config", f.path(), "--payment-sandbox=false"};
  EXPECT_FALSE(Load(flag_false, {{"KEYVEND_PAYMENT_SANDBOX", "1"}})->payment_sandbox);
  EXPECT_TRUE(Load({}, {{"KEYVEND_PAYMENT_SANDBOX", "1"}})->payment_sandbox);
}

TEST(Config, TrustedProxiesAreValidated) {
  EXPECT_EQ(Load({"--trusted-proxies", "10.0.0.1, 10.0.0.2 ,::1"})->trusted_proxies,
            "10.0.0.1, 10.0.0.2 ,::1");
  for (const char* bad : {"10.0.0.1,", "proxy.local", "10.0.0.256", ","}) {
    auto c = Load({"--trusted-proxies", bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("trusted_proxies"), absl::string_view::npos);
  }
}

TEST(Config, PrecedenceInt) {
  ConfigFile f("hold_seconds = 60\n");
  Args file_only = {"--config", f.path()};
  EXPECT_EQ(Load(file_only)->hold_seconds, 60);
  EXPECT_EQ(Load(file_only, {{"KEYVEND_HOLD_SECONDS", "70"}})->hold_seconds, 70);
  Args with_flag = {"--config", f.path(), "--hold-seconds", "80"};
  EXPECT_EQ(Load(with_flag, {{"KEYVEND_HOLD_SECONDS", "70"}})->hold_seconds, 80);
  Args with_eq = {"--config", f.path(), "--hold-seconds=90"};
  EXPECT_EQ(Load(with_eq, {{"KEYVEND_HOLD_SECONDS", "70"}})->hold_seconds, 90);
}

TEST(Config, EveryOptionSettableAllThreeWays) {
  // A non-default, valid value per option.
  std::map<std::string, std::string> value = {
      {"data_dir", "/srv/shop"},
      {"listen", "0.0.0.0:0"},
      {"master_key_file", "/etc/keyvend/key"},
      {"payment_sandbox", "true"},
      {"allow_core_dumps", "true"},
      {"public_url", "https://shop.example"},
      {"pay_url_template", "https://pay.example/{order_id}?a={amount_cents}"},
      {"log_level", "debug"},
      {"trusted_proxies", "10.0.0.1,::1"},
      {"ops_clients_exempt", "203.0.113.7"},
      {"ops_listen", "127.0.0.1:0"},
      {"access_log", "/var/log/keyvend/access.log"},
      {"backup_dir", "/srv/keyvend-backups"},
      {"payment_gateways", "epay, stripe"},
      {"epay_url", "https://pay.example/epay"},
      {"epay_pid", "1001"},
      {"epay_types", "alipay,qqpay"},
      {"stripe_api_base", "http://127.0.0.1:12111"},
      {"gateway_ca_file", "/etc/keyvend/gateways.pem"},
      {"webhook_url", "https://merchant.example/hooks/keyvend?x=1"},
      {"smtp_url", "smtps://mail.example:465"},
      {"smtp_user", "shop"},
      {"mail_from", "shop@example.com"},
      {"email_keys", "false"},
      {"outbound_sched_idle", "false"},
      {"mail_templates_dir", "/etc/keyvend/mail"},
      {"mail_language", "zh-CN"},
  };
  for (const OptionSpec& o : ConfigOptions()) {
    SCOPED_TRACE(o.name);
    // An int's largest value, or its smallest where the default is the largest.
    std::string v = o.type != OptionType::kInt                 ? value[o.name]
                    : std::to_string(o.max) != o.default_value ? std::to_string(o.max)
                                                               : std::to_string(o.min);
    ASSERT_FALSE(v.empty());
    std::string flag = absl::StrCat("--", o.name);
    for (char& c : flag) c = c == '_' ? '-' : c;
    std::string env = absl::StrCat("KEYVEND_", o.name);
    for (char& c : env) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    ConfigFile f(absl::StrCat(o.name, " = ", v, "\n"));
    absl::StatusOr<Config> a = Load({"--config", f.path()});
    absl::StatusOr<Config> b = Load({}, {{env, v}});
    // A bool flag takes its value only after '=' (bare means true; a default-true bool is
    // set off with "=false").
    absl::StatusOr<Config> c = o.type != OptionType::kBool ? Load({flag, v})
                               : v == "true"               ? Load({flag})
                                                           : Load({flag + "=" + v});
    absl::StatusOr<Config> d = Load({flag + "=" + v});
    ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
    EXPECT_NE(*a, Defaults());
    EXPECT_EQ(*a, *b);
    EXPECT_EQ(*a, *c);
    EXPECT_EQ(*a, *d);
  }
}

// The outbound options (issue 14): the webhook URL (http only to loopback), the SMTP URL.
TEST(Config, OutboundOptionsAreChecked) {
  for (const char* ok : {"https://m.example/hook?a=b", "http://127.0.0.1:9/x", "http://[::1]:8/",
                         "http://localhost/h"}) {
    EXPECT_TRUE(Load({"--webhook-url", ok}).ok()) << ok;
  }
  for (const char* bad : {"http://m.example/hook", "ftp://x", "https://", "https://a/#f",
                          "http://127.0.0.1.evil.example/"}) {
    auto c = Load({"--webhook-url", bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("webhook_url"), std::string::npos) << c.status();
  }
  for (const char* ok : {"smtp://mail.example", "smtps://mail.example:465", "smtp://[::1]:25"}) {
    EXPECT_TRUE(Load({"--smtp-url", ok}).ok()) << ok;
  }
  for (const char* bad : {"http://mail.example", "smtp://", "smtp://a/b", "smtp://u:p@host"}) {
    EXPECT_FALSE(Load({"--smtp-url", bad}).ok()) << bad;
  }
  EXPECT_FALSE(Load({"--mail-language", "fr"}).ok());
  EXPECT_TRUE(Defaults().email_keys);
}

// The payment gateway options (issue 13): names, URLs (http only to loopback), digits.
TEST(Config, PaymentGatewayOptionsAreChecked) {
  for (const char* ok : {"sandbox", "epay,stripe", " stripe , sandbox "}) {
    EXPECT_TRUE(Load({"--payment-gateways", ok}).ok()) << ok;
  }
  for (const char* bad : {"paypal", "epay,epay", "epay,", ",", "EPAY"}) {
    auto c = Load({"--payment-gateways", bad});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("payment_gateways"), std::string::npos) << c.status();
  }
  for (const char* ok : {"https://pay.example", "http://127.0.0.1:8000", "http://localhost:1",
                         "http://[::1]:80/epay"}) {
    EXPECT_TRUE(Load({"--epay-url", ok}).ok()) << ok;
  }
  for (const char* bad :
       {"http://pay.example", "https://pay.example/", "ftp://x", "https://pay.example/?a=1",
        "http://127.0.0.1.evil.example", "http://localhost.evil.example"}) {
    EXPECT_FALSE(Load({"--epay-url", bad}).ok()) << bad;
    EXPECT_FALSE(Load({"--stripe-api-base", bad}).ok()) << bad;
  }
  EXPECT_FALSE(Load({"--epay-pid", "12a"}).ok());
  EXPECT_FALSE(Load({"--epay-types", "alipay,alipay"}).ok());
  EXPECT_FALSE(Load({"--reconcile-tick-seconds", "0"}).ok());
}

TEST(Config, RepeatedFlagLastWins) {
  EXPECT_EQ(Load({"--hold-seconds", "10", "--hold-seconds=20"})->hold_seconds, 20);
}

TEST(Config, EveryGivenValueIsCheckedEvenIfOverridden) {
  EXPECT_EQ(ErrorOf({"--hold-seconds", "10"}, {{"KEYVEND_HOLD_SECONDS", "x"}}),
            "invalid value \"x\" for hold_seconds (from KEYVEND_HOLD_SECONDS): expected an "
            "integer in 1..604800");
}

// ---- error forms ----

TEST(Config, BadFlagValueNamesOptionAndFlag) {
  EXPECT_EQ(ErrorOf({"--hold-seconds", "abc"}),
            "invalid value \"abc\" for hold_seconds (from --hold-seconds): expected an integer "
            "in 1..604800");
  EXPECT_EQ(ErrorOf({"--payment-sandbox=maybe"}),
            "invalid value \"maybe\" for payment_sandbox (from --payment-sandbox): expected "
            "one of true|false|1|0|yes|no");
}

TEST(Config, BadEnvValueNamesOptionAndVariable) {
  EXPECT_EQ(ErrorOf({}, {{"KEYVEND_HOLD_SECONDS", "604801"}}),
            "invalid value \"604801\" for hold_seconds (from KEYVEND_HOLD_SECONDS): expected "
            "an integer in 1..604800");
  EXPECT_EQ(ErrorOf({}, {{"KEYVEND_LOG_LEVEL", "verbose"}}),
            "invalid value \"verbose\" for log_level (from KEYVEND_LOG_LEVEL): expected one of "
            "debug|info|warn|error");
}

TEST(Config, BadFileValueNamesOptionFileAndLine) {
  ConfigFile f("# shop\n\nhold_seconds = 0\n");
  EXPECT_EQ(ErrorOf({"--config", f.path()}),
            absl::StrCat("invalid value \"0\" for hold_seconds (from ", f.path(),
                         ":3): expected an integer in 1..604800"));
}

TEST(Config, UnknownOptionInFileHasLineNumber) {
  std::string text;
  for (int i = 1; i <= 11; ++i) text += i % 2 == 0 ? "\n" : "# comment\n";
  text += "hold_secs = 5\n";
  ConfigFile f(text);
  EXPECT_EQ(ErrorOf({"--config", f.path()}),
            absl::StrCat(f.path(), ":12: unknown option \"hold_secs\""));
  ConfigFile dashed("hold-seconds = 5\n");
  EXPECT_EQ(ErrorOf({"--config", dashed.path()}),
            absl::StrCat(dashed.path(),
                         ":1: unknown option \"hold-seconds\" (did you mean "
                         "hold_seconds?)"));
  // `config` is a flag, not an option a file can set.
  ConfigFile nested("config = /etc/other.conf\n");
  EXPECT_EQ(ErrorOf({"--config", nested.path()}),
            absl::StrCat(nested.path(), ":1: unknown option \"config\""));
}

TEST(Config, UnknownFlags) {
  EXPECT_EQ(ErrorOf({"--foo"}), "unknown flag --foo");
  EXPECT_EQ(ErrorOf({"--foo=1"}), "unknown flag --foo");
  EXPECT_EQ(ErrorOf({"--help"}), "unknown flag --help");
  EXPECT_EQ(ErrorOf({"--data_dir", "x"}), "unknown flag --data_dir (did you mean --data-dir?)");
  EXPECT_EQ(ErrorOf({"--admin-token", "x"}), "unknown flag --admin-token");  // secrets: env only
  EXPECT_EQ(ErrorOf({"-v"}), "unknown flag -v");
  EXPECT_EQ(ErrorOf({"--"}), "unknown flag --");
  EXPECT_EQ(ErrorOf({"serve"}), "unexpected argument \"serve\"");
  // A bool flag never takes the next word as its value.
  EXPECT_EQ(ErrorOf({"--payment-sandbox", "false"}), "unexpected argument \"false\"");
}

TEST(Config, FlagMissingValue) {
  EXPECT_EQ(ErrorOf({"--listen"}), "--listen needs a value");
  EXPECT_EQ(ErrorOf({"--listen", "--data-dir", "x"}), "--listen needs a value");
  EXPECT_EQ(ErrorOf({"--config"}), "--config needs a value");
  EXPECT_EQ(ErrorOf({"--hold-seconds"}), "--hold-seconds needs a value");
  // An explicit empty value is a value, checked like any other.
  EXPECT_EQ(ErrorOf({"--hold-seconds="}),
            "invalid value \"\" for hold_seconds (from --hold-seconds): expected an integer in "
            "1..604800");
}

TEST(Config, MessagesEscapeAndBoundTheValue) {
  std::string msg = ErrorOf({}, {{"KEYVEND_DATA_DIR", "a\nb"}});
  EXPECT_EQ(msg,
            "invalid value \"a\\nb\" for data_dir (from KEYVEND_DATA_DIR): expected a non-empty "
            "path");
  msg = ErrorOf({"--listen", std::string(1000, 'x')});
  EXPECT_LT(msg.size(), 300u);
  EXPECT_TRUE(absl::StrContains(msg, "\"... for listen (from --listen)")) << msg;
  EXPECT_EQ(ErrorOf({std::string("--fo\x01o")}), "unknown flag --fo\\x01o");
}

TEST(Config, StringsRefuseControlCharacters) {
  for (const std::string& v : {std::string("a\tb"), std::string("a\rb"), std::string("a\x7f")}) {
    EXPECT_FALSE(Load({"--master-key-file", v}).ok()) << v;
    EXPECT_FALSE(Load({}, {{"KEYVEND_PUBLIC_URL", "https://x/" + v}}).ok()) << v;
  }
  EXPECT_EQ(ErrorOf({"--master-key-file=k\x1b"}),
            "invalid value \"k\\x1b\" for master_key_file (from --master-key-file): expected "
            "text without control characters");
  EXPECT_TRUE(Load({"--master-key-file", "/keys/caf\xc3\xa9"}).ok());  // UTF-8 is fine
}

// ---- value parsing ----

TEST(Config, BoolParsing) {
  const std::vector<std::pair<std::string, bool>> good = {
      {"true", true}, {"1", true}, {"yes", true}, {"false", false}, {"0", false}, {"no", false}};
  for (const auto& [text, want] : good) {
    SCOPED_TRACE(text);
    absl::StatusOr<Config> env = Load({}, {{"KEYVEND_PAYMENT_SANDBOX", text}});
    absl::StatusOr<Config> flag = Load({"--payment-sandbox=" + text});
    ConfigFile f("payment_sandbox = " + text + "\n");
    absl::StatusOr<Config> file = Load({"--config", f.path()});
    ASSERT_TRUE(env.ok() && flag.ok() && file.ok());
    EXPECT_EQ(env->payment_sandbox, want);
    EXPECT_EQ(flag->payment_sandbox, want);
    EXPECT_EQ(file->payment_sandbox, want);
  }
  for (const std::string text : {"", "on", "off", "TRUE", "True", "2", "tru", " true", "y"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(Load({}, {{"KEYVEND_PAYMENT_SANDBOX", text}}).ok());
    EXPECT_FALSE(Load({"--payment-sandbox=" + text}).ok());
  }
}

TEST(Config, IntRangeEdgesForEveryIntOption) {
  for (const OptionSpec& o : ConfigOptions()) {
    if (o.type != OptionType::kInt) continue;
    SCOPED_TRACE(o.name);
    std::string var = absl::StrCat("KEYVEND_", o.name);
    for (char& c : var) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    int64_t Config::*field = std::get<int64_t Config::*>(o.field);
    absl::StatusOr<Config> lo = Load({}, {{var, std::to_string(o.min)}});
    absl::StatusOr<Config> hi = Load({}, {{var, std::to_string(o.max)}});
    ASSERT_TRUE(lo.ok()) << lo.status();
    ASSERT_TRUE(hi.ok()) << hi.status();
    EXPECT_EQ((*lo).*field, o.min);
    EXPECT_EQ((*hi).*field, o.max);
    std::string expected = absl::StrCat("expected an integer in ", o.min, "..", o.max);
    for (const std::string& bad :
         {std::to_string(o.min - 1), std::to_string(o.max + 1), std::string("99999999999999999999"),
          std::string("-99999999999999999999"), std::string("12abc"), std::string(""),
          std::string(" 5"), std::string("5 "), std::string("+5"), std::string("1.5"),
          std::string("0x10"), std::string("1e3"), std::string("-")}) {
      SCOPED_TRACE(bad);
      std::string msg = ErrorOf({}, {{var, bad}});
      EXPECT_TRUE(absl::StartsWith(msg, "invalid value \"")) << msg;
      EXPECT_TRUE(
          absl::EndsWith(msg, absl::StrCat(" for ", o.name, " (from ", var, "): ", expected)))
          << msg;
    }
  }
}

TEST(Config, ZeroMeansNoLimitWhereAllowed) {
  absl::StatusOr<Config> c = Load({"--body-bytes-max", "0", "--import-body-bytes-max=0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->body_bytes_max, 0);
  EXPECT_EQ(c->import_body_bytes_max, 0);
  EXPECT_EQ(Load({"--hold-grace-seconds", "0"})->hold_grace_seconds, 0);
}

TEST(Config, LogLevel) {
  for (const std::string level : {"debug", "info", "warn", "error"}) {
    EXPECT_EQ(Load({"--log-level", level})->log_level, level);
  }
  for (const std::string level : {"", "INFO", "warning", "trace"}) {
    EXPECT_FALSE(Load({"--log-level", level}).ok()) << level;
  }
}

TEST(Config, Urls) {
  EXPECT_TRUE(Load({"--public-url", "http://127.0.0.1:8080"}).ok());
  EXPECT_TRUE(Load({"--public-url=https://shop.example/base"}).ok());
  EXPECT_TRUE(Load({"--public-url="}).ok());
  for (const std::string bad : {"shop.example", "http://", "ftp://x", "https://a b"}) {
    EXPECT_FALSE(Load({"--public-url", bad}).ok()) << bad;
  }
  EXPECT_TRUE(
      Load({"--pay-url-template", "https://pay.example/p?o={order_id}&a={amount_cents}"}).ok());
  EXPECT_TRUE(Load({"--pay-url-template", "https://pay.example/fixed"}).ok());
  EXPECT_EQ(ErrorOf({"--pay-url-template", "https://pay.example/{orderid}"}),
            "invalid value \"https://pay.example/{orderid}\" for pay_url_template (from "
            "--pay-url-template): expected empty, or an http:// or https:// URL whose only "
            "{placeholders} are {order_id} and {amount_cents}");
}

// ---- the file format ----

TEST(Config, FileQuotesAndComments) {
  ConfigFile f(
      "# whole-line comment\n"
      "   # indented comment\n"
      "\n"
      "   \t \n"
      "data_dir = \"/srv/my shop # 1\"   # trailing comment\n"
      "listen=127.0.0.1:9000# not a comment, so this value is bad\n");
  std::string msg = ErrorOf({"--config", f.path()});
  EXPECT_TRUE(absl::StrContains(msg, "for listen (from " + f.path() + ":6)")) << msg;

  ConfigFile g(
      "# whole-line comment\n"
      "data_dir = \"/srv/my shop # 1\"   # trailing comment\n"
      "listen=127.0.0.1:9000 # a comment\n"
      "  pay_url_template   =   https://pay.example/#{order_id}\t# '#' after no blank stays\n"
      "public_url = \"\"\n"
      "log_level = \"warn\"\r\n"
      "master_key_file =   # empty, so derived\n"
      "hold_seconds = 42");  // no final newline
  absl::StatusOr<Config> c = Load({"--config", g.path()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_dir, "/srv/my shop # 1");
  EXPECT_EQ(c->listen, "127.0.0.1:9000");
  EXPECT_EQ(c->pay_url_template, "https://pay.example/#{order_id}");
  EXPECT_EQ(c->public_url, "");
  EXPECT_EQ(c->log_level, "warn");
  EXPECT_EQ(c->master_key_file, "/srv/my shop # 1.master-key");
  EXPECT_EQ(c->hold_seconds, 42);

  ConfigFile spaces("master_key_file = \"  padded  \"\n");
  EXPECT_EQ(Load({"--config", spaces.path()})->master_key_file, "  padded  ");
}

TEST(Config, FileSyntaxErrors) {
  ConfigFile no_eq("\nhold_seconds 5\n");
  EXPECT_EQ(ErrorOf({"--config", no_eq.path()}),
            absl::StrCat(no_eq.path(), ":2: expected `name = value`"));
  ConfigFile open_quote("data_dir = \"/srv/x\n");
  EXPECT_EQ(ErrorOf({"--config", open_quote.path()}),
            absl::StrCat(open_quote.path(), ":1: unterminated quoted value for data_dir"));
  ConfigFile junk("data_dir = \"/srv/x\" y\n");
  EXPECT_EQ(ErrorOf({"--config", junk.path()}),
            absl::StrCat(junk.path(), ":1: unexpected text after the quoted value for data_dir"));
  ConfigFile twice("hold_seconds = 5\n# x\nhold_seconds = 6\n");
  EXPECT_EQ(ErrorOf({"--config", twice.path()}),
            absl::StrCat(twice.path(), ":3: hold_seconds is already set on line 1"));
  ConfigFile empty_int("hold_seconds =\n");
  EXPECT_EQ(ErrorOf({"--config", empty_int.path()}),
            absl::StrCat("invalid value \"\" for hold_seconds (from ", empty_int.path(),
                         ":1): expected an integer in 1..604800"));
}

TEST(Config, FileErrorsDoNotEchoTheFile) {
  // A line that is not `name = value` is not quoted back (it might be anything).
  ConfigFile f("this line holds something private\n");
  std::string msg = ErrorOf({"--config", f.path()});
  EXPECT_FALSE(absl::StrContains(msg, "private")) << msg;
}

TEST(Config, EmptyFileGivesDefaults) {
  ConfigFile f("");
  absl::StatusOr<Config> c = Load({"--config", f.path()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, Defaults());
}

// ---- master_key_file ----

TEST(Config, MasterKeyFileDerivedFromDataDir) {
  EXPECT_EQ(Load({"--data-dir", "/srv/shop"})->master_key_file, "/srv/shop.master-key");
  EXPECT_EQ(Load({"--data-dir", "/srv/shop/"})->master_key_file, "/srv/shop.master-key");
  EXPECT_EQ(Load({"--data-dir", "/srv/shop//"})->master_key_file, "/srv/shop.master-key");
  EXPECT_EQ(Load({"--data-dir", "rel"})->master_key_file, "rel.master-key");
  EXPECT_EQ(Load({"--data-dir", "/"})->master_key_file, "/.master-key");
  EXPECT_EQ(Load({"--data-dir", "/srv/shop/", "--master-key-file", "/k"})->master_key_file, "/k");
  // data_dir keeps its slash; only the derived name drops it.
  EXPECT_EQ(Load({"--data-dir", "/srv/shop/"})->data_dir, "/srv/shop/");
  EXPECT_EQ(ErrorOf({"--data-dir="}),
            "invalid value \"\" for data_dir (from --data-dir): expected a non-empty path");
}

// ---- choosing the config file ----

TEST(Config, ConfigFileFromFlagOrEnvironment) {
  ConfigFile a("hold_seconds = 11\n");
  ConfigFile b("hold_seconds = 22\n");
  EXPECT_EQ(Load({"--config", a.path()})->hold_seconds, 11);
  EXPECT_EQ(Load({"--config=" + a.path()})->hold_seconds, 11);
  EXPECT_EQ(Load({}, {{"KEYVEND_CONFIG", b.path()}})->hold_seconds, 22);
  // The flag wins; the file the environment names is then not read at all.
  EXPECT_EQ(Load({"--config", a.path()}, {{"KEYVEND_CONFIG", b.path()}})->hold_seconds, 11);
  EXPECT_EQ(Load({"--config", a.path()}, {{"KEYVEND_CONFIG", "/nonexistent/x.conf"}})->hold_seconds,
            11);
  // Last --config wins, like any flag.
  EXPECT_EQ(Load({"--config", a.path(), "--config=" + b.path()})->hold_seconds, 22);
}

TEST(Config, MissingConfigFileNamedExplicitly) {
  EXPECT_EQ(ErrorOf({"--config", "/nonexistent/keyvend.conf"}),
            "config file \"/nonexistent/keyvend.conf\" (from --config): no such file");
  EXPECT_EQ(ErrorOf({}, {{"KEYVEND_CONFIG", "/nonexistent/keyvend.conf"}}),
            "config file \"/nonexistent/keyvend.conf\" (from KEYVEND_CONFIG): no such file");
  EXPECT_EQ(ErrorOf({"--config="}), "config file \"\" (from --config): no such file");
  testing::TempDir dir;
  EXPECT_EQ(ErrorOf({"--config", dir.path()}),
            absl::StrCat("config file \"", dir.path(), "\" (from --config): not a regular file"));
}

TEST(Config, OversizedConfigFileRefused) {
  ConfigFile f(std::string(2 << 20, '#'));
  std::string msg = ErrorOf({"--config", f.path()});
  EXPECT_TRUE(absl::StrContains(msg, "larger than")) << msg;
}

TEST(Config, AsksTheEnvironmentOnlyForItsOwnNames) {
  std::set<std::string> asked;
  auto env = [&asked](const std::string& name) -> std::optional<std::string> {
    asked.insert(name);
    return std::nullopt;
  };
  ASSERT_TRUE(LoadConfig({}, env).ok());
  EXPECT_EQ(asked.size(), ConfigOptions().size() + 1);
  EXPECT_TRUE(asked.count("KEYVEND_CONFIG"));
  EXPECT_TRUE(asked.count("KEYVEND_DATA_DIR"));
  EXPECT_TRUE(asked.count("KEYVEND_LISTEN"));
  EXPECT_TRUE(asked.count("KEYVEND_MASTER_KEY_FILE"));
  EXPECT_TRUE(asked.count("KEYVEND_PAYMENT_SANDBOX"));
  EXPECT_FALSE(asked.count("KEYVEND_ADMIN_TOKEN"));
  EXPECT_FALSE(asked.count("KEYVEND_PAYMENT_SECRET"));
}

// ---- listen ----

TEST(Config, ParseHostPort) {
  struct Case {
    std::string in;
    bool ok;
    std::string host;
    int port;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:8080", true, "127.0.0.1", 8080},
      {"127.0.0.1:0", true, "127.0.0.1", 0},
      {"localhost:65535", true, "localhost", 65535},
      {"shop-1.example_x:80", true, "shop-1.example_x", 80},
      {"[::1]:8080", true, "::1", 8080},
      {"[::]:0", true, "::", 0},
      {":80", false, "", 0},
      {"host:", false, "", 0},
      {"host:70000", false, "", 0},
      {"host:65536", false, "", 0},
      {"host:-1", false, "", 0},
      {"host:+80", false, "", 0},
      {"host:8o", false, "", 0},
      {"host:000080", false, "", 0},
      {"host", false, "", 0},
      {"", false, "", 0},
      {"::1:8080", false, "", 0},
      {"[::1]8080", false, "", 0},
      {"[::1]:", false, "", 0},
      {"[]:80", false, "", 0},
      {"[host]:80", false, "", 0},
      {"ho st:80", false, "", 0},
      {"http://host:80", false, "", 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.in);
    std::string host = "unset";
    int port = -7;
    EXPECT_EQ(ParseHostPort(c.in, &host, &port), c.ok);
    EXPECT_EQ(host, c.ok ? c.host : "unset");
    EXPECT_EQ(port, c.ok ? c.port : -7);
  }
}

TEST(Config, ListenValidated) {
  EXPECT_EQ(Load({"--listen", "127.0.0.1:0"})->listen, "127.0.0.1:0");
  EXPECT_EQ(Load({"--listen", "[::1]:8080"})->listen, "[::1]:8080");
  for (const std::string bad : {":80", "host:", "host:70000", "host:-1"}) {
    EXPECT_EQ(ErrorOf({"--listen", bad}),
              absl::StrCat("invalid value \"", bad,
                           "\" for listen (from --listen): expected HOST:PORT with a non-empty "
                           "host and a port in 0..65535 (IPv6 as [ADDR]:PORT)"));
  }
  EXPECT_FALSE(Load({}, {{"KEYVEND_LISTEN", "8080"}}).ok());
}

// ---- the example file and help ----

TEST(Config, ExampleConfigIsCurrent) {
  const std::string path = KEYVEND_SOURCE_DIR "/data/keyvend.conf";
  const std::string want = RenderExampleConfig();
  if (std::getenv("KEYVEND_REGENERATE_EXAMPLE_CONFIG") != nullptr) WriteFile(path, want);
  EXPECT_EQ(ReadFile(path), want)
      << path << " is stale: rerun this test with KEYVEND_REGENERATE_EXAMPLE_CONFIG=1";
}

TEST(Config, ExampleConfigLoadsToDefaults) {
  const std::string path = KEYVEND_SOURCE_DIR "/data/keyvend.conf";
  absl::StatusOr<Config> c = Load({"--config", path});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, Defaults());
}

TEST(Config, ExampleConfigUncommentedLoadsToDefaults) {
  // Every `# name = default` line, uncommented, must parse back to exactly the default.
  std::string text = RenderExampleConfig();
  std::string uncommented;
  int settings = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    for (const OptionSpec& o : ConfigOptions()) {
      if (absl::StartsWith(line, absl::StrCat("# ", o.name, " = "))) {
        line = line.substr(2);
        ++settings;
        break;
      }
    }
    uncommented += line + "\n";
  }
  EXPECT_EQ(settings, static_cast<int>(ConfigOptions().size()));
  ConfigFile f(uncommented);
  absl::StatusOr<Config> c = Load({"--config", f.path()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, Defaults());
}

TEST(Config, ExampleAndHelpDocumentEveryOption) {
  std::string example = RenderExampleConfig();
  std::string help = ConfigHelp();
  EXPECT_TRUE(absl::StrContains(help, "--config FILE"));
  EXPECT_TRUE(absl::StrContains(help, "KEYVEND_CONFIG"));
  for (const OptionSpec& o : ConfigOptions()) {
    SCOPED_TRACE(o.name);
    EXPECT_TRUE(absl::StrContains(example, absl::StrCat("# ", o.doc, "\n")));
    std::string flag = absl::StrCat("--", o.name);
    for (char& c : flag) c = c == '_' ? '-' : c;
    std::string env = absl::StrCat("KEYVEND_", o.name);
    for (char& c : env) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(absl::StrContains(help, flag));
    EXPECT_TRUE(absl::StrContains(help, env));
    EXPECT_TRUE(absl::StrContains(help, o.doc));
  }
}

}  // namespace
}  // namespace kv
