// What keyvend stores with every backup (RocksDB's "app metadata" of the backup): a small
// JSON object that says what the backup holds and which master key it needs, so that
// `list` can show it and `restore` can refuse a wrong key before copying a byte.
//
//   {"keyvend_backup":1,"created_at":"2026-11-21T15:04:05Z","created_unix_ms":1795...,
//    "source":"api","schema_version":1,"key_check":"<64 hex>","products":3,
//    "keys":1000000,"keys_in_pool":998000,"orders":2000}
//
// The counts are read from one RocksDB snapshot taken just before the backup captures its
// files, so the backup holds at least what they count (writes that commit while the files
// are captured may be in the backup too, uncounted). key_check is the data dir's own
// key-check value (storage/key_cipher.h: an HMAC of a constant under the master key; it
// reveals nothing about the key and is stored in the clear in the data dir anyway).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "storage/db.h"

namespace kv::backup {

struct BackupMetadata {
  // Version of this JSON shape. A newer one is refused by DecodeMetadata.
  static constexpr int64_t kFormat = 1;

  int64_t created_unix_ms = 0;  // wall clock when the backup started
  // Who asked: "offline" (keyvend-backup create --data-dir), "api" (POST
  // /api/v1/admin/backups) or "schedule" (the server's scheduler). Free text, <= 16 bytes.
  std::string source;
  uint32_t schema_version = 0;  // the data dir's schema version (storage/schema.h)
  std::string key_check;        // 32 bytes: the data dir's key-check value
  uint64_t products = 0;
  uint64_t keys = 0;          // card keys ever imported (in the pool + delivered + retired)
  uint64_t keys_in_pool = 0;  // card keys not yet delivered or retired
  uint64_t orders = 0;

  friend bool operator==(const BackupMetadata&, const BackupMetadata&) = default;
};

// The JSON above. Pure; thread-safe.
std::string EncodeMetadata(const BackupMetadata& m);

// Parses EncodeMetadata's output. Unknown members are ignored (a later keyvend may add
// some). Errors (InvalidArgument, naming the member): not a JSON object, not a keyvend
// backup ("keyvend_backup" missing), a newer format, a member missing or of the wrong
// type, a key_check that is not 64 hex characters. Pure; thread-safe.
absl::StatusOr<BackupMetadata> DecodeMetadata(std::string_view json);

// Describes the database for a backup about to be taken: schema version and key check
// from CF meta, products, key counts from the durable counters, orders from the order
// index (exactly one 'e' or 's' entry per order), all read from one snapshot, without
// filling the block cache. `now` becomes created_unix_ms. Errors: DataLoss on a malformed
// meta or counter record, the iterators' errors. Thread-safe (reads only).
absl::StatusOr<BackupMetadata> DescribeDb(const storage::Db& db, absl::Time now,
                                          std::string source);

}  // namespace kv::backup
