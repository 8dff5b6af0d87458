#include "preload/preload.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/random.h"
#include "base/time_format.h"
#include "limits/limits.h"
#include "shop/records.h"
#include "shop/shop.h"
#include "storage/counter_merge.h"
#include "storage/data_dir.h"
#include "storage/schema.h"

namespace kv::preload {
namespace {

// Rounds of "import what the backorders need" before giving up (each round stores at least
// one key and normally the first round serves them all; see ServeBackorders).
constexpr int kBackorderRoundsMax = 64;

// A locked data dir means a running shop (or another tool): say what to do instead.
absl::Status OpenError(const absl::Status& s, const PreloadOptions& o) {
  if (storage::IsDataDirLocked(s)) {
    return absl::FailedPreconditionError(absl::StrCat("the shop is running (data dir ", o.data_dir,
                                                      " is locked): import through POST "
                                                      "/api/v1/admin/products/",
                                                      o.product_id,
                                                      "/keys instead, or stop the shop first"));
  }
  return s;
}

absl::StatusOr<int64_t> ReadCounter(const storage::Db& db, uint64_t pid, storage::CounterKind k) {
  auto v = db.Get(storage::kCfCounters, storage::CounterKey(pid, k));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return 0;
  int64_t n = 0;
  if (!storage::DecodeCounter(**v, &n)) return absl::DataLossError("malformed stock counter");
  return n;
}

// Keys to import so that every waiting backorder is served: after serving them all the pool
// must still cover every hold (pool + k - owed >= held), the rule Shop::ImportKeys applies.
int64_t KeysForBackorders(int64_t owed, int64_t held, int64_t pool) {
  if (owed <= 0) return 0;
  return std::max<int64_t>(1, owed + held - pool);
}

// The product's next batch id and seq, derived from its stored batches exactly as
// Shop::Recover derives them (one above the highest batch id, one above the highest
// last_seq), so a later online import continues after the preloaded batch.
void NextIds(const std::vector<BatchRecord>& batches, uint64_t* batch_id, uint64_t* seq) {
  *batch_id = 1;
  *seq = 1;
  for (const BatchRecord& b : batches) {
    *batch_id = std::max(*batch_id, b.batch_id + 1);
    *seq = std::max(*seq, b.last_seq + 1);
  }
}

absl::Status RefusalStatus(const Result<ImportResult>& r) {
  if (!r.refused()) return r.status();
  return absl::FailedPreconditionError(
      absl::StrCat("serving backorders: the shop refused the import (",
                   std::string(RefusalCode(r.refusal())), "): ", r.message()));
}

}  // namespace

std::string PreloadTmpDir(const std::string& data_dir) { return data_dir + "/preload-tmp"; }

absl::StatusOr<PreloadResult> RunPreload(const PreloadOptions& opts, Progress* progress) {
  if (opts.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  if (opts.product_id == 0 || opts.product_id > limits::kProductsMax) {
    return absl::InvalidArgumentError(absl::StrCat("--product must be 1..", limits::kProductsMax));
  }
  const int threads = opts.threads > 0
                          ? opts.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  // 1. The input, before the data dir is touched: a bad file changes nothing.
  InputOptions io = opts.input;
  io.threads = threads;
  auto inputs = ReadInputs(opts.files, io, progress);
  if (!inputs.ok()) return inputs.status();

  // 2. The data dir: the shop (locks it, replays its log), or for a dry run only the DB.
  std::unique_ptr<Shop> shop;
  storage::OpenedDataDir raw;
  storage::Db* db = nullptr;
  const KeyCipher* cipher = nullptr;
  if (opts.dry_run) {
    storage::DataDirOptions d;
    d.data_dir = opts.data_dir;
    d.master_key_file = opts.master_key_file;
    d.create_if_missing = false;
    d.block_cache_bytes = opts.block_cache_bytes;
    auto opened = storage::OpenDataDir(d, SecureRandom::Get());
    if (!opened.ok()) return OpenError(opened.status(), opts);
    raw = std::move(*opened);
    db = raw.db.get();
    cipher = raw.cipher.get();
  } else {
    ShopOptions so;
    so.data_dir = opts.data_dir;
    so.master_key_file = opts.master_key_file;
    so.create_if_missing = false;
    so.start_workers = false;
    so.block_cache_bytes = opts.block_cache_bytes;
    auto opened = Shop::Open(so);
    if (!opened.ok()) return OpenError(opened.status(), opts);
    shop = std::move(*opened);
    db = shop->db();
    cipher = &shop->cipher();
  }

  // 3. The product.
  auto product = db->Get(storage::kCfProducts, storage::U64Key(opts.product_id));
  if (!product.ok()) return product.status();
  if (!product->has_value()) {
    return absl::NotFoundError(absl::StrCat("product ", opts.product_id, " does not exist in ",
                                            opts.data_dir,
                                            " (create it first: POST /api/v1/admin/products)"));
  }

  // 4. Dedupe and the report.
  auto dd = Dedupe((*inputs)->keys(), *cipher, *db, threads, progress);
  if (!dd.ok()) return dd.status();
  PreloadResult res;
  res.files = (*inputs)->files();
  res.report = BuildReport(**inputs, dd->verdicts);
  RunCounts& c = res.counts;
  c.product_id = opts.product_id;
  c.dry_run = opts.dry_run;
  c.duplicate_in_input = dd->duplicate_in_input;
  c.already_stored = dd->already_stored;
  for (const InputFile& f : res.files) {
    for (const RejectedLine& r : f.rejected) {
      if (r.reason == LineReject::kDuplicateInInput) {
        ++c.duplicate_in_input;
      } else {
        ++c.rejected;
      }
    }
  }

  // The fresh keys in input order (their seq order), and each one's rank among them.
  const std::vector<InputKey>& keys = (*inputs)->keys();
  std::vector<std::string_view> fresh;
  fresh.reserve(dd->fresh_by_tag.size());
  std::vector<uint32_t> rank(keys.size(), UINT32_MAX);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (dd->verdicts[i] != Verdict::kFresh) continue;
    rank[i] = static_cast<uint32_t>(fresh.size());
    fresh.push_back(keys[i].text);
  }

  if (opts.dry_run) {
    auto owed = ReadCounter(*db, opts.product_id, storage::CounterKind::kOwed);
    auto held = ReadCounter(*db, opts.product_id, storage::CounterKind::kHeld);
    auto pool = ReadCounter(*db, opts.product_id, storage::CounterKind::kPool);
    if (!owed.ok()) return owed.status();
    if (!held.ok()) return held.status();
    if (!pool.ok()) return pool.status();
    c.loaded = fresh.size();
    c.backorder_keys = std::min<uint64_t>(
        fresh.size(), static_cast<uint64_t>(KeysForBackorders(*owed, *held, *pool)));
    return res;
  }

  // 5. Waiting backorders first, through the shop's own import (same batch as the keys that
  // serve them; SPEC §6). Normally one round: exactly the keys they need.
  size_t consumed = 0;
  for (int round = 0; consumed < fresh.size(); ++round) {
    const StockCounts st = shop->Stock(opts.product_id);
    if (st.owed <= 0) break;
    if (round == kBackorderRoundsMax) {
      return absl::FailedPreconditionError(
          absl::StrCat("product ", opts.product_id, " still has ", st.owed,
                       " keys owed to waiting backorders after ", round,
                       " imports; start the shop and import through the admin endpoint"));
    }
    const size_t take = std::min<size_t>(
        {fresh.size() - consumed, static_cast<size_t>(KeysForBackorders(st.owed, st.held, st.pool)),
         limits::kImportKeysMax});
    std::string text;
    for (size_t i = consumed; i < consumed + take; ++i) {
      text.append(fresh[i]);
      text.push_back('\n');
    }
    auto r = shop->ImportKeys(opts.product_id, text, ParseOptions{});
    // The buffer held key texts: wipe it before it is freed.
    std::fill(text.begin(), text.end(), '\0');
    if (!r.ok()) return RefusalStatus(r);
    if (r->imported != take) {
      return absl::InternalError(absl::StrCat("serving backorders: the shop stored ", r->imported,
                                              " of ", take, " new keys"));
    }
    consumed += take;
    c.loaded += take;
    c.backorder_keys += take;
    c.backorders_served += r->backorders_served;
    c.batch_ids.push_back(r->batch_id);
  }

  // 6. The rest as one batch, ingested atomically.
  if (consumed < fresh.size()) {
    std::vector<std::string_view> texts(fresh.begin() + static_cast<ptrdiff_t>(consumed),
                                        fresh.end());
    std::vector<TagEntry> tags;
    tags.reserve(texts.size());
    for (const TagEntry& e : dd->fresh_by_tag) {
      const uint32_t r = rank[e.index];
      if (r >= consumed) tags.push_back(TagEntry{e.tag, static_cast<uint32_t>(r - consumed)});
    }
    auto batches = shop->ListBatches(opts.product_id);
    if (!batches.ok())
      return batches.refused() ? absl::InternalError(batches.message()) : batches.status();
    IngestPlan plan;
    plan.product_id = opts.product_id;
    NextIds(*batches, &plan.batch_id, &plan.first_seq);
    plan.created_ms = UnixMs(RealClock::Get()->WallNow());
    IngestOptions ing;
    ing.tmp_dir = PreloadTmpDir(opts.data_dir);
    ing.threads = threads;
    ing.sst_keys_max = opts.sst_keys_max;
    ing.hook = opts.ingest_hook;
    absl::Status s = WriteAndIngest(*db, *cipher, plan, texts, tags, ing, progress);
    if (!s.ok()) return s;
    c.loaded += texts.size();
    c.batch_ids.push_back(plan.batch_id);
  } else {
    // Nothing to ingest; a temp dir left by a run that died is removed all the same.
    absl::Status s = RemoveTmpDir(PreloadTmpDir(opts.data_dir));
    if (!s.ok()) return s;
  }
  shop.reset();  // closes the database
  return res;
}

}  // namespace kv::preload
