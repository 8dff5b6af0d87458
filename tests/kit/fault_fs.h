// FaultFs: a rocksdb::FileSystem for tests that simulates power loss and injects disk
// errors (issue 15). It forwards every call to a real file system (the default POSIX one)
// and keeps, beside it, what a power cut would keep. Test-only: link kv_fault_fs (tests/kit).
//
// The durability model (what survives DropUnsynced, i.e. what a disk holds after the power
// comes back):
//  - File data: per file written through this FS, the prefix up to the size it had when a
//    Sync/Fsync on it last returned OK. Bytes appended after that are lost, or, with
//    DropOptions::tear, a random prefix of them survives (a torn last write). RangeSync
//    (sync_file_range) makes nothing durable. A file written by someone else (before this
//    FS was in use, or outside RocksDB) is taken as durable as it is.
//  - Directory entries: a file created (NewWritableFile of a new path, LinkFile), renamed
//    or deleted is durable only once its directory has been fsync'd (FSDirectory::Fsync)
//    after it. DropUnsynced undoes the others, newest first: a created file vanishes, a
//    rename is reversed (and the file it replaced comes back with its durable content), a
//    deleted file comes back with its durable content. Directories themselves
//    (CreateDir*) are durable at once.
//  - Simplified: a file rewritten from scratch (NewWritableFile of an existing path) loses
//    its old content at once; a hard link (LinkFile) starts with its source's durable size.
//  - Not modelled: NewRandomRWFile writes (taken as durable; the shop's RocksDB
//    configuration does not use them), the info LOG (RocksDB's logger writes it directly).
//    ReuseWritableFile (recycle_log_file_num > 0) is refused with NotSupported.
//
// How a test cuts the power (the database must not write while DropUnsynced runs):
//   fs->PowerOff();            // the machine dies: every write, sync, create, rename and
//                              // delete fails from now on and changes nothing
//   shop.reset();              // the process's state is abandoned; its close writes nothing
//   auto r = fs->DropUnsynced({.tear = true, .seed = 7});  // the disk after the reboot
//   ... reopen on the same dir (with this FS or without it) ...
//
// Error injection: FaultRule, by schedule (the Nth matching call, or from the Nth on) or by
// probability with a seed, returning EIO (IOStatus::IOError) or ENOSPC (IOStatus::NoSpace,
// retryable, as RocksDB's POSIX file system reports it). Calls are counted per kind.
//
// Thread safety: every method may be called from any thread (RocksDB calls the FS from its
// writer, flush and compaction threads). Files opened through this FS must be closed
// before the FS is destroyed (a DB that uses it is closed first).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace kv::testing {

// The kinds of call FaultFs counts and can fail.
enum class FsOp : uint8_t {
  kAppend,   // FSWritableFile::Append / PositionedAppend
  kSync,     // FSWritableFile::Sync / Fsync (and RandomRW Sync/Fsync)
  kDirSync,  // FSDirectory::Fsync / FsyncWithDirOptions
  kRename,   // FileSystem::RenameFile
  kRead,     // Read / PositionedRead / MultiRead of sequential and random-access files
  kCreate,   // FileSystem::NewWritableFile / ReopenWritableFile / LinkFile
  kDelete,   // FileSystem::DeleteFile
};
inline constexpr size_t kFsOpCount = 7;
const char* FsOpName(FsOp op);

// What an injected failure looks like to RocksDB.
enum class FsError : uint8_t {
  kIo,       // EIO: IOStatus::IOError
  kNoSpace,  // ENOSPC: IOStatus::NoSpace (code IOError, subcode kNoSpace), retryable
};

// One injected fault. Its calls are the calls of kind `op` on a path containing
// `path_contains`, counted from 1 after AddRule. Calls number `first` .. `first + count - 1`
// are candidates (count 0: every call from `first` on); each candidate fails with
// `probability`, drawn from a generator seeded with `seed`.
struct FaultRule {
  FsOp op = FsOp::kSync;
  FsError error = FsError::kIo;
  uint64_t first = 1;
  uint64_t count = 1;
  double probability = 1.0;
  uint64_t seed = 0;
  // e.g. ".log" (the WAL), ".sst", "MANIFEST", "CURRENT"; empty: any path.
  std::string path_contains;
};

// What DropUnsynced did.
struct DropReport {
  uint64_t files_truncated = 0;  // files cut back to their durable size
  uint64_t bytes_dropped = 0;    // bytes those cuts removed
  uint64_t bytes_torn_kept = 0;  // unsynced bytes a tear kept
  uint64_t creates_undone = 0;   // files removed: created but not in a synced directory
  uint64_t renames_undone = 0;
  uint64_t deletes_undone = 0;  // files brought back
};

struct DropOptions {
  // Keep a random prefix (possibly empty, possibly all) of each file's unsynced bytes
  // instead of none. Default: false.
  bool tear = false;
  // Seeds the tear's choices. Default: 0.
  uint64_t seed = 0;
  // An in-process power cut (the test build's keyvend_fault_server): the database is still
  // open and the process dies right after, so open files are allowed and the FS stays
  // powered off afterwards (every later write still fails). Default: false.
  bool files_open = false;
};

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  // Forwards to `base` (default: RocksDB's default, POSIX, file system).
  explicit FaultFs(std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());
  ~FaultFs() override;

  // An Env with RocksDB's default threads and clock over `fs`, for DBOptions::env (and
  // storage::DbOptions::env). It holds a reference to `fs`; it must outlive every database
  // opened with it.
  static std::unique_ptr<rocksdb::Env> NewEnv(const std::shared_ptr<FaultFs>& fs);

  // --- error injection -------------------------------------------------------------------
  void AddRule(FaultRule rule);
  void ClearRules();
  // Calls of `op` seen since construction (or ResetCounters), failed ones included.
  uint64_t calls(FsOp op) const;
  // Calls of `op` that failed because of a rule (not because the power was off).
  uint64_t injected(FsOp op) const;
  void ResetCounters();

  // --- power loss ------------------------------------------------------------------------
  // From now on every call that would change the disk (append, sync, directory sync,
  // create, rename, delete, truncate) fails with IOError("simulated power loss") and does
  // nothing. Reads still work. Waits for the data writes and syncs already under way (they
  // land before the cut), so the disk changes no more once it returns. Never call it from
  // inside a call of this FS.
  // hang (an in-process power cut, the fault server's): those calls block for good instead
  // of failing, so no thread acts on a failure (answers a request with an error) in the
  // moments before the process dies, as none could on a machine without power.
  // Default: false (they fail).
  void PowerOff(bool hang = false);
  bool powered_off() const;
  // Makes the real files what a disk would hold after the power cut (the model above),
  // then forgets every file's history (all of them are durable now) and powers on again.
  // Rules and counters are kept. Requires PowerOff() first and no database open on these
  // files (FailedPrecondition otherwise: nothing is changed). The base must be the local
  // disk (files are cut with truncate(2)). An I/O error of the real file system is returned
  // as Internal, naming the file; the files may then be half dropped.
  absl::StatusOr<DropReport> DropUnsynced(const DropOptions& opts = {});

  // Bytes written through this FS to `path` and not yet synced (0 for an unknown path).
  uint64_t UnsyncedBytes(const std::string& path) const;

  // --- rocksdb::FileSystem ---------------------------------------------------------------
  static const char* kClassName() { return "KeyvendFaultFs"; }
  const char* Name() const override { return kClassName(); }

  rocksdb::IOStatus NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                        rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old_f,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;

  // Called by this FS's file objects (public for them; not for tests).
  rocksdb::IOStatus BeforeCall(FsOp op, const std::string& path);
  rocksdb::IOStatus PowerCheck(const std::string& path) const;
  // A data write or sync begins (the rule and power check of BeforeCall, or the power check
  // only when !counted); when it returns OK the caller calls ExitWrite once it is done.
  rocksdb::IOStatus EnterWrite(FsOp op, const std::string& path, bool counted);
  void ExitWrite();
  void FileOpened();
  void FileClosed();
  void AfterAppend(const std::string& path, uint64_t bytes);
  // After a sync returned OK: records it durable, unless the power went off meanwhile
  // (then it fails or, with hang, never returns, as the sync could not have finished).
  rocksdb::IOStatus AfterSync(const std::string& path, uint64_t size_before_sync);
  uint64_t WrittenSize(const std::string& path) const;
  // A mark before a directory fsync; AfterDirSync makes durable only the changes made
  // before it (one made during the fsync may have missed it).
  uint64_t DirOpMark() const;
  rocksdb::IOStatus AfterDirSync(const std::string& dir, uint64_t mark);  // likewise
  void AfterFileTruncate(const std::string& path, uint64_t size);

 private:
  struct FileState {
    uint64_t size = 0;    // bytes written through this FS (the file's size as we know it)
    uint64_t synced = 0;  // the durable prefix
  };
  // A directory change not yet made durable by an fsync of `dir`.
  struct DirOp {
    enum Kind : uint8_t { kCreate, kRename, kDelete } kind = kCreate;
    uint64_t seq = 0;  // order of the changes, from next_dir_op_
    std::string dir;
    std::string path;  // created, deleted, or the rename's target
    std::string from;  // the rename's source
    // kDelete: the deleted file's durable content; kRename: the durable content of the file
    // the rename replaced, when there was one.
    bool had_content = false;
    std::string content;
  };
  struct Rule {
    FaultRule spec;
    uint64_t seen = 0;
    std::mt19937_64 gen;
  };

  static std::string DirOf(const std::string& path);
  // A file's durable content (the prefix its state says is synced; all of an untracked
  // file), read from the real file system.
  rocksdb::IOStatus DurableContent(const std::string& path, std::string* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  rocksdb::IOStatus Decide(FsOp op, const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A call that would change the disk while the power is off: PowerLost, or never returns
  // when hang_.
  rocksdb::IOStatus Dark(const std::string& path) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushDirOp(DirOp op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  bool powered_off_ ABSL_GUARDED_BY(mu_) = false;
  bool hang_ ABSL_GUARDED_BY(mu_) = false;  // PowerOff(hang = true)
  mutable CondVar never_;                   // what hung calls wait on (never signalled)
  uint64_t open_files_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // EnterWrite .. ExitWrite
  CondVar
      writes_done_;  // writes_in_flight_ became 0  // file and directory objects not yet destroyed
  absl::flat_hash_map<std::string, FileState> files_ ABSL_GUARDED_BY(mu_);
  std::vector<DirOp> dir_ops_ ABSL_GUARDED_BY(mu_);  // oldest first
  uint64_t next_dir_op_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mu_);
  std::array<uint64_t, kFsOpCount> calls_ ABSL_GUARDED_BY(mu_){};
  std::array<uint64_t, kFsOpCount> injected_ ABSL_GUARDED_BY(mu_){};
};

}  // namespace kv::testing
