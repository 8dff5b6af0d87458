// The descriptor budget of `keyvend serve` (issue 11): every connection, waiting socket,
// lingering refusal and open database file is a file descriptor, so the configured caps
// are only true if RLIMIT_NOFILE covers them all. serve computes the budget from the
// config, raises the soft limit to the hard one and refuses to start (before binding)
// when the budget does not fit, naming the numbers and the fix — rather than discovering
// it as accept() failing with EMFILE under a crowd, or RocksDB failing to open a table file
// in the middle of a write.
//
// Everything but RaiseAndCheckFdLimit is pure.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "config/config.h"

namespace kv {

// Refused sockets lingering at once so their client reads the 503 (the acceptor's
// Acceptor::kLingerMax in src/http/acceptor.h, one pool for all listeners). Copied by
// value so the app's startup check does not include the HTTP layer; keep the two equal.
inline constexpr int64_t kFdLingerMax = 1024;

// RocksDB's files. storage/db.cc leaves max_open_files at RocksDB's default, -1: every
// live table file stays open, so this is an estimate, not a bound. 12 column families
// (storage/schema.h) at their L0 slowdown trigger (20 files each: 240), plus 128 level
// files of up to 64 MiB (target_file_size_base; about 8 GiB of compacted data, far above
// a card-key shop's), plus the WAL (max_total_wal_size 256 MiB: a few files), MANIFEST,
// LOG (keep_log_file_num 5, one open), LOCK, and a backup's file being copied: 384.
inline constexpr int64_t kFdStorageMargin = 384;
// The process's own: stdin/stdout/stderr, the two listeners, the acceptor's epoll set and
// drain eventfd, the access log, the signal thread, /dev/urandom, the metrics' /proc reads,
// a backup's directory handles: 64.
inline constexpr int64_t kFdProcessMargin = 64;
// Per I/O loop: its epoll set and a wake-up descriptor pair (an eventfd needs one, a pipe
// two): 3.
inline constexpr int64_t kFdPerIoLoop = 3;

// Outbound sockets (issues 13 and 14). A curl HTTP client (net::HttpClient: the payment
// gateways', the merchant webhook's) keeps at most 8 idle handles and holds one per calling
// thread, each with up to 2 connections (src/net/curl_http_client.cc); the gateways' callers
// are the request handlers (worker_threads_max) and the reconciler, the webhook's its 2
// worker threads. The mailer keeps at most max(4, mail_parallel_sessions) SMTP sessions
// (src/outbound/mailer.cc), each a connection and its curl multi handle's wake-up socket
// pair: 3.
inline constexpr int64_t kFdHttpClientIdleHandles = 8;
inline constexpr int64_t kFdPerHttpHandle = 2;
inline constexpr int64_t kFdWebhookCallers = 2;  // DispatcherOptions::webhook_threads
inline constexpr int64_t kFdPerMailSession = 3;
inline constexpr int64_t kFdMailSessionsMin = 4;  // the mailer's idle pool's floor

// The descriptors the configured server may hold at once, by part.
struct FdBudget {
  int64_t connections = 0;      // max_connections
  int64_t reserve = 0;          // reserve_connections (probes and notifies above the cap)
  int64_t ops_connections = 0;  // ops_max_connections when ops_listen is set, else 0
  // waiting_connections_max per listener (0 = no limit: not counted), and the listeners
  int64_t waiting_per_listener = 0;
  int64_t listeners = 1;
  int64_t linger = 0;    // kFdLingerMax
  int64_t io_loops = 0;  // kFdPerIoLoop per I/O loop
  int64_t storage = 0;   // kFdStorageMargin
  int64_t process = 0;   // kFdProcessMargin
  int64_t outbound = 0;  // the gateways', the webhook's and the mail's sockets (0 when off)

  int64_t total() const {
    return connections + reserve + ops_connections + waiting_per_listener * listeners + linger +
           io_loops + storage + process + outbound;
  }
  // "10000 max_connections + 16 reserve_connections + ... + 64 for the process", for the
  // error message.
  std::string Describe() const;
};

// The budget of `c` (a validated Config). `io_loops`: the I/O threads it runs
// (io_threads, or the core count when io_threads is 0).
FdBudget ComputeFdBudget(const Config& c, int64_t io_loops);

// OK when `soft_limit` (RLIMIT_NOFILE's, after raising; negative = unlimited) covers the
// budget; otherwise FailedPrecondition naming the needed count, the limit, the hard
// limit, and the fixes (ulimit -n, LimitNOFILE= for systemd, or lower max_connections /
// waiting_connections_max).
absl::Status CheckFdBudget(const FdBudget& budget, int64_t soft_limit, int64_t hard_limit);

// Raises RLIMIT_NOFILE's soft limit to the hard limit (to fs.nr_open when the hard limit
// is unlimited), then CheckFdBudget against the soft limit in force. If the raise fails
// the check uses the soft limit as it was. Not thread-safe (changes the process's limit):
// call at start, before any thread.
absl::Status RaiseAndCheckFdLimit(const FdBudget& budget);

}  // namespace kv
