#include "preload/ingest.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/random.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_writer.h"
#include "shop/records.h"
#include "storage/counter_merge.h"
#include "storage/rocks_status.h"
#include "storage/schema.h"

namespace kv::preload {
namespace {

constexpr size_t kProgressEveryKeys = 1 << 14;

// One run of consecutive SST files for one column family, written by one thread: a new
// file every `per_file` entries. Files are named <prefix>-<n>.sst in the temp dir.
class SstSeries {
 public:
  SstSeries(storage::Db& db, storage::Cf cf, std::string prefix, size_t per_file)
      : options_(db.raw()->GetOptions(db.cf(cf))),
        handle_(db.cf(cf)),
        prefix_(std::move(prefix)),
        per_file_(per_file) {}

  absl::Status Put(const rocksdb::Slice& key, const rocksdb::Slice& value) {
    if (writer_ == nullptr || in_file_ == per_file_) {
      absl::Status s = Close();
      if (!s.ok()) return s;
      writer_ = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options_, handle_);
      const std::string path = absl::StrCat(prefix_, "-", files_.size(), ".sst");
      s = storage::FromRocks(writer_->Open(path), "preload: creating an SST file");
      if (!s.ok()) return s;
      files_.push_back(path);
      in_file_ = 0;
    }
    ++in_file_;
    return storage::FromRocks(writer_->Put(key, value), "preload: writing an SST file");
  }

  absl::Status Merge(const rocksdb::Slice& key, const rocksdb::Slice& value) {
    if (writer_ == nullptr) {
      writer_ = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options_, handle_);
      const std::string path = absl::StrCat(prefix_, "-0.sst");
      absl::Status s = storage::FromRocks(writer_->Open(path), "preload: creating an SST file");
      if (!s.ok()) return s;
      files_.push_back(path);
    }
    return storage::FromRocks(writer_->Merge(key, value), "preload: writing an SST file");
  }

  // Finishes the open file: SstFileWriter::Finish writes the footer and syncs the file.
  absl::Status Close() {
    if (writer_ == nullptr) return absl::OkStatus();
    absl::Status s = storage::FromRocks(writer_->Finish(), "preload: finishing an SST file");
    writer_.reset();
    return s;
  }

  const std::vector<std::string>& files() const { return files_; }

 private:
  const rocksdb::Options options_;
  rocksdb::ColumnFamilyHandle* const handle_;
  const std::string prefix_;
  const size_t per_file_;
  std::unique_ptr<rocksdb::SstFileWriter> writer_;
  size_t in_file_ = 0;
  std::vector<std::string> files_;
};

}  // namespace

absl::Status RemoveTmpDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("removing ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::Status WriteAndIngest(storage::Db& db, const KeyCipher& cipher, const IngestPlan& plan,
                            const std::vector<std::string_view>& texts,
                            const std::vector<TagEntry>& tags, const IngestOptions& opts,
                            Progress* progress) {
  const size_t n = texts.size();
  if (n == 0 || tags.size() != n || plan.batch_id == 0 || plan.first_seq == 0 ||
      opts.tmp_dir.empty() || opts.sst_keys_max == 0) {
    return absl::InternalError("preload: WriteAndIngest called with a malformed batch");
  }
  absl::Status s = RemoveTmpDir(opts.tmp_dir);
  if (!s.ok()) return s;
  std::error_code ec;
  std::filesystem::create_directories(opts.tmp_dir, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("creating ", opts.tmp_dir, ": ", ec.message()));

  // Each thread writes one contiguous share of the pool (by seq) and one of key_tags (by
  // tag): SST files of one column family must not overlap, and shares never do.
  const size_t threads = std::clamp<size_t>(static_cast<size_t>(std::max(1, opts.threads)), 1,
                                            std::max<size_t>(1, n / 1024));
  std::vector<std::unique_ptr<SstSeries>> pool_files, tag_files;
  for (size_t t = 0; t < threads; ++t) {
    pool_files.push_back(std::make_unique<SstSeries>(
        db, storage::kCfPool, absl::StrCat(opts.tmp_dir, "/pool-", t), opts.sst_keys_max));
    tag_files.push_back(std::make_unique<SstSeries>(
        db, storage::kCfKeyTags, absl::StrCat(opts.tmp_dir, "/tags-", t), opts.sst_keys_max));
  }
  std::vector<absl::Status> errors(threads);
  auto run = [&](auto&& fn) {
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(fn, t);
    fn(size_t{0});
    for (std::thread& th : pool) th.join();
  };
  // Pass 1: seal every key into the pool files (the CPU-heavy part).
  if (progress != nullptr) progress->Phase("sealing", n, ProgressUnit::kKeys);
  run([&](size_t t) {
    const size_t begin = n * t / threads;
    const size_t end = n * (t + 1) / threads;
    // A nonce per key: buffered CSPRNG output (RAND_bytes per 12 bytes would cost ~1 us).
    BufferedSecureRandom random;
    SstSeries& files = *pool_files[t];
    std::string record;
    for (size_t i = begin; i < end && errors[t].ok(); ++i) {
      const uint64_t seq = plan.first_seq + i;
      record = EncodePoolKey(PoolKeyRecord{
          plan.batch_id, cipher.SealPoolKey(texts[i], plan.product_id, seq, &random)});
      errors[t] = files.Put(storage::PoolKey(plan.product_id, seq), record);
      if (progress != nullptr && (i - begin + 1) % kProgressEveryKeys == 0) {
        progress->Add(kProgressEveryKeys);
      }
    }
    if (progress != nullptr) progress->Add((end - begin) % kProgressEveryKeys);
    if (errors[t].ok()) errors[t] = files.Close();
  });
  // Pass 2: the uniqueness tags, in tag order.
  if (progress != nullptr) progress->Phase("indexing", n, ProgressUnit::kKeys);
  run([&](size_t t) {
    if (!errors[t].ok()) return;
    const size_t begin = n * t / threads;
    const size_t end = n * (t + 1) / threads;
    SstSeries& files = *tag_files[t];
    for (size_t k = begin; k < end && errors[t].ok(); ++k) {
      const TagEntry& e = tags[k];
      if (e.index >= n) {
        errors[t] = absl::InternalError("preload: a tag names no key of the batch");
        break;
      }
      errors[t] =
          files.Put(rocksdb::Slice(reinterpret_cast<const char*>(e.tag.data()), e.tag.size()),
                    storage::PoolKey(plan.product_id, plan.first_seq + e.index));
      if (progress != nullptr && (k - begin + 1) % kProgressEveryKeys == 0) {
        progress->Add(kProgressEveryKeys);
      }
    }
    if (progress != nullptr) progress->Add((end - begin) % kProgressEveryKeys);
    if (errors[t].ok()) errors[t] = files.Close();
  });
  for (const absl::Status& e : errors) {
    if (!e.ok()) {
      (void)RemoveTmpDir(opts.tmp_dir);
      return e;
    }
  }

  // The batch record and the counters: one entry each, sorted by key within their files.
  BatchRecord batch;
  batch.batch_id = plan.batch_id;
  batch.created_ms = plan.created_ms;
  batch.first_seq = plan.first_seq;
  batch.last_seq = plan.first_seq + n - 1;
  batch.imported = n;
  SstSeries batches(db, storage::kCfBatches, opts.tmp_dir + "/batches", 1);
  s = batches.Put(storage::BatchKey(plan.product_id, plan.batch_id), EncodeBatch(batch));
  if (s.ok()) s = batches.Close();
  SstSeries counters(db, storage::kCfCounters, opts.tmp_dir + "/counters", 2);
  static_assert(storage::CounterKind::kPool < storage::CounterKind::kImported, "key order");
  const std::string delta = storage::EncodeCounter(static_cast<int64_t>(n));
  if (s.ok())
    s = counters.Merge(storage::CounterKey(plan.product_id, storage::CounterKind::kPool), delta);
  if (s.ok()) {
    s = counters.Merge(storage::CounterKey(plan.product_id, storage::CounterKind::kImported),
                       delta);
  }
  if (s.ok()) s = counters.Close();
  if (!s.ok()) {
    (void)RemoveTmpDir(opts.tmp_dir);
    return s;
  }
  if (progress != nullptr) progress->Finish();
  if (opts.hook) opts.hook(IngestPoint::kSstsWritten);

  rocksdb::IngestExternalFileOptions io;
  io.move_files = true;            // hard links: no copy of hundreds of MB
  io.write_global_seqno = false;   // the seqno lives in the MANIFEST only; files stay as written
  io.allow_global_seqno = true;    // key_tags and counters overlap what is stored
  io.allow_blocking_flush = true;  // a memtable holding the same keys is flushed first
  io.verify_checksums_before_ingest = false;  // just written and synced by this process
  std::vector<rocksdb::IngestExternalFileArg> args(4);
  args[0].column_family = db.cf(storage::kCfPool);
  args[1].column_family = db.cf(storage::kCfKeyTags);
  for (size_t t = 0; t < threads; ++t) {
    for (const std::string& f : pool_files[t]->files()) args[0].external_files.push_back(f);
    for (const std::string& f : tag_files[t]->files()) args[1].external_files.push_back(f);
  }
  args[2].column_family = db.cf(storage::kCfBatches);
  args[2].external_files = batches.files();
  args[3].column_family = db.cf(storage::kCfCounters);
  args[3].external_files = counters.files();
  for (auto& a : args) a.options = io;

  if (progress != nullptr) progress->Phase("ingesting", n, ProgressUnit::kKeys);
  if (opts.hook) opts.hook(IngestPoint::kIngesting);
  s = storage::FromRocks(db.raw()->IngestExternalFiles(args), "preload: ingesting the batch");
  if (!s.ok()) {
    (void)RemoveTmpDir(opts.tmp_dir);
    return s;
  }
  if (progress != nullptr) {
    progress->Add(n);
    progress->Finish();
  }
  if (opts.hook) opts.hook(IngestPoint::kIngested);
  // The batch is in; a leftover temp dir would only be removed by the next run.
  (void)RemoveTmpDir(opts.tmp_dir);
  return absl::OkStatus();
}

}  // namespace kv::preload
