// Create, List and Purge; the StopToken; CheckDirsApart. Verify and Restore have their own
// files.
#include "backup/backup.h"

#include <errno.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backup/dir_lock.h"
#include "backup/engine.h"
#include "base/hardening.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "storage/rocks_status.h"

namespace kv::backup {
namespace {

namespace fs = std::filesystem;

// Component-wise containment of two absolute, lexically normal paths.
bool IsInside(const fs::path& p, const fs::path& dir) {
  auto pi = p.begin(), di = dir.begin();
  for (; di != dir.end(); ++di, ++pi) {
    if (di->empty()) continue;  // a trailing '/'
    if (pi == p.end() || *pi != *di) return false;
  }
  return true;
}

// The views of a path that containment is checked on: lexical, and resolved through the
// symlinks of its existing prefix.
std::vector<fs::path> Views(const std::string& path) {
  std::error_code ec;
  std::vector<fs::path> out;
  const fs::path abs = fs::absolute(path, ec).lexically_normal();
  if (!ec) out.push_back(abs);
  const fs::path real = fs::weakly_canonical(abs, ec);
  if (!ec) out.push_back(real);
  return out;
}

}  // namespace

// Registers the engine of a running Create with its StopToken for the Create's duration.
class EngineScope {
 public:
  EngineScope(StopToken* token, rocksdb::BackupEngine* engine) : token_(token) {
    if (token_ == nullptr) return;
    MutexLock l(&token_->mu_);
    stopped_ = token_->stopped_;
    if (!stopped_) token_->engine_ = engine;
  }
  ~EngineScope() {
    if (token_ == nullptr) return;
    MutexLock l(&token_->mu_);
    token_->engine_ = nullptr;
  }
  EngineScope(const EngineScope&) = delete;
  EngineScope& operator=(const EngineScope&) = delete;
  bool stopped_before_start() const { return stopped_; }

 private:
  StopToken* token_;
  bool stopped_ = false;
};

void StopToken::Stop() {
  MutexLock l(&mu_);
  stopped_ = true;
  // StopBackup returns at once; the engine's CreateNewBackup notices and returns
  // Incomplete. The engine stays alive while registered (EngineScope holds mu_ to clear it).
  if (engine_ != nullptr) engine_->StopBackup();
}

bool StopToken::stopped() const {
  MutexLock l(&mu_);
  return stopped_;
}

// Creates `dir` (parents as needed) with the leaf private to its owner: a backup holds the
// shop's orders (buyers' contacts) and sealed keys. An existing one made before keyvend set
// umask 077 (files 0644) is made private, as the data dir is (storage/data_dir.cc says why)
// — if it is a backup dir (the engine's meta/) or empty: another non-empty dir keeps its
// modes.
absl::Status EnsureBackupDir(const std::string& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    if (!fs::is_directory(fs::path(dir) / "meta", ec) && !fs::is_empty(dir, ec)) {
      return absl::OkStatus();
    }
    auto changed = MakeDirPrivate(dir);
    if (!changed.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("backup dir: ", changed.status().message()));
    }
    if (changed->entries_changed > 0) {
      KV_LOG(kWarn, absl::StrFormat("backup dir %s was open to group/others (mode %04o); made "
                                    "it private: %u entries now allow only their owner",
                                    dir, changed->dir_mode_before,
                                    static_cast<unsigned>(changed->entries_changed)));
    }
    return absl::OkStatus();
  }
  const fs::path parent = fs::path(dir).lexically_normal().parent_path();
  ec.clear();  // is_directory set it for a dir that does not exist yet
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create backup dir ", dir));
  }
  // A new dir gets the engine's layout now, so it reads as "no backups yet" (list, verify)
  // rather than as something that is not a backup dir.
  if (!fs::is_directory(fs::path(dir) / "meta", ec)) {
    auto lock = DirLock::Acquire(dir, BackupOp::kAppend);
    if (!lock.ok()) return lock.status();
    auto engine = OpenWritable(dir, 0);
    if (!engine.ok()) return engine.status();
  }
  return absl::OkStatus();
}

absl::Status CheckDirsApart(const std::string& a, const char* what_a, const std::string& b,
                            const char* what_b) {
  if (a.empty() || b.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what_a, " and ", what_b, " must be set"));
  }
  for (const fs::path& pa : Views(a)) {
    for (const fs::path& pb : Views(b)) {
      if (IsInside(pa, pb) || IsInside(pb, pa)) {
        return absl::InvalidArgumentError(
            absl::StrCat(what_a, " ", a, " and ", what_b, " ", b,
                         " overlap (one lies inside the other); keep them apart"));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<BackupInfo> CreateHere(const storage::Db& db, const std::string& backup_dir,
                                      const CreateOptions& opts);

}  // namespace

absl::StatusOr<BackupInfo> Create(const storage::Db& db, const std::string& backup_dir,
                                  const CreateOptions& opts) {
  if (!opts.background_priority) return CreateHere(db, backup_dir, opts);
  // A thread of its own, so lowering its priority does not stay with the caller's thread
  // (raising a nice value back needs a privilege the shop should not have).
  absl::StatusOr<BackupInfo> result = absl::InternalError("backup thread did not run");
  std::thread worker([&] {
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);  // best effort
    result = CreateHere(db, backup_dir, opts);
  });
  worker.join();
  return result;
}

namespace {

absl::StatusOr<BackupInfo> CreateHere(const storage::Db& db, const std::string& backup_dir,
                                      const CreateOptions& opts) {
  KV_RETURN_IF_ERROR(CheckDirsApart(backup_dir, "backup dir", db.dir(), "data dir"));
  if (opts.stop != nullptr && opts.stop->stopped()) {
    return absl::CancelledError("backup stopped: the shop is shutting down");
  }
  KV_RETURN_IF_ERROR(EnsureBackupDir(backup_dir));
  auto lock = DirLock::Acquire(backup_dir, BackupOp::kAppend);
  if (!lock.ok()) return lock.status();
  auto meta = DescribeDb(db, opts.clock->WallNow(), opts.source);
  if (!meta.ok()) return meta.status();
  auto engine = OpenWritable(backup_dir, opts.rate_limit_bytes_per_second);
  if (!engine.ok()) return engine.status();

  rocksdb::CreateBackupOptions cbo;
  // Flushing first puts what the memtables hold into table files, which later backups
  // share, so only a short tail of the write-ahead log is copied per backup. The copy is
  // consistent either way (ARCHITECTURE.md, "Backups").
  cbo.flush_before_backup = true;
  if (opts.background_priority) {
    cbo.decrease_background_thread_cpu_priority = true;
    cbo.background_thread_cpu_priority = rocksdb::CpuPriority::kLow;
  }
  rocksdb::BackupID id = 0;
  rocksdb::IOStatus s;
  {
    EngineScope scope(opts.stop, engine->get());
    if (scope.stopped_before_start()) {
      return absl::CancelledError("backup stopped: the shop is shutting down");
    }
    s = (*engine)->CreateNewBackupWithMetadata(cbo, db.raw(), EncodeMetadata(*meta), &id);
  }
  if (!s.ok()) {
    // A failed or stopped backup leaves partial files; remove them now rather than at the
    // next Create (we hold the append lock, which GarbageCollect needs).
    (void)(*engine)->GarbageCollect();
    if (s.IsIncomplete() && opts.stop != nullptr && opts.stop->stopped()) {
      return absl::CancelledError("backup stopped: the shop is shutting down");
    }
    return storage::FromRocks(s, absl::StrCat("creating a backup in ", backup_dir));
  }
  rocksdb::BackupInfo info;
  const rocksdb::Status is = (*engine)->GetBackupInfo(id, &info);
  if (!is.ok()) return storage::FromRocks(is, absl::StrCat("reading backup ", id));
  return FromEngineInfo(info);
}

}  // namespace

absl::StatusOr<BackupList> List(const std::string& backup_dir, absl::Duration lock_wait) {
  auto session = OpenForReading(backup_dir, lock_wait);
  if (!session.ok()) return session.status();
  rocksdb::BackupEngineReadOnly* engine = session->engine.get();
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos, /*include_file_details=*/true);
  BackupList out;
  std::set<std::string> seen;
  for (const rocksdb::BackupInfo& i : infos) {
    out.backups.push_back(FromEngineInfo(i));
    for (const rocksdb::BackupFileInfo& f : i.file_details) {
      if (seen.insert(f.relative_filename).second) out.bytes_on_disk += f.size;
    }
  }
  std::sort(out.backups.begin(), out.backups.end(),
            [](const BackupInfo& a, const BackupInfo& b) { return a.id < b.id; });
  engine->GetCorruptedBackups(&out.unreadable);
  std::sort(out.unreadable.begin(), out.unreadable.end());
  return out;
}

absl::StatusOr<PurgeResult> Purge(const std::string& backup_dir, uint32_t keep,
                                  absl::Duration lock_wait) {
  if (keep == 0) {
    return absl::InvalidArgumentError("purge keeps at least 1 backup (--keep N, N >= 1)");
  }
  KV_RETURN_IF_ERROR(RequireDir(backup_dir, "backup dir"));
  auto lock = DirLock::Acquire(backup_dir, BackupOp::kDelete, lock_wait);
  if (!lock.ok()) return lock.status();
  auto engine = OpenWritable(backup_dir, 0);
  if (!engine.ok()) return engine.status();
  const auto ids = [&engine] {
    std::vector<rocksdb::BackupInfo> infos;
    (*engine)->GetBackupInfo(&infos);
    std::vector<BackupId> out;
    for (const auto& i : infos) out.push_back(i.backup_id);
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<BackupId> before = ids();
  rocksdb::IOStatus s = (*engine)->PurgeOldBackups(keep);
  if (!s.ok()) return storage::FromRocks(s, absl::StrCat("purging backups in ", backup_dir));
  PurgeResult out;
  out.kept = ids();
  for (BackupId id : before) {
    if (!std::binary_search(out.kept.begin(), out.kept.end(), id)) out.deleted.push_back(id);
  }
  return out;
}

}  // namespace kv::backup
