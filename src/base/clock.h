// Clock: the only source of time in keyvend. Everything that expires, limits or retries
// takes a Clock* so tests move a FakeClock instead of sleeping.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace kv {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time (UTC). For timestamps shown to people and signature windows; it may step.
  virtual absl::Time WallNow() const = 0;
  // Monotonic nanoseconds since an arbitrary origin; never goes back. For timers.
  virtual int64_t MonoNowNs() const = 0;
};

// The process clock: absl::Now() and CLOCK_MONOTONIC. Thread-safe, stateless.
class RealClock final : public Clock {
 public:
  absl::Time WallNow() const override;
  int64_t MonoNowNs() const override;
  // A shared instance; lives for the whole process.
  static RealClock* Get();
};

// A clock tests drive by hand. Thread-safe. Wall and monotonic time move independently so
// a test can step the wall clock without moving timers (and the other way round).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time wall_start = absl::FromUnixSeconds(1795000000),
                     int64_t mono_start_ns = 1'000'000'000);
  absl::Time WallNow() const override;
  int64_t MonoNowNs() const override;
  // Moves both clocks forward by d (d >= 0).
  void Advance(absl::Duration d);
  // Steps only the wall clock (either direction); monotonic time is unchanged.
  void StepWall(absl::Duration d);

 private:
  std::atomic<int64_t> wall_ns_;
  std::atomic<int64_t> mono_ns_;
};

}  // namespace kv
