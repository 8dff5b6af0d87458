#include "kit/fault_fs.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kv::testing {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

IOStatus PowerLost(const std::string& path) {
  return IOStatus::IOError("FaultFs: simulated power loss", path);
}

// Counts itself in the FS's open objects, so DropUnsynced can refuse while a database
// still holds a file.
class OpenGuard {
 public:
  explicit OpenGuard(FaultFs* fs) : fs_(fs) { fs_->FileOpened(); }
  ~OpenGuard() { fs_->FileClosed(); }
  OpenGuard(const OpenGuard&) = delete;
  OpenGuard& operator=(const OpenGuard&) = delete;

 private:
  FaultFs* fs_;
};

// One call that changes a file's data (append, sync, truncate, flush): the rule and power
// check, and the call counted as in flight until the scope ends, so that PowerOff can wait
// until no real write is under way (a write that passed the check lands before the cut).
class WriteScope {
 public:
  // counted: the call is one of FsOp's kinds (rules apply); else only the power check.
  WriteScope(FaultFs* fs, FsOp op, const std::string& path, bool counted = true)
      : fs_(fs), status_(fs->EnterWrite(op, path, counted)) {}
  ~WriteScope() {
    if (status_.ok()) fs_->ExitWrite();
  }
  WriteScope(const WriteScope&) = delete;
  WriteScope& operator=(const WriteScope&) = delete;
  const IOStatus& status() const { return status_; }

 private:
  FaultFs* const fs_;
  const IOStatus status_;
};

class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> f, FaultFs* fs, std::string path)
      : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs), guard_(fs), path_(std::move(path)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_);
    IOStatus s = w.status();
    if (s.ok()) s = FSWritableFileOwnerWrapper::Append(data, o, dbg);
    if (s.ok()) fs_->AfterAppend(path_, data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& info,
                  IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_);
    IOStatus s = w.status();
    if (s.ok()) s = FSWritableFileOwnerWrapper::Append(data, o, info, dbg);
    if (s.ok()) fs_->AfterAppend(path_, data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_);
    IOStatus s = w.status();
    if (s.ok()) s = FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, dbg);
    if (s.ok()) fs_->AfterAppend(path_, data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_);
    IOStatus s = w.status();
    if (s.ok()) s = FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, info, dbg);
    if (s.ok()) fs_->AfterAppend(path_, data.size());
    return s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_, /*counted=*/false);
    IOStatus s = w.status();
    if (s.ok()) s = FSWritableFileOwnerWrapper::Truncate(size, o, dbg);
    if (s.ok()) fs_->AfterFileTruncate(path_, size);
    return s;
  }
  IOStatus Flush(const IOOptions& o, IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_, /*counted=*/false);
    return w.status().ok() ? FSWritableFileOwnerWrapper::Flush(o, dbg) : w.status();
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    return SyncWith(o, dbg, /*fsync=*/false);
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    return SyncWith(o, dbg, /*fsync=*/true);
  }
  // sync_file_range: starts write-back, promises nothing about durability.
  IOStatus RangeSync(uint64_t offset, uint64_t n, const IOOptions& o,
                     IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_, /*counted=*/false);
    return w.status().ok() ? FSWritableFileOwnerWrapper::RangeSync(offset, n, o, dbg) : w.status();
  }

 private:
  IOStatus SyncWith(const IOOptions& o, IODebugContext* dbg, bool fsync) {
    // What was written before the sync began is durable once it returns OK; a concurrent
    // append may or may not be, and is taken as not.
    // A sync the power cut overtook counts for nothing (AfterSync, outside the scope: it
    // may block for good).
    const uint64_t size = fs_->WrittenSize(path_);
    IOStatus s;
    {
      WriteScope w(fs_, FsOp::kSync, path_);
      s = w.status();
      if (s.ok()) {
        s = fsync ? FSWritableFileOwnerWrapper::Fsync(o, dbg)
                  : FSWritableFileOwnerWrapper::Sync(o, dbg);
      }
    }
    if (s.ok()) s = fs_->AfterSync(path_, size);
    return s;
  }

  FaultFs* const fs_;
  OpenGuard guard_;
  const std::string path_;
};

class FaultSequentialFile final : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  FaultSequentialFile(std::unique_ptr<rocksdb::FSSequentialFile> f, FaultFs* fs, std::string path)
      : FSSequentialFileOwnerWrapper(std::move(f)), fs_(fs), guard_(fs), path_(std::move(path)) {}

  IOStatus Read(size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeCall(FsOp::kRead, path_);
    if (!s.ok()) {
      *result = Slice();
      return s;
    }
    return FSSequentialFileOwnerWrapper::Read(n, o, result, scratch, dbg);
  }
  IOStatus PositionedRead(uint64_t offset, size_t n, const IOOptions& o, Slice* result,
                          char* scratch, IODebugContext* dbg) override {
    IOStatus s = fs_->BeforeCall(FsOp::kRead, path_);
    if (!s.ok()) {
      *result = Slice();
      return s;
    }
    return FSSequentialFileOwnerWrapper::PositionedRead(offset, n, o, result, scratch, dbg);
  }

 private:
  FaultFs* const fs_;
  OpenGuard guard_;
  const std::string path_;
};

class FaultRandomAccessFile final : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile> f, FaultFs* fs,
                        std::string path)
      : FSRandomAccessFileOwnerWrapper(std::move(f)), fs_(fs), guard_(fs), path_(std::move(path)) {}

  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    IOStatus s = fs_->BeforeCall(FsOp::kRead, path_);
    if (!s.ok()) {
      *result = Slice();
      return s;
    }
    return FSRandomAccessFileOwnerWrapper::Read(offset, n, o, result, scratch, dbg);
  }
  // One Read per request, so each is counted and can fail on its own.
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const IOOptions& o,
                     IODebugContext* dbg) override {
    for (size_t i = 0; i < num_reqs; ++i) {
      reqs[i].status = Read(reqs[i].offset, reqs[i].len, o, &reqs[i].result, reqs[i].scratch, dbg);
    }
    return IOStatus::OK();
  }
  // FSRandomAccessFile's own default: a synchronous Read (this class's), then the callback.
  IOStatus ReadAsync(rocksdb::FSReadRequest& req, const IOOptions& o,
                     std::function<void(const rocksdb::FSReadRequest&, void*)> cb, void* cb_arg,
                     void** io_handle, rocksdb::IOHandleDeleter* del_fn,
                     IODebugContext* dbg) override {
    return FSRandomAccessFile::ReadAsync(req, o, std::move(cb), cb_arg, io_handle, del_fn, dbg);
  }

 private:
  FaultFs* const fs_;
  OpenGuard guard_;
  const std::string path_;
};

// Reads can fail; writes are power-checked but not tracked (see the header's model).
class FaultRandomRWFile final : public rocksdb::FSRandomRWFileOwnerWrapper {
 public:
  FaultRandomRWFile(std::unique_ptr<rocksdb::FSRandomRWFile> f, FaultFs* fs, std::string path)
      : FSRandomRWFileOwnerWrapper(std::move(f)), fs_(fs), guard_(fs), path_(std::move(path)) {}

  IOStatus Write(uint64_t offset, const Slice& data, const IOOptions& o,
                 IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kAppend, path_);
    return w.status().ok() ? FSRandomRWFileOwnerWrapper::Write(offset, data, o, dbg) : w.status();
  }
  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    IOStatus s = fs_->BeforeCall(FsOp::kRead, path_);
    if (!s.ok()) {
      *result = Slice();
      return s;
    }
    return FSRandomRWFileOwnerWrapper::Read(offset, n, o, result, scratch, dbg);
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kSync, path_);
    return w.status().ok() ? FSRandomRWFileOwnerWrapper::Sync(o, dbg) : w.status();
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    WriteScope w(fs_, FsOp::kSync, path_);
    return w.status().ok() ? FSRandomRWFileOwnerWrapper::Fsync(o, dbg) : w.status();
  }

 private:
  FaultFs* const fs_;
  OpenGuard guard_;
  const std::string path_;
};

class FaultDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> d, FaultFs* fs, std::string dir)
      : FSDirectoryWrapper(std::move(d)), fs_(fs), guard_(fs), dir_(std::move(dir)) {}

  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    const uint64_t mark = fs_->DirOpMark();
    IOStatus s;
    {
      WriteScope w(fs_, FsOp::kDirSync, dir_);
      s = w.status();
      if (s.ok()) s = FSDirectoryWrapper::Fsync(o, dbg);
    }
    if (s.ok()) s = fs_->AfterDirSync(dir_, mark);
    return s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& o, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& dir_opts) override {
    const uint64_t mark = fs_->DirOpMark();
    IOStatus s;
    {
      WriteScope w(fs_, FsOp::kDirSync, dir_);
      s = w.status();
      if (s.ok()) s = FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, dir_opts);
    }
    if (s.ok()) s = fs_->AfterDirSync(dir_, mark);
    return s;
  }

 private:
  FaultFs* const fs_;
  OpenGuard guard_;
  const std::string dir_;
};

std::string StripSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

}  // namespace

const char* FsOpName(FsOp op) {
  switch (op) {
    case FsOp::kAppend:
      return "append";
    case FsOp::kSync:
      return "sync";
    case FsOp::kDirSync:
      return "dir_sync";
    case FsOp::kRename:
      return "rename";
    case FsOp::kRead:
      return "read";
    case FsOp::kCreate:
      return "create";
    case FsOp::kDelete:
      return "delete";
  }
  return "?";
}

FaultFs::FaultFs(std::shared_ptr<rocksdb::FileSystem> base)
    : rocksdb::FileSystemWrapper(std::move(base)) {}

FaultFs::~FaultFs() = default;

std::unique_ptr<rocksdb::Env> FaultFs::NewEnv(const std::shared_ptr<FaultFs>& fs) {
  return rocksdb::NewCompositeEnv(fs);
}

std::string FaultFs::DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return StripSlashes(path.substr(0, slash));
}

// --- error injection -----------------------------------------------------------------------

void FaultFs::AddRule(FaultRule rule) {
  MutexLock l(&mu_);
  Rule r;
  r.gen.seed(rule.seed);
  r.spec = std::move(rule);
  rules_.push_back(std::move(r));
}

void FaultFs::ClearRules() {
  MutexLock l(&mu_);
  rules_.clear();
}

uint64_t FaultFs::calls(FsOp op) const {
  MutexLock l(&mu_);
  return calls_[static_cast<size_t>(op)];
}

uint64_t FaultFs::injected(FsOp op) const {
  MutexLock l(&mu_);
  return injected_[static_cast<size_t>(op)];
}

void FaultFs::ResetCounters() {
  MutexLock l(&mu_);
  calls_.fill(0);
  injected_.fill(0);
}

IOStatus FaultFs::Dark(const std::string& path) const {
  // A hung call never returns: the process dies first (PowerOff's contract).
  while (hang_) never_.Wait(&mu_);
  return PowerLost(path);
}

IOStatus FaultFs::Decide(FsOp op, const std::string& path) {
  ++calls_[static_cast<size_t>(op)];
  if (op != FsOp::kRead && powered_off_) return Dark(path);
  const Rule* fired = nullptr;
  // Every matching rule counts the call, whichever fires.
  for (Rule& r : rules_) {
    if (r.spec.op != op) continue;
    if (!r.spec.path_contains.empty() && path.find(r.spec.path_contains) == std::string::npos) {
      continue;
    }
    const uint64_t n = ++r.seen;
    if (n < r.spec.first) continue;
    if (r.spec.count != 0 && n - r.spec.first >= r.spec.count) continue;
    if (r.spec.probability < 1.0) {
      std::uniform_real_distribution<double> u(0.0, 1.0);
      if (u(r.gen) >= r.spec.probability) continue;
    }
    if (fired == nullptr) fired = &r;
  }
  if (fired == nullptr) return IOStatus::OK();
  ++injected_[static_cast<size_t>(op)];
  const std::string what = absl::StrCat("FaultFs: injected ", FsOpName(op), " error");
  if (fired->spec.error == FsError::kNoSpace) {
    // As RocksDB's POSIX file system reports ENOSPC.
    IOStatus s = IOStatus::NoSpace(what, path);
    s.SetRetryable(true);
    return s;
  }
  return IOStatus::IOError(what, path);
}

IOStatus FaultFs::BeforeCall(FsOp op, const std::string& path) {
  MutexLock l(&mu_);
  return Decide(op, path);
}

IOStatus FaultFs::PowerCheck(const std::string& path) const {
  MutexLock l(&mu_);
  return powered_off_ ? Dark(path) : IOStatus::OK();
}

IOStatus FaultFs::EnterWrite(FsOp op, const std::string& path, bool counted) {
  MutexLock l(&mu_);
  IOStatus s = counted ? Decide(op, path) : (powered_off_ ? Dark(path) : IOStatus::OK());
  if (s.ok()) ++writes_in_flight_;
  return s;
}

void FaultFs::ExitWrite() {
  MutexLock l(&mu_);
  if (--writes_in_flight_ == 0) writes_done_.SignalAll();
}

void FaultFs::FileOpened() {
  MutexLock l(&mu_);
  ++open_files_;
}

void FaultFs::FileClosed() {
  MutexLock l(&mu_);
  --open_files_;
}

// --- bookkeeping ---------------------------------------------------------------------------

void FaultFs::AfterAppend(const std::string& path, uint64_t bytes) {
  MutexLock l(&mu_);
  files_[path].size += bytes;
}

IOStatus FaultFs::AfterSync(const std::string& path, uint64_t size_before_sync) {
  MutexLock l(&mu_);
  if (powered_off_) return Dark(path);  // the cut came first: nothing became durable
  auto it = files_.find(path);
  if (it == files_.end()) return IOStatus::OK();  // renamed or deleted meanwhile
  it->second.synced = std::max(it->second.synced, std::min(size_before_sync, it->second.size));
  return IOStatus::OK();
}

uint64_t FaultFs::WrittenSize(const std::string& path) const {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  return it == files_.end() ? 0 : it->second.size;
}

uint64_t FaultFs::UnsyncedBytes(const std::string& path) const {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  return it == files_.end() ? 0 : it->second.size - it->second.synced;
}

uint64_t FaultFs::DirOpMark() const {
  MutexLock l(&mu_);
  return next_dir_op_;
}

IOStatus FaultFs::AfterDirSync(const std::string& dir, uint64_t mark) {
  const std::string d = StripSlashes(dir);
  MutexLock l(&mu_);
  if (powered_off_) return Dark(d);  // the cut came first: nothing became durable
  dir_ops_.erase(std::remove_if(dir_ops_.begin(), dir_ops_.end(),
                                [&](const DirOp& op) { return op.dir == d && op.seq < mark; }),
                 dir_ops_.end());
  return IOStatus::OK();
}

void FaultFs::PushDirOp(DirOp op) {
  op.seq = next_dir_op_++;
  dir_ops_.push_back(std::move(op));
}

void FaultFs::AfterFileTruncate(const std::string& path, uint64_t size) {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return;
  it->second.size = size;
  it->second.synced = std::min(it->second.synced, size);
}

IOStatus FaultFs::DurableContent(const std::string& path, std::string* out) {
  IOStatus s = rocksdb::ReadFileToString(target(), path, out);
  if (!s.ok()) return s;
  auto it = files_.find(path);
  if (it != files_.end() && out->size() > it->second.synced) out->resize(it->second.synced);
  return IOStatus::OK();
}

// --- rocksdb::FileSystem -------------------------------------------------------------------

IOStatus FaultFs::NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                    IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSSequentialFile> base;
  IOStatus s = target()->NewSequentialFile(f, o, &base, dbg);
  if (s.ok()) *r = std::make_unique<FaultSequentialFile>(std::move(base), this, f);
  return s;
}

IOStatus FaultFs::NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                      IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSRandomAccessFile> base;
  IOStatus s = target()->NewRandomAccessFile(f, o, &base, dbg);
  if (s.ok()) *r = std::make_unique<FaultRandomAccessFile>(std::move(base), this, f);
  return s;
}

IOStatus FaultFs::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                  std::unique_ptr<rocksdb::FSWritableFile>* r,
                                  IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> base;
  {
    MutexLock l(&mu_);
    IOStatus s = Decide(FsOp::kCreate, f);
    if (!s.ok()) return s;
    const bool existed = target()->FileExists(f, IOOptions(), nullptr).ok();
    s = target()->NewWritableFile(f, o, &base, dbg);
    if (!s.ok()) return s;
    files_[f] = FileState{};  // created or truncated: nothing of it is durable yet
    if (!existed) {
      DirOp op;
      op.kind = DirOp::kCreate;
      op.dir = DirOf(f);
      op.path = f;
      PushDirOp(std::move(op));
    }
  }
  *r = std::make_unique<FaultWritableFile>(std::move(base), this, f);
  return IOStatus::OK();
}

IOStatus FaultFs::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                     std::unique_ptr<rocksdb::FSWritableFile>* r,
                                     IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSWritableFile> base;
  {
    MutexLock l(&mu_);
    IOStatus s = Decide(FsOp::kCreate, f);
    if (!s.ok()) return s;
    uint64_t size = 0;
    const bool existed = target()->GetFileSize(f, IOOptions(), &size, nullptr).ok();
    s = target()->ReopenWritableFile(f, o, &base, dbg);
    if (!s.ok()) return s;
    if (files_.find(f) == files_.end()) {
      files_[f] = FileState{size, size};  // what was there before is as durable as it was
    }
    if (!existed) {
      DirOp op;
      op.kind = DirOp::kCreate;
      op.dir = DirOf(f);
      op.path = f;
      PushDirOp(std::move(op));
    }
  }
  *r = std::make_unique<FaultWritableFile>(std::move(base), this, f);
  return IOStatus::OK();
}

IOStatus FaultFs::ReuseWritableFile(const std::string& f, const std::string& /*old_f*/,
                                    const rocksdb::FileOptions& /*o*/,
                                    std::unique_ptr<rocksdb::FSWritableFile>* /*r*/,
                                    IODebugContext* /*dbg*/) {
  return IOStatus::NotSupported("FaultFs: ReuseWritableFile (recycle_log_file_num) is not modelled",
                                f);
}

IOStatus FaultFs::NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                  std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                  IODebugContext* dbg) {
  IOStatus s = PowerCheck(f);
  if (!s.ok()) return s;
  std::unique_ptr<rocksdb::FSRandomRWFile> base;
  s = target()->NewRandomRWFile(f, o, &base, dbg);
  if (s.ok()) *r = std::make_unique<FaultRandomRWFile>(std::move(base), this, f);
  return s;
}

IOStatus FaultFs::NewDirectory(const std::string& name, const IOOptions& o,
                               std::unique_ptr<rocksdb::FSDirectory>* r, IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> base;
  IOStatus s = target()->NewDirectory(name, o, &base, dbg);
  if (s.ok()) *r = std::make_unique<FaultDirectory>(std::move(base), this, StripSlashes(name));
  return s;
}

IOStatus FaultFs::DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* dbg) {
  MutexLock l(&mu_);
  IOStatus s = Decide(FsOp::kDelete, f);
  if (!s.ok()) return s;
  DirOp op;
  op.kind = DirOp::kDelete;
  op.dir = DirOf(f);
  op.path = f;
  op.had_content = DurableContent(f, &op.content).ok();
  s = target()->DeleteFile(f, o, dbg);
  if (!s.ok()) return s;
  files_.erase(f);
  if (op.had_content) PushDirOp(std::move(op));
  return IOStatus::OK();
}

IOStatus FaultFs::Truncate(const std::string& f, size_t size, const IOOptions& o,
                           IODebugContext* dbg) {
  WriteScope w(this, FsOp::kAppend, f, /*counted=*/false);
  IOStatus s = w.status();
  if (s.ok()) s = target()->Truncate(f, size, o, dbg);
  if (s.ok()) AfterFileTruncate(f, size);
  return s;
}

IOStatus FaultFs::RenameFile(const std::string& src, const std::string& dst, const IOOptions& o,
                             IODebugContext* dbg) {
  MutexLock l(&mu_);
  // A rule's path filter sees both names ("x.dbtmp -> CURRENT").
  IOStatus s = Decide(FsOp::kRename, absl::StrCat(src, " -> ", dst));
  if (!s.ok()) return s;
  DirOp op;
  op.kind = DirOp::kRename;
  op.dir = DirOf(dst);
  op.path = dst;
  op.from = src;
  if (target()->FileExists(dst, IOOptions(), nullptr).ok()) {
    op.had_content = DurableContent(dst, &op.content).ok();
  }
  s = target()->RenameFile(src, dst, o, dbg);
  if (!s.ok()) return s;
  auto it = files_.find(src);
  if (it != files_.end()) {
    const FileState st = it->second;
    files_.erase(it);
    files_[dst] = st;
  } else {
    files_.erase(dst);  // an untracked (durable) file now has that name
  }
  PushDirOp(std::move(op));
  return IOStatus::OK();
}

IOStatus FaultFs::LinkFile(const std::string& src, const std::string& dst, const IOOptions& o,
                           IODebugContext* dbg) {
  MutexLock l(&mu_);
  IOStatus s = Decide(FsOp::kCreate, dst);
  if (!s.ok()) return s;
  s = target()->LinkFile(src, dst, o, dbg);
  if (!s.ok()) return s;
  auto it = files_.find(src);
  if (it != files_.end()) files_[dst] = it->second;
  DirOp op;
  op.kind = DirOp::kCreate;
  op.dir = DirOf(dst);
  op.path = dst;
  PushDirOp(std::move(op));
  return IOStatus::OK();
}

// --- power loss ----------------------------------------------------------------------------

void FaultFs::PowerOff(bool hang) {
  MutexLock l(&mu_);
  powered_off_ = true;
  hang_ = hang;
  while (writes_in_flight_ > 0) writes_done_.Wait(&mu_);
}

bool FaultFs::powered_off() const {
  MutexLock l(&mu_);
  return powered_off_;
}

absl::StatusOr<DropReport> FaultFs::DropUnsynced(const DropOptions& opts) {
  MutexLock l(&mu_);
  if (!powered_off_) {
    return absl::FailedPreconditionError("FaultFs::DropUnsynced: call PowerOff() first");
  }
  if (open_files_ != 0 && !opts.files_open) {
    return absl::FailedPreconditionError(
        absl::StrCat("FaultFs::DropUnsynced: ", open_files_,
                     " files are still open (close the database first)"));
  }
  auto fail = [](const char* what, const std::string& path, const IOStatus& s) {
    return absl::InternalError(
        absl::StrCat("FaultFs::DropUnsynced: ", what, " ", path, ": ", s.ToString()));
  };
  DropReport rep;
  std::mt19937_64 gen(opts.seed);
  // 1. File data: each file back to its durable prefix (sorted: the tear's draws do not
  // depend on hash order).
  std::vector<std::string> paths;
  paths.reserve(files_.size());
  for (const auto& [path, st] : files_) paths.push_back(path);
  std::sort(paths.begin(), paths.end());
  for (const std::string& path : paths) {
    const FileState& st = files_[path];
    uint64_t actual = 0;
    if (!target()->GetFileSize(path, IOOptions(), &actual, nullptr).ok()) continue;  // gone
    if (actual <= st.synced) continue;
    uint64_t keep = st.synced;
    if (opts.tear) {
      std::uniform_int_distribution<uint64_t> d(0, actual - st.synced);
      const uint64_t torn = d(gen);
      keep += torn;
      rep.bytes_torn_kept += torn;
    }
    if (keep == actual) continue;
    // RocksDB's POSIX file system has no FileSystem::Truncate: the real file, directly.
    if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
      return fail("truncating", path, IOStatus::IOError(std::strerror(errno)));
    }
    ++rep.files_truncated;
    rep.bytes_dropped += actual - keep;
  }
  // 2. Directory entries never made durable, newest first.
  for (auto it = dir_ops_.rbegin(); it != dir_ops_.rend(); ++it) {
    const DirOp& op = *it;
    IOStatus s;
    switch (op.kind) {
      case DirOp::kCreate:
        s = target()->DeleteFile(op.path, IOOptions(), nullptr);
        if (!s.ok() && !s.IsNotFound()) return fail("removing", op.path, s);
        ++rep.creates_undone;
        break;
      case DirOp::kRename:
        s = target()->RenameFile(op.path, op.from, IOOptions(), nullptr);
        if (!s.ok()) return fail("renaming back", op.path, s);
        if (op.had_content) {
          s = rocksdb::WriteStringToFile(target(), op.content, op.path, /*should_sync=*/true);
          if (!s.ok()) return fail("restoring", op.path, s);
        }
        ++rep.renames_undone;
        break;
      case DirOp::kDelete:
        s = rocksdb::WriteStringToFile(target(), op.content, op.path, /*should_sync=*/true);
        if (!s.ok()) return fail("restoring", op.path, s);
        ++rep.deletes_undone;
        break;
    }
  }
  files_.clear();
  dir_ops_.clear();
  powered_off_ = opts.files_open;  // a process cut with its files open stays dark
  return rep;
}

}  // namespace kv::testing
