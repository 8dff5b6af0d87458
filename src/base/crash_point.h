// Named crash points (issue 15): places in the write paths where a TEST build can make the
// process die, to prove that a crash (kill -9) or a power loss exactly there loses nothing
// acknowledged and leaves nothing half done.
//
//   KV_CRASH_POINT("payment.before_write");
//
// costs one relaxed atomic load and a compare while nothing is armed, which is always the
// case in the production `keyvend`, `keyvend-preload` and `keyvend-backup`: nothing there
// calls Arm (so KEYVEND_CRASH_AT means nothing to them). Only test binaries (the test
// build's keyvend_fault_server, tests/fault_server_main.cc, whose `restore` subcommand runs
// keyvend-backup's restore) arm a point. The name must be
// one of kPoints below: an unknown name in KV_CRASH_POINT does not compile, and Arm refuses
// one with an error that lists the known ones.
//
// When the armed point is passed for the nth time, the process writes one line to stderr
//   crash point payment.before_write: pass 1, kill
// and dies: kKill raises SIGKILL at once (nothing flushed, no destructor, as kill -9 does);
// kPower first runs the power-cut hook (SetPowerCutHook: the fault server's FaultFs drops
// every byte not yet synced), then raises SIGKILL.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/status/status.h"

namespace kv::crash {

struct Point {
  const char* name;
  const char* where;  // the function and the statement the point precedes
};

// Every crash point, in one place (a test iterates them).
inline constexpr Point kPoints[] = {
    {"order.before_write", "Shop::CreateOrderCore: before the order's batch is written"},
    {"order.after_write", "FinishCreate: the order's batch is synced, before it is answered"},
    {"payment.keys_chosen", "Impl::AssignKeysOrFallBack: keys taken, batch not built"},
    {"payment.before_write", "Shop::ApplyPayment: the payment's batch built, not written"},
    {"payment.after_write", "Shop::ApplyPayment: the payment's batch synced, not answered"},
    {"backorder.before_write", "Impl::ServeBackorders: backorders served in a batch, not written"},
    {"backorder.after_write", "Impl::ServeBackorders: the serving batch synced"},
    {"cancel.before_write", "Shop::CancelOrder: the cancel's batch built, not written"},
    {"refund.before_write", "Shop::RefundOrder: the refund's batch built, not written"},
    {"expiry.before_write", "Shop::RunExpiry: an expiry batch built, not written"},
    {"import.parsed", "Shop::ImportKeys: the input parsed and checked, batch not built"},
    {"import.before_write", "Shop::ImportKeys: the import's batch built, not written"},
    {"import.after_write", "Shop::ImportKeys: the import's batch synced, not answered"},
    {"outbound.before_finish", "Shop::FinishOutboundMany: a round's settles built, not written"},
    {"outbound.after_finish", "Shop::FinishOutboundMany: the round's settles written and synced"},
    {"backup.before_create", "Shop::CreateBackup: the backup about to be taken"},
    {"backup.after_create", "Shop::CreateBackup: the backup taken, not answered"},
    {"restore.copied", "backup::Restore: RocksDB restored into the staging dir, not synced"},
    {"restore.before_rename", "RestoreDir::Commit: the copy synced, not renamed to the target"},
    {"restore.after_rename", "RestoreDir::Commit: renamed, parent synced, staging dir left"},
};
inline constexpr int kPointCount = static_cast<int>(sizeof(kPoints) / sizeof(kPoints[0]));

// The index of `name` in kPoints, or -1.
constexpr int IndexOf(std::string_view name) {
  for (int i = 0; i < kPointCount; ++i) {
    if (std::string_view(kPoints[i].name) == name) return i;
  }
  return -1;
}

enum class Mode : uint8_t {
  kKill,   // SIGKILL at once
  kPower,  // the power-cut hook, then SIGKILL
};

// Arms `spec`, "<point>" or "<point>:<n>" (die at the nth pass, 1 ≤ n ≤ 1,000,000; default
// 1), in `mode`. InvalidArgument (naming the known points) for an unknown point or a bad n;
// FailedPrecondition for kPower without a hook. Call before the threads that pass points
// start; test binaries only.
absl::Status Arm(std::string_view spec, Mode mode);

// Arms from KEYVEND_CRASH_AT (unset or empty: nothing armed, OK) and KEYVEND_CRASH_MODE
// (kill, the default, or power). The same errors as Arm, naming the variable.
absl::Status ArmFromEnv();

// What kPower runs before SIGKILL (on the thread that reached the point). Set it before
// Arm; test binaries only.
void SetPowerCutHook(std::function<void()> hook);

// The armed point's name, or "" (tests).
std::string_view Armed();

namespace internal {
inline std::atomic<int> armed{-1};
void Passed(int index);
}  // namespace internal

}  // namespace kv::crash

#define KV_CRASH_POINT(name)                                                                     \
  do {                                                                                           \
    constexpr int kv_crash_point_index_ = ::kv::crash::IndexOf(name);                            \
    static_assert(kv_crash_point_index_ >= 0, "unknown crash point (base/crash_point.h)");       \
    if (::kv::crash::internal::armed.load(std::memory_order_relaxed) == kv_crash_point_index_) { \
      ::kv::crash::internal::Passed(kv_crash_point_index_);                                      \
    }                                                                                            \
  } while (0)
