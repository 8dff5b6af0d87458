// The access log (SPEC: structured access log): one JSON line per answered request, with
// its request id, route pattern, status, latency and client address. It can never hold a
// card key or a secret because an AccessRecord has no field that could carry one: no
// body, no query string, no header value, not even the request path (only the route
// PATTERN). Writing never blocks a request on the disk: lines go into a bounded buffer
// that one writer thread empties; when the buffer is full a line is dropped and counted.
//
// Its own library (kv_access_log: kv_base + kv_metrics), so it is tested without the server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "metrics/metrics.h"

namespace kv::http {

// Most bytes of one string field that are logged; a longer value is cut at a character
// boundary and ends in "..." (a client-chosen method cannot make a line huge). With it a
// line is at most about 8 KiB (five fields of 256 bytes, 6 bytes per escaped byte).
inline constexpr size_t kAccessFieldBytesMax = 256;

// Everything an access-log line can hold: by construction no body, no query string, no
// header values.
struct AccessRecord {
  int64_t unix_ms = 0;     // when the response was written
  std::string request_id;  // 16 lowercase hex chars, made by the server
  std::string listener;    // "main" | "ops"
  std::string method;      // from the client: escaped like every string
  // The route PATTERN, e.g. "GET /api/v1/orders/{order_id}", or "unmatched"; never the path.
  std::string route;
  int status = 0;
  int64_t latency_us = 0;
  std::string client_ip;
  int64_t bytes_in = 0;   // request body bytes
  int64_t bytes_out = 0;  // response body bytes
};

// One JSON object and '\n', fields always in this order:
// {"ts":"2026-11-21T15:04:05.123Z","request_id":"..","listener":"main","method":"POST",
//  "route":"POST /api/v1/orders","status":201,"latency_ms":1.234,"client_ip":"127.0.0.1",
//  "bytes_in":57,"bytes_out":300}
// ts is unix_ms as RFC 3339 UTC; latency_ms is latency_us / 1000 with exactly three
// decimals. Strings are escaped per RFC 8259: '"' and '\' with a backslash, control
// characters (U+0000..U+001F, U+007F..U+009F) as \u00XX, and each byte that is not part
// of well-formed UTF-8 as \u00XX too (its Latin-1 reading), so the line is always valid
// JSON and valid UTF-8; well-formed UTF-8 passes through. Each string is bounded by
// kAccessFieldBytesMax. The line has no other '\n'. Thread-safe (pure).
std::string FormatAccessLine(const AccessRecord& r);

// The file an AccessLog writes and its writer thread.
//
// Capacity counts the lines accepted and not yet written, including the batch the writer
// is writing: while the writer is stuck (a full disk, a pipe nobody reads) exactly
// `capacity` lines are held and every further Append is dropped. A write error is counted
// and the lines of that batch are lost; it is never fatal (SIGPIPE is blocked in the
// writer thread, so a closed pipe is EPIPE, counted).
//
// Metrics, registered in the Registry given to Open():
//   keyvend_access_log_lines_total         counter: lines written
//   keyvend_access_log_dropped_total       counter: lines dropped because the buffer was full
//   keyvend_access_log_write_errors_total  counter: failed write(2) calls
// With no write error, lines + dropped = appended once Flush() returned.
// One AccessLog per registry (a second one would share the counters).
//
// Thread-safe: Append and Flush may be called from any number of threads.
class AccessLog {
 public:
  static constexpr std::string_view kLinesMetric = "keyvend_access_log_lines_total";
  static constexpr std::string_view kDroppedMetric = "keyvend_access_log_dropped_total";
  static constexpr std::string_view kWriteErrorsMetric = "keyvend_access_log_write_errors_total";

  // path: a file opened O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0640 (less the umask);
  // "-" = standard error (not closed by the log). capacity: most lines held in memory,
  // >= 1. metrics: not owned, not null, outlives the log.
  // Errors: InvalidArgument if capacity is 0; the errno's status (naming the path) if the
  // file cannot be opened.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(const std::string& path, size_t capacity,
                                                         Registry* metrics);

  // Writes what is buffered (waiting for the disk if it must), stops the writer thread
  // and closes the file.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Formats r and puts the line in the buffer, or drops and counts it if the buffer is
  // full. Never waits for the disk: at most a short mutex shared with other Appends and
  // the writer's batch swap.
  void Append(const AccessRecord& r);

  // Blocks until every line accepted before the call is written (or lost to a write
  // error). For the drain and tests; it waits for the disk, so never on a request path.
  void Flush();

 private:
  AccessLog(int fd, bool owns_fd, size_t capacity, Registry* metrics);
  void WriterLoop();
  // Writes one batch of whole lines with as few write(2) calls as the kernel allows.
  void WriteBatch(std::string_view batch);

  const int fd_;
  const bool owns_fd_;
  const size_t capacity_;
  Counter* const lines_;
  Counter* const dropped_;
  Counter* const write_errors_;

  Mutex mu_;
  CondVar work_cv_;                                   // buffer_ became non-empty, or stop_ was set
  CondVar done_cv_;                                   // done_ grew
  std::string buffer_ ABSL_GUARDED_BY(mu_);           // whole lines, each ending in '\n'
  uint64_t buffered_lines_ ABSL_GUARDED_BY(mu_) = 0;  // lines in buffer_
  uint64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;        // lines ever accepted by Append
  uint64_t done_ ABSL_GUARDED_BY(mu_) = 0;            // of those, written or lost to an error
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;  // started last, in the constructor
};

}  // namespace kv::http
