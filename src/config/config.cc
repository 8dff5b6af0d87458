#include "config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/log.h"
#include "limits/limits.h"
#include "storage/data_dir.h"

namespace kv {
namespace {

// A config file is a few kilobytes; anything near this is not one (and is not read whole).
constexpr std::uintmax_t kConfigFileBytesMax = 1 << 20;
// Longest prefix of a bad value quoted back in an error message.
constexpr size_t kQuotedValueBytesMax = 64;
// Longest path quoted back (config file names).
constexpr size_t kQuotedPathBytesMax = 256;

bool ValidDataDir(const std::string& v) { return !v.empty(); }

bool ValidListen(const std::string& v) {
  std::string host;
  int port = 0;
  return ParseHostPort(v, &host, &port);
}

// Comma-separated IPv4/IPv6 addresses (spaces allowed around commas); empty is valid.
bool ValidProxyList(const std::string& v) {
  size_t start = 0;
  while (start <= v.size() && !v.empty()) {
    size_t end = v.find(',', start);
    if (end == std::string::npos) end = v.size();
    std::string item = v.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    unsigned char buf[16];
    if (item.empty() || (inet_pton(AF_INET, item.c_str(), buf) != 1 &&
                         inet_pton(AF_INET6, item.c_str(), buf) != 1)) {
      return false;
    }
    start = end + 1;
  }
  return true;
}

bool ValidOptionalListen(const std::string& v) { return v.empty() || ValidListen(v); }

bool ValidLogLevel(const std::string& v) {
  LogLevel level;
  return ParseLogLevel(v, &level);
}

// An absolute http(s) URL without whitespace. Buyers are sent to it, so a relative or
// scheme-less value is a mistake we can catch before the first order.
bool IsHttpUrl(const std::string& v) {
  size_t rest;
  if (v.rfind("http://", 0) == 0) {
    rest = 7;
  } else if (v.rfind("https://", 0) == 0) {
    rest = 8;
  } else {
    return false;
  }
  if (v.size() == rest) return false;
  for (char c : v) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool ValidPublicUrl(const std::string& v) { return v.empty() || IsHttpUrl(v); }

// Every '{' must open one of the known placeholders: a typo ({orderid}) would otherwise
// reach buyers as a literal.
bool ValidPayUrlTemplate(const std::string& v) {
  if (v.empty()) return true;
  if (!IsHttpUrl(v)) return false;
  for (size_t i = v.find('{'); i != std::string::npos; i = v.find('{', i + 1)) {
    if (v.compare(i, 10, "{order_id}") != 0 && v.compare(i, 14, "{amount_cents}") != 0) {
      return false;
    }
  }
  return true;
}

// The gateways an adapter exists for (src/pay/registry.cc builds them).
constexpr const char* kGatewayNames[] = {"sandbox", "epay", "stripe"};

// A comma-separated list of [a-z0-9_]+ names (spaces allowed around commas), no name twice;
// `known` (may be null) restricts the names.
bool ValidNames(const std::string& v, const char* const* known, size_t known_n) {
  std::vector<std::string> seen;
  for (absl::string_view item : absl::StrSplit(v, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty() || item.size() > 32) return false;
    for (char c : item) {
      if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
          !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_') {
        return false;
      }
    }
    if (known != nullptr && std::find(known, known + known_n, item) == known + known_n) {
      return false;
    }
    if (std::find(seen.begin(), seen.end(), item) != seen.end()) return false;
    seen.emplace_back(item);
  }
  return true;
}
bool ValidGatewayList(const std::string& v) {
  return v.empty() || ValidNames(v, kGatewayNames, std::size(kGatewayNames));
}
bool ValidNameList(const std::string& v) { return ValidNames(v, nullptr, 0); }
bool ValidDigits(const std::string& v) {
  return v.size() <= 20 && std::all_of(v.begin(), v.end(), [](char c) {
           return absl::ascii_isdigit(static_cast<unsigned char>(c));
         });
}
// A gateway's base URL: https://, or http:// to a loopback host (the tests' fake gateways:
// a secret key must not cross a network in clear); no trailing '/', no query.
bool ValidGatewayUrl(const std::string& v) {
  if (v.empty()) return true;
  if (!IsHttpUrl(v) || v.back() == '/' || v.find_first_of("?#") != std::string::npos) return false;
  if (v.rfind("https://", 0) == 0) return true;
  std::string_view host = std::string_view(v).substr(7);
  host = host.substr(0, host.find('/'));
  if (host.rfind("[::1]", 0) == 0) return host.size() == 5 || host[5] == ':';
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  unsigned char addr[4];
  return host.rfind("127.", 0) == 0 && inet_pton(AF_INET, std::string(host).c_str(), addr) == 1;
}

// The merchant's webhook (issue 14): like a gateway URL (https, or http to loopback only),
// but a path and a query string are the merchant's to choose.
bool ValidWebhookUrl(const std::string& v) {
  if (v.empty()) return true;
  if (!IsHttpUrl(v) || v.find('#') != std::string::npos) return false;
  if (v.rfind("https://", 0) == 0) return true;
  const size_t end = v.find_first_of("/?", 7);
  return ValidGatewayUrl(v.substr(0, end));
}
// smtp://host[:port] or smtps://host[:port] (issue 14), nothing after the host and port.
bool ValidSmtpUrl(const std::string& v) {
  if (v.empty()) return true;
  size_t rest;
  if (v.rfind("smtp://", 0) == 0) {
    rest = 7;
  } else if (v.rfind("smtps://", 0) == 0) {
    rest = 8;
  } else {
    return false;
  }
  if (v.size() == rest) return false;
  for (size_t i = rest; i < v.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '-' || c == ':' || c == '[' || c == ']')) {
      return false;
    }
  }
  return true;
}
bool ValidMailLanguage(const std::string& v) { return v == "en" || v == "zh-CN"; }
constexpr const char* kWebhookUrlExpected =
    "empty, or an https:// URL (http:// only to 127.0.0.0/8, [::1] or localhost) without a "
    "fragment";
constexpr const char* kSmtpUrlExpected = "empty, or smtp://HOST[:PORT] or smtps://HOST[:PORT]";

constexpr const char* kGatewayListExpected =
    "empty, or a comma-separated list of sandbox, epay, stripe, each at most once";
constexpr const char* kNameListExpected =
    "a comma-separated list of names of a-z, 0-9 and _, each at most once";
constexpr const char* kGatewayUrlExpected =
    "empty, or an https:// URL (http:// only to 127.0.0.0/8, [::1] or localhost) without a "
    "trailing /, query or fragment";

constexpr const char* kListenExpected =
    "HOST:PORT with a non-empty host and a port in 0..65535 (IPv6 as [ADDR]:PORT)";
constexpr const char* kPayUrlTemplateExpected =
    "empty, or an http:// or https:// URL whose only {placeholders} are {order_id} and "
    "{amount_cents}";

// Every int default within its range, checked when this file compiles.
#define KV_CONFIG_CHECK_INT(name, dflt, min, max, doc) \
  static_assert((min) <= (dflt) && (dflt) <= (max), #name ": default outside min..max");
#define KV_CONFIG_IGNORE(...)
KV_CONFIG_OPTIONS(KV_CONFIG_CHECK_INT, KV_CONFIG_IGNORE, KV_CONFIG_IGNORE)
#undef KV_CONFIG_CHECK_INT
#undef KV_CONFIG_IGNORE

// A value as text, the way the file, the environment and the flags write it.
std::string IntText(int64_t v) { return absl::StrCat(v); }
std::string BoolText(bool v) { return v ? "true" : "false"; }

// The doc line as shown: the entry's text, then its default ("" shown as "").
std::string DocWithDefault(const char* doc, const std::string& default_value) {
  return absl::StrCat(doc, " Default: ", default_value.empty() ? "\"\"" : default_value, ".");
}

// The table: one row per KV_CONFIG_OPTIONS entry (config.h), in its order.
std::vector<OptionSpec> BuildOptions() {
  std::vector<OptionSpec> rows;
#define KV_CONFIG_INT_ROW(name, dflt, min, max, doc)                \
  rows.push_back({#name, OptionType::kInt, IntText(dflt), min, max, \
                  DocWithDefault(doc, IntText(dflt)), &Config::name, nullptr, nullptr});
#define KV_CONFIG_BOOL_ROW(name, dflt, doc)                       \
  rows.push_back({#name, OptionType::kBool, BoolText(dflt), 0, 0, \
                  DocWithDefault(doc, BoolText(dflt)), &Config::name, nullptr, nullptr});
#define KV_CONFIG_STRING_ROW(name, dflt, valid, expected, doc)                       \
  rows.push_back({#name, OptionType::kString, dflt, 0, 0, DocWithDefault(doc, dflt), \
                  &Config::name, valid, expected});
  KV_CONFIG_OPTIONS(KV_CONFIG_INT_ROW, KV_CONFIG_BOOL_ROW, KV_CONFIG_STRING_ROW)
#undef KV_CONFIG_INT_ROW
#undef KV_CONFIG_BOOL_ROW
#undef KV_CONFIG_STRING_ROW
  return rows;
}

std::string FlagName(const OptionSpec& o) {
  std::string s = absl::StrCat("--", o.name);
  for (char& c : s) {
    if (c == '_') c = '-';
  }
  return s;
}

std::string EnvName(const std::string& name) {
  return absl::StrCat("KEYVEND_", absl::AsciiStrToUpper(name));
}

// `text` as a quoted, escaped, bounded literal: safe to print whatever the input was.
std::string Quote(const std::string& text, size_t max_bytes = kQuotedValueBytesMax) {
  bool cut = text.size() > max_bytes;
  std::string head = cut ? text.substr(0, max_bytes) : text;
  return absl::StrCat("\"", absl::CHexEscape(head), cut ? "\"..." : "\"");
}

// A flag word as typed, escaped and bounded (it is echoed unquoted).
std::string FlagText(const std::string& word) {
  bool cut = word.size() > kQuotedValueBytesMax;
  std::string head = cut ? word.substr(0, kQuotedValueBytesMax) : word;
  return absl::StrCat(absl::CHexEscape(head), cut ? "..." : "");
}

const OptionSpec* FindOption(const std::string& name) {
  for (const OptionSpec& o : ConfigOptions()) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

// flag == FlagName(o), without building the name (a config load looks up every flag word
// against every option).
bool IsFlagOf(const std::string& flag, const OptionSpec& o) {
  const size_t n = std::char_traits<char>::length(o.name);
  if (flag.size() != n + 2 || flag.compare(0, 2, "--") != 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (flag[i + 2] != (o.name[i] == '_' ? '-' : o.name[i])) return false;
  }
  return true;
}

const OptionSpec* FindFlag(const std::string& flag) {
  for (const OptionSpec& o : ConfigOptions()) {
    if (IsFlagOf(flag, o)) return &o;
  }
  return nullptr;
}

// The valid values as --help and the example file list them: "1..604800",
// "true|false|1|0|yes|no", or what a string option expects.
std::string ValidText(const OptionSpec& o) {
  switch (o.type) {
    case OptionType::kInt:
      return absl::StrCat(o.min, "..", o.max);
    case OptionType::kBool:
      return "true|false|1|0|yes|no";
    case OptionType::kString:
      break;
  }
  return o.expected != nullptr ? std::string(o.expected) : "text without control characters";
}

// The same, as an error message's "expected ...".
std::string Expected(const OptionSpec& o) {
  const char* what = o.type == OptionType::kInt    ? "an integer in "
                     : o.type == OptionType::kBool ? "one of "
                                                   : "";
  return absl::StrCat(what, ValidText(o));
}

bool ParseInt(const std::string& v, int64_t* out) {
  const char* end = v.data() + v.size();
  auto [ptr, ec] = std::from_chars(v.data(), end, *out);
  return ec == std::errc() && ptr == end && !v.empty() && v[0] != '+';
}

bool ParseBool(const std::string& v, bool* out) {
  if (v == "true" || v == "1" || v == "yes") {
    *out = true;
    return true;
  }
  if (v == "false" || v == "0" || v == "no") {
    *out = false;
    return true;
  }
  return false;
}

bool HasControlChar(const std::string& v) {
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// Parses `value` for option `o` and stores it in *cfg. `from` names the source for the
// error message: a flag, an environment variable or FILE:LINE.
absl::Status SetOption(const OptionSpec& o, const std::string& value, const std::string& from,
                       Config* cfg) {
  bool ok = false;
  switch (o.type) {
    case OptionType::kInt: {
      int64_t n = 0;
      ok = ParseInt(value, &n) && n >= o.min && n <= o.max;
      if (ok) cfg->*std::get<int64_t Config::*>(o.field) = n;
      break;
    }
    case OptionType::kBool: {
      bool b = false;
      ok = ParseBool(value, &b);
      if (ok) cfg->*std::get<bool Config::*>(o.field) = b;
      break;
    }
    case OptionType::kString:
      ok = !HasControlChar(value) && (o.valid == nullptr || o.valid(value));
      if (ok) cfg->*std::get<std::string Config::*>(o.field) = value;
      break;
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid value ", Quote(value), " for ", o.name,
                                                 " (from ", from, "): expected ", Expected(o)));
}

// Whitespace the file syntax trims: spaces, tabs and a CR left by CRLF line ends.
bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && IsBlank(s[b])) ++b;
  while (e > b && IsBlank(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Reads the file named by `from` (--config or KEYVEND_CONFIG), bounded in size.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path, const std::string& from) {
  std::string what =
      absl::StrCat("config file ", Quote(path, kQuotedPathBytesMax), " (from ", from, ")");
  std::error_code ec;
  std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (path.empty() || !std::filesystem::exists(st)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": no such file"));
  }
  if (!std::filesystem::is_regular_file(st)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a regular file"));
  }
  std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(what, ": ", ec.message()));
  if (size > kConfigFileBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": larger than ", kConfigFileBytesMax, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot be read"));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(what, ": read failed"));
  return buf.str();
}

// Applies a config file's text. `path` prefixes every message (PATH:LINE: ...); no message
// quotes more than a bounded piece of one line.
absl::Status ApplyFile(const std::string& path, const std::string& text, Config* cfg) {
  std::vector<int> set_on_line(ConfigOptions().size(), 0);
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = Trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    std::string where = absl::StrCat(path, ":", line_no);
    if (line.empty() || line[0] == '#') continue;

    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected `name = value`"));
    }
    std::string name = Trim(line.substr(0, eq));
    const OptionSpec* o = FindOption(name);
    if (o == nullptr) {
      std::string msg = absl::StrCat(where, ": unknown option ", Quote(name));
      std::string underscored = name;
      for (char& c : underscored) {
        if (c == '-') c = '_';
      }
      if (underscored != name && FindOption(underscored) != nullptr) {
        absl::StrAppend(&msg, " (did you mean ", underscored, "?)");
      }
      return absl::InvalidArgumentError(msg);
    }

    std::string raw = Trim(line.substr(eq + 1));
    std::string value;
    if (!raw.empty() && raw[0] == '"') {
      size_t close = raw.find('"', 1);
      if (close == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unterminated quoted value for ", o->name));
      }
      value = raw.substr(1, close - 1);
      std::string after = Trim(raw.substr(close + 1));
      if (!after.empty() &&
          !(after[0] == '#' && close + 1 < raw.size() && IsBlank(raw[close + 1]))) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": unexpected text after the quoted value for ", o->name));
      }
    } else {
      // '#' starts a comment only after whitespace (raw was trimmed, so a leading '#'
      // followed some), so "a#b" is a value.
      value = raw;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '#' && (i == 0 || IsBlank(raw[i - 1]))) {
          value = Trim(raw.substr(0, i));
          break;
        }
      }
    }

    size_t index = static_cast<size_t>(o - ConfigOptions().data());
    if (set_on_line[index] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", o->name, " is already set on line ", set_on_line[index]));
    }
    set_on_line[index] = line_no;
    absl::Status s = SetOption(*o, value, where, cfg);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

struct FlagValue {
  const OptionSpec* option;
  std::string value;
  std::string flag;  // as named in messages: --hold-seconds
};

struct ParsedArgs {
  std::vector<FlagValue> values;
  std::optional<std::string> config_file;
};

// Splits the words into flag values without checking the values (that happens when they
// are applied, after file and environment).
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word.size() <= 2 || word.compare(0, 2, "--") != 0) {
      if (word.size() > 1 && word[0] == '-') {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag ", FlagText(word)));
      }
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", Quote(word)));
    }
    size_t eq = word.find('=');
    std::string flag = word.substr(0, eq);
    std::optional<std::string> inline_value;
    if (eq != std::string::npos) inline_value = word.substr(eq + 1);

    const OptionSpec* o = nullptr;
    if (flag != "--config") {
      o = FindFlag(flag);
      if (o == nullptr) {
        std::string msg = absl::StrCat("unknown flag ", FlagText(flag));
        std::string dashed = flag;
        for (char& c : dashed) {
          if (c == '_') c = '-';
        }
        if (dashed != flag && (dashed == "--config" || FindFlag(dashed) != nullptr)) {
          absl::StrAppend(&msg, " (did you mean ", dashed, "?)");
        }
        return absl::InvalidArgumentError(msg);
      }
    }

    std::string value;
    if (inline_value.has_value()) {
      value = *inline_value;
    } else if (o != nullptr && o->type == OptionType::kBool) {
      value = "true";  // bare bool flag; a separate word is never its value
    } else if (i + 1 < args.size() && args[i + 1].compare(0, 2, "--") != 0) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    }

    if (o == nullptr) {
      out.config_file = value;
    } else {
      out.values.push_back({o, std::move(value), flag});
    }
  }
  return out;
}

// A value as it must be written in the file to read back unchanged.
std::string FileValue(const std::string& v) {
  bool quote =
      v.empty() || IsBlank(v.front()) || IsBlank(v.back()) || v.front() == '"' || v.front() == '#';
  for (size_t i = 1; i < v.size() && !quote; ++i) {
    quote = v[i] == '#' && IsBlank(v[i - 1]);
  }
  return quote ? absl::StrCat("\"", v, "\"") : v;
}

}  // namespace

const std::vector<OptionSpec>& ConfigOptions() {
  static const std::vector<OptionSpec>* const kOptions =
      new std::vector<OptionSpec>(BuildOptions());
  return *kOptions;
}

absl::StatusOr<Config> LoadConfig(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& env) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args);
  if (!parsed.ok()) return parsed.status();

  Config cfg;  // the defaults: the struct is generated from the table

  std::optional<std::string> file = parsed->config_file;
  std::string file_from = "--config";
  if (!file.has_value()) {
    file = env("KEYVEND_CONFIG");
    file_from = "KEYVEND_CONFIG";
  }
  if (file.has_value()) {
    absl::StatusOr<std::string> text = ReadConfigFile(*file, file_from);
    if (!text.ok()) return text.status();
    absl::Status s = ApplyFile(*file, *text, &cfg);
    if (!s.ok()) return s;
  }

  for (const OptionSpec& o : ConfigOptions()) {
    std::string var = EnvName(o.name);
    std::optional<std::string> v = env(var);
    if (!v.has_value()) continue;
    absl::Status s = SetOption(o, *v, var, &cfg);
    if (!s.ok()) return s;
  }

  for (const FlagValue& f : parsed->values) {
    absl::Status s = SetOption(*f.option, f.value, f.flag, &cfg);
    if (!s.ok()) return s;
  }

  if (cfg.master_key_file.empty()) {
    cfg.master_key_file = storage::DefaultMasterKeyFile(cfg.data_dir);
  }
  return cfg;
}

std::string RenderExampleConfig() {
  std::string out =
      "# keyvend example configuration.\n"
      "#\n"
      "# Generated from the option table in src/config/config.cc (RenderExampleConfig); a\n"
      "# test fails when this file drifts from it. Every option is listed with its doc line\n"
      "# and valid values, commented out at its default.\n"
      "#\n"
      "# Syntax: `name = value` per line; '#' starts a comment (at the start of a line, or\n"
      "# after whitespace); \"double quotes\" keep spaces and '#' in a value.\n"
      "# Use this file with --config FILE or KEYVEND_CONFIG=FILE. Each option can also be\n"
      "# set as --name-with-dashes VALUE (wins over everything) or KEYVEND_NAME_UPPER=VALUE\n"
      "# in the environment (wins over this file).\n"
      "#\n"
      "# Secrets are never set here: the admin token and the payment notify secret come from\n"
      "# the environment only (KEYVEND_ADMIN_TOKEN, KEYVEND_PAYMENT_SECRET).\n";
  for (const OptionSpec& o : ConfigOptions()) {
    absl::StrAppend(&out, "\n# ", o.doc, "\n# Valid: ", ValidText(o), ".\n# ", o.name, " = ",
                    FileValue(o.default_value), "\n");
  }
  return out;
}

std::string ConfigHelp() {
  std::string out =
      "Options (a flag wins over the environment, the environment over the config file):\n"
      "  --config FILE  (env KEYVEND_CONFIG)\n"
      "      Config file of `name = value` lines; see data/keyvend.conf. Default: none.\n";
  for (const OptionSpec& o : ConfigOptions()) {
    const char* metavar = o.type == OptionType::kInt    ? " N"
                          : o.type == OptionType::kBool ? "[=BOOL]"
                                                        : " VALUE";
    absl::StrAppend(&out, "  ", FlagName(o), metavar, "  (env ", EnvName(o.name),
                    "; file: ", o.name, ")\n      ", o.doc, "\n      Valid: ", ValidText(o), ".\n");
  }
  absl::StrAppend(&out,
                  "Secrets come from the environment only: KEYVEND_ADMIN_TOKEN, "
                  "KEYVEND_PAYMENT_SECRET.\n");
  return out;
}

bool ParseHostPort(const std::string& s, std::string* host, int* port) {
  std::string h, p;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return false;
    }
    h = s.substr(1, close - 1);
    p = s.substr(close + 2);
    if (h.find(':') == std::string::npos) return false;  // brackets are for IPv6 only
    for (char c : h) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return false;
      }
    }
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos) return false;
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
    if (h.size() > 253) return false;  // longest DNS name
    for (char c : h) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
        return false;  // includes ':' — a bare IPv6 address needs brackets
      }
    }
  }
  if (h.empty() || p.empty() || p.size() > 5) return false;
  int n = 0;
  for (char c : p) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    n = n * 10 + (c - '0');
  }
  if (n > 65535) return false;
  *host = std::move(h);
  *port = n;
  return true;
}

}  // namespace kv
