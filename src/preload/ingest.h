// keyvend-preload's write step: one key batch of a product, written as SST files and made
// visible in ONE atomic step (rocksdb::DB::IngestExternalFiles over four column families).
//
// What the batch holds — exactly the records Shop::ImportKeys writes for the same keys, so
// the shop and `keyvend check` cannot tell a preloaded batch from an imported one:
//   CF pool      PoolKey(pid, first_seq + i) -> PoolKeyRecord{batch_id,
//                                               Seal(text_i, aad = that pool key)}
//   CF key_tags  KeyTag(text_i)              -> PoolKey(pid, first_seq + i)
//   CF batches   BatchKey(pid, batch_id)     -> BatchRecord{first_seq, last_seq, imported = n}
//   CF counters  CounterKey(pid, pool)       Merge +n
//                CounterKey(pid, imported)   Merge +n
//
// Atomicity: IngestExternalFiles commits the files of every column family with one MANIFEST
// write (an atomic group of version edits, synced). RocksDB's contract (rocksdb/db.h): if it
// returns OK every file is in; if it fails or the process dies, none is after recovery.
// Before that commit the SSTs are only files in a temp dir (or hard links RocksDB has not
// recorded, which it deletes as obsolete on the next open): invisible. So a crash at any
// moment leaves either the whole batch — keys, tags, batch record and counters together —
// or nothing, and `keyvend check` (counters = recount, tags = keys) holds either way.
// The counters are Merge operands (kv.int64add) in the ingested file, on top of whatever
// the counter already was: no read-modify-write, nothing to get out of step.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "preload/dedupe.h"
#include "preload/progress.h"
#include "storage/db.h"
#include "storage/key_cipher.h"

namespace kv::preload {

struct IngestPlan {
  uint64_t product_id = 0;
  uint64_t batch_id = 0;   // the product's next batch id (one above every stored one)
  uint64_t first_seq = 0;  // the product's next seq (one above every stored one)
  int64_t created_ms = 0;  // the batch record's creation time
};

// Points a test can stop the process at (IngestOptions::hook). The keyvend-preload binary
// sets no hook.
enum class IngestPoint {
  kSstsWritten,  // every SST is finished and synced; IngestExternalFiles not yet called
  kIngesting,    // just before IngestExternalFiles (a test may start a killer thread here)
  kIngested,     // IngestExternalFiles returned OK; temp files not yet removed
};

struct IngestOptions {
  // Directory for the SST files, created (and emptied) here and removed afterwards. It must
  // be on the data dir's file system so ingestion hard-links instead of copying.
  std::string tmp_dir;
  // Threads sealing keys and writing SSTs. Default 1.
  int threads = 1;
  // Keys per SST file (pool and key_tags). Default 4M (~300 MB of pool file).
  size_t sst_keys_max = size_t{4} << 20;
  std::function<void(IngestPoint)> hook;  // test-only; empty in production
};

// Writes and ingests one batch of n = texts.size() keys: texts[i] gets seq
// plan.first_seq + i. `tags` holds every key's tag exactly once, sorted by tag, with
// index = i (its rank in `texts`). The caller guarantees the texts are new to the shop and
// distinct, the ids are the next free ones, and nobody else writes the data dir.
// Errors: Internal for a bad argument (n == 0, tags not matching texts), else the
// file-system or RocksDB error (Unavailable / DataLoss ...), in which case nothing became
// visible and the temp dir is removed (best effort).
[[nodiscard]] absl::Status WriteAndIngest(storage::Db& db, const KeyCipher& cipher,
                                          const IngestPlan& plan,
                                          const std::vector<std::string_view>& texts,
                                          const std::vector<TagEntry>& tags,
                                          const IngestOptions& opts, Progress* progress);

// Removes `dir` and everything in it (leftovers of a run that died before ingesting).
// OK when it does not exist.
[[nodiscard]] absl::Status RemoveTmpDir(const std::string& dir);

}  // namespace kv::preload
