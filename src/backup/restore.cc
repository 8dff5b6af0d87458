// Restore: a backup into a new, empty data dir, refusing a wrong master key first.
#include <errno.h>
#include <openssl/crypto.h>
#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "backup/backup.h"
#include "backup/dir_lock.h"
#include "backup/engine.h"
#include "base/hardening.h"
#include "base/status_macros.h"
#include "storage/rocks_status.h"

namespace kv::backup {
namespace {

namespace fs = std::filesystem;

// OK with *exists when `dir` is absent or an empty directory; FailedPrecondition otherwise.
absl::Status RequireEmptyOrAbsent(const std::string& dir, bool* exists) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(dir, ec);
  *exists = fs::exists(st);
  if (!*exists) return absl::OkStatus();
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to restore into ", dir, ": it exists and is not a directory"));
  }
  if (!fs::is_empty(dir, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to restore into ", dir,
        ": it is not empty (restore only into a new or empty directory; nothing was written)"));
  }
  return absl::OkStatus();
}

// Removes what a failed restore wrote: every entry of `dir` (empty before), and `dir`
// itself when the restore created it.
void Clean(const std::string& dir, bool created) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    fs::remove_all(e.path(), ec);
  }
  if (created) fs::remove(dir, ec);
}

}  // namespace

absl::StatusOr<BackupInfo> Restore(const std::string& backup_dir, std::optional<BackupId> id,
                                   const std::string& to_dir, const std::string& key_check,
                                   absl::Duration lock_wait) {
  if (key_check.size() != 32) {
    return absl::InvalidArgumentError("Restore: key_check must be the 32-byte key-check value");
  }
  KV_RETURN_IF_ERROR(CheckDirsApart(to_dir, "restore target", backup_dir, "backup dir"));
  bool exists = false;
  KV_RETURN_IF_ERROR(RequireEmptyOrAbsent(to_dir, &exists));
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

  if (!exists && ::mkdir(to_dir.c_str(), 0700) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", to_dir));
  }
  if (exists) {
    // An empty dir made by the operator: private before anything is written into it.
    auto changed = MakeDirPrivate(to_dir);
    if (!changed.ok()) return changed.status();
  }
  const rocksdb::IOStatus rs =
      engine->RestoreDBFromBackup(rocksdb::RestoreOptions(), info.id, to_dir, to_dir);
  if (!rs.ok()) {
    // The engine's copying thread may still be finishing files queued before the failure:
    // destroying the engine joins it, so nothing is written after the cleanup.
    session->engine.reset();
    Clean(to_dir, !exists);
    return storage::FromRocks(
        rs, absl::StrCat("restoring backup ", info.id, " to ", to_dir, " (nothing kept)"));
  }
  return info;
}

}  // namespace kv::backup
