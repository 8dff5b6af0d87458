#include "storage/disk_space.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace kv::storage {
namespace {

// The refusal is recognised by its message's start: the group committer hands each member a
// fresh Status of the same code and message (no payloads; group_commit.cc says why).
constexpr absl::string_view kRefusalPrefix = "disk almost full: ";

}  // namespace

DiskSpaceGuard::DiskSpaceGuard(std::string dir, uint64_t min_free_bytes,
                               std::chrono::milliseconds interval)
    : dir_(std::move(dir)), min_free_(min_free_bytes) {
  Read();
  thread_ = std::thread([this, interval] { Loop(interval); });
}

DiskSpaceGuard::~DiskSpaceGuard() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  thread_.join();
}

void DiskSpaceGuard::Read() {
  struct statvfs st {};
  if (statvfs(dir_.c_str(), &st) != 0) {
    free_.store(-1, std::memory_order_release);
    low_.store(false, std::memory_order_release);
    return;
  }
  const uint64_t free = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  free_.store(static_cast<int64_t>(free), std::memory_order_release);
  const bool was_low = low_.load(std::memory_order_acquire);
  const bool now_low = free < min_free_;
  low_.store(now_low, std::memory_order_release);
  if (now_low && !was_low) {
    KV_LOG(kError, "storage: the data dir's file system has ", free >> 20, " MiB free (< ",
           min_free_ >> 20, " MiB, min_free_disk_mb): writes answer 503 until space returns");
  } else if (!now_low && was_low) {
    KV_LOG(kWarn, "storage: ", free >> 20, " MiB free again: writes resume");
  }
}

void DiskSpaceGuard::Loop(std::chrono::milliseconds interval) {
  MutexLock l(&mu_);
  while (!stopping_) {
    cv_.WaitFor(&mu_, interval);
    if (stopping_) break;
    Read();  // statvfs only; the lock guards nothing it touches but stopping_
  }
}

absl::Status DiskSpaceGuard::Check() const {
  if (!low()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(kRefusalPrefix, std::max<int64_t>(0, free_bytes()) >> 20, " MiB free, ",
                   min_free_ >> 20, " MiB kept free (min_free_disk_mb)"));
}

bool DiskSpaceGuard::IsRefusal(const absl::Status& s) {
  return absl::IsUnavailable(s) && absl::StartsWith(s.message(), kRefusalPrefix);
}

}  // namespace kv::storage
