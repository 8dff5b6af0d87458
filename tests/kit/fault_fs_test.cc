#include "kit/fault_fs.h"

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "rocksdb/db.h"

namespace kv::testing {
namespace {

using rocksdb::IOOptions;
using rocksdb::IOStatus;

// A rule failing calls first .. first + count - 1 (count 0: for ever) of `op` on paths
// containing `path`.
FaultRule Rule(FsOp op, uint64_t first, uint64_t count, FsError error = FsError::kIo,
               std::string path = "") {
  FaultRule r;
  r.op = op;
  r.first = first;
  r.count = count;
  r.error = error;
  r.path_contains = std::move(path);
  return r;
}

// The real file's content ("<absent>" when there is none), read around the FS under test.
std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<absent>";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class FaultFsTest : public ::testing::Test {
 protected:
  std::unique_ptr<rocksdb::FSWritableFile> Create(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    IOStatus s = fs_->NewWritableFile(tmp_.Sub(name), rocksdb::FileOptions(), &f, nullptr);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return f;
  }
  IOStatus Append(rocksdb::FSWritableFile* f, const std::string& data) {
    return f->Append(data, IOOptions(), nullptr);
  }
  IOStatus Sync(rocksdb::FSWritableFile* f) { return f->Sync(IOOptions(), nullptr); }
  void Close(std::unique_ptr<rocksdb::FSWritableFile> f) {
    ASSERT_TRUE(f->Close(IOOptions(), nullptr).ok());
  }
  IOStatus SyncDir() {
    std::unique_ptr<rocksdb::FSDirectory> d;
    IOStatus s = fs_->NewDirectory(tmp_.path(), IOOptions(), &d, nullptr);
    if (!s.ok()) return s;
    return d->Fsync(IOOptions(), nullptr);
  }
  // A file whose content and directory entry are durable.
  void MakeDurable(const std::string& name, const std::string& data) {
    auto f = Create(name);
    ASSERT_TRUE(Append(f.get(), data).ok());
    ASSERT_TRUE(Sync(f.get()).ok());
    Close(std::move(f));
    ASSERT_TRUE(SyncDir().ok());
  }
  DropReport PowerLoss(DropOptions o = {}) {
    fs_->PowerOff();
    auto r = fs_->DropUnsynced(o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : DropReport{};
  }

  TempDir tmp_;
  std::shared_ptr<FaultFs> fs_ = std::make_shared<FaultFs>();
};

TEST_F(FaultFsTest, SyncedBytesSurvivePowerLossUnsyncedBytesDoNot) {
  auto f = Create("data");
  ASSERT_TRUE(Append(f.get(), "durable|").ok());
  ASSERT_TRUE(Sync(f.get()).ok());
  ASSERT_TRUE(Append(f.get(), "lost").ok());
  EXPECT_EQ(fs_->UnsyncedBytes(tmp_.Sub("data")), 4u);
  Close(std::move(f));
  ASSERT_TRUE(SyncDir().ok());
  EXPECT_EQ(Contents(tmp_.Sub("data")), "durable|lost");  // the page cache has it all

  const DropReport r = PowerLoss();
  EXPECT_EQ(Contents(tmp_.Sub("data")), "durable|");
  EXPECT_EQ(r.files_truncated, 1u);
  EXPECT_EQ(r.bytes_dropped, 4u);
  EXPECT_EQ(r.creates_undone, 0u);
  EXPECT_FALSE(fs_->powered_off());  // powered on again, every file durable as it is now
  EXPECT_EQ(fs_->UnsyncedBytes(tmp_.Sub("data")), 0u);
}

TEST_F(FaultFsTest, ATornWriteKeepsAPrefixOfTheUnsyncedBytes) {
  const std::string tail = "0123456789abcdefghij";
  bool some_partial = false;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    const std::string name = absl::StrCat("torn", seed);
    auto f = Create(name);
    ASSERT_TRUE(Append(f.get(), "head|").ok());
    ASSERT_TRUE(Sync(f.get()).ok());
    ASSERT_TRUE(Append(f.get(), tail).ok());
    Close(std::move(f));
    ASSERT_TRUE(SyncDir().ok());
    const DropReport r = PowerLoss({.tear = true, .seed = seed});
    const std::string got = Contents(tmp_.Sub(name));
    ASSERT_GE(got.size(), 5u);
    EXPECT_EQ(got, ("head|" + tail).substr(0, got.size())) << "seed " << seed;
    EXPECT_EQ(r.bytes_torn_kept, got.size() - 5);
    EXPECT_EQ(r.bytes_dropped + r.bytes_torn_kept, tail.size());
    if (got.size() > 5 && got.size() < 5 + tail.size()) some_partial = true;
  }
  EXPECT_TRUE(some_partial) << "no seed tore the write in the middle";
}

TEST_F(FaultFsTest, TheSameSeedTearsTheSameWay) {
  std::string first;
  for (int round = 0; round < 2; ++round) {
    auto f = Create("again");
    ASSERT_TRUE(Append(f.get(), std::string(1000, 'x')).ok());
    Close(std::move(f));
    ASSERT_TRUE(SyncDir().ok());
    PowerLoss({.tear = true, .seed = 99});
    const std::string got = Contents(tmp_.Sub("again"));
    if (round == 0) first = got;
    EXPECT_EQ(got.size(), first.size());
  }
}

TEST_F(FaultFsTest, AFileWhoseDirectoryWasNeverSyncedVanishes) {
  auto f = Create("new");
  ASSERT_TRUE(Append(f.get(), "synced data").ok());
  ASSERT_TRUE(Sync(f.get()).ok());
  Close(std::move(f));
  const DropReport r = PowerLoss();
  EXPECT_EQ(Contents(tmp_.Sub("new")), "<absent>");
  EXPECT_EQ(r.creates_undone, 1u);
}

TEST_F(FaultFsTest, AnUnsyncedRenameIsUndoneAndTheReplacedFileComesBack) {
  MakeDurable("CURRENT", "MANIFEST-1\n");
  auto f = Create("000002.dbtmp");
  ASSERT_TRUE(Append(f.get(), "MANIFEST-2\n").ok());
  ASSERT_TRUE(Sync(f.get()).ok());
  Close(std::move(f));
  ASSERT_TRUE(
      fs_->RenameFile(tmp_.Sub("000002.dbtmp"), tmp_.Sub("CURRENT"), IOOptions(), nullptr).ok());
  EXPECT_EQ(Contents(tmp_.Sub("CURRENT")), "MANIFEST-2\n");
  const DropReport r = PowerLoss();
  EXPECT_EQ(Contents(tmp_.Sub("CURRENT")), "MANIFEST-1\n");
  EXPECT_EQ(Contents(tmp_.Sub("000002.dbtmp")), "<absent>");  // its creation was undone too
  EXPECT_EQ(r.renames_undone, 1u);
  EXPECT_EQ(r.creates_undone, 1u);
}

TEST_F(FaultFsTest, ARenameFollowedByADirectorySyncIsDurable) {
  MakeDurable("CURRENT", "MANIFEST-1\n");
  auto f = Create("000002.dbtmp");
  ASSERT_TRUE(Append(f.get(), "MANIFEST-2\n").ok());
  ASSERT_TRUE(Sync(f.get()).ok());
  Close(std::move(f));
  ASSERT_TRUE(
      fs_->RenameFile(tmp_.Sub("000002.dbtmp"), tmp_.Sub("CURRENT"), IOOptions(), nullptr).ok());
  ASSERT_TRUE(SyncDir().ok());
  const DropReport r = PowerLoss();
  EXPECT_EQ(Contents(tmp_.Sub("CURRENT")), "MANIFEST-2\n");
  EXPECT_EQ(r.renames_undone + r.creates_undone, 0u);
}

TEST_F(FaultFsTest, AnUnsyncedDeleteIsUndoneWithTheFilesDurableContent) {
  auto f = Create("old.log");
  ASSERT_TRUE(Append(f.get(), "kept").ok());
  ASSERT_TRUE(Sync(f.get()).ok());
  ASSERT_TRUE(Append(f.get(), "+never synced").ok());
  Close(std::move(f));
  ASSERT_TRUE(SyncDir().ok());
  ASSERT_TRUE(fs_->DeleteFile(tmp_.Sub("old.log"), IOOptions(), nullptr).ok());
  EXPECT_EQ(Contents(tmp_.Sub("old.log")), "<absent>");
  const DropReport r = PowerLoss();
  EXPECT_EQ(Contents(tmp_.Sub("old.log")), "kept");
  EXPECT_EQ(r.deletes_undone, 1u);
}

TEST_F(FaultFsTest, PowerOffRefusesEveryChangeAndDropNeedsItAndClosedFiles) {
  auto r = fs_->DropUnsynced();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);

  MakeDurable("a", "A");
  auto f = Create("b");
  fs_->PowerOff();
  EXPECT_TRUE(Append(f.get(), "late").IsIOError());
  EXPECT_TRUE(Sync(f.get()).IsIOError());
  EXPECT_TRUE(SyncDir().IsIOError());
  EXPECT_TRUE(fs_->RenameFile(tmp_.Sub("a"), tmp_.Sub("c"), IOOptions(), nullptr).IsIOError());
  EXPECT_TRUE(fs_->DeleteFile(tmp_.Sub("a"), IOOptions(), nullptr).IsIOError());
  std::unique_ptr<rocksdb::FSWritableFile> g;
  EXPECT_TRUE(fs_->NewWritableFile(tmp_.Sub("d"), rocksdb::FileOptions(), &g, nullptr).IsIOError());
  EXPECT_EQ(Contents(tmp_.Sub("a")), "A");
  EXPECT_EQ(Contents(tmp_.Sub("d")), "<absent>");
  // "b" is still open: a database would still be running.
  r = fs_->DropUnsynced();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(Contents(tmp_.Sub("b")), "");  // nothing was changed
  f.reset();
  r = fs_->DropUnsynced();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Contents(tmp_.Sub("b")), "<absent>");
  EXPECT_EQ(Contents(tmp_.Sub("a")), "A");
}

// The fault server's in-process cut: the database still has its files open, the process
// dies right after. The drop works on open files and the power stays off.
TEST_F(FaultFsTest, AnInProcessCutDropsFromOpenFilesAndStaysDark) {
  MakeDurable("a", "A");
  auto f = Create("b");  // its directory entry is never synced
  ASSERT_TRUE(Append(f.get(), "kept|").ok());
  ASSERT_TRUE(Sync(f.get()).ok());
  auto g = Create("c");
  ASSERT_TRUE(SyncDir().ok());  // "b" and "c" are durable names now
  ASSERT_TRUE(Append(g.get(), "unsynced").ok());
  fs_->PowerOff();
  DropOptions o;
  o.files_open = true;
  auto r = fs_->DropUnsynced(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->files_truncated, 1u);
  EXPECT_EQ(r->bytes_dropped, 8u);
  EXPECT_EQ(Contents(tmp_.Sub("a")), "A");
  EXPECT_EQ(Contents(tmp_.Sub("b")), "kept|");
  EXPECT_EQ(Contents(tmp_.Sub("c")), "");
  EXPECT_TRUE(fs_->powered_off());
  EXPECT_TRUE(Append(f.get(), "after").IsIOError());
  EXPECT_EQ(Contents(tmp_.Sub("b")), "kept|");
}

TEST_F(FaultFsTest, ScheduledErrorsFailTheNthCallWithTheRightStatus) {
  fs_->AddRule(Rule(FsOp::kAppend, 2, 1));
  auto f = Create("f");
  EXPECT_TRUE(Append(f.get(), "1").ok());
  const IOStatus second = Append(f.get(), "2");
  EXPECT_TRUE(second.IsIOError()) << second.ToString();
  EXPECT_FALSE(second.IsNoSpace());
  EXPECT_TRUE(Append(f.get(), "3").ok());
  EXPECT_EQ(fs_->calls(FsOp::kAppend), 3u);
  EXPECT_EQ(fs_->injected(FsOp::kAppend), 1u);

  // From the first call on, for ever: ENOSPC, retryable as RocksDB's POSIX FS says it.
  fs_->AddRule(Rule(FsOp::kSync, 1, 0, FsError::kNoSpace));
  for (int i = 0; i < 3; ++i) {
    const IOStatus s = Sync(f.get());
    EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
    EXPECT_TRUE(s.IsIOError());
    EXPECT_TRUE(s.GetRetryable());
  }
  EXPECT_EQ(fs_->injected(FsOp::kSync), 3u);
  fs_->ClearRules();
  EXPECT_TRUE(Sync(f.get()).ok());
  Close(std::move(f));
  ASSERT_TRUE(SyncDir().ok());
  EXPECT_EQ(Contents(tmp_.Sub("f")), "13");  // the failed append wrote nothing

  fs_->AddRule(Rule(FsOp::kRename, 1, 1, FsError::kIo, "CURRENT"));
  EXPECT_TRUE(fs_->RenameFile(tmp_.Sub("f"), tmp_.Sub("g"), IOOptions(), nullptr).ok());
  EXPECT_TRUE(
      fs_->RenameFile(tmp_.Sub("g"), tmp_.Sub("CURRENT"), IOOptions(), nullptr).IsIOError());
  EXPECT_EQ(Contents(tmp_.Sub("g")), "13");  // not renamed

  fs_->AddRule(Rule(FsOp::kRead, 2, 1));
  std::unique_ptr<rocksdb::FSRandomAccessFile> r;
  ASSERT_TRUE(fs_->NewRandomAccessFile(tmp_.Sub("g"), rocksdb::FileOptions(), &r, nullptr).ok());
  char buf[8];
  rocksdb::Slice out;
  EXPECT_TRUE(r->Read(0, 2, IOOptions(), &out, buf, nullptr).ok());
  EXPECT_EQ(out.ToString(), "13");
  EXPECT_TRUE(r->Read(0, 2, IOOptions(), &out, buf, nullptr).IsIOError());
  EXPECT_TRUE(r->Read(0, 2, IOOptions(), &out, buf, nullptr).ok());
  EXPECT_EQ(fs_->injected(FsOp::kRead), 1u);
}

TEST_F(FaultFsTest, ProbabilisticErrorsFollowTheSeed) {
  auto pattern = [&](uint64_t seed) {
    auto fs = std::make_shared<FaultFs>();
    FaultRule r = Rule(FsOp::kAppend, 1, 0);
    r.probability = 0.5;
    r.seed = seed;
    fs->AddRule(r);
    std::unique_ptr<rocksdb::FSWritableFile> f;
    EXPECT_TRUE(fs->NewWritableFile(tmp_.Sub("p"), rocksdb::FileOptions(), &f, nullptr).ok());
    std::string failed;
    for (int i = 0; i < 64; ++i) failed += f->Append("x", IOOptions(), nullptr).ok() ? '.' : 'X';
    EXPECT_EQ(fs->injected(FsOp::kAppend),
              static_cast<uint64_t>(std::count(failed.begin(), failed.end(), 'X')));
    return failed;
  };
  const std::string a = pattern(5);
  EXPECT_EQ(a, pattern(5));
  EXPECT_NE(a, pattern(6));
  EXPECT_NE(a.find('X'), std::string::npos);
  EXPECT_NE(a.find('.'), std::string::npos);
}

// The model against RocksDB itself: a synced write survives the power cut, an unsynced one
// does not, and a failed WAL sync is the writer's error.
class FaultFsRocksTest : public FaultFsTest {
 protected:
  void Open() {
    rocksdb::Options o;
    o.create_if_missing = true;
    o.env = env_.get();
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(o, tmp_.Sub("db"), &raw);
    ASSERT_TRUE(s.ok()) << s.ToString();
    db_.reset(raw);
  }
  void Crash(DropOptions o = {}) {
    fs_->PowerOff();
    db_.reset();  // its close can write nothing now
    auto r = fs_->DropUnsynced(o);
    ASSERT_TRUE(r.ok()) << r.status();
    last_drop_ = *r;
  }
  std::string Get(const std::string& k) {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), k, &v);
    return s.ok() ? v : (s.IsNotFound() ? "<none>" : s.ToString());
  }
  void TearDown() override { db_.reset(); }

  std::unique_ptr<rocksdb::Env> env_ = FaultFs::NewEnv(fs_);
  std::unique_ptr<rocksdb::DB> db_;
  DropReport last_drop_;
};

TEST_F(FaultFsRocksTest, SyncedWritesSurviveAPowerCutUnsyncedOnesDoNot) {
  Open();
  rocksdb::WriteOptions synced;
  synced.sync = true;
  ASSERT_TRUE(db_->Put(synced, "a", "1").ok());
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), "b", "2").ok());
  EXPECT_EQ(Get("b"), "2");
  Crash();
  EXPECT_GT(last_drop_.bytes_dropped, 0u);
  Open();
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("b"), "<none>");
}

TEST_F(FaultFsRocksTest, ManyThreadsSyncedWritesAllSurviveATornCut) {
  Open();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      rocksdb::WriteOptions synced;
      synced.sync = true;
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE(db_->Put(synced, absl::StrCat("k", t, "-", i), "v").ok());
        EXPECT_TRUE(db_->Put(rocksdb::WriteOptions(), absl::StrCat("u", t, "-", i), "v").ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  // Whatever an unsynced tail holds afterwards, torn or not, the synced writes are whole.
  ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), "tail", std::string(4096, 't')).ok());
  Crash({.tear = true, .seed = 3});
  Open();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) EXPECT_EQ(Get(absl::StrCat("k", t, "-", i)), "v");
  }
}

TEST_F(FaultFsRocksTest, AFailedWalSyncIsTheWritersError) {
  Open();
  fs_->AddRule(Rule(FsOp::kSync, 1, 1, FsError::kIo, ".log"));
  rocksdb::WriteOptions synced;
  synced.sync = true;
  rocksdb::Status s = db_->Put(synced, "x", "1");
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_EQ(fs_->injected(FsOp::kSync), 1u);
  Crash();
  Open();
  EXPECT_EQ(Get("x"), "<none>");
}

}  // namespace
}  // namespace kv::testing
