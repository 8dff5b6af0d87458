#include "http/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/json_string.h"
#include "base/time_format.h"

namespace kv::http {
namespace {

static_assert(kAccessFieldBytesMax > 3);  // room for the "..." of a cut field

// Appends s as a JSON string bounded to kAccessFieldBytesMax (see FormatAccessLine).
void AppendField(std::string* out, std::string_view s) {
  AppendJsonString(out, s, kAccessFieldBytesMax);
}

void AppendInt(std::string* out, int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// latency_us as milliseconds with exactly three decimals ("1.234", "0.005", "-1.500").
void AppendMillis(std::string* out, int64_t us) {
  // Magnitude in uint64 so that INT64_MIN has one too.
  uint64_t mag = static_cast<uint64_t>(us);
  if (us < 0) {
    out->push_back('-');
    mag = ~mag + 1;
  }
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, mag / 1000);
  out->append(buf, r.ptr);
  const auto frac = static_cast<unsigned>(mag % 1000);
  const char digits[4] = {'.', static_cast<char>('0' + frac / 100),
                          static_cast<char>('0' + frac / 10 % 10),
                          static_cast<char>('0' + frac % 10)};
  out->append(digits, sizeof digits);
}

// Without this a reader closing a pipe would kill the process (SIGPIPE) instead of failing
// one write with EPIPE. The signal is blocked in this thread only; the mask is inherited
// from the creating thread, so the drain's blocked signals stay blocked as well.
void BlockSigpipeInThisThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace

std::string FormatAccessLine(const AccessRecord& r) {
  std::string out;
  out.reserve(256);
  out.append("{\"ts\":\"");
  out.append(FormatRfc3339Millis(FromUnixMs(r.unix_ms)));
  out.append("\",\"request_id\":");
  AppendField(&out, r.request_id);
  out.append(",\"listener\":");
  AppendField(&out, r.listener);
  out.append(",\"method\":");
  AppendField(&out, r.method);
  out.append(",\"route\":");
  AppendField(&out, r.route);
  out.append(",\"status\":");
  AppendInt(&out, r.status);
  out.append(",\"latency_ms\":");
  AppendMillis(&out, r.latency_us);
  out.append(",\"client_ip\":");
  AppendField(&out, r.client_ip);
  out.append(",\"bytes_in\":");
  AppendInt(&out, r.bytes_in);
  out.append(",\"bytes_out\":");
  AppendInt(&out, r.bytes_out);
  out.append("}\n");
  return out;
}

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& path, size_t capacity,
                                                           Registry* metrics) {
  if (capacity == 0) return absl::InvalidArgumentError("access log capacity must be at least 1");
  if (path == "-") {
    return std::unique_ptr<AccessLog>(new AccessLog(STDERR_FILENO, false, capacity, metrics));
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open access log \"", path, "\""));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(fd, true, capacity, metrics));
}

AccessLog::AccessLog(int fd, bool owns_fd, size_t capacity, Registry* metrics)
    : fd_(fd),
      owns_fd_(owns_fd),
      capacity_(capacity),
      lines_(metrics->GetCounter(kLinesMetric, "Access-log lines written.")),
      dropped_(metrics->GetCounter(kDroppedMetric,
                                   "Access-log lines dropped because the buffer was full.")),
      write_errors_(metrics->GetCounter(kWriteErrorsMetric,
                                        "Failed writes to the access log (their lines are lost).")),
      writer_([this] { WriterLoop(); }) {}

AccessLog::~AccessLog() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  work_cv_.Signal();
  writer_.join();
  if (owns_fd_) ::close(fd_);
}

void AccessLog::Append(const AccessRecord& r) {
  const std::string line = FormatAccessLine(r);  // outside the lock
  bool was_empty;
  {
    MutexLock lock(&mu_);
    if (accepted_ - done_ >= capacity_) {
      dropped_->Inc();
      return;
    }
    was_empty = buffer_.empty();
    buffer_.append(line);
    ++buffered_lines_;
    ++accepted_;
  }
  // The writer sleeps only on an empty buffer, so only the first line needs to wake it.
  if (was_empty) work_cv_.Signal();
}

void AccessLog::Flush() {
  MutexLock lock(&mu_);
  const uint64_t target = accepted_;
  while (done_ < target) done_cv_.Wait(&mu_);
}

void AccessLog::WriterLoop() {
  BlockSigpipeInThisThread();
  std::string batch;
  for (;;) {
    uint64_t lines;
    {
      MutexLock lock(&mu_);
      while (buffer_.empty() && !stop_) work_cv_.Wait(&mu_);
      if (buffer_.empty()) return;  // stopping, and everything is written
      // A swap, not a copy: Append keeps filling the other string meanwhile, and the two
      // keep their allocations, so a steady state allocates nothing.
      batch.swap(buffer_);
      lines = buffered_lines_;
      buffered_lines_ = 0;
    }
    WriteBatch(batch);
    batch.clear();
    {
      MutexLock lock(&mu_);
      done_ += lines;
    }
    done_cv_.SignalAll();
  }
}

void AccessLog::WriteBatch(std::string_view batch) {
  size_t written = 0;
  while (written < batch.size()) {
    const ssize_t n = ::write(fd_, batch.data() + written, batch.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      write_errors_->Inc();
      break;
    }
    written += static_cast<size_t>(n);
  }
  // Every line ends in its only '\n', so the newlines written are the lines written.
  lines_->Inc(static_cast<uint64_t>(std::count(batch.begin(), batch.begin() + written, '\n')));
}

}  // namespace kv::http
