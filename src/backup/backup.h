// Backups of a keyvend data dir with RocksDB's BackupEngine: incremental (table files are
// shared between backups and copied once), every file checksummed (crc32c, recorded when
// copied and checked again by Verify and by Restore), each backup described by keyvend's
// metadata (backup/metadata.h). ARCHITECTURE.md ("Backups") says why an online backup is
// consistent and what it holds relative to acknowledged orders.
//
// A backup dir holds RocksDB's layout (meta/<id>, private/<id>/, shared_checksum/) plus
// keyvend's two lock files (backup/dir_lock.h). Operations on one dir exclude each other
// as dir_lock.h says. List, Verify, Restore and Purge wait up to kShortOpLockWait for a
// conflicting operation that ends by itself (a purge, a listing); Create never waits.
// Whoever still finds the dir busy gets Aborted("... is busy ...") and changes nothing. The master
// key is never in a backup; the metadata carries only the data dir's key-check value, so Restore
// can refuse a wrong key before it copies anything.
//
// Every function is thread-safe; each opens and closes its own BackupEngine.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backup/metadata.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "storage/db.h"

namespace rocksdb {
class BackupEngine;
}

namespace kv::backup {

using BackupId = uint32_t;

// How long List, Verify, Restore and Purge wait by default (their lock_wait) for a
// conflicting holder of the dir's locks (backup/dir_lock.h) before answering Aborted.
inline constexpr absl::Duration kShortOpLockWait = absl::Seconds(10);

struct BackupInfo {
  BackupId id = 0;
  int64_t finished_unix_seconds = 0;  // RocksDB's timestamp: when the backup was complete
  uint64_t size_bytes = 0;            // all files this backup needs, shared ones included
  uint32_t files = 0;
  // keyvend's description; nullopt when the backup's app metadata is not keyvend's (then
  // metadata_error says why).
  std::optional<BackupMetadata> metadata;
  std::string metadata_error;
};

// Lets another thread stop a Create in progress (shutdown). Thread-safe.
class StopToken {
 public:
  // A Create running with this token returns Cancelled soon (its partial files are removed
  // by the next Create on that dir); every later Create with it returns Cancelled at once.
  void Stop();
  bool stopped() const;

 private:
  friend class EngineScope;
  mutable Mutex mu_;
  rocksdb::BackupEngine* engine_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

struct CreateOptions {
  // Metadata "source": "offline", "api" or "schedule". Default: "offline".
  std::string source = "offline";
  Clock* clock = RealClock::Get();  // created_unix_ms; not owned
  StopToken* stop = nullptr;        // optional; not owned
  // Bytes per second the copy may write; 0 = as fast as it can. Default: 0.
  uint64_t rate_limit_bytes_per_second = 0;
  // Run the backup's own work (the census, capturing the files, RocksDB's copying thread)
  // at the lowest CPU priority (nice 19), so that a busy shop keeps its CPU and the backup
  // takes what the shop leaves. The memtable flush at the start still runs in RocksDB's
  // flush thread. For online backups; a stopped shop has nothing to spare CPU for.
  // Default: false.
  bool background_priority = false;
};

// Takes a backup of the open database `db` into `backup_dir` (created, mode 0700, if
// missing) while writes go on: memtables are flushed first, then the live table files, the
// MANIFEST (trimmed to its size at that moment) and the write-ahead log (the last file
// trimmed likewise) are copied with file deletions held off. The result is the database
// as of one point in time, which includes every write acknowledged before the call.
// Outcomes:
//  - the new backup's info;
//  - InvalidArgument: backup_dir empty, or it and the data dir overlap;
//  - Aborted: the dir is busy (dir_lock.h);
//  - Cancelled: the StopToken was stopped;
//  - otherwise the RocksDB error (copying, flushing, disk full ...) with context; files of a
//    failed backup are garbage-collected before returning (best effort).
absl::StatusOr<BackupInfo> Create(const storage::Db& db, const std::string& backup_dir,
                                  const CreateOptions& opts);

struct BackupList {
  std::vector<BackupInfo> backups;   // by id, oldest first
  std::vector<BackupId> unreadable;  // backups whose meta file RocksDB cannot read
  uint64_t bytes_on_disk = 0;        // every file of every backup, shared ones once
};

// Lists the backups. Errors: NotFound (no such dir), Aborted (busy), RocksDB's errors.
absl::StatusOr<BackupList> List(const std::string& backup_dir,
                                absl::Duration lock_wait = kShortOpLockWait);

struct VerifyProblem {
  BackupId id = 0;
  std::string file;    // relative to the backup dir ("shared_checksum/...sst"), or "" if unknown
  std::string what;    // "checksum mismatch", "size mismatch", "missing", ...
  std::string detail;  // RocksDB's message (paths and checksums; never record contents)
};

struct [[nodiscard]] VerifyReport {
  std::vector<BackupId> verified;  // every file read back and its checksum matched
  std::vector<VerifyProblem> problems;
  bool ok() const { return problems.empty(); }
};

// Reads every file of backup `id` (or of every backup) and compares its crc32c and size with
// what was recorded when it was copied; checks keyvend's metadata decodes and, when
// `key_check` is given, that it is the backup's (a wrong master key is a problem too).
// RocksDB stops at a backup's first bad file, so each backup names at most one file, but
// every backup is checked (a shared file that went bad is named under each backup that
// needs it). Errors only when the check could not run: NotFound (no dir, no backup `id`),
// Aborted (busy), RocksDB's errors opening the dir.
absl::StatusOr<VerifyReport> Verify(const std::string& backup_dir, std::optional<BackupId> id,
                                    const std::string* key_check,
                                    absl::Duration lock_wait = kShortOpLockWait);

// Restores backup `id` (or the latest) into `to_dir`, which must not exist or be an empty
// directory (a symlink is refused); its parent must exist. The copy is made in a staging dir
// beside it, synced, and renamed to `to_dir` (backup/restore_dir.h): `to_dir` is never half
// filled — a crash leaves it as it was, or complete. Staging dirs of dead restores into
// `to_dir` are removed first (logged), whatever the outcome. Before copying, the backup's
// metadata must decode and its key check equal `key_check` (the value of the master key the
// restored shop will use). Every file's checksum is checked while it is copied. Outcomes:
//  - the restored backup's info (`to_dir` is then a 0700 dir holding the database);
//  - FailedPrecondition: to_dir is not empty, is not a directory, or is a mount point; the
//    backup is not a keyvend backup;
//  - InvalidArgument: to_dir and backup_dir overlap; to_dir names no directory ("/", "..");
//  - PermissionDenied: wrong master key (nothing written);
//  - NotFound: no such dir or backup;  Aborted: busy;
//  - DataLoss: a file failed its checksum (message names it);
//  - other RocksDB and file system errors. On any failure the staging dir is removed and
//    to_dir is as it was — except when only the final fsync of the parent failed: the
//    message then says the copy is in place.
absl::StatusOr<BackupInfo> Restore(const std::string& backup_dir, std::optional<BackupId> id,
                                   const std::string& to_dir, const std::string& key_check,
                                   absl::Duration lock_wait = kShortOpLockWait);

struct [[nodiscard]] PurgeResult {
  std::vector<BackupId> deleted;
  std::vector<BackupId> kept;
};

// Deletes all but the newest `keep` backups (keep >= 1) and the files only they used.
// Errors: InvalidArgument (keep 0), NotFound (no dir), Aborted (busy), RocksDB's errors.
absl::StatusOr<PurgeResult> Purge(const std::string& backup_dir, uint32_t keep,
                                  absl::Duration lock_wait = kShortOpLockWait);

// Creates the backup dir (parents as needed; the dir itself 0700: a backup holds buyers'
// contacts and sealed keys) unless it exists; an existing one that is a backup dir or empty
// is made private (base/hardening.h MakeDirPrivate, logged when something changed).
// Errors: Unavailable naming what could not be created; FailedPrecondition when an
// existing dir open to group/others cannot be made private.
[[nodiscard]] absl::Status EnsureBackupDir(const std::string& dir);

// OK when neither of the two directories lies inside the other (component-wise, after
// resolving symlinks of existing parts); InvalidArgument naming both otherwise. `what_a`
// and `what_b` name them in the message ("backup dir", "data dir").
[[nodiscard]] absl::Status CheckDirsApart(const std::string& a, const char* what_a,
                                          const std::string& b, const char* what_b);

}  // namespace kv::backup
