#include "backup/engine.h"

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "rocksdb/env.h"
#include "storage/rocks_status.h"

namespace kv::backup {

rocksdb::BackupEngineOptions EngineOptions(const std::string& backup_dir,
                                           uint64_t rate_limit_bytes_per_second) {
  rocksdb::BackupEngineOptions o(backup_dir);
  o.backup_env = nullptr;  // the DB's Env (the default one)
  o.share_table_files = true;
  o.share_files_with_checksum = true;
  o.share_files_with_checksum_naming = static_cast<rocksdb::BackupEngineOptions::ShareFilesNaming>(
      rocksdb::BackupEngineOptions::kUseDbSessionId |
      rocksdb::BackupEngineOptions::kFlagIncludeFileSize);
  o.info_log = nullptr;
  o.sync = true;  // a backup (and a restore) that returned OK survives a power loss
  o.destroy_old_data = false;
  o.backup_log_files = true;  // the WAL is part of the consistent copy (ARCHITECTURE.md)
  // A backup's writes compete with the shop's WAL syncs for the disk; the limit (the
  // server's backup_rate_limit_mb) is what keeps an online backup from slowing sales
  // (ARCHITECTURE.md "Backups", tools/bench-backup.sh).
  o.backup_rate_limit = rate_limit_bytes_per_second;
  o.restore_rate_limit = 0;
  o.max_background_operations = 1;  // two cores: one copying thread beside the shop
  o.schema_version = 1;
  return o;
}

absl::Status RequireDir(const std::string& dir, const char* what) {
  struct stat st;
  if (dir.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " must be set"));
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no ", what, " ", dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<rocksdb::BackupEngine>> OpenWritable(const std::string& dir,
                                                                    uint64_t rate_limit) {
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::IOStatus s =
      rocksdb::BackupEngine::Open(EngineOptions(dir, rate_limit), rocksdb::Env::Default(), &raw);
  if (!s.ok()) return storage::FromRocks(s, absl::StrCat("opening backup dir ", dir));
  return std::unique_ptr<rocksdb::BackupEngine>(raw);
}

absl::StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenReadOnly(
    const std::string& dir) {
  absl::Status exists = RequireDir(dir, "backup dir");
  if (!exists.ok()) return exists;
  rocksdb::BackupEngineReadOnly* raw = nullptr;
  rocksdb::IOStatus s =
      rocksdb::BackupEngineReadOnly::Open(EngineOptions(dir, 0), rocksdb::Env::Default(), &raw);
  if (!s.ok()) return storage::FromRocks(s, absl::StrCat("opening backup dir ", dir));
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(raw);
}

absl::StatusOr<ReadSession> OpenForReading(const std::string& dir, absl::Duration lock_wait) {
  KV_RETURN_IF_ERROR(RequireDir(dir, "backup dir"));
  auto lock = DirLock::Acquire(dir, BackupOp::kRead, lock_wait);
  if (!lock.ok()) return lock.status();
  auto engine = OpenReadOnly(dir);
  if (!engine.ok()) return engine.status();
  return ReadSession{*std::move(lock), *std::move(engine)};
}

BackupInfo FromEngineInfo(const rocksdb::BackupInfo& info) {
  BackupInfo out;
  out.id = info.backup_id;
  out.finished_unix_seconds = info.timestamp;
  out.size_bytes = info.size;
  out.files = info.number_files;
  auto meta = DecodeMetadata(info.app_metadata);
  if (meta.ok()) {
    out.metadata = *std::move(meta);
  } else {
    out.metadata_error = std::string(meta.status().message());
  }
  return out;
}

}  // namespace kv::backup
