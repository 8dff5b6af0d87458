#include "storage/db.h"

#include <openssl/crypto.h>

#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "storage/counter_merge.h"
#include "storage/memtable_hint.h"
#include "storage/rocks_status.h"

namespace kv::storage {
namespace {

rocksdb::DBOptions MakeDbOptions(const DbOptions& opts) {
  rocksdb::DBOptions o;
  o.create_if_missing = opts.create_if_missing;
  // Always: a dir of an older schema gains the CFs added since (issue 13: pay_attempts; issue 14:
  // outbound) at its first open by any keyvend binary or tool, empty, and its version is stamped.
  o.create_missing_column_families = true;
  o.paranoid_checks = true;
  // Two cores: one flush and one compaction at a time.
  o.max_background_jobs = 2;
  o.max_subcompactions = 1;
  // Smooth out write-back so a flush does not stall the fsyncs of foreground writes.
  o.bytes_per_sync = 1 << 20;
  o.wal_bytes_per_sync = 0;  // every state change syncs the WAL explicitly
  o.max_total_wal_size = 256 << 20;
  o.keep_log_file_num = 5;
  o.max_log_file_size = 16 << 20;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // Group commit is keyvend's own (storage/group_commit.h): one committer thread makes
  // every synced write, so RocksDB's write group meets only it and the rare unsynced write.
  o.enable_pipelined_write = false;
  o.allow_concurrent_memtable_write = true;
  o.enable_write_thread_adaptive_yield = opts.write_thread_adaptive_yield;
  o.avoid_flush_during_shutdown = false;
  if (opts.env != nullptr) o.env = opts.env;
  return o;
}

rocksdb::ColumnFamilyOptions MakeCfOptions(Cf c, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 32 << 20;
  o.max_write_buffer_number = 3;
  o.level_compaction_dynamic_level_bytes = true;
  o.compression = rocksdb::kLZ4Compression;
  o.bottommost_compression = rocksdb::kZSTD;
  // Where the next insert of a kind of key starts its search (storage/memtable_hint.h). Used
  // by RocksDB only while a write group has one writer, i.e. the committer's synced groups.
  o.memtable_insert_with_hint_prefix_extractor = MemtableHintExtractor(c);
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.format_version = 5;
  // Point lookups dominate key_tags (dedupe), orders and payments: bloom filters pay.
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.whole_key_filtering = true;
  switch (c) {
    case kCfCounters:
      o.merge_operator = MakeInt64AddOperator();
      // A hot counter (Shop::Stats reads the per-status order counts every 5 s) gets an
      // operand per order: without a cap a Get walks every one in the memtable.
      o.max_successive_merges = 64;
      break;
    case kCfPool:
      // Sealed keys are random bytes: compression only costs CPU.
      o.compression = rocksdb::kNoCompression;
      o.bottommost_compression = rocksdb::kNoCompression;
      break;
    case kCfKeyTags:
      o.compression = rocksdb::kNoCompression;
      o.bottommost_compression = rocksdb::kNoCompression;
      o.optimize_filters_for_hits = false;
      break;
    default:
      break;
  }
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// Marks the locked-dir status; IsDataDirLocked tests for it.
constexpr char kLockedPayloadUrl[] = "keyvend/data-dir-locked";

bool IsLockError(const rocksdb::Status& s) {
  const std::string m = s.ToString();
  return s.IsIOError() &&
         (m.find("lock") != std::string::npos || m.find("LOCK") != std::string::npos);
}

}  // namespace

bool IsDataDirLocked(const absl::Status& s) {
  return s.code() == absl::StatusCode::kFailedPrecondition &&
         s.GetPayload(kLockedPayloadUrl).has_value();
}

Db::~Db() {
  // Writes every batch still queued, then refuses new ones: nothing acknowledged is lost
  // and no caller is left waiting.
  if (committer_ != nullptr) committer_->Stop();
  if (db_ != nullptr) {
    for (auto* h : handles_) {
      if (h != nullptr) db_->DestroyColumnFamilyHandle(h);
    }
    db_->Close();
  }
}

absl::StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& dir, const DbOptions& opts) {
  if (opts.key_check.size() != 32) {
    return absl::InvalidArgumentError("Db::Open: key_check must be 32 bytes");
  }
  auto cache = rocksdb::NewLRUCache(opts.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (int c = 0; c < kCfCount; ++c) {
    cfs.emplace_back(kCfNames[c], MakeCfOptions(static_cast<Cf>(c), cache));
  }
  rocksdb::DBOptions dbo = MakeDbOptions(opts);
  auto health = std::make_unique<WriteHealth>();
  dbo.listeners.push_back(health->listener());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(dbo, dir, cfs, &handles, &raw);
  if (!s.ok()) {
    if (IsLockError(s)) {
      absl::Status locked = absl::FailedPreconditionError(absl::StrCat(
          "data dir ", dir,
          " is locked: another keyvend process (server or tool) has it open; stop it first "
          "(for a running shop use its admin API)"));
      locked.SetPayload(kLockedPayloadUrl, absl::Cord("1"));
      return locked;
    }
    if (s.IsInvalidArgument() && s.ToString().find("does not exist") != std::string::npos) {
      return absl::NotFoundError(absl::StrCat("no keyvend database in ", dir));
    }
    if (s.IsInvalidArgument() && s.ToString().find("Column famil") != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, " is not a keyvend data dir of a known layout: ", s.ToString()));
    }
    return FromRocks(s, absl::StrCat("opening RocksDB in ", dir));
  }
  std::unique_ptr<Db> db(new Db());
  db->dir_ = dir;
  db->health_ = std::move(health);
  db->db_.reset(raw);
  for (int c = 0; c < kCfCount; ++c) db->handles_[c] = handles[c];
  // The counters' merges are int64 additions (counter_merge.h): a group sums them per key.
  AdditiveCf additive;
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    if (h->GetID() >= additive.handles.size()) additive.handles.resize(h->GetID() + 1);
    additive.handles[h->GetID()] = h;
  }
  additive.id = handles[kCfCounters]->GetID();
  WriteFaultFn before_group = opts.write_fault;
  if (opts.min_free_bytes > 0) {
    db->space_ = std::make_unique<DiskSpaceGuard>(dir, opts.min_free_bytes);
    DiskSpaceGuard* space = db->space_.get();
    before_group = [space, fault = opts.write_fault]() -> absl::Status {
      absl::Status s = space->Check();
      if (!s.ok()) return s;
      return fault ? fault() : absl::OkStatus();
    };
  }
  // The committer reports each group's outcome to the write health before waking its
  // members (the guard's refusals are not the database's failures).
  WriteHealth* health_ptr = db->health_.get();
  db->committer_ = std::make_unique<GroupCommitter>(raw, before_group, std::move(additive),
                                                    [health_ptr](const absl::Status& s) {
                                                      if (!DiskSpaceGuard::IsRefusal(s))
                                                        health_ptr->RecordWrite(s);
                                                    });

  auto version = db->Get(kCfMeta, kMetaSchemaVersion);
  if (!version.ok()) return version.status();
  auto check = db->Get(kCfMeta, kMetaKeyCheck);
  if (!check.ok()) return check.status();
  if (!version->has_value()) {
    // A database without a schema record is new only if it holds nothing at all.
    for (int c = kCfDefault; c < kCfCount; ++c) {
      auto last = db->LastKey(static_cast<Cf>(c));
      if (!last.ok()) return last.status();
      if (last->has_value()) {
        return absl::FailedPreconditionError(absl::StrCat(
            dir, " holds a RocksDB database without a keyvend schema record; refusing it"));
      }
    }
    rocksdb::WriteBatch b;
    std::string v;
    PutFixed32BE(&v, kSchemaVersion);
    b.Put(db->cf(kCfMeta), rocksdb::Slice(kMetaSchemaVersion.data(), kMetaSchemaVersion.size()), v);
    b.Put(db->cf(kCfMeta), rocksdb::Slice(kMetaKeyCheck.data(), kMetaKeyCheck.size()),
          opts.key_check);
    absl::Status ws = db->Write(&b, /*sync=*/true);
    if (!ws.ok()) return ws;
    return db;
  }
  if ((*version)->size() != 4) {
    return absl::DataLossError(absl::StrCat(dir, ": malformed schema_version record"));
  }
  const uint32_t found = DecodeFixed32BE((*version)->data());
  if (found > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " has schema version ", found, " but this keyvend understands up to ",
                     kSchemaVersion, "; use a newer keyvend (the data dir was not changed)"));
  }
  if (found < 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " has unknown schema version ", found, "; refusing to open it"));
  }
  // Upgrades from older versions. The key check below runs first on the version's record;
  // an upgrade rewrites nothing a wrong key could misread.
  if (found < kSchemaVersion) {
    // 1 -> 2 (issue 9): version 2 adds record versions a version-1 binary cannot read
    // (payment v2, idempotency v2, contact-index values); every version-1 record is still
    // read as it is. The upgrade only stamps the new version, synced, so that a version-1
    // binary then refuses the whole dir with a clear message instead of failing on the
    // first new record.
    // 2 -> 3 (issue 12): CF counters gains the orders-per-status counts ('o' status), which
    // a version-2 binary would refuse as malformed counter keys; the shop counts them once
    // at its first open (meta "order_counts" marks it done). The upgrade here only stamps
    // the version, as above.
    // 3 -> 4 (issue 13): the new CF "pay_attempts" (created empty by the open above, as
    // create_missing_column_families allows); a version-3 binary does not open a CF it
    // does not know, so the version is stamped, as above.
    // 4 -> 5 (issue 14): the new CF "outbound" (webhook events and mails), created empty
    // and stamped exactly as 3 -> 4.
    if (!check->has_value() || (*check)->size() != opts.key_check.size() ||
        CRYPTO_memcmp((*check)->data(), opts.key_check.data(), opts.key_check.size()) != 0) {
      return absl::PermissionDeniedError(absl::StrCat("wrong master key for data dir ", dir,
                                                      "; refusing to open (or upgrade) it"));
    }
    rocksdb::WriteBatch b;
    std::string v;
    PutFixed32BE(&v, kSchemaVersion);
    b.Put(db->cf(kCfMeta), rocksdb::Slice(kMetaSchemaVersion.data(), kMetaSchemaVersion.size()), v);
    absl::Status ws = db->Write(&b, /*sync=*/true);
    if (!ws.ok()) return ws;
  }
  if (!check->has_value() || (*check)->size() != opts.key_check.size() ||
      CRYPTO_memcmp((*check)->data(), opts.key_check.data(), opts.key_check.size()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "wrong master key for data dir ", dir,
        ": the key file does not match the key this shop was created with; refusing to open "
        "(nothing was written)"));
  }
  return db;
}

absl::Status Db::Write(rocksdb::WriteBatch* batch, bool sync) {
  // A synced write's outcome reaches the write health from the committer (before the caller
  // is woken, so nothing here touches the Db after Commit returns).
  if (sync) return committer_->Commit(batch);
  absl::Status s;
  if (space_ != nullptr) s = space_->Check();
  if (s.ok()) {
    rocksdb::WriteOptions wo;
    wo.sync = false;
    s = FromRocks(db_->Write(wo, batch), "write");
  }
  // The guard's refusal is not a failure of the database: write_health() reports it itself.
  if (!DiskSpaceGuard::IsRefusal(s)) health_->RecordWrite(s);
  return s;
}

void Db::WriteAsync(std::unique_ptr<rocksdb::WriteBatch> batch, GroupCommitter::DoneFn done) {
  committer_->CommitAsync(std::move(batch), std::move(done));
}

WriteHealth::State Db::write_health() const {
  WriteHealth::State h = health_->state();
  if (space_ != nullptr && space_->low()) {
    h.writable = false;
    h.error = std::string(space_->Check().message());
  }
  return h;
}

absl::StatusOr<std::optional<std::string>> Db::Get(Cf c, std::string_view key) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), handles_[c], rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, absl::StrCat("read ", kCfNames[c]));
  return std::optional<std::string>(std::move(value));
}

std::unique_ptr<rocksdb::Iterator> Db::NewIterator(Cf c) const {
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  return std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(ro, handles_[c]));
}

absl::Status Db::ForEach(Cf c, std::string_view prefix, std::string_view start, ScanFn fn) const {
  auto it = NewIterator(c);
  const rocksdb::Slice p(prefix.data(), prefix.size());
  const std::string_view from = start < prefix ? prefix : start;
  for (it->Seek(rocksdb::Slice(from.data(), from.size())); it->Valid() && it->key().starts_with(p);
       it->Next()) {
    auto step = fn(std::string_view(it->key().data(), it->key().size()),
                   std::string_view(it->value().data(), it->value().size()));
    if (!step.ok()) return step.status();
    if (*step == Scan::kStop) break;
  }
  return FromRocks(it->status(), absl::StrCat("scanning ", kCfNames[c]));
}

absl::StatusOr<std::optional<std::string>> Db::LastKey(Cf c) const {
  auto it = NewIterator(c);
  it->SeekToLast();
  if (it->Valid()) return std::optional<std::string>(it->key().ToString());
  KV_RETURN_IF_ERROR(
      FromRocks(it->status(), absl::StrCat("reading the last key of ", kCfNames[c])));
  return std::optional<std::string>();
}

absl::StatusOr<uint64_t> Db::GetMetaU64(std::string_view key, uint64_t dflt) const {
  auto v = Get(kCfMeta, key);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return dflt;
  if ((*v)->size() != 8)
    return absl::DataLossError(absl::StrCat("malformed meta record ", std::string(key)));
  return DecodeFixed64BE((*v)->data());
}

}  // namespace kv::storage
