// Advisory locks that keep keyvend's operations on one backup dir from interleaving in the
// ways RocksDB's BackupEngine leaves unspecified. Every keyvend operation opens its own
// BackupEngine, so a running shop (API and scheduler) and keyvend-backup may act on one dir
// at the same time; BackupEngine allows, across engine objects on one dir, reads next to an
// append (the reader sees the dir as it was when it opened), but nothing next to a delete,
// and no two appends or deletes at once.
//
//   operation                         append lock    delete lock
//   read (list, verify, restore)      -              shared
//   append (create)                   exclusive      -
//   delete (purge)                    exclusive      exclusive
//
// The locks are flock(2) locks on two files in the backup dir (kAppendLockName,
// kDeleteLockName; BackupEngine ignores files outside its own subdirectories). flock locks
// belong to an open file description, so they also exclude each other within one process,
// and the kernel drops them when the process dies: a crash never leaves a dir locked.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kv::backup {

enum class BackupOp { kRead, kAppend, kDelete };

inline constexpr char kAppendLockName[] = "keyvend-append.lock";
inline constexpr char kDeleteLockName[] = "keyvend-delete.lock";

class DirLock {
 public:
  // Takes the locks `op` needs on the existing directory `dir`, waiting up to `wait` for
  // conflicting holders to let go (polling every 10 ms; 0 = not at all).
  // Outcomes:
  //  - OK: held until the DirLock is destroyed (or moved from and its moved-to destroyed);
  //  - Aborted("backup dir D is busy: another keyvend operation is ..."): a conflicting
  //    operation still held one of them after `wait`; nothing is held;
  //  - the errno-mapped error of creating or opening a lock file (a kRead in a dir it may
  //    not write goes on without locks when the lock file cannot be created: a dir nobody
  //    can write has no writer to exclude).
  // Thread-safe.
  static absl::StatusOr<DirLock> Acquire(const std::string& dir, BackupOp op,
                                         absl::Duration wait = absl::ZeroDuration());

  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

 private:
  DirLock() = default;
  void Release();
  int append_fd_ = -1;
  int delete_fd_ = -1;
};

}  // namespace kv::backup
