// Verify: every file of a backup read back against the crc32c and size recorded when it
// was copied (RocksDB's VerifyBackup with verify_with_checksum), plus keyvend's metadata.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "backup/backup.h"
#include "backup/dir_lock.h"
#include "backup/engine.h"
#include "base/status_macros.h"
#include "storage/rocks_status.h"

namespace kv::backup {
namespace {

// RocksDB says which file failed only in its message ("File corrupted: Checksum mismatch
// for /b/shared_checksum/000012_s..._1234.sst: ...", "... File size mismatch for ...", or
// NotFound with the path). The file is the backup's own file whose name the message holds
// (the longest such name, so "private/3/MANIFEST-000005" wins over a shorter suffix).
VerifyProblem Describe(BackupId id, const rocksdb::IOStatus& s,
                       const std::vector<rocksdb::BackupFileInfo>& files) {
  VerifyProblem p;
  p.id = id;
  p.detail = s.ToString();
  for (const rocksdb::BackupFileInfo& f : files) {
    if (f.relative_filename.size() > p.file.size() &&
        absl::StrContains(p.detail, f.relative_filename)) {
      p.file = f.relative_filename;
    }
  }
  const std::string lower = absl::AsciiStrToLower(p.detail);
  if (absl::StrContains(lower, "checksum mismatch")) {
    p.what = "checksum mismatch";
  } else if (absl::StrContains(lower, "size mismatch")) {
    p.what = "size mismatch";
  } else if (s.IsNotFound() || s.IsPathNotFound()) {
    p.what = "missing";
  } else {
    p.what = "unreadable";
  }
  return p;
}

}  // namespace

absl::StatusOr<VerifyReport> Verify(const std::string& backup_dir, std::optional<BackupId> id,
                                    const std::string* key_check, absl::Duration lock_wait) {
  auto session = OpenForReading(backup_dir, lock_wait);
  if (!session.ok()) return session.status();
  rocksdb::BackupEngineReadOnly* engine = session->engine.get();

  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos, /*include_file_details=*/true);
  std::sort(infos.begin(), infos.end(),
            [](const auto& a, const auto& b) { return a.backup_id < b.backup_id; });
  std::vector<BackupId> unreadable;
  engine->GetCorruptedBackups(&unreadable);
  std::sort(unreadable.begin(), unreadable.end());

  VerifyReport report;
  for (BackupId u : unreadable) {
    if (id.has_value() && *id != u) continue;
    report.problems.push_back(VerifyProblem{u, absl::StrCat("meta/", u),
                                            "backup description unreadable",
                                            "RocksDB could not read this backup's meta file"});
  }
  bool found = !report.problems.empty();
  for (const rocksdb::BackupInfo& info : infos) {
    if (id.has_value() && *id != info.backup_id) continue;
    found = true;
    const size_t problems_before = report.problems.size();
    const BackupInfo mine = FromEngineInfo(info);
    if (!mine.metadata.has_value()) {
      report.problems.push_back(VerifyProblem{info.backup_id, absl::StrCat("meta/", info.backup_id),
                                              "keyvend metadata unreadable", mine.metadata_error});
    } else if (key_check != nullptr && mine.metadata->key_check != *key_check) {
      report.problems.push_back(VerifyProblem{
          info.backup_id, "", "wrong master key",
          "the master key given is not the one this backup's shop uses (key check differs)"});
    }
    const rocksdb::IOStatus s = engine->VerifyBackup(info.backup_id,
                                                     /*verify_with_checksum=*/true);
    if (!s.ok()) report.problems.push_back(Describe(info.backup_id, s, info.file_details));
    if (report.problems.size() == problems_before) report.verified.push_back(info.backup_id);
  }
  if (id.has_value() && !found) {
    return absl::NotFoundError(absl::StrCat("no backup ", *id, " in ", backup_dir));
  }
  return report;
}

}  // namespace kv::backup
