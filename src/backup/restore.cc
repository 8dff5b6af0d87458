// Restore: a backup into a new, empty data dir, refusing a wrong master key first; staged
// beside the target and renamed into place (backup/restore_dir.h).
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "backup/backup.h"
#include "backup/dir_lock.h"
#include "backup/engine.h"
#include "backup/restore_dir.h"
#include "base/crash_point.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "storage/rocks_status.h"

namespace kv::backup {
namespace {

namespace fs = std::filesystem;

// OK when `dir` is absent or an empty directory; FailedPrecondition otherwise.
absl::Status RequireEmptyOrAbsent(const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(dir, ec);
  if (!fs::exists(st)) return absl::OkStatus();
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to restore into ", dir, ": it exists and is not a directory"));
  }
  if (!fs::is_empty(dir, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to restore into ", dir,
        ": it is not empty (restore only into a new or empty directory; nothing was written)"));
  }
  // The copy is renamed onto it from its parent: a mount point cannot be replaced so.
  struct stat self {
  }, parent{};
  const std::string up =
      fs::path(dir).has_parent_path() ? fs::path(dir).parent_path().string() : std::string(".");
  if (::stat(dir.c_str(), &self) == 0 && ::stat(up.c_str(), &parent) == 0 &&
      self.st_dev != parent.st_dev) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to restore into ", dir,
        ": it is a mount point (the restore is renamed into place from its parent; restore "
        "into a new directory inside it; nothing was written)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BackupInfo> Restore(const std::string& backup_dir, std::optional<BackupId> id,
                                   const std::string& to_dir, const std::string& key_check,
                                   absl::Duration lock_wait) {
  if (key_check.size() != 32) {
    return absl::InvalidArgumentError("Restore: key_check must be the 32-byte key-check value");
  }
  KV_RETURN_IF_ERROR(CheckDirsApart(to_dir, "restore target", backup_dir, "backup dir"));
  // Staging dirs of restores into to_dir that died (backup/restore_dir.h), before the
  // target is judged: a crash after the rename leaves a complete target and such a dir.
  auto leftovers = RemoveLeftovers(to_dir);
  if (!leftovers.ok()) return leftovers.status();
  for (const std::string& d : *leftovers) {
    KV_LOG(kWarn, "removed ", d, ", the staging dir of an interrupted restore");
  }
  KV_RETURN_IF_ERROR(RequireEmptyOrAbsent(to_dir));
  auto session = OpenForReading(backup_dir, lock_wait);
  if (!session.ok()) return session.status();
  rocksdb::BackupEngineReadOnly* engine = session->engine.get();

  rocksdb::BackupInfo raw;
  rocksdb::Status s =
      id.has_value() ? engine->GetBackupInfo(*id, &raw) : engine->GetLatestBackupInfo(&raw);
  if (s.IsNotFound()) {
    return absl::NotFoundError(id.has_value() ? absl::StrCat("no backup ", *id, " in ", backup_dir)
                                              : absl::StrCat("no backups in ", backup_dir));
  }
  if (!s.ok()) return storage::FromRocks(s, absl::StrCat("reading backups in ", backup_dir));
  const BackupInfo info = FromEngineInfo(raw);
  if (!info.metadata.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", info.id, " is not a keyvend backup (", info.metadata_error,
                     "); nothing was written"));
  }
  if (CRYPTO_memcmp(info.metadata->key_check.data(), key_check.data(), key_check.size()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "wrong master key for backup ", info.id,
        ": the key file does not match the key this shop was created with; refusing to "
        "restore (nothing was written)"));
  }

  // Into a staging dir beside the target; the target appears whole by one rename, or not.
  auto staging = RestoreDir::Begin(to_dir);
  if (!staging.ok()) return staging.status();
  const std::string db_dir = staging->db_dir();
  const rocksdb::IOStatus rs =
      engine->RestoreDBFromBackup(rocksdb::RestoreOptions(), info.id, db_dir, db_dir);
  // The engine's copying thread may still be finishing files queued before a failure:
  // destroying the engine joins it, so nothing is written into the staging dir after this.
  session->engine.reset();
  if (!rs.ok()) {
    return storage::FromRocks(
        rs, absl::StrCat("restoring backup ", info.id, " to ", to_dir, " (nothing kept)"));
  }
  KV_CRASH_POINT("restore.copied");
  if (absl::Status s = staging->Commit(); !s.ok()) return s;
  return info;
}

}  // namespace kv::backup
