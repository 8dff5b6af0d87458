// Db: the one RocksDB database of a keyvend data dir, with its column families, the
// counter merge operator and the schema/key-check metadata. Library options are set
// explicitly in db.cc (RocksDB's defaults are tuned for neither 2 cores nor synced writes).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "limits/limits.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/disk_space.h"
#include "storage/group_commit.h"
#include "storage/schema.h"
#include "storage/write_health.h"

namespace kv::storage {

// What a ForEach visitor tells the scan to do next.
enum class Scan : uint8_t { kNext, kStop };
// A ForEach visitor: one entry's key and value (valid only during the call). Returns kNext,
// kStop (end the scan early, OK), or an error (ends the scan; ForEach returns it as is).
using ScanFn =
    absl::FunctionRef<absl::StatusOr<Scan>(std::string_view key, std::string_view value)>;

struct DbOptions {
  // Create the database when `dir` holds none. Default: true.
  bool create_if_missing = true;
  // The master key's check value (KeyCipher::KeyCheckValue). Stored when the database is
  // created; compared (constant time) on every later open. Required (32 bytes).
  std::string key_check;
  // RocksDB block cache for all column families, bytes. Default: 64 MiB.
  size_t block_cache_bytes = limits::kBlockCacheBytesDefault;
  // RocksDB's enable_write_thread_adaptive_yield: writers waiting in RocksDB's write group
  // spin (up to 100 us) before blocking. With the group committer the only synced writer
  // is one thread, so this matters only for writes that bypass it (benchmarks' raw
  // baselines). Default: true (RocksDB's default).
  bool write_thread_adaptive_yield = true;
  // Test hook: called by the group committer before each synced group write; an error
  // fails every Write(sync=true) of that group with it and writes nothing of the group.
  // Harmless in product code. Default: empty (never called).
  WriteFaultFn write_fault = nullptr;
  // Writes are refused (Unavailable, storage/disk_space.h) while the file system of `dir`
  // has fewer bytes free than this; 0 = no guard (RocksDB's own ENOSPC handling only).
  // Default: 0 (serve passes min_free_disk_mb).
  uint64_t min_free_bytes = 0;
  // Test hook: the RocksDB Env (and through it the file system) the database uses, e.g. a
  // fault-injecting one (tests/kit/fault_fs.h). Not owned; outlives the Db. Default:
  // nullptr (RocksDB's default Env and file system).
  rocksdb::Env* env = nullptr;
};

// True when `s` is Db::Open's "the dir is locked by another process" outcome (also when
// it reaches the caller through OpenDataDir or Shop::Open unchanged), so a tool can say what
// to do instead without parsing the message.
bool IsDataDirLocked(const absl::Status& s);

class Db {
 public:
  // Opens the database in `dir` (creating it when allowed and absent).
  // Outcomes:
  //  - OK: schema version is current and the key check matches.
  //  - FailedPrecondition: the dir is locked by another process (the message says so and
  //    names the dir); or it is not a keyvend data dir; or its schema version is newer
  //    than this binary's (message names both versions).
  //  - PermissionDenied: the key check does not match ("wrong master key").
  //  - NotFound: no database and create_if_missing is false.
  //  - any other error from RocksDB, with context.
  // Thread-safe after return; the Db owns the RocksDB instance and closes it on destruction.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& dir, const DbOptions& opts);

  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  rocksdb::DB* raw() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(Cf c) const { return handles_[c]; }
  const std::string& dir() const { return dir_; }

  // Commits `batch` (not owned; unchanged until this returns) atomically. Thread-safe.
  //  - sync=true: queued for the group committer (storage/group_commit.h), which merges
  //    every batch queued meanwhile into ONE synced RocksDB write; returns once that write
  //    has fsync'd the WAL, so OK means durable. A failed group fails every member with
  //    the same status and writes nothing of any of them (to the running database: after a
  //    failed WAL sync their record may be in the WAL file, replayed whole at the next open).
  //  - sync=false: written at once on the caller's thread, not synced.
  // Errors are Unavailable (I/O, disk full, the Db closing), DataLoss (corruption), or
  // what DbOptions::write_fault returned.
  [[nodiscard]] absl::Status Write(rocksdb::WriteBatch* batch, bool sync = true);
  // A synced Write without waiting: `done` gets the same outcomes on the committer thread
  // (GroupCommitter::CommitAsync). Thread-safe.
  void WriteAsync(std::unique_ptr<rocksdb::WriteBatch> batch, GroupCommitter::DoneFn done);

  // Whether writes succeed now and why not (storage/write_health.h): for /readyz and
  // /metrics. RocksDB's own recovery (of a full disk: once space returns) or the next
  // successful write makes it writable again.
  // A nearly full disk (DbOptions::min_free_bytes) counts as unwritable, with its reason.
  WriteHealth::State write_health() const;
  // Bytes free on the data dir's file system at the guard's last look; -1 without a guard.
  int64_t free_bytes() const { return space_ != nullptr ? space_->free_bytes() : -1; }

  // What the group committer has done so far (groups written, batches in them).
  GroupCommitter::Stats commit_stats() const { return committer_->stats(); }

  // Point read. Outcomes: a value; std::nullopt when absent; an error status otherwise.
  absl::StatusOr<std::optional<std::string>> Get(Cf c, std::string_view key) const;

  // Visits, in key order, every entry of `c` whose key starts with `prefix`, beginning at
  // the first key >= `start` (start < prefix means the prefix's first key). Outcomes:
  //  - OK: the scan reached the prefix's end, or `fn` returned kStop;
  //  - the first error `fn` returned, unchanged;
  //  - the iterator's own error (I/O, a checksum mismatch) via FromRocks, naming the CF:
  //    a failed read is never taken for the end of the data.
  // Every full or prefix scan of the shop goes through here. Thread-safe (its own iterator).
  [[nodiscard]] absl::Status ForEach(Cf c, std::string_view prefix, std::string_view start,
                                     ScanFn fn) const;
  [[nodiscard]] absl::Status ForEach(Cf c, std::string_view prefix, ScanFn fn) const {
    return ForEach(c, prefix, prefix, fn);
  }

  // The last (highest) key of `c`: std::nullopt when the CF is empty; an error when the
  // read fails.
  absl::StatusOr<std::optional<std::string>> LastKey(Cf c) const;

  // An iterator over one column family (caller owns it). total_order is always on. The
  // caller must check its status() after the loop; prefer ForEach, which does.
  std::unique_ptr<rocksdb::Iterator> NewIterator(Cf c) const;

  // Reads a u64 BE from CF meta; `dflt` when absent.
  absl::StatusOr<uint64_t> GetMetaU64(std::string_view key, uint64_t dflt) const;

 private:
  Db() = default;
  std::string dir_;
  // Before db_: RocksDB's listener points into it, so it is destroyed after the database.
  std::unique_ptr<WriteHealth> health_;
  // Asked by the committer before every group (through its fault hook); outlives it.
  std::unique_ptr<DiskSpaceGuard> space_;
  std::unique_ptr<rocksdb::DB> db_;
  std::array<rocksdb::ColumnFamilyHandle*, kCfCount> handles_{};
  // Every synced write goes through it; stopped (its queue drained) before db_ closes.
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace kv::storage
