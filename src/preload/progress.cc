#include "preload/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace kv::preload {
namespace {

constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
constexpr double kRateMinElapsedSeconds = 0.2;
constexpr size_t kDefaultWidth = 100;
constexpr size_t kBarWidthMax = 30;
constexpr size_t kBarWidthMin = 10;
constexpr size_t kPhaseColumn = 14;  // "deduplicating" and a space

int64_t MonoNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Duration(double s) {
  if (!(s < 1e7)) return "?";  // also catches NaN
  const int64_t t = static_cast<int64_t>(std::ceil(s));
  char buf[32];
  if (t < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(t));
  } else if (t < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(t / 3600),
                  static_cast<long long>(t / 60 % 60));
  }
  return buf;
}

size_t TerminalWidth(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col - 1;
  return kDefaultWidth;
}

}  // namespace

std::string HumanCount(double n) {
  char buf[32];
  if (n < 1000) {
    std::snprintf(buf, sizeof buf, "%.0f", n);
  } else {
    static constexpr const char* kSuffix[] = {"k", "M", "G", "T"};
    int i = 0;
    n /= 1000;
    while (n >= 999.5 && i < 3) {
      n /= 1000;
      ++i;
    }
    const int decimals = n < 9.995 ? 2 : n < 99.95 ? 1 : 0;
    std::snprintf(buf, sizeof buf, "%.*f%s", decimals, n, kSuffix[i]);
  }
  return buf;
}

std::string FormatProgress(std::string_view phase, uint64_t done, uint64_t total, ProgressUnit unit,
                           double elapsed_s, size_t width) {
  const double scale = unit == ProgressUnit::kBytes ? 1.0 / (1 << 20) : 1.0;
  const char* what = unit == ProgressUnit::kBytes ? "MB" : "keys";
  done = std::min(done, total);
  const double frac = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);

  std::string counts;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%3d%%  ", static_cast<int>(frac * 100));
  counts += buf;
  if (unit == ProgressUnit::kBytes) {
    std::snprintf(buf, sizeof buf, "%.0f/%.0f %s", done * scale, total * scale, what);
    counts += buf;
  } else {
    counts += HumanCount(static_cast<double>(done)) + "/" + HumanCount(static_cast<double>(total)) +
              " " + what;
  }
  if (elapsed_s >= kRateMinElapsedSeconds && done > 0) {
    const double rate = static_cast<double>(done) / elapsed_s;
    counts += "  ";
    if (unit == ProgressUnit::kBytes) {
      std::snprintf(buf, sizeof buf, "%.0f MB/s", rate * scale);
      counts += buf;
    } else {
      counts += HumanCount(rate) + " keys/s";
    }
    if (done < total) counts += "  ETA " + Duration(static_cast<double>(total - done) / rate);
  }

  std::string name(phase);
  if (name.size() < kPhaseColumn) name.resize(kPhaseColumn, ' ');
  std::string line = name;
  // The bar takes what is left, within bounds; below its minimum it is left out.
  const size_t fixed = line.size() + counts.size() + 3;  // "[" "] " around the bar
  if (width > fixed + kBarWidthMin) {
    const size_t bar = std::min(kBarWidthMax, width - fixed);
    const size_t filled = static_cast<size_t>(frac * static_cast<double>(bar));
    line += "[" + std::string(filled, '#') + std::string(bar - filled, '.') + "] ";
  }
  line += counts;
  if (line.size() > width) line.resize(width);
  return line;
}

Progress::Progress(int fd, bool enabled) : fd_(fd), enabled_(enabled) {
  if (enabled_) ticker_ = std::thread([this] { Tick(); });
}

Progress::~Progress() {
  Finish();
  if (ticker_.joinable()) {
    {
      MutexLock l(&mu_);
      stop_ = true;
    }
    cv_.SignalAll();
    ticker_.join();
  }
}

void Progress::Phase(std::string_view name, uint64_t total, ProgressUnit unit) {
  if (!enabled_) return;
  Finish();
  MutexLock l(&mu_);
  phase_ = std::string(name);
  total_ = total;
  unit_ = unit;
  done_.store(0, std::memory_order_relaxed);
  phase_start_ns_ = MonoNowNs();
  active_ = true;
}

void Progress::Finish() {
  if (!enabled_) return;
  MutexLock l(&mu_);
  if (!active_) return;
  Draw(/*final_line=*/true);
  active_ = false;
}

void Progress::Draw(bool final_line) {
  const double elapsed = static_cast<double>(MonoNowNs() - phase_start_ns_) / 1e9;
  const uint64_t done = done_.load(std::memory_order_relaxed);
  // "\r" + erase to the end of the line, so a shorter line leaves no tail behind.
  std::string out =
      "\r\x1b[K" + FormatProgress(phase_, done, total_, unit_, elapsed, TerminalWidth(fd_));
  if (final_line) out += "\n";
  // A failed write (terminal gone) only loses a progress line.
  const char* p = out.data();
  size_t n = out.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void Progress::Tick() {
  MutexLock l(&mu_);
  while (!stop_) {
    cv_.WaitFor(&mu_, kRedrawInterval);  // a spurious wakeup only draws early
    if (!stop_ && active_) Draw(/*final_line=*/false);
  }
}

}  // namespace kv::preload
