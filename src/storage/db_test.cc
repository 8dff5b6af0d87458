#include "storage/db.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "base/random.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "storage/data_dir.h"
#include "storage/master_key.h"

namespace kv::storage {
namespace {

DataDirOptions Opts(const testing::TempDir& t) {
  DataDirOptions o;
  o.data_dir = t.Sub("data");
  o.master_key_file = t.Sub("master.key");
  return o;
}

TEST(DataDir, CreatesKeyFileForNewDirAndReopens) {
  testing::TempDir t;
  {
    auto d = OpenDataDir(Opts(t), SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_TRUE(d->created);
  }
  struct stat st;
  ASSERT_EQ(stat(t.Sub("master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->created);
  auto v = d->db->Get(kCfMeta, kMetaSchemaVersion);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(DecodeFixed32BE((*v)->data()), kSchemaVersion);
}

unsigned ModeOf(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0xffff;
}

// Review finding 9d: a data dir made before umask 077 (0755, files 0644) is made private.
TEST(DataDir, AnOpenedShopsDirIsMadePrivate) {
  testing::TempDir t;
  { ASSERT_TRUE(OpenDataDir(Opts(t), SecureRandom::Get()).ok()); }
  ASSERT_EQ(::chmod(t.Sub("data").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(t.Sub("data/IDENTITY").c_str(), 0644), 0);
  // As in every keyvend binary, so that what RocksDB writes now is private by itself.
  const mode_t old_umask = ::umask(077);
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ::umask(old_umask);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(ModeOf(t.Sub("data")), 0700u);
  EXPECT_EQ(ModeOf(t.Sub("data/IDENTITY")), 0600u);
}

// A non-empty dir without a database is not the shop's: its modes are left alone.
TEST(DataDir, AForeignNonEmptyDirKeepsItsModes) {
  testing::TempDir t;
  ASSERT_EQ(::mkdir(t.Sub("data").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(t.Sub("data/photos").c_str(), 0755), 0);
  { std::ofstream(t.Sub("data/notes.txt")) << "x"; }
  ASSERT_EQ(::chmod(t.Sub("data").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(t.Sub("data/notes.txt").c_str(), 0644), 0);
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(ModeOf(t.Sub("data")), 0755u);
  EXPECT_EQ(ModeOf(t.Sub("data/photos")), 0755u);
  EXPECT_EQ(ModeOf(t.Sub("data/notes.txt")), 0644u);
}

TEST(DataDir, WrongMasterKeyIsRefused) {
  testing::TempDir t;
  ASSERT_TRUE(OpenDataDir(Opts(t), SecureRandom::Get()).ok());
  DataDirOptions o = Opts(t);
  o.master_key_file = t.Sub("other.key");
  ASSERT_TRUE(CreateMasterKeyFile(o.master_key_file, SecureRandom::Get()).ok());
  auto d = OpenDataDir(o, SecureRandom::Get());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(d.status().message().find("wrong master key"), absl::string_view::npos);
}

TEST(DataDir, ExistingShopWithoutKeyFileIsRefusedAndNoKeyIsCreated) {
  testing::TempDir t;
  ASSERT_TRUE(OpenDataDir(Opts(t), SecureRandom::Get()).ok());
  DataDirOptions o = Opts(t);
  o.master_key_file = t.Sub("missing.key");
  auto d = OpenDataDir(o, SecureRandom::Get());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  struct stat st;
  EXPECT_NE(stat(o.master_key_file.c_str(), &st), 0);
}

TEST(DataDir, KeyFileInsideDataDirIsRefused) {
  testing::TempDir t;
  DataDirOptions o = Opts(t);
  o.master_key_file = t.Sub("data/master.key");
  auto d = OpenDataDir(o, SecureRandom::Get());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DataDir, LockedDirSaysSo) {
  testing::TempDir t;
  auto first = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(first.ok());
  auto second = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("locked"), absl::string_view::npos) << second.status();
  EXPECT_TRUE(IsDataDirLocked(second.status()));
  // Other refusals are not mistaken for a lock.
  EXPECT_FALSE(IsDataDirLocked(absl::FailedPreconditionError("data dir is locked")));
}

TEST(DataDir, NoCreateOnEmptyDir) {
  testing::TempDir t;
  DataDirOptions o = Opts(t);
  o.create_if_missing = false;
  auto d = OpenDataDir(o, SecureRandom::Get());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
}

TEST(DataDir, NewerSchemaVersionIsRefusedUnchanged) {
  testing::TempDir t;
  {
    auto d = OpenDataDir(Opts(t), SecureRandom::Get());
    ASSERT_TRUE(d.ok());
    rocksdb::WriteBatch b;
    std::string v;
    PutFixed32BE(&v, 99);
    b.Put(d->db->cf(kCfMeta), std::string(kMetaSchemaVersion), v);
    ASSERT_TRUE(d->db->Write(&b).ok());
  }
  for (int i = 0; i < 2; ++i) {  // refused, and refused again: nothing was rewritten
    auto d = OpenDataDir(Opts(t), SecureRandom::Get());
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(d.status().message().find("schema version 99"), absl::string_view::npos)
        << d.status();
  }
}

TEST(DataDir, VersionOneIsUpgradedByStampingTheVersion) {
  testing::TempDir t;
  auto stamp = [](auto& d, uint32_t version) {
    rocksdb::WriteBatch b;
    std::string v;
    PutFixed32BE(&v, version);
    b.Put(d.db->cf(kCfMeta), std::string(kMetaSchemaVersion), v);
    return d.db->Write(&b);
  };
  {
    auto d = OpenDataDir(Opts(t), SecureRandom::Get());
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(stamp(*d, 1).ok());
  }
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  auto v = d->db->Get(kCfMeta, std::string(kMetaSchemaVersion));
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(DecodeFixed32BE((*v)->data()), 5u);  // 1 -> 2 -> 3 -> 4 -> 5 in one open
  EXPECT_EQ(kSchemaVersion, 5u);
}

// A version-3 dir has no CF "pay_attempts" (issue 13): it opens, gains the CF (empty) and
// version 5; its records are untouched.
TEST(DataDir, VersionThreeWithoutPayAttemptsIsUpgraded) {
  testing::TempDir t;
  {
    auto d = OpenDataDir(Opts(t), SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    rocksdb::WriteBatch b;
    std::string v;
    PutFixed32BE(&v, 3);
    b.Put(d->db->cf(kCfMeta), std::string(kMetaSchemaVersion), v);
    b.Put(d->db->cf(kCfProducts), U64Key(1), "kept");
    ASSERT_TRUE(d->db->Write(&b).ok());
  }
  {  // what a version-3 binary left: every CF but pay_attempts
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (int c = 0; c < kCfCount; ++c)
      cfs.emplace_back(kCfNames[c], rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), t.Sub("data"), cfs, &h, &raw).ok());
    ASSERT_TRUE(raw->DropColumnFamily(h[kCfPayAttempts]).ok());
    for (auto* x : h) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(x).ok());
    delete raw;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), t.Sub("data"), &names).ok());
    ASSERT_EQ(std::count(names.begin(), names.end(), "pay_attempts"), 0);
  }
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  auto v = d->db->Get(kCfMeta, std::string(kMetaSchemaVersion));
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(DecodeFixed32BE((*v)->data()), 5u);
  auto kept = d->db->Get(kCfProducts, U64Key(1));
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ(**kept, "kept");
  auto last = d->db->LastKey(kCfPayAttempts);
  ASSERT_TRUE(last.ok());
  EXPECT_FALSE(last->has_value());
}

// A version-4 dir has no CF "outbound" (issue 14): it opens, gains the CF (empty) and
// version 5; its records are untouched.
TEST(DataDir, VersionFourWithoutOutboundIsUpgraded) {
  testing::TempDir t;
  {
    auto d = OpenDataDir(Opts(t), SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    rocksdb::WriteBatch b;
    std::string v;
    PutFixed32BE(&v, 4);
    b.Put(d->db->cf(kCfMeta), std::string(kMetaSchemaVersion), v);
    b.Put(d->db->cf(kCfProducts), U64Key(1), "kept");
    ASSERT_TRUE(d->db->Write(&b).ok());
  }
  {  // what a version-4 binary left: every CF but outbound
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (int c = 0; c < kCfCount; ++c)
      cfs.emplace_back(kCfNames[c], rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), t.Sub("data"), cfs, &h, &raw).ok());
    ASSERT_TRUE(raw->DropColumnFamily(h[kCfOutbound]).ok());
    for (auto* x : h) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(x).ok());
    delete raw;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), t.Sub("data"), &names).ok());
    ASSERT_EQ(std::count(names.begin(), names.end(), "outbound"), 0);
  }
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  auto v = d->db->Get(kCfMeta, std::string(kMetaSchemaVersion));
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(DecodeFixed32BE((*v)->data()), 5u);
  auto kept = d->db->Get(kCfProducts, U64Key(1));
  ASSERT_TRUE(kept.ok() && kept->has_value());
  EXPECT_EQ(**kept, "kept");
  auto last = d->db->LastKey(kCfOutbound);
  ASSERT_TRUE(last.ok());
  EXPECT_FALSE(last->has_value());
}

TEST(DataDir, ForeignRocksDbIsRefused) {
  testing::TempDir t;
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw;
    ASSERT_TRUE(rocksdb::DB::Open(o, t.Sub("data"), &raw).ok());
    ASSERT_TRUE(raw->Put(rocksdb::WriteOptions(), "x", "y").ok());
    delete raw;
  }
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition) << d.status();
}

TEST(Db, ManyThreadsSyncedWritesAllLand) {
  testing::TempDir t;
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok());
  Db* db = d->db.get();
  std::vector<std::thread> ts;
  for (int i = 0; i < 16; ++i) {
    ts.emplace_back([db, i] {
      for (int j = 0; j < 50; ++j) {
        rocksdb::WriteBatch b;
        b.Put(db->cf(kCfOrders), std::to_string(i * 1000 + j), "v");
        b.Merge(db->cf(kCfCounters), CounterKey(1, CounterKind::kPool),
                std::string("\1\0\0\0\0\0\0\0", 8));
        ASSERT_TRUE(db->Write(&b, true).ok());
      }
    });
  }
  for (auto& th : ts) th.join();
  auto v = db->Get(kCfCounters, CounterKey(1, CounterKind::kPool));
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(DecodeFixed64LE((*v)->data()), 800u);
}

// Db::ForEach: the prefix, the start, an early stop and a visitor's error; LastKey.
TEST(DbScan, ForEachVisitsThePrefixFromStartAndStopsWhenTold) {
  testing::TempDir t;
  auto d = OpenDataDir(Opts(t), SecureRandom::Get());
  ASSERT_TRUE(d.ok()) << d.status();
  Db& db = *d->db;
  auto empty = db.LastKey(kCfPool);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->has_value());
  rocksdb::WriteBatch b;
  for (uint64_t pid : {1, 2, 3}) {
    for (uint64_t seq = 1; seq <= 5; ++seq) b.Put(db.cf(kCfPool), PoolKey(pid, seq), "v");
  }
  ASSERT_TRUE(db.Write(&b).ok());

  std::vector<uint64_t> seqs;
  const auto collect = [&](std::string_view key, std::string_view value) -> absl::StatusOr<Scan> {
    auto k = ParsePoolKey(key);
    EXPECT_TRUE(k.has_value());
    EXPECT_EQ(value, "v");
    seqs.push_back(k->pid * 100 + k->seq);
    return Scan::kNext;
  };
  ASSERT_TRUE(db.ForEach(kCfPool, U64Key(2), collect).ok());
  EXPECT_EQ(seqs, (std::vector<uint64_t>{201, 202, 203, 204, 205}));
  seqs.clear();
  ASSERT_TRUE(db.ForEach(kCfPool, U64Key(2), PoolKey(2, 4), collect).ok());
  EXPECT_EQ(seqs, (std::vector<uint64_t>{204, 205}));
  seqs.clear();
  ASSERT_TRUE(db.ForEach(kCfPool, "", collect).ok());
  EXPECT_EQ(seqs.size(), 15u);

  size_t visited = 0;
  ASSERT_TRUE(db.ForEach(kCfPool, "", [&](std::string_view, std::string_view) {
                  return ++visited == 3 ? Scan::kStop : Scan::kNext;
                }).ok());
  EXPECT_EQ(visited, 3u);

  visited = 0;
  absl::Status s =
      db.ForEach(kCfPool, "", [&](std::string_view, std::string_view) -> absl::StatusOr<Scan> {
        if (++visited == 2) return absl::DataLossError("planted");
        return Scan::kNext;
      });
  EXPECT_EQ(s, absl::DataLossError("planted"));
  EXPECT_EQ(visited, 2u);

  auto last = db.LastKey(kCfPool);
  ASSERT_TRUE(last.ok()) << last.status();
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ(**last, PoolKey(3, 5));
}

}  // namespace
}  // namespace kv::storage
