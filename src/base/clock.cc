#include "base/clock.h"

#include <time.h>

#include <cassert>

#include "absl/time/clock.h"

namespace kv {

absl::Time RealClock::WallNow() const { return absl::Now(); }

int64_t RealClock::MonoNowNs() const {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

RealClock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

FakeClock::FakeClock(absl::Time wall_start, int64_t mono_start_ns)
    : wall_ns_(absl::ToUnixNanos(wall_start)), mono_ns_(mono_start_ns) {}

absl::Time FakeClock::WallNow() const { return absl::FromUnixNanos(wall_ns_.load()); }

int64_t FakeClock::MonoNowNs() const { return mono_ns_.load(); }

void FakeClock::Advance(absl::Duration d) {
  assert(d >= absl::ZeroDuration());
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  wall_ns_.fetch_add(ns);
  mono_ns_.fetch_add(ns);
}

void FakeClock::StepWall(absl::Duration d) { wall_ns_.fetch_add(absl::ToInt64Nanoseconds(d)); }

}  // namespace kv
