// keyvend's configuration (SPEC §9): one table of options (Redis static_configs style),
// each with a snake_case name, a default, a valid range and one line of documentation,
// settable three ways — `name = value` in the config file, `--name-with-dashes` on the
// command line and `KEYVEND_NAME_UPPER` in the environment. Flag wins over environment,
// environment over file, file over the default.
//
// Secrets are NOT options: they are never in a file and never printed. The app reads them
// from the environment only (KEYVEND_ADMIN_TOKEN, KEYVEND_PAYMENT_SECRET, KEYVEND_EPAY_KEY,
// KEYVEND_STRIPE_SECRET_KEY, KEYVEND_STRIPE_WEBHOOK_SECRET, KEYVEND_WEBHOOK_SECRET,
// KEYVEND_SMTP_PASSWORD).
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
#include "limits/limits.h"

namespace kv {

enum class OptionType { kString, kBool, kInt };

// THE OPTION TABLE: the one place an option is written. Everything else is generated from
// it — the Config struct below (one member per option, initialised to its default), the
// rows of ConfigOptions() with their default text and "Default: ..." doc suffix, the example
// config data/keyvend.conf, `keyvend serve --help`, and a compile-time check that every int
// default lies in its range. Adding an option is adding one entry here (and regenerating
// data/keyvend.conf, see ARCHITECTURE.md "Configuration").
//
// Entries, in documentation order, expanded with one macro per type:
//   INT(name, default, min, max, doc)      int64_t; default and bounds typed constants,
//                                          limits.h names where the domain has one
//   BOOL(name, default, doc)               bool
//   STRING(name, default, valid, expected, doc)
//                                          std::string; `valid` (a bool(const std::string&)
//                                          in config.cc, or nullptr) checks a value without
//                                          control characters, `expected` says what a valid
//                                          one looks like (nullptr with a null `valid`)
// `doc` is one line without its default: " Default: <value>." is appended when rendered.
// The name is the snake_case option: flag --name-with-dashes, env KEYVEND_NAME_UPPER.
#define KV_CONFIG_OPTIONS(INT, BOOL, STRING)                                                     \
  STRING(data_dir, "./keyvend-data", ValidDataDir, "a non-empty path",                           \
         "Directory holding the shop's database (RocksDB).")                                     \
  STRING(listen, "127.0.0.1:8080", ValidListen, kListenExpected,                                 \
         "Address the HTTP server binds, HOST:PORT ([ADDR]:PORT for IPv6); port 0 picks a free " \
         "port, printed at start.")                                                              \
  STRING(master_key_file, "", nullptr, nullptr,                                                  \
         "File holding the key-encryption master key, kept outside the data dir; empty means "   \
         "<data_dir>.master-key.")                                                               \
  BOOL(payment_sandbox, false,                                                                   \
       "Turn on the sandbox payment gateway (a pay page whose button sends a signed notify); "   \
       "for demos and tests, never for real money.")                                             \
  STRING(public_url, "", ValidPublicUrl, "empty, or an http:// or https:// URL",                 \
         "Base URL buyers reach the shop at, used in links; empty means http:// plus the "       \
         "address actually bound.")                                                              \
  STRING(pay_url_template, "", ValidPayUrlTemplate, kPayUrlTemplateExpected,                     \
         "The payment gateway's page for an order, with {order_id} and {amount_cents} filled "   \
         "in; empty means none (the sandbox page when payment_sandbox is on).")                  \
  /* payment gateways (issue 13, src/pay; secrets from the environment only) */                  \
  STRING(payment_gateways, "", ValidGatewayList, kGatewayListExpected,                           \
         "Payment gateways buyers may choose, in the storefront's order (the first supporting "  \
         "an order's currency is its default); empty means \"sandbox\" when payment_sandbox is " \
         "on, else pay_url_template.")                                                           \
  STRING(epay_url, "", ValidGatewayUrl, kGatewayUrlExpected,                                     \
         "Base URL of the EPay site (易支付), without submit.php; required by epay.")            \
  STRING(epay_pid, "", ValidDigits, "empty, or 1..20 digits",                                    \
         "EPay merchant id (pid); required by epay (its key: env KEYVEND_EPAY_KEY).")            \
  STRING(epay_types, "alipay,wxpay", ValidNameList, kNameListExpected,                           \
         "EPay pay types offered to buyers (e.g. alipay,wxpay,qqpay).")                          \
  STRING(stripe_api_base, "https://api.stripe.com", ValidGatewayUrl, kGatewayUrlExpected,        \
         "Base URL of Stripe's API (secrets: env KEYVEND_STRIPE_SECRET_KEY and "                 \
         "KEYVEND_STRIPE_WEBHOOK_SECRET).")                                                      \
  STRING(gateway_ca_file, "", nullptr, nullptr,                                                  \
         "PEM file of CA certificates for HTTPS to the gateways; empty means the system's.")     \
  INT(gateway_timeout_seconds, 10, 1, 120,                                                       \
      "Longest a call to a gateway's API (start, query) may take, in seconds.")                  \
  INT(reconcile_after_seconds, 120, 1, 86400,                                                    \
      "Seconds after a buyer started paying before the shop asks the gateway about an order "    \
      "whose notify has not come; later queries back off, doubling up to an hour.")              \
  INT(reconcile_tick_seconds, 5, 1, 3600,                                                        \
      "Seconds between the reconciler's looks at the open payment attempts.")                    \
  INT(reconcile_window_seconds, 86400, 60, 2592000,                                              \
      "Seconds after a payment attempt started during which the reconciler keeps asking.")       \
  /* outbound work (issue 14, src/outbound; secrets from the environment only) */                \
  STRING(webhook_url, "", ValidWebhookUrl, kWebhookUrlExpected,                                  \
         "The merchant's webhook: every order that becomes delivered, backordered, refund_due, " \
         "refunded or cancelled is POSTed there, signed (secret: env KEYVEND_WEBHOOK_SECRET); "  \
         "empty = none.")                                                                        \
  INT(webhook_max_attempts, 12, 1, 1000,                                                         \
      "Attempts at one webhook event before it is failed (then the admin API replays it).")      \
  INT(webhook_connect_timeout_ms, 5000, 100, 60000,                                              \
      "Longest a connection to webhook_url may take to open, in milliseconds.")                  \
  INT(webhook_timeout_ms, 10000, 100, 120000,                                                    \
      "Longest one webhook request may take in all, in milliseconds (at least the connect "      \
      "timeout).")                                                                               \
  INT(webhook_breaker_failures, 5, 1, 1000,                                                      \
      "Consecutive failed webhook attempts that open the circuit breaker (no request is sent "   \
      "while it is open).")                                                                      \
  INT(webhook_breaker_cooldown_seconds, 30, 1, 3600,                                             \
      "Seconds an open webhook breaker waits before one probe request.")                         \
  INT(outbound_backoff_max_seconds, 3600, 1, 86400,                                              \
      "Longest wait between two attempts at a webhook event or mail (the wait doubles from 2 s " \
      "with jitter up to it).")                                                                  \
  STRING(smtp_url, "", ValidSmtpUrl, kSmtpUrlExpected,                                           \
         "SMTP server for buyer mails: smtp:// (STARTTLS when offered) or smtps://; empty = no " \
         "mail (password: env KEYVEND_SMTP_PASSWORD).")                                          \
  STRING(smtp_user, "", nullptr, nullptr, "SMTP login user; empty = no login.")                  \
  STRING(mail_from, "", nullptr, nullptr,                                                        \
         "Sender address of buyer mails (user@host.name); required with smtp_url.")              \
  BOOL(email_keys, true,                                                                         \
       "Put the keys in the buyer's mail; false mails only the link to the order page.")         \
  STRING(mail_templates_dir, "", nullptr, nullptr,                                               \
         "Directory whose order_delivered{,_link}.{en,zh-CN}.txt files replace the built-in "    \
         "mail templates; empty = the built-in ones.")                                           \
  STRING(mail_language, "en", ValidMailLanguage, "en or zh-CN",                                  \
         "Language of buyer mails (the order does not record the buyer's page language).")       \
  INT(mail_max_attempts, 12, 1, 1000,                                                            \
      "Attempts at one buyer mail before it is failed (then the admin API replays it).")         \
  INT(mail_parallel_sessions, 4, 1, 16,                                                          \
      "SMTP sessions the mail worker keeps busy at once (one thread sends a round's mails "      \
      "concurrently, each session carrying mails one after another).")                           \
  INT(outbound_nice, 19, 0, 19,                                                                  \
      "Nice value of the webhook and mail worker threads: under a full CPU orders and payments " \
      "come first and outbound work drains in what they leave; 0 = the process's priority.")     \
  BOOL(outbound_sched_idle, true,                                                                \
       "Run the webhook and mail worker threads in Linux's SCHED_IDLE policy as well: any "      \
       "order, payment or commit thread that wakes takes the core from them at once (a niced "   \
       "thread may keep it for the rest of its time slice); false = nice only.")                 \
  INT(outbound_backlog_max, 1000000, 0, 1000000000,                                              \
      "Unfinished webhook events and mails (pending + failed) above which /readyz answers 503: " \
      "a safety stop for a log that only grows, not a health signal (a dead endpoint must not "  \
      "stop sales; alerts watch the backlog long before); 0 = no limit.")                        \
  INT(hold_seconds, limits::kHoldSecondsDefault, 1, limits::kHoldSecondsMax,                     \
      "Seconds a new order holds its keys out of stock while waiting for payment.")              \
  INT(hold_grace_seconds, limits::kHoldGraceSecondsDefault, 0, limits::kHoldGraceSecondsMax,     \
      "Seconds after an order expires before its hold is released, so a payment already in "     \
      "flight still finds its keys.")                                                            \
  INT(notify_tolerance_seconds, 300, 1, 3600,                                                    \
      "Largest difference, in seconds, between a payment notify's signed timestamp and the "     \
      "shop's clock; older or newer notifies are refused.")                                      \
  INT(max_connections, 10000, 1, 1000000,                                                        \
      "Concurrent HTTP connections served on the main listener (each costs a buffer in an I/O "  \
      "thread, not a thread); over it a new connection gets a fast 503 and is closed. The "      \
      "descriptor budget is checked at start.")                                                  \
  INT(io_threads, 0, 0, 64,                                                                      \
      "Threads that own the connections (epoll): read requests, write responses, keep idle "     \
      "connections; 0 = one per core.")                                                          \
  INT(worker_threads_max, 256, 1, 4096,                                                          \
      "Most threads running request handlers at once (a thread per request in progress, never "  \
      "per connection); a request beyond it waits in the queue for a free worker.")              \
  INT(listen_backlog, 1024, 1, 65535,                                                            \
      "Length of the kernel's queue of connections not yet accepted.")                           \
  INT(keep_alive_max_count, 10000, 1, 1000000,                                                   \
      "Requests served on one keep-alive connection before it is closed.")                       \
  INT(keep_alive_timeout_seconds, 5, 1, 3600,                                                    \
      "Seconds an idle keep-alive connection is kept open waiting for its next request.")        \
  INT(read_timeout_ms, 5000, 10, 600000,                                                         \
      "Read timeout for a client's request, in milliseconds; a slower client is "                \
      "disconnected.")                                                                           \
  INT(write_timeout_ms, 5000, 10, 600000,                                                        \
      "Write timeout for a response, in milliseconds; a client that does not read is "           \
      "disconnected.")                                                                           \
  STRING(ops_listen, "", ValidOptionalListen, "empty or HOST:PORT",                              \
         "Second listener, HOST:PORT, serving only the payment notify, /healthz, /readyz and "   \
         "/metrics with its own connection cap (for the gateway and the probes, reachable when " \
         "buyer traffic has hit every cap); empty = none.")                                      \
  INT(ops_max_connections, 64, 1, 10000, "Concurrent connections served on the ops listener.")   \
  INT(max_connections_per_client, 64, 0, 10000,                                                  \
      "Concurrent connections from one client IP (trusted proxies exempt); over it a new "       \
      "connection gets a fast 503 and is closed; 0 = no limit.")                                 \
  INT(ops_max_connections_per_client, 8, 0, 10000,                                               \
      "Concurrent connections on the ops listener from one client IP (trusted proxies and "      \
      "ops_clients_exempt exempt); over it a fast 503; 0 = no limit.")                           \
  STRING(ops_clients_exempt, "", ValidProxyList, "a comma-separated list of IP addresses",       \
         "Comma-separated IP addresses exempt from the ops listener's per-client caps (your "    \
         "payment gateway's callback addresses, your monitoring); empty = none.")                \
  INT(reserve_connections, 16, 0, 10000,                                                         \
      "Connections the main listener admits above max_connections for one probe (/healthz, "     \
      "/readyz, /metrics) or payment-notify request each, so the gateway and the probes get "    \
      "through when buyers fill every slot.")                                                    \
  INT(waiting_connections_max, 4096, 0, 1000000,                                                 \
      "Connections per listener accepted that have not sent a byte yet (they hold no slot "      \
      "and no thread); when full, the one waiting longest is closed to make room; 0 = no "       \
      "limit.")                                                                                  \
  INT(waiting_connections_per_client, 64, 0, 1000000,                                            \
      "Connections from one client IP that have not sent a byte yet, per listener (trusted "     \
      "proxies exempt); over it a fast 503; 0 = no limit.")                                      \
  INT(header_timeout_ms, 10000, 100, 600000,                                                     \
      "Deadline for a whole request header, in milliseconds: a connection's first request "      \
      "from the connection's accept (a silent connection is closed then), later ones from "      \
      "their first byte (a slow-drip client is cut off however often it sends a byte).")         \
  INT(body_timeout_ms, 60000, 100, 3600000,                                                      \
      "Deadline for a whole request body, in milliseconds from the end of its header.")          \
  INT(header_bytes_max, 16384, 0, 1048576,                                                       \
      "Largest request header (request line and header lines), in bytes; over it 431; 0 = no "   \
      "limit.")                                                                                  \
  INT(header_count_max, 64, 0, 10000,                                                            \
      "Most header lines in one request; over it 431; 0 = no limit.")                            \
  INT(inflight_order_max, 64, 0, 100000,                                                         \
      "Order creations handled at once; over it a fast 503 overloaded; 0 = no limit.")           \
  INT(inflight_read_max, 64, 0, 100000,                                                          \
      "Order reads and lookups handled at once; over it a fast 503 overloaded; 0 = no limit.")   \
  INT(inflight_admin_max, 16, 0, 100000,                                                         \
      "Admin requests handled at once; over it a fast 503 overloaded; 0 = no limit.")            \
  INT(inflight_page_max, 64, 0, 100000,                                                          \
      "Catalogue and page requests handled at once; over it a fast 503 overloaded; 0 = no "      \
      "limit.")                                                                                  \
  INT(inflight_static_max, 256, 0, 100000,                                                       \
      "Storefront and admin-console files (pages, scripts, styles) served at once; over it a "   \
      "fast 503 overloaded; 0 = no limit.")                                                      \
  INT(drain_timeout_ms, 10000, 0, 600000,                                                        \
      "On SIGTERM/SIGINT, milliseconds in-flight requests get to finish before their "           \
      "connections are cut.")                                                                    \
  STRING(access_log, "", nullptr, nullptr,                                                       \
         "Access log file, one JSON line per request (never a key, token or query string); "     \
         "\"-\" = standard error; empty = none.")                                                \
  INT(access_log_buffer_lines, 65536, 16, 10000000,                                              \
      "Access-log lines held in memory for the writer; when full, new lines are dropped and "    \
      "counted (a request never waits for the disk).")                                           \
  INT(body_bytes_max, 65536, 0, 16777216,                                                        \
      "Largest JSON request body, in bytes; 0 means no limit.")                                  \
  INT(import_body_bytes_max, 67108864, 0, 1073741824,                                            \
      "Largest admin key-import request body, in bytes; 0 means no limit.")                      \
  INT(json_depth_max, 16, 1, 256,                                                                \
      "Deepest nesting of JSON arrays and objects accepted in a request body.")                  \
  INT(rate_limit_order_per_second, 1000, 0, 1000000,                                             \
      "Requests per second for order creation (POST /api/v1/orders), all clients together; 0 "   \
      "= no limit.")                                                                             \
  INT(rate_limit_order_burst, 2000, 1, 10000000,                                                 \
      "Burst (bucket size) of rate_limit_order_per_second.")                                     \
  INT(rate_limit_order_per_client_per_second, 5, 0, 1000000,                                     \
      "Requests per second for order creation (POST /api/v1/orders) from one client IP; 0 = "    \
      "no limit.")                                                                               \
  INT(rate_limit_order_per_client_burst, 10, 1, 10000000,                                        \
      "Burst (bucket size) of rate_limit_order_per_client_per_second.")                          \
  INT(rate_limit_read_per_second, 2000, 0, 1000000,                                              \
      "Requests per second for order reads and lookups, all clients together; 0 = no limit.")    \
  INT(rate_limit_read_burst, 4000, 1, 10000000,                                                  \
      "Burst (bucket size) of rate_limit_read_per_second.")                                      \
  INT(rate_limit_read_per_client_per_second, 20, 0, 1000000,                                     \
      "Requests per second for order reads and lookups from one client IP; 0 = no limit.")       \
  INT(rate_limit_read_per_client_burst, 40, 1, 10000000,                                         \
      "Burst (bucket size) of rate_limit_read_per_client_per_second.")                           \
  INT(rate_limit_notify_per_second, 2000, 0, 1000000,                                            \
      "Requests per second for payment notifications, all clients together; 0 = no limit.")      \
  INT(rate_limit_notify_burst, 4000, 1, 10000000,                                                \
      "Burst (bucket size) of rate_limit_notify_per_second.")                                    \
  INT(rate_limit_notify_per_client_per_second, 0, 0, 1000000,                                    \
      "Requests per second for payment notifications from one client IP; 0 = no limit.")         \
  INT(rate_limit_notify_per_client_burst, 1, 1, 10000000,                                        \
      "Burst (bucket size) of rate_limit_notify_per_client_per_second.")                         \
  INT(rate_limit_admin_per_second, 200, 0, 1000000,                                              \
      "Requests per second for the admin API, all clients together; 0 = no limit.")              \
  INT(rate_limit_admin_burst, 400, 1, 10000000,                                                  \
      "Burst (bucket size) of rate_limit_admin_per_second.")                                     \
  INT(rate_limit_admin_per_client_per_second, 50, 0, 1000000,                                    \
      "Requests per second for the admin API from one client IP; 0 = no limit.")                 \
  INT(rate_limit_admin_per_client_burst, 100, 1, 10000000,                                       \
      "Burst (bucket size) of rate_limit_admin_per_client_per_second.")                          \
  INT(rate_limit_page_per_second, 5000, 0, 1000000,                                              \
      "Requests per second for product listings and the sandbox pages, all clients together; "   \
      "0 = no limit.")                                                                           \
  INT(rate_limit_page_burst, 10000, 1, 10000000,                                                 \
      "Burst (bucket size) of rate_limit_page_per_second.")                                      \
  INT(rate_limit_page_per_client_per_second, 50, 0, 1000000,                                     \
      "Requests per second for product listings and the sandbox pages from one client IP; 0 "    \
      "= no limit.")                                                                             \
  INT(rate_limit_page_per_client_burst, 100, 1, 10000000,                                        \
      "Burst (bucket size) of rate_limit_page_per_client_per_second.")                           \
  INT(rate_limit_static_per_second, 20000, 0, 1000000,                                           \
      "Requests per second for the storefront's and admin console's pages and files, all "       \
      "clients together; 0 = no limit.")                                                         \
  INT(rate_limit_static_burst, 40000, 1, 10000000,                                               \
      "Burst (bucket size) of rate_limit_static_per_second.")                                    \
  INT(rate_limit_static_per_client_per_second, 100, 0, 1000000,                                  \
      "Requests per second for the storefront's and admin console's pages and files from one "   \
      "client IP (a page load is a handful); 0 = no limit.")                                     \
  INT(rate_limit_static_per_client_burst, 200, 1, 10000000,                                      \
      "Burst (bucket size) of rate_limit_static_per_client_per_second.")                         \
  INT(pending_orders_per_contact_max, 5, 0, 1000000,                                             \
      "Hoarding guard: most open orders awaiting payment per buyer contact; 0 = no cap.")        \
  INT(pending_orders_per_client_max, 20, 0, 1000000,                                             \
      "Hoarding guard: most open orders awaiting payment per client IP; 0 = no cap.")            \
  INT(lookup_failures_max, 10, 0, 1000000,                                                       \
      "Failed order lookups of one contact (and wrong tokens for one order id), from any "       \
      "client, within lookup_failure_window_seconds that lock its lookups (reads), the right "   \
      "password included; 0 = no lockout.")                                                      \
  INT(lookup_failure_window_seconds, 600, 1, 604800,                                             \
      "The window in which lookup_failures_max failures lock, in seconds from the first.")       \
  INT(lookup_lockout_seconds, 60, 1, 2592000,                                                    \
      "How long a contact's (order's) first lockout lasts, in seconds; each further one "        \
      "doubles, up to lookup_lockout_seconds_max.")                                              \
  INT(lookup_lockout_seconds_max, 86400, 1, 2592000,                                             \
      "Longest lookup lockout, in seconds; the doubling is forgotten after this long without "   \
      "a lockout.")                                                                              \
  INT(lookup_lockout_keys_max, 100000, 16, 100000000,                                            \
      "Contacts (and, separately, order ids) whose failure counts are kept in memory (about "    \
      "64 bytes each; lapsed ones, then the least counted, are evicted).")                       \
  INT(rate_limit_clients_max, 100000, 16, 100000000,                                             \
      "Client IPs whose rate-limit state is kept per route class (idle ones are evicted).")      \
  STRING(trusted_proxies, "", ValidProxyList, "a comma-separated list of IP addresses",          \
         "Comma-separated IP addresses of reverse proxies whose X-Forwarded-For names the "      \
         "client; empty = trust none.")                                                          \
  INT(delivery_backlog_max, 10000, 0, 1000000000,                                                \
      "Ignored: nothing waits in the delivery log since the write-ahead path was removed "       \
      "(issue 14); accepted so older config files still load. See outbound_backlog_max.")        \
  INT(block_cache_mb, 64, 8, 65536, "Size of RocksDB's block cache, in MiB.")                    \
  INT(min_free_disk_mb, 256, 0, 1048576,                                                         \
      "MiB kept free on the data dir's file system: below it orders, payments and imports "      \
      "answer 503 storage_unavailable (reads go on) until space returns, before RocksDB would "  \
      "meet a full disk; 0 = no guard.")                                                         \
  STRING(log_level, "info", ValidLogLevel, "one of debug|info|warn|error",                       \
         "Least severe log messages written: debug, info, warn or error.")                       \
  BOOL(allow_core_dumps, false,                                                                  \
       "Let the process write core dumps, for debugging only: by default keyvend sets its "      \
       "core size limit to 0 and makes itself non-dumpable at start, since a core holds the "    \
       "key-encryption subkeys, delivered keys and the secrets; true puts back the core limit "  \
       "it was started with (ulimit -c).")                                                       \
  /* backups (src/backup) */                                                                     \
  STRING(backup_dir, "", nullptr, nullptr,                                                       \
         "Directory of the shop's backups (POST /api/v1/admin/backups, scheduled backups, "      \
         "keyvend-backup create --url); apart from the data dir and the master key file; empty " \
         "= backups off.")                                                                       \
  INT(backup_interval_seconds, 0, 0, 31536000,                                                   \
      "Seconds between scheduled backups into backup_dir; 0 = none.")                            \
  INT(backup_keep, 7, 0, 100000,                                                                 \
      "Backups kept by the scheduler: after each scheduled backup the older ones are purged; "   \
      "0 = keep all.")                                                                           \
  INT(backup_rate_limit_mb, 8, 0, 100000,                                                        \
      "MiB per second an online backup may write: its writes compete with the shop's synced "    \
      "commits for the disk (tools/bench-backup.sh measures the trade); 0 = as fast as it "      \
      "can.")

// The server's settings: one member per KV_CONFIG_OPTIONS entry, of its type, named as the
// option and initialised to its default, so a default-constructed Config holds the
// documented defaults. LoadConfig then resolves master_key_file ("" = <data_dir>.master-key,
// storage/data_dir.h DefaultMasterKeyFile), so after LoadConfig it is never empty; the
// server fills an empty public_url in with the address it bound.
struct Config {
#define KV_CONFIG_INT_MEMBER(name, dflt, min, max, doc) int64_t name = dflt;
#define KV_CONFIG_BOOL_MEMBER(name, dflt, doc) bool name = dflt;
#define KV_CONFIG_STRING_MEMBER(name, dflt, valid, expected, doc) std::string name = dflt;
  KV_CONFIG_OPTIONS(KV_CONFIG_INT_MEMBER, KV_CONFIG_BOOL_MEMBER, KV_CONFIG_STRING_MEMBER)
#undef KV_CONFIG_INT_MEMBER
#undef KV_CONFIG_BOOL_MEMBER
#undef KV_CONFIG_STRING_MEMBER

  friend bool operator==(const Config&, const Config&) = default;
};

// Which Config field an option sets; the alternative always matches OptionSpec::type.
using ConfigField = std::variant<std::string Config::*, bool Config::*, int64_t Config::*>;

// One row of the option table, generated from its KV_CONFIG_OPTIONS entry.
struct OptionSpec {
  const char* name;  // snake_case; flag --name-with-dashes, env KEYVEND_NAME_UPPER
  OptionType type;
  std::string default_value;  // the typed default as text, as it would be written in the file
  int64_t min, max;           // kInt only (inclusive); 0 otherwise
  std::string doc;            // the entry's doc + " Default: <value>." ("" shown as "")
  ConfigField field;
  // kString only, may be null: true when the (control-character-free) value is acceptable.
  bool (*valid)(const std::string& value);
  // kString with `valid` only: what a valid value looks like, for errors and --help.
  const char* expected;
};

// The table, in documentation order (KV_CONFIG_OPTIONS's). Lives for the whole process;
// thread-safe.
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
