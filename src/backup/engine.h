// Private to src/backup: opening RocksDB's BackupEngine with keyvend's options, and turning
// its answers into keyvend's types.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backup/backup.h"
#include "backup/dir_lock.h"
#include "rocksdb/utilities/backup_engine.h"

namespace kv::backup {

// The options every keyvend engine uses (they must be the same for every engine on a dir):
// shared table files named by checksum and DB session (incremental, safe across diverging
// histories), every copied file synced, one copying thread, info log off.
rocksdb::BackupEngineOptions EngineOptions(const std::string& backup_dir,
                                           uint64_t rate_limit_bytes_per_second);

// Opens a writable engine (creates the dir layout when missing).
absl::StatusOr<std::unique_ptr<rocksdb::BackupEngine>> OpenWritable(const std::string& dir,
                                                                    uint64_t rate_limit);
// Opens a read-only engine on an existing dir: NotFound when `dir` is not a directory.
absl::StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenReadOnly(const std::string& dir);

// What list, verify and restore read through: the dir's read lock (waiting up to
// `lock_wait` for a purge) and a read-only engine, released together. Errors: NotFound (no
// such dir), Aborted (busy), RocksDB's errors.
struct ReadSession {
  DirLock lock;
  std::unique_ptr<rocksdb::BackupEngineReadOnly> engine;
};
absl::StatusOr<ReadSession> OpenForReading(const std::string& dir, absl::Duration lock_wait);

// keyvend's view of RocksDB's info (metadata decoded).
BackupInfo FromEngineInfo(const rocksdb::BackupInfo& info);

// NotFound when `dir` is not an existing directory.
[[nodiscard]] absl::Status RequireDir(const std::string& dir, const char* what);

}  // namespace kv::backup
