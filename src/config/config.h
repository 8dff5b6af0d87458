// keyvend's configuration (SPEC §9): one table of options (Redis static_configs style),
// each with a snake_case name, a default, a valid range and one line of documentation,
// settable three ways — `name = value` in the config file, `--name-with-dashes` on the
// command line and `KEYVEND_NAME_UPPER` in the environment. Flag wins over environment,
// environment over file, file over the default.
//
// Secrets are NOT options: they are never in a file and never printed. The app reads them
// from the environment only (KEYVEND_ADMIN_TOKEN, KEYVEND_PAYMENT_SECRET).
//
// Everything here is pure (no global state, no real environment, no I/O except reading the
// named config file), so it is thread-safe and tests are hermetic.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace kv {

// The server's settings. One field per option; each field's name is the option's name.
// A default-constructed Config holds the documented defaults (before Load's derivations).
struct Config {
  // Directory holding the shop's RocksDB database. Default: ./keyvend-data
  std::string data_dir = "./keyvend-data";
  // HOST:PORT the HTTP server binds ([ADDR]:PORT for IPv6); port 0 = pick a free one.
  // Default: 127.0.0.1:8080
  std::string listen = "127.0.0.1:8080";
  // Key-encryption master key file, kept outside the data dir. "" = <data_dir>.master-key;
  // LoadConfig resolves it, so after LoadConfig it is never empty. Default: ""
  std::string master_key_file;
  // Turns on the sandbox payment gateway (demos and tests). Default: false
  bool payment_sandbox = false;
  // Base URL buyers reach the shop at. "" = "http://" + the address actually bound (the
  // server fills it in). Default: ""
  std::string public_url;
  // The gateway's payment page for an order; may contain {order_id} and {amount_cents}.
  // Default: ""
  std::string pay_url_template;
  // Seconds a new order holds its keys waiting for payment, 1..604800. Default: 900
  int64_t hold_seconds = 900;
  // Seconds after expires_at before an expired order's hold is released, 0..86400.
  // Default: 120
  int64_t hold_grace_seconds = 120;
  // Largest accepted |our clock - a payment notify's signed t=|, seconds, 1..3600.
  // Default: 300
  int64_t notify_tolerance_seconds = 300;
  // Concurrent connections on the main listener (one worker thread each); over it a fast
  // 503 and close, 1..10000. Default: 256
  int64_t max_connections = 256;
  // Kernel queue of connections not yet accepted, 1..65535. Default: 1024
  int64_t listen_backlog = 1024;
  // Requests served on one keep-alive connection, 1..1000000. Default: 10000
  int64_t keep_alive_max_count = 10000;
  // Seconds an idle keep-alive connection waits for its next request, 1..3600. Default: 5
  int64_t keep_alive_timeout_seconds = 5;
  // Read timeout for a request, milliseconds, 10..600000. Default: 5000
  int64_t read_timeout_ms = 5000;
  // Write timeout for a response, milliseconds, 10..600000. Default: 5000
  int64_t write_timeout_ms = 5000;
  // Second listener (HOST:PORT) serving only the payment notify and /healthz, /readyz,
  // /metrics, with its own connection cap, for the gateway and the probes; "" = none.
  // Default: ""
  std::string ops_listen;
  // Concurrent connections on the ops listener, 1..10000. Default: 64
  int64_t ops_max_connections = 64;
  // Concurrent connections from one client IP (trusted proxies exempt), 0..10000;
  // 0 = no limit. Default: 64
  int64_t max_connections_per_client = 64;
  // Concurrent connections on the ops listener from one client IP (trusted proxies and
  // ops_clients_exempt exempt), 0..10000; 0 = no limit. Default: 8
  int64_t ops_max_connections_per_client = 8;
  // IP addresses exempt from the ops listener's per-client caps (the gateway, monitoring),
  // comma-separated. Default: ""
  std::string ops_clients_exempt;
  // Main-listener connections admitted above max_connections for one probe or
  // payment-notify request each, 0..10000. Default: 16
  int64_t reserve_connections = 16;
  // Connections per listener that have not sent a byte yet, 0..1000000 (full: the oldest
  // is closed); 0 = no limit. Default: 4096
  int64_t waiting_connections_max = 4096;
  // Such connections per client IP and listener, 0..1000000; 0 = no limit. Default: 64
  int64_t waiting_connections_per_client = 64;
  // Whole request header deadline, milliseconds, 100..600000: the first request's from
  // accept, later ones' from their first byte. Default: 10000
  int64_t header_timeout_ms = 10000;
  // Whole request body deadline from the end of the header, milliseconds, 100..3600000.
  // Default: 60000
  int64_t body_timeout_ms = 60000;
  // Largest request header (request line + header lines), bytes, 0..1048576; 0 = no
  // limit. Default: 16384
  int64_t header_bytes_max = 16384;
  // Most header lines in one request, 0..10000; 0 = no limit. Default: 64
  int64_t header_count_max = 64;
  // Order-creation requests being handled at once, 0..100000; 0 = no limit. Default: 64
  int64_t inflight_order_max = 64;
  // Order reads and lookups being handled at once, 0..100000; 0 = no limit. Default: 64
  int64_t inflight_read_max = 64;
  // Admin requests being handled at once, 0..100000; 0 = no limit. Default: 16
  int64_t inflight_admin_max = 16;
  // Page and catalogue requests being handled at once, 0..100000; 0 = no limit.
  // Default: 64
  int64_t inflight_page_max = 64;
  // Milliseconds a drain (SIGTERM) waits for in-flight requests, 0..600000. Default: 10000
  int64_t drain_timeout_ms = 10000;
  // Access log file (JSON lines); "-" = standard error; "" = none. Default: ""
  std::string access_log;
  // Access-log lines buffered in memory before new ones are dropped (and counted),
  // 16..10000000. Default: 65536
  int64_t access_log_buffer_lines = 65536;
  // Largest JSON request body, bytes, 0..16777216; 0 = no limit. Default: 65536
  int64_t body_bytes_max = 65536;
  // Largest key-import request body, bytes, 0..1073741824; 0 = no limit.
  // Default: 67108864
  int64_t import_body_bytes_max = 67108864;
  // Deepest nesting of JSON arrays/objects accepted, 1..256. Default: 16
  int64_t json_depth_max = 16;
  // Requests per second for order creation (POST /api/v1/orders), all clients together; 0 = no limit. Range 0..1000000. Default: 1000
  int64_t rate_limit_order_per_second = 1000;
  // Burst (bucket size) of rate_limit_order_per_second. Range 1..10000000. Default: 2000
  int64_t rate_limit_order_burst = 2000;
  // Requests per second for order creation (POST /api/v1/orders) from one client IP; 0 = no limit. Range 0..1000000. Default: 5
  int64_t rate_limit_order_per_client_per_second = 5;
  // Burst (bucket size) of rate_limit_order_per_client_per_second. Range 1..10000000. Default: 10
  int64_t rate_limit_order_per_client_burst = 10;
  // Requests per second for order reads and lookups, all clients together; 0 = no limit. Range 0..1000000. Default: 2000
  int64_t rate_limit_read_per_second = 2000;
  // Burst (bucket size) of rate_limit_read_per_second. Range 1..10000000. Default: 4000
  int64_t rate_limit_read_burst = 4000;
  // Requests per second for order reads and lookups from one client IP; 0 = no limit. Range 0..1000000. Default: 20
  int64_t rate_limit_read_per_client_per_second = 20;
  // Burst (bucket size) of rate_limit_read_per_client_per_second. Range 1..10000000. Default: 40
  int64_t rate_limit_read_per_client_burst = 40;
  // Requests per second for payment notifications, all clients together; 0 = no limit. Range 0..1000000. Default: 2000
  int64_t rate_limit_notify_per_second = 2000;
  // Burst (bucket size) of rate_limit_notify_per_second. Range 1..10000000. Default: 4000
  int64_t rate_limit_notify_burst = 4000;
  // Requests per second for payment notifications from one client IP; 0 = no limit. Range 0..1000000. Default: 0
  int64_t rate_limit_notify_per_client_per_second = 0;
  // Burst (bucket size) of rate_limit_notify_per_client_per_second. Range 1..10000000. Default: 1
  int64_t rate_limit_notify_per_client_burst = 1;
  // Requests per second for the admin API, all clients together; 0 = no limit. Range 0..1000000. Default: 200
  int64_t rate_limit_admin_per_second = 200;
  // Burst (bucket size) of rate_limit_admin_per_second. Range 1..10000000. Default: 400
  int64_t rate_limit_admin_burst = 400;
  // Requests per second for the admin API from one client IP; 0 = no limit. Range 0..1000000. Default: 50
  int64_t rate_limit_admin_per_client_per_second = 50;
  // Burst (bucket size) of rate_limit_admin_per_client_per_second. Range 1..10000000. Default: 100
  int64_t rate_limit_admin_per_client_burst = 100;
  // Requests per second for product listings and the sandbox pages, all clients together; 0 = no limit. Range 0..1000000. Default: 5000
  int64_t rate_limit_page_per_second = 5000;
  // Burst (bucket size) of rate_limit_page_per_second. Range 1..10000000. Default: 10000
  int64_t rate_limit_page_burst = 10000;
  // Requests per second for product listings and the sandbox pages from one client IP; 0 = no limit. Range 0..1000000. Default: 50
  int64_t rate_limit_page_per_client_per_second = 50;
  // Burst (bucket size) of rate_limit_page_per_client_per_second. Range 1..10000000. Default: 100
  int64_t rate_limit_page_per_client_burst = 100;
  // Hoarding guard: most open orders awaiting payment per buyer contact; 0 = no cap.
  // Range 0..1000000. Default: 5
  int64_t pending_orders_per_contact_max = 5;
  // Hoarding guard: most open orders awaiting payment per client IP; 0 = no cap.
  // Range 0..1000000. Default: 20
  int64_t pending_orders_per_client_max = 20;
  // Failed order lookups of one contact (and wrong tokens for one order id), from any
  // client, within lookup_failure_window_seconds that lock its lookups (reads), the right
  // password included; 0 = no lockout. Range 0..1000000. Default: 10
  int64_t lookup_failures_max = 10;
  // The window of lookup_failures_max, seconds from the first failure. Range 1..604800.
  // Default: 600
  int64_t lookup_failure_window_seconds = 600;
  // A first lockout, seconds; each further one doubles up to lookup_lockout_seconds_max.
  // Range 1..2592000. Default: 60
  int64_t lookup_lockout_seconds = 60;
  // Longest lockout, seconds; the doubling is forgotten after this long without one.
  // Range 1..2592000. Default: 86400
  int64_t lookup_lockout_seconds_max = 86400;
  // Contacts (and, separately, order ids) whose failure counts are kept in memory.
  // Range 16..100000000. Default: 100000
  int64_t lookup_lockout_keys_max = 100000;
  // Client IPs whose rate-limit state is kept per route class (idle ones are evicted).
  // Range 16..100000000. Default: 100000
  int64_t rate_limit_clients_max = 100000;
  // Comma-separated IP addresses of reverse proxies whose X-Forwarded-For names the
  // client; empty = trust none. Default: ""
  std::string trusted_proxies;
  // Unfinished deliveries (pending + failed) above which /readyz answers 503; 0 = no
  // limit. Range 0..1000000000. Default: 10000
  int64_t delivery_backlog_max = 10000;
  // RocksDB block cache, MiB, 8..65536. Default: 64
  int64_t block_cache_mb = 64;
  // Least severe log messages written: debug|info|warn|error. Default: info
  std::string log_level = "info";
  // Let the process dump core (debugging only): a core holds the encryption subkeys,
  // delivered keys and the secrets (base/hardening.h). Default: false
  bool allow_core_dumps = false;
  // --- backups (src/backup) ---
  // Directory of the shop's backups (POST /api/v1/admin/backups, scheduled backups,
  // `keyvend-backup create --url`); "" = backups off. Default: ""
  std::string backup_dir;
  // Seconds between scheduled backups, 0..31536000; 0 = none. Default: 0
  int64_t backup_interval_seconds = 0;
  // Backups the scheduler keeps (older ones are purged after each scheduled backup),
  // 0..100000; 0 = keep all. Default: 7
  int64_t backup_keep = 7;
  // MiB per second an online backup may write, 0..100000; 0 = as fast as it can.
  // Default: 8
  int64_t backup_rate_limit_mb = 8;

  friend bool operator==(const Config&, const Config&) = default;
};

enum class OptionType { kString, kBool, kInt };

// Which Config field an option sets; the alternative always matches OptionSpec::type.
using ConfigField = std::variant<std::string Config::*, bool Config::*, int64_t Config::*>;

// One row of the option table.
struct OptionSpec {
  const char* name;           // snake_case; flag --name-with-dashes, env KEYVEND_NAME_UPPER
  OptionType type;
  const char* default_value;  // as text, exactly as it would be written in the file
  int64_t min, max;           // kInt only (inclusive); 0 otherwise
  const char* doc;            // one line; ends with "Default: <value>." ("" shown as "")
  ConfigField field;
  // kString only, may be null: true when the (control-character-free) value is acceptable.
  bool (*valid)(const std::string& value);
  // kString with `valid` only: what a valid value looks like, for errors and --help.
  const char* expected;
};

// The table, in documentation order. Lives for the whole process; thread-safe.
const std::vector<OptionSpec>& ConfigOptions();

// Builds the config: defaults <- file <- environment <- flags.
//
// args: the command-line words AFTER the subcommand, e.g. {"--listen", "127.0.0.1:0",
//   "--payment-sandbox"}. Forms: `--name-with-dashes VALUE`, `--name-with-dashes=VALUE`;
//   a bool flag given bare means true, or takes =true|false|1|0|yes|no (never a separate
//   word). A flag repeated: the last one wins. Anything that is not an option's flag or
//   --config is refused (positional words too).
// env: looks a variable up (nullopt = unset; a variable set to "" counts as set). Only
//   KEYVEND_CONFIG and KEYVEND_<NAME_UPPER> for the options are asked for.
// The config file is --config FILE / --config=FILE, else KEYVEND_CONFIG, else none; a
//   file named that way must exist. File syntax: `name = value` lines, blank lines, '#'
//   comments (a whole line, or after a value when preceded by whitespace); a value may be
//   "quoted" (kept verbatim inside the quotes, '#' included; no escapes), and must be
//   when it starts with '#' or '"' or has leading/trailing spaces; surrounding whitespace
//   is trimmed; CRLF line ends are fine; an option set twice in one file is an error.
// Values: bools true|false|1|0|yes|no; ints decimal [-]digits within [min, max]; strings
//   without control characters, plus the option's own check (listen is HOST:PORT, ...).
//   Every value given is checked, even one a higher-precedence source overrides.
//
// Returns the Config with master_key_file resolved (never empty), or
// InvalidArgumentError naming the option and where its bad value came from, e.g.
//   invalid value "abc" for hold_seconds (from --hold-seconds): expected an integer in
//       1..604800                     (one line; also "(from KEYVEND_HOLD_SECONDS)" and
//                                      "(from keyvend.conf:12)")
//   keyvend.conf:12: unknown option "hold_secs"
//   config file "/etc/x.conf" (from KEYVEND_CONFIG): no such file
//   unknown flag --foo          unexpected argument "serve"          --listen needs a value
// Messages quote at most a short, escaped prefix of a bad value and never a whole file.
absl::StatusOr<Config> LoadConfig(
    const std::vector<std::string>& args,
    const std::function<std::optional<std::string>(const std::string&)>& env);

// The documented example config (shipped as data/keyvend.conf): a header, then for every
// option its doc line as a comment followed by `# name = default`, commented out.
std::string RenderExampleConfig();

// The options part of `keyvend serve --help`: per option its flag, environment variable,
// default, valid values and doc line; plus --config / KEYVEND_CONFIG.
std::string ConfigHelp();

// Splits "host:port" (or "[v6addr]:port") into host (brackets removed) and port.
// Accepts a non-empty host of letters, digits, '.', '-', '_' (an IPv4 address or a name),
// or a bracketed IPv6 address, and a decimal port 0..65535. Returns false on anything
// else, leaving *host and *port untouched.
bool ParseHostPort(const std::string& s, std::string* host, int* port);

}  // namespace kv
