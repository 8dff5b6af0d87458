// Progress: keyvend-preload's progress bar. On a terminal it redraws one line on standard
// error about ten times a second — phase, bar, percentage, count, rate and ETA; on a pipe or
// a file it prints nothing at all (a log must not fill with carriage returns).
//
// A run is a sequence of phases (reading, hashing, deduplicating, writing, ingesting), each
// with its own total; the bar, rate and ETA are those of the current phase.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

#include "base/mutex.h"

namespace kv::preload {

enum class ProgressUnit { kKeys, kBytes };

// One progress line, without "\r" or escape codes, at most `width` columns (the phase name
// and the counts are kept; the bar shrinks first, then disappears). `elapsed_s` is the time
// since the phase began; the rate and ETA are omitted while it is below 0.2 s or nothing is
// done (no meaningless first numbers). Pure; for tests and for Progress itself.
//   "sealing       [#########...........]  45%  4.50M/10.0M keys  812k keys/s  ETA 7s"
std::string FormatProgress(std::string_view phase, uint64_t done, uint64_t total, ProgressUnit unit,
                           double elapsed_s, size_t width);

// "950", "12.3k", "4.50M", "1.20G": a count in three significant digits.
std::string HumanCount(double n);

class Progress {
 public:
  // Draws on file descriptor `fd` when `enabled` (the caller passes isatty(fd)); a disabled
  // Progress accepts every call and does nothing, so callers never test for it.
  Progress(int fd, bool enabled);
  // Ends the current phase (its final line stays on screen).
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Ends the current phase, if any, and starts `name` with `total` units to do.
  // Call from one thread (the run's driver).
  void Phase(std::string_view name, uint64_t total, ProgressUnit unit);
  // Adds finished units to the current phase. Thread-safe and lock-free (worker threads call
  // it per chunk of work).
  void Add(uint64_t n) { done_.fetch_add(n, std::memory_order_relaxed); }
  // Ends the current phase: draws its final state followed by a newline.
  void Finish();

  bool enabled() const { return enabled_; }

 private:
  void Draw(bool final_line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Tick();

  const int fd_;
  const bool enabled_;
  std::atomic<uint64_t> done_{0};
  Mutex mu_;  // guards the phase fields, stop_, and drawing
  CondVar cv_;
  std::string phase_ ABSL_GUARDED_BY(mu_);
  uint64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  ProgressUnit unit_ ABSL_GUARDED_BY(mu_) = ProgressUnit::kKeys;
  int64_t phase_start_ns_ ABSL_GUARDED_BY(mu_) = 0;
  bool active_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

}  // namespace kv::preload
