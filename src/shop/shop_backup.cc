// The shop's backups: online backups on request and on a schedule, one at a time, with
// run statistics for the metrics (backup/backup.h does the work).
#include "shop/shop_backup.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/crash_point.h"
#include "base/log.h"
#include "base/time_format.h"

namespace kv {

absl::Status ValidateBackupOptions(const ShopOptions& opts) {
  if (opts.backup_dir.empty()) return absl::OkStatus();
  absl::Status s = backup::CheckDirsApart(opts.backup_dir, "backup dir", opts.data_dir, "data dir");
  if (!s.ok()) return s;
  if (!opts.master_key_file.empty()) {
    s = backup::CheckDirsApart(opts.master_key_file, "master key file", opts.backup_dir,
                               "backup dir");
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("master key file ", opts.master_key_file, " must not be inside backup dir ",
                       opts.backup_dir, ": a backup must never carry its own key"));
    }
  }
  if (opts.backup_interval_seconds < 0) {
    return absl::InvalidArgumentError("backup_interval_seconds must be >= 0");
  }
  // Made at start: a permission problem shows now, not at the first backup, and the dir
  // can be listed (empty) before the first backup has run.
  return backup::EnsureBackupDir(opts.backup_dir);
}

void Shop::InitBackups() {
  backups_ = std::make_unique<Backups>();
  Backups* b = backups_.get();
  if (opts_.backup_dir.empty()) return;
  // The newest backup already in the dir is the last success, so a restart does not look
  // like "no backup ever" to an alert on the metric.
  // Not worth delaying the start for: a busy dir just leaves it unknown (0) until the
  // next success.
  auto list = backup::List(opts_.backup_dir, absl::ZeroDuration());
  if (list.ok() && !list->backups.empty()) {
    MutexLock l(&b->stats_mu);
    b->stats.last_success_unix_ms = list->backups.back().finished_unix_seconds * 1000;
  } else if (!list.ok() && !absl::IsNotFound(list.status())) {
    KV_LOG(kWarn, "cannot read backup dir at start: ", std::string(list.status().message()));
  }
  if (!opts_.start_workers || opts_.backup_interval_seconds <= 0) return;
  const auto interval = std::chrono::seconds(opts_.backup_interval_seconds);
  b->scheduler = std::thread([this, b, interval] {
    auto due = std::chrono::steady_clock::now() + interval;
    while (true) {
      {
        MutexLock l(&b->sched_mu);
        while (!b->sched_stop && std::chrono::steady_clock::now() < due) {
          b->sched_cv.WaitUntil(&b->sched_mu, due);
        }
        if (b->sched_stop) break;
      }
      absl::Status s = RunScheduledBackup();
      if (!s.ok()) KV_LOG(kWarn, "scheduled backup: ", std::string(s.message()));
      // Fixed rate; a round that overran its interval is followed by the next one at once
      // only once, not by a burst of catch-ups.
      due += interval;
      const auto now = std::chrono::steady_clock::now();
      if (due < now) due = now;
    }
  });
}

void Shop::ShutdownBackups() {
  if (backups_ == nullptr) return;
  StopBackups();
  {
    MutexLock l(&backups_->sched_mu);
    backups_->sched_stop = true;
  }
  backups_->sched_cv.SignalAll();
  if (backups_->scheduler.joinable()) backups_->scheduler.join();
}

void Shop::StopBackups() {
  if (backups_ != nullptr) backups_->stop.Stop();
}

BackupRunStats Shop::BackupStats() const {
  MutexLock l(&backups_->stats_mu);
  BackupRunStats s = backups_->stats;
  s.running = backups_->running.load();
  return s;
}

Result<backup::BackupInfo> Shop::CreateBackup(std::string_view source) {
  Backups* b = backups_.get();
  if (opts_.backup_dir.empty()) {
    return {Refusal::kInvalidState, "backups are off: set backup_dir in the shop's configuration"};
  }
  if (b->running.exchange(true)) {
    return {Refusal::kInvalidState,
            "a backup of this shop is already running; try again when it has finished"};
  }
  backup::CreateOptions o;
  o.source = std::string(source);
  o.clock = opts_.clock;
  o.stop = &b->stop;
  o.rate_limit_bytes_per_second = opts_.backup_rate_limit_bytes_per_second;
  o.background_priority = true;  // the shop is selling: it comes first
  const int64_t start_ns = opts_.clock->MonoNowNs();
  KV_CRASH_POINT("backup.before_create");
  auto r = backup::Create(*db_, opts_.backup_dir, o);
  const double seconds = static_cast<double>(opts_.clock->MonoNowNs() - start_ns) / 1e9;
  {
    MutexLock l(&b->stats_mu);
    b->stats.last_duration_seconds = seconds;
    if (r.ok()) {
      ++b->stats.succeeded;
      b->stats.last_success_unix_ms = UnixMs(opts_.clock->WallNow());
      b->stats.last_error.clear();
    } else {
      ++b->stats.failed;
      b->stats.last_failure_unix_ms = UnixMs(opts_.clock->WallNow());
      b->stats.last_error = std::string(r.status().message());
    }
  }
  b->running = false;
  if (!r.ok()) {
    KV_LOG(kWarn, "backup (", source, ") failed after ", absl::StrFormat("%.3f", seconds),
           " s: ", std::string(r.status().message()));
    if (absl::IsAborted(r.status())) {
      return {Refusal::kInvalidState, std::string(r.status().message())};
    }
    return r.status();
  }
  KV_CRASH_POINT("backup.after_create");
  KV_LOG(kInfo, "backup ", r->id, " (", source, ") created in ", opts_.backup_dir, ": ", r->files,
         " files, ", r->size_bytes, " bytes, ", absl::StrFormat("%.3f", seconds), " s");
  return *std::move(r);
}

Result<backup::BackupList> Shop::ListBackups() {
  if (opts_.backup_dir.empty()) {
    return {Refusal::kInvalidState, "backups are off: set backup_dir in the shop's configuration"};
  }
  auto r = backup::List(opts_.backup_dir);
  if (absl::IsNotFound(r.status())) return backup::BackupList{};
  if (absl::IsAborted(r.status())) {
    return {Refusal::kInvalidState, std::string(r.status().message())};
  }
  if (!r.ok()) return r.status();
  return *std::move(r);
}

absl::Status Shop::RunScheduledBackup() {
  auto r = CreateBackup("schedule");
  if (r.refused()) return absl::FailedPreconditionError(r.message());
  if (!r.ok()) return r.status();
  if (opts_.backup_keep == 0) return absl::OkStatus();
  auto purged = backup::Purge(opts_.backup_dir, opts_.backup_keep);
  if (!purged.ok()) {
    return absl::Status(purged.status().code(),
                        absl::StrCat("backup ", r->id, " created, but the purge failed: ",
                                     purged.status().message()));
  }
  if (!purged->deleted.empty()) {
    KV_LOG(kInfo, "purged ", purged->deleted.size(), " old backups, keeping ", purged->kept.size());
  }
  return absl::OkStatus();
}

}  // namespace kv
