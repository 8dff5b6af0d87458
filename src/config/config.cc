#include "config/config.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "limits/limits.h"

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

constexpr const char* kListenExpected =
    "HOST:PORT with a non-empty host and a port in 0..65535 (IPv6 as [ADDR]:PORT)";

// The table. Int defaults and bounds that the domain also names come from limits.h and
// are cross-checked below, so the two cannot drift apart.
std::vector<OptionSpec> BuildOptions() {
  using T = OptionType;
  return {
      {"data_dir", T::kString, "./keyvend-data", 0, 0,
       "Directory holding the shop's database (RocksDB). Default: ./keyvend-data.",
       &Config::data_dir, &ValidDataDir, "a non-empty path"},
      {"listen", T::kString, "127.0.0.1:8080", 0, 0,
       "Address the HTTP server binds, HOST:PORT ([ADDR]:PORT for IPv6); port 0 picks a "
       "free port, printed at start. Default: 127.0.0.1:8080.",
       &Config::listen, &ValidListen, kListenExpected},
      {"master_key_file", T::kString, "", 0, 0,
       "File holding the key-encryption master key, kept outside the data dir; empty means "
       "<data_dir>.master-key. Default: \"\".",
       &Config::master_key_file, nullptr, nullptr},
      {"payment_sandbox", T::kBool, "false", 0, 0,
       "Turn on the sandbox payment gateway (a pay page whose button sends a signed notify); "
       "for demos and tests, never for real money. Default: false.",
       &Config::payment_sandbox, nullptr, nullptr},
      {"public_url", T::kString, "", 0, 0,
       "Base URL buyers reach the shop at, used in links; empty means http:// plus the "
       "address actually bound. Default: \"\".",
       &Config::public_url, &ValidPublicUrl, "empty, or an http:// or https:// URL"},
      {"pay_url_template", T::kString, "", 0, 0,
       "The payment gateway's page for an order, with {order_id} and {amount_cents} filled "
       "in; empty means none (the sandbox page when payment_sandbox is on). Default: \"\".",
       &Config::pay_url_template, &ValidPayUrlTemplate,
       "empty, or an http:// or https:// URL whose only {placeholders} are {order_id} and "
       "{amount_cents}"},
      {"hold_seconds", T::kInt, "900", 1, limits::kHoldSecondsMax,
       "Seconds a new order holds its keys out of stock while waiting for payment. "
       "Default: 900.",
       &Config::hold_seconds, nullptr, nullptr},
      {"hold_grace_seconds", T::kInt, "120", 0, 86400,
       "Seconds after an order expires before its hold is released, so a payment already "
       "in flight still finds its keys. Default: 120.",
       &Config::hold_grace_seconds, nullptr, nullptr},
      {"notify_tolerance_seconds", T::kInt, "300", 1, 3600,
       "Largest difference, in seconds, between a payment notify's signed timestamp and "
       "the shop's clock; older or newer notifies are refused. Default: 300.",
       &Config::notify_tolerance_seconds, nullptr, nullptr},
      {"max_connections", T::kInt, "256", 1, 10000,
       "Concurrent HTTP connections served on the main listener (one worker thread each); "
       "over it a new connection gets a fast 503 and is closed. Default: 256.",
       &Config::max_connections, nullptr, nullptr},
      {"listen_backlog", T::kInt, "1024", 1, 65535,
       "Length of the kernel's queue of connections not yet accepted. Default: 1024.",
       &Config::listen_backlog, nullptr, nullptr},
      {"keep_alive_max_count", T::kInt, "10000", 1, 1000000,
       "Requests served on one keep-alive connection before it is closed. Default: 10000.",
       &Config::keep_alive_max_count, nullptr, nullptr},
      {"keep_alive_timeout_seconds", T::kInt, "5", 1, 3600,
       "Seconds an idle keep-alive connection is kept open waiting for its next request. "
       "Default: 5.",
       &Config::keep_alive_timeout_seconds, nullptr, nullptr},
      {"read_timeout_ms", T::kInt, "5000", 10, 600000,
       "Read timeout for a client's request, in milliseconds; a slower client is "
       "disconnected. Default: 5000.",
       &Config::read_timeout_ms, nullptr, nullptr},
      {"write_timeout_ms", T::kInt, "5000", 10, 600000,
       "Write timeout for a response, in milliseconds; a client that does not read is "
       "disconnected. Default: 5000.",
       &Config::write_timeout_ms, nullptr, nullptr},
      {"ops_listen", T::kString, "", 0, 0,
       "Second listener, HOST:PORT, serving only the payment notify, /healthz, /readyz and "
       "/metrics with its own connection cap (for the gateway and the probes, reachable "
       "when buyer traffic has hit every cap); empty = none. Default: \"\".",
       &Config::ops_listen, &ValidOptionalListen, "empty or HOST:PORT"},
      {"ops_max_connections", T::kInt, "64", 1, 10000,
       "Concurrent connections served on the ops listener. Default: 64.",
       &Config::ops_max_connections, nullptr, nullptr},
      {"max_connections_per_client", T::kInt, "64", 0, 10000,
       "Concurrent connections from one client IP (trusted proxies exempt); over it a new "
       "connection gets a fast 503 and is closed; 0 = no limit. Default: 64.",
       &Config::max_connections_per_client, nullptr, nullptr},
      {"ops_max_connections_per_client", T::kInt, "8", 0, 10000,
       "Concurrent connections on the ops listener from one client IP (trusted proxies and "
       "ops_clients_exempt exempt); over it a fast 503; 0 = no limit. Default: 8.",
       &Config::ops_max_connections_per_client, nullptr, nullptr},
      {"ops_clients_exempt", T::kString, "", 0, 0,
       "Comma-separated IP addresses exempt from the ops listener's per-client caps (your "
       "payment gateway's callback addresses, your monitoring); empty = none. Default: \"\".",
       &Config::ops_clients_exempt, &ValidProxyList, "a comma-separated list of IP addresses"},
      {"reserve_connections", T::kInt, "16", 0, 10000,
       "Connections the main listener admits above max_connections for one probe "
       "(/healthz, /readyz, /metrics) or payment-notify request each, so the gateway and "
       "the probes get through when buyers fill every slot. Default: 16.",
       &Config::reserve_connections, nullptr, nullptr},
      {"waiting_connections_max", T::kInt, "4096", 0, 1000000,
       "Connections per listener accepted that have not sent a byte yet (they hold no slot "
       "and no thread); when full, the one waiting longest is closed to make room; 0 = no "
       "limit. Default: 4096.",
       &Config::waiting_connections_max, nullptr, nullptr},
      {"waiting_connections_per_client", T::kInt, "64", 0, 1000000,
       "Connections from one client IP that have not sent a byte yet, per listener (trusted "
       "proxies exempt); over it a fast 503; 0 = no limit. Default: 64.",
       &Config::waiting_connections_per_client, nullptr, nullptr},
      {"header_timeout_ms", T::kInt, "10000", 100, 600000,
       "Deadline for a whole request header, in milliseconds: a connection's first request "
       "from the connection's accept (a silent connection is closed then), later ones from "
       "their first byte (a slow-drip client is cut off however often it sends a byte). "
       "Default: 10000.",
       &Config::header_timeout_ms, nullptr, nullptr},
      {"body_timeout_ms", T::kInt, "60000", 100, 3600000,
       "Deadline for a whole request body, in milliseconds from the end of its header. "
       "Default: 60000.",
       &Config::body_timeout_ms, nullptr, nullptr},
      {"header_bytes_max", T::kInt, "16384", 0, 1048576,
       "Largest request header (request line and header lines), in bytes; over it 431; "
       "0 = no limit. Default: 16384.",
       &Config::header_bytes_max, nullptr, nullptr},
      {"header_count_max", T::kInt, "64", 0, 10000,
       "Most header lines in one request; over it 431; 0 = no limit. Default: 64.",
       &Config::header_count_max, nullptr, nullptr},
      {"inflight_order_max", T::kInt, "64", 0, 100000,
       "Order creations handled at once; over it a fast 503 overloaded; 0 = no limit. "
       "Default: 64.",
       &Config::inflight_order_max, nullptr, nullptr},
      {"inflight_read_max", T::kInt, "64", 0, 100000,
       "Order reads and lookups handled at once; over it a fast 503 overloaded; 0 = no "
       "limit. Default: 64.",
       &Config::inflight_read_max, nullptr, nullptr},
      {"inflight_admin_max", T::kInt, "16", 0, 100000,
       "Admin requests handled at once; over it a fast 503 overloaded; 0 = no limit. "
       "Default: 16.",
       &Config::inflight_admin_max, nullptr, nullptr},
      {"inflight_page_max", T::kInt, "64", 0, 100000,
       "Catalogue and page requests handled at once; over it a fast 503 overloaded; 0 = no "
       "limit. Default: 64.",
       &Config::inflight_page_max, nullptr, nullptr},
      {"drain_timeout_ms", T::kInt, "10000", 0, 600000,
       "On SIGTERM/SIGINT, milliseconds in-flight requests get to finish before their "
       "connections are cut. Default: 10000.",
       &Config::drain_timeout_ms, nullptr, nullptr},
      {"access_log", T::kString, "", 0, 0,
       "Access log file, one JSON line per request (never a key, token or query string); "
       "\"-\" = standard error; empty = none. Default: \"\".",
       &Config::access_log, nullptr, nullptr},
      {"access_log_buffer_lines", T::kInt, "65536", 16, 10000000,
       "Access-log lines held in memory for the writer; when full, new lines are dropped "
       "and counted (a request never waits for the disk). Default: 65536.",
       &Config::access_log_buffer_lines, nullptr, nullptr},
      {"body_bytes_max", T::kInt, "65536", 0, 16777216,
       "Largest JSON request body, in bytes; 0 means no limit. Default: 65536.",
       &Config::body_bytes_max, nullptr, nullptr},
      {"import_body_bytes_max", T::kInt, "67108864", 0, 1073741824,
       "Largest admin key-import request body, in bytes; 0 means no limit. "
       "Default: 67108864.",
       &Config::import_body_bytes_max, nullptr, nullptr},
      {"json_depth_max", T::kInt, "16", 1, 256,
       "Deepest nesting of JSON arrays and objects accepted in a request body. Default: 16.",
       &Config::json_depth_max, nullptr, nullptr},
      {"rate_limit_order_per_second", T::kInt, "1000", 0, 1000000,
       "Requests per second for order creation (POST /api/v1/orders), all clients together; 0 = no limit. Default: 1000.",
       &Config::rate_limit_order_per_second, nullptr, nullptr},
      {"rate_limit_order_burst", T::kInt, "2000", 1, 10000000,
       "Burst (bucket size) of rate_limit_order_per_second. Default: 2000.",
       &Config::rate_limit_order_burst, nullptr, nullptr},
      {"rate_limit_order_per_client_per_second", T::kInt, "5", 0, 1000000,
       "Requests per second for order creation (POST /api/v1/orders) from one client IP; 0 = no limit. Default: 5.",
       &Config::rate_limit_order_per_client_per_second, nullptr, nullptr},
      {"rate_limit_order_per_client_burst", T::kInt, "10", 1, 10000000,
       "Burst (bucket size) of rate_limit_order_per_client_per_second. Default: 10.",
       &Config::rate_limit_order_per_client_burst, nullptr, nullptr},
      {"rate_limit_read_per_second", T::kInt, "2000", 0, 1000000,
       "Requests per second for order reads and lookups, all clients together; 0 = no limit. Default: 2000.",
       &Config::rate_limit_read_per_second, nullptr, nullptr},
      {"rate_limit_read_burst", T::kInt, "4000", 1, 10000000,
       "Burst (bucket size) of rate_limit_read_per_second. Default: 4000.",
       &Config::rate_limit_read_burst, nullptr, nullptr},
      {"rate_limit_read_per_client_per_second", T::kInt, "20", 0, 1000000,
       "Requests per second for order reads and lookups from one client IP; 0 = no limit. Default: 20.",
       &Config::rate_limit_read_per_client_per_second, nullptr, nullptr},
      {"rate_limit_read_per_client_burst", T::kInt, "40", 1, 10000000,
       "Burst (bucket size) of rate_limit_read_per_client_per_second. Default: 40.",
       &Config::rate_limit_read_per_client_burst, nullptr, nullptr},
      {"rate_limit_notify_per_second", T::kInt, "2000", 0, 1000000,
       "Requests per second for payment notifications, all clients together; 0 = no limit. Default: 2000.",
       &Config::rate_limit_notify_per_second, nullptr, nullptr},
      {"rate_limit_notify_burst", T::kInt, "4000", 1, 10000000,
       "Burst (bucket size) of rate_limit_notify_per_second. Default: 4000.",
       &Config::rate_limit_notify_burst, nullptr, nullptr},
      {"rate_limit_notify_per_client_per_second", T::kInt, "0", 0, 1000000,
       "Requests per second for payment notifications from one client IP; 0 = no limit. Default: 0.",
       &Config::rate_limit_notify_per_client_per_second, nullptr, nullptr},
      {"rate_limit_notify_per_client_burst", T::kInt, "1", 1, 10000000,
       "Burst (bucket size) of rate_limit_notify_per_client_per_second. Default: 1.",
       &Config::rate_limit_notify_per_client_burst, nullptr, nullptr},
      {"rate_limit_admin_per_second", T::kInt, "200", 0, 1000000,
       "Requests per second for the admin API, all clients together; 0 = no limit. Default: 200.",
       &Config::rate_limit_admin_per_second, nullptr, nullptr},
      {"rate_limit_admin_burst", T::kInt, "400", 1, 10000000,
       "Burst (bucket size) of rate_limit_admin_per_second. Default: 400.",
       &Config::rate_limit_admin_burst, nullptr, nullptr},
      {"rate_limit_admin_per_client_per_second", T::kInt, "50", 0, 1000000,
       "Requests per second for the admin API from one client IP; 0 = no limit. Default: 50.",
       &Config::rate_limit_admin_per_client_per_second, nullptr, nullptr},
      {"rate_limit_admin_per_client_burst", T::kInt, "100", 1, 10000000,
       "Burst (bucket size) of rate_limit_admin_per_client_per_second. Default: 100.",
       &Config::rate_limit_admin_per_client_burst, nullptr, nullptr},
      {"rate_limit_page_per_second", T::kInt, "5000", 0, 1000000,
       "Requests per second for product listings and the sandbox pages, all clients together; 0 = no limit. Default: 5000.",
       &Config::rate_limit_page_per_second, nullptr, nullptr},
      {"rate_limit_page_burst", T::kInt, "10000", 1, 10000000,
       "Burst (bucket size) of rate_limit_page_per_second. Default: 10000.",
       &Config::rate_limit_page_burst, nullptr, nullptr},
      {"rate_limit_page_per_client_per_second", T::kInt, "50", 0, 1000000,
       "Requests per second for product listings and the sandbox pages from one client IP; 0 = no limit. Default: 50.",
       &Config::rate_limit_page_per_client_per_second, nullptr, nullptr},
      {"rate_limit_page_per_client_burst", T::kInt, "100", 1, 10000000,
       "Burst (bucket size) of rate_limit_page_per_client_per_second. Default: 100.",
       &Config::rate_limit_page_per_client_burst, nullptr, nullptr},
      {"pending_orders_per_contact_max", T::kInt, "5", 0, 1000000,
       "Hoarding guard: most open orders awaiting payment per buyer contact; 0 = no cap. "
       "Default: 5.",
       &Config::pending_orders_per_contact_max, nullptr, nullptr},
      {"pending_orders_per_client_max", T::kInt, "20", 0, 1000000,
       "Hoarding guard: most open orders awaiting payment per client IP; 0 = no cap. "
       "Default: 20.",
       &Config::pending_orders_per_client_max, nullptr, nullptr},
      {"lookup_failures_max", T::kInt, "10", 0, 1000000,
       "Failed order lookups of one contact (and wrong tokens for one order id), from any "
       "client, within lookup_failure_window_seconds that lock its lookups (reads), the "
       "right password included; 0 = no lockout. Default: 10.",
       &Config::lookup_failures_max, nullptr, nullptr},
      {"lookup_failure_window_seconds", T::kInt, "600", 1, 604800,
       "The window in which lookup_failures_max failures lock, in seconds from the first. "
       "Default: 600.",
       &Config::lookup_failure_window_seconds, nullptr, nullptr},
      {"lookup_lockout_seconds", T::kInt, "60", 1, 2592000,
       "How long a contact's (order's) first lockout lasts, in seconds; each further one "
       "doubles, up to lookup_lockout_seconds_max. Default: 60.",
       &Config::lookup_lockout_seconds, nullptr, nullptr},
      {"lookup_lockout_seconds_max", T::kInt, "86400", 1, 2592000,
       "Longest lookup lockout, in seconds; the doubling is forgotten after this long "
       "without a lockout. Default: 86400.",
       &Config::lookup_lockout_seconds_max, nullptr, nullptr},
      {"lookup_lockout_keys_max", T::kInt, "100000", 16, 100000000,
       "Contacts (and, separately, order ids) whose failure counts are kept in memory "
       "(about 64 bytes each; lapsed ones, then the least counted, are evicted). "
       "Default: 100000.",
       &Config::lookup_lockout_keys_max, nullptr, nullptr},
      {"rate_limit_clients_max", T::kInt, "100000", 16, 100000000,
       "Client IPs whose rate-limit state is kept per route class (idle ones are evicted). "
       "Default: 100000.",
       &Config::rate_limit_clients_max, nullptr, nullptr},
      {"trusted_proxies", T::kString, "", 0, 0,
       "Comma-separated IP addresses of reverse proxies whose X-Forwarded-For names the "
       "client; empty = trust none. Default: \"\".",
       &Config::trusted_proxies, &ValidProxyList, "a comma-separated list of IP addresses"},
      {"delivery_backlog_max", T::kInt, "10000", 0, 1000000000,
       "Unfinished deliveries (pending + failed) above which /readyz answers 503; 0 = no "
       "limit. Default: 10000.",
       &Config::delivery_backlog_max, nullptr, nullptr},
      {"block_cache_mb", T::kInt, "64", 8, 65536,
       "Size of RocksDB's block cache, in MiB. Default: 64.", &Config::block_cache_mb,
       nullptr, nullptr},
      {"log_level", T::kString, "info", 0, 0,
       "Least severe log messages written: debug, info, warn or error. Default: info.",
       &Config::log_level, &ValidLogLevel, "one of debug|info|warn|error"},
      {"allow_core_dumps", T::kBool, "false", 0, 0,
       "Let the process write core dumps, for debugging only: by default keyvend sets its "
       "core size limit to 0 and makes itself non-dumpable at start, since a core holds the "
       "key-encryption subkeys, delivered keys and the secrets; true puts back the core "
       "limit it was started with (ulimit -c). Default: false.",
       &Config::allow_core_dumps, nullptr, nullptr},
      // --- backups (src/backup) ---
      {"backup_dir", T::kString, "", 0, 0,
       "Directory of the shop's backups (POST /api/v1/admin/backups, scheduled backups, "
       "keyvend-backup create --url); apart from the data dir and the master key file; "
       "empty = backups off. Default: \"\".",
       &Config::backup_dir, nullptr, nullptr},
      {"backup_interval_seconds", T::kInt, "0", 0, 31536000,
       "Seconds between scheduled backups into backup_dir; 0 = none. Default: 0.",
       &Config::backup_interval_seconds, nullptr, nullptr},
      {"backup_keep", T::kInt, "7", 0, 100000,
       "Backups kept by the scheduler: after each scheduled backup the older ones are "
       "purged; 0 = keep all. Default: 7.",
       &Config::backup_keep, nullptr, nullptr},
      {"backup_rate_limit_mb", T::kInt, "8", 0, 100000,
       "MiB per second an online backup may write: its writes compete with the shop's "
       "synced commits for the disk (tools/bench-backup.sh measures the trade); 0 = as "
       "fast as it can. Default: 8.",
       &Config::backup_rate_limit_mb, nullptr, nullptr},
  };
}

static_assert(limits::kHoldSecondsMax == 604800);
static_assert(limits::kHoldSecondsDefault == 900);
static_assert(limits::kHoldGraceSecondsDefault == 120);

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

std::string Expected(const OptionSpec& o) {
  switch (o.type) {
    case OptionType::kInt:
      return absl::StrCat("an integer in ", o.min, "..", o.max);
    case OptionType::kBool:
      return "one of true|false|1|0|yes|no";
    case OptionType::kString:
      break;
  }
  return o.expected != nullptr ? std::string(o.expected) : "text without control characters";
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
      if (!after.empty() && !(after[0] == '#' && close + 1 < raw.size() &&
                              IsBlank(raw[close + 1]))) {
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
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", o->name,
                                                     " is already set on line ",
                                                     set_on_line[index]));
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
  bool quote = v.empty() || IsBlank(v.front()) || IsBlank(v.back()) || v.front() == '"' ||
               v.front() == '#';
  for (size_t i = 1; i < v.size() && !quote; ++i) {
    quote = v[i] == '#' && IsBlank(v[i - 1]);
  }
  return quote ? absl::StrCat("\"", v, "\"") : v;
}

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

  Config cfg;
  for (const OptionSpec& o : ConfigOptions()) {
    absl::Status s = SetOption(o, o.default_value, "default", &cfg);
    if (!s.ok()) return absl::InternalError(s.message());  // a bad table row: our bug
  }

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
    std::string dir = cfg.data_dir;
    // Strip trailing slashes, keeping a lone "/" so the key never lands in the cwd.
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    cfg.master_key_file = dir + ".master-key";
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
                    "; file: ", o.name, ")\n      ", o.doc, "\n      Valid: ", ValidText(o),
                    ".\n");
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
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
          c != '_') {
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
