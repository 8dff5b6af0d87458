#include "backup/metadata.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/time_format.h"
#include "rocksdb/db.h"
#include "simdjson.h"
#include "storage/counter_merge.h"
#include "storage/rocks_status.h"
#include "storage/schema.h"

namespace kv::backup {
namespace {

// A source is a short lowercase word; anything else is written as '_' so the JSON never
// needs escaping.
std::string SafeSource(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 16)) {
    out.push_back((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ? c : '_');
  }
  return out;
}

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("backup metadata: ", std::string(what)));
}

// Releases a snapshot on every return path.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) {}
  ~SnapshotHolder() { db_->ReleaseSnapshot(snap_); }
  SnapshotHolder(const SnapshotHolder&) = delete;
  SnapshotHolder& operator=(const SnapshotHolder&) = delete;
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
};

}  // namespace

std::string EncodeMetadata(const BackupMetadata& m) {
  return absl::StrCat(
      "{\"keyvend_backup\":", BackupMetadata::kFormat, ",\"created_at\":\"",
      FormatRfc3339(FromUnixMs(m.created_unix_ms)), "\",\"created_unix_ms\":", m.created_unix_ms,
      ",\"source\":\"", SafeSource(m.source), "\",\"schema_version\":", m.schema_version,
      ",\"key_check\":\"", HexEncode(m.key_check), "\",\"products\":", m.products,
      ",\"keys\":", m.keys, ",\"keys_in_pool\":", m.keys_in_pool, ",\"orders\":", m.orders, "}");
}

absl::StatusOr<BackupMetadata> DecodeMetadata(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json.data(), json.size());
  simdjson::dom::element root;
  if (parser.parse(padded).get(root) != simdjson::SUCCESS) return Bad("not JSON");
  simdjson::dom::object obj;
  if (root.get(obj) != simdjson::SUCCESS) return Bad("not a JSON object");
  int64_t format = 0;
  if (obj["keyvend_backup"].get(format) != simdjson::SUCCESS) {
    return Bad("not a keyvend backup (no \"keyvend_backup\" member)");
  }
  if (format < 1 || format > BackupMetadata::kFormat) {
    return Bad(absl::StrCat("format ", format, " is not understood by this keyvend (up to ",
                            BackupMetadata::kFormat, ")"));
  }
  BackupMetadata m;
  const auto u64 = [&obj](const char* name, uint64_t* out) -> absl::Status {
    if (obj[name].get(*out) != simdjson::SUCCESS) {
      return Bad(absl::StrCat("\"", name, "\" missing or not a non-negative integer"));
    }
    return absl::OkStatus();
  };
  if (obj["created_unix_ms"].get(m.created_unix_ms) != simdjson::SUCCESS) {
    return Bad("\"created_unix_ms\" missing or not an integer");
  }
  std::string_view s;
  if (obj["source"].get(s) != simdjson::SUCCESS) return Bad("\"source\" missing or not a string");
  m.source = std::string(s);
  uint64_t schema = 0;
  if (absl::Status st = u64("schema_version", &schema); !st.ok()) return st;
  if (schema > UINT32_MAX) return Bad("\"schema_version\" out of range");
  m.schema_version = static_cast<uint32_t>(schema);
  if (obj["key_check"].get(s) != simdjson::SUCCESS || s.size() != 64 ||
      !HexDecode(s, &m.key_check)) {
    return Bad("\"key_check\" missing or not 64 hex characters");
  }
  for (auto [name, field] :
       {std::pair{"products", &m.products}, std::pair{"keys", &m.keys},
        std::pair{"keys_in_pool", &m.keys_in_pool}, std::pair{"orders", &m.orders}}) {
    if (absl::Status st = u64(name, field); !st.ok()) return st;
  }
  return m;
}

absl::StatusOr<BackupMetadata> DescribeDb(const storage::Db& db, absl::Time now,
                                          std::string source) {
  using storage::Cf;
  BackupMetadata m;
  m.created_unix_ms = UnixMs(now);
  m.source = std::move(source);
  rocksdb::DB* raw = db.raw();
  SnapshotHolder snap(raw);
  rocksdb::ReadOptions ro;
  ro.snapshot = snap.get();
  ro.fill_cache = false;  // a census must not evict the shop's hot blocks
  ro.total_order_seek = true;

  std::string v;
  rocksdb::Status s = raw->Get(
      ro, db.cf(storage::kCfMeta),
      rocksdb::Slice(storage::kMetaSchemaVersion.data(), storage::kMetaSchemaVersion.size()), &v);
  if (!s.ok() || v.size() != 4) {
    return s.ok() ? absl::DataLossError("malformed schema_version record")
                  : storage::FromRocks(s, "reading the schema version");
  }
  m.schema_version = DecodeFixed32BE(v.data());
  s = raw->Get(ro, db.cf(storage::kCfMeta),
               rocksdb::Slice(storage::kMetaKeyCheck.data(), storage::kMetaKeyCheck.size()),
               &m.key_check);
  if (!s.ok()) return storage::FromRocks(s, "reading the key check");

  // Visits every record of `cf` whose key starts with `prefix`, at the snapshot (so not
  // Db::ForEach, which reads the latest state; like it, it returns the iterator's status).
  const auto scan = [&](Cf cf, std::string_view prefix, const auto& visit) -> absl::Status {
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(ro, db.cf(cf)));
    const rocksdb::Slice p(prefix.data(), prefix.size());
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
      absl::Status st = visit(*it);
      if (!st.ok()) return st;
    }
    return storage::FromRocks(it->status(), absl::StrCat("scanning ", storage::kCfNames[cf]));
  };
  absl::Status st = scan(storage::kCfProducts, "", [&](const rocksdb::Iterator&) {
    ++m.products;
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  int64_t imported = 0, pool = 0;
  st = scan(storage::kCfCounters, "", [&](const rocksdb::Iterator& it) {
    int64_t n = 0;
    const std::string_view key(it.key().data(), it.key().size());
    if (storage::ParseOrderCountKey(key)) return absl::OkStatus();  // per-status order counts
    const auto k = storage::ParseCounterKey(key);
    if (!k || !storage::DecodeCounter(it.value(), &n)) {
      return absl::DataLossError("malformed counter record");
    }
    if (k->kind == storage::CounterKind::kImported) imported += n;
    if (k->kind == storage::CounterKind::kPool) pool += n;
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  m.keys = imported > 0 ? static_cast<uint64_t>(imported) : 0;
  m.keys_in_pool = pool > 0 ? static_cast<uint64_t>(pool) : 0;
  // Exactly one 'e' (pending_payment) or 's' (any other status) entry per order.
  for (const char tag : {storage::kIdxExpiry, storage::kIdxStatus}) {
    st = scan(storage::kCfOrderIndex, std::string_view(&tag, 1), [&](const rocksdb::Iterator&) {
      ++m.orders;
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
  }
  return m;
}

}  // namespace kv::backup
