// Private to the shop module: the state behind Shop's backup methods (shop_backup.cc) —
// the one-at-a-time gate, the stop token, the run statistics and the scheduler thread.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "backup/backup.h"
#include "base/mutex.h"
#include "shop/shop.h"

namespace kv {

struct Shop::Backups {
  backup::StopToken stop;
  // True while a CreateBackup of this shop runs (the in-process gate; other processes are
  // kept out by backup/dir_lock.h).
  std::atomic<bool> running{false};
  mutable Mutex stats_mu;
  BackupRunStats stats ABSL_GUARDED_BY(stats_mu);

  // The scheduler thread (only with backup_interval_seconds > 0 and start_workers).
  Mutex sched_mu;
  CondVar sched_cv;
  bool sched_stop ABSL_GUARDED_BY(sched_mu) = false;
  std::thread scheduler;
};

// The checks Shop::Open makes before opening anything when backup_dir is set: the backup
// dir and the data dir are apart, and the master key file is not inside the backup dir (a
// backup must never carry its own key). InvalidArgument naming both paths otherwise. Then
// it creates the backup dir if missing (Unavailable when it cannot).
[[nodiscard]] absl::Status ValidateBackupOptions(const ShopOptions& opts);

}  // namespace kv
