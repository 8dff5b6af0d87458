// keyvend-preload: bulk-loads card keys from .txt/.csv files into one product of a STOPPED
// shop's data dir (SPEC §8). The steps, each in its own module:
//
//   input.h   map + parse every file with the shop's one parser/validator (ParseKeys)
//   dedupe.h  tag, sort, drop duplicates within the input and against CF key_tags
//             (a sort-merge, not a point read per key)
//   (here)    serve the product's waiting backorders first, through Shop::ImportKeys with
//             exactly the keys they need (SPEC §6: an import serves backorders before any
//             key becomes stock)
//   ingest.h  the rest as ONE new batch: SST files ingested atomically into pool, key_tags,
//             batches and counters (none or all of the batch is visible after any crash)
//   report.h  a line per line not loaded, and a summary
//
// The data dir is opened through Shop::Open (which takes RocksDB's LOCK: a running shop or
// another tool makes the run fail at once, and replays the delivery log as a server start
// would); a dry run opens it without the shop and writes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "preload/ingest.h"
#include "preload/input.h"
#include "preload/progress.h"
#include "preload/report.h"

namespace kv::preload {

struct PreloadOptions {
  std::string data_dir;            // required; must hold a shop (never created here)
  std::string master_key_file;     // required; outside the data dir
  uint64_t product_id = 0;         // required; must exist
  std::vector<std::string> files;  // required, at least one
  // Parse, dedupe and report, but open the data dir without the shop and write nothing.
  // Default false.
  bool dry_run = false;
  // File formats and CSV column (input.h). `input.threads` is set from `threads`.
  InputOptions input;
  // Worker threads for parsing, tagging, sorting, the index merge and sealing; 0 = one per
  // core. Default 0.
  int threads = 0;
  // Keys per SST file (ingest.h). Default 4M.
  size_t sst_keys_max = size_t{4} << 20;
  // RocksDB block cache while the tool runs, bytes. Default 64 MiB.
  size_t block_cache_bytes = size_t{64} << 20;
  // Test-only stop points of the write step (ingest.h); empty in the binary.
  std::function<void(IngestPoint)> ingest_hook;
};

struct [[nodiscard]] PreloadResult {
  RunCounts counts;
  // Lines not loaded, by file then line (report.h). Paths are those of `files`.
  std::vector<InputFile> files;
  std::vector<ReportLine> report;
};

// Runs one preload. Outcomes:
//  - OK: the result says what was loaded (possibly nothing: every key a duplicate) and
//    lists every line not loaded.
//  - FailedPrecondition: the data dir is locked — the message says the shop is running and
//    names POST /api/v1/admin/products/{id}/keys — or not a keyvend data dir, or a newer
//    schema; or waiting backorders could not be served.
//  - NotFound: no shop in the data dir, or no such product.
//  - InvalidArgument / NotFound / PermissionDenied / ResourceExhausted: an input file
//    (input.h), before the data dir is opened.
//  - PermissionDenied: wrong master key.
//  - Unavailable / DataLoss / Internal: I/O or RocksDB failure.
// On any error nothing of the batch is visible (see ingest.h); keys already imported to
// serve backorders (a committed shop import) stay, and a rerun reports them already_stored.
// Never prints a key; `progress` (may be null) draws the progress bar.
absl::StatusOr<PreloadResult> RunPreload(const PreloadOptions& opts, Progress* progress);

// The temp dir RunPreload writes SST files into: "<data_dir>/preload-tmp".
std::string PreloadTmpDir(const std::string& data_dir);

}  // namespace kv::preload
