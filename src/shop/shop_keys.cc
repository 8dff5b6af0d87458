// Shop: the key pool — selection for deliveries, import (with backorder service), retire —
// and the backorder queue's worker pass.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/crash_point.h"
#include "base/status_macros.h"
#include "shop/delivery_log.h"
#include "shop/shop_internal.h"

namespace kv {

absl::Status Shop::Impl::SelectKeysLocked(ProductState* ps, uint32_t q,
                                          std::vector<TakenKey>* out) {
  out->clear();
  if (q == 0) return absl::OkStatus();
  uint64_t last = ps->cursor;
  absl::Status s = db->ForEach(
      storage::kCfPool, storage::U64Key(ps->id), storage::PoolKey(ps->id, ps->cursor),
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        ps->pool_mu.AssertHeld();  // by our caller, for the whole scan
        auto k = storage::ParsePoolKey(key);
        if (!k) return absl::DataLossError("malformed pool key");
        if (ps->inflight.contains(k->seq)) return storage::Scan::kNext;
        PoolKeyRecord rec;
        KV_RETURN_IF_ERROR(DecodePoolKey(value, &rec));
        if (ps->retired_batches.contains(rec.batch_id))
          return storage::Scan::kNext;  // zombie of a failed write
        out->push_back(TakenKey{k->seq, rec.batch_id, std::move(rec.sealed)});
        last = k->seq + 1;
        return out->size() < q ? storage::Scan::kNext : storage::Scan::kStop;
      });
  if (!s.ok()) {
    out->clear();
    return absl::Status(s.code(), absl::StrCat("reading the key pool: ", s.message()));
  }
  for (const TakenKey& k : *out) ps->inflight.insert(k.seq);
  ps->cursor = last;
  return absl::OkStatus();
}

void Shop::Impl::FinishInflight(ProductState* ps, const std::vector<TakenKey>& keys,
                                bool committed) {
  if (keys.empty()) return;
  // Batches retired while one of their keys was in flight: such a key must never be sold.
  absl::flat_hash_set<uint64_t> batches;
  {
    MutexLock l(&ps->pool_mu);
    for (const TakenKey& k : keys) {
      ps->inflight.erase(k.seq);
      if (!committed) {
        // The write failed, so the key is still in the pool: make it selectable again.
        ps->cursor = std::min(ps->cursor, k.seq);
        if (ps->retired_batches.contains(k.batch_id)) batches.insert(k.batch_id);
      }
    }
  }
  // Retiring the batch again sweeps every unsold key of it, these included.
  for (uint64_t batch_id : batches) (void)owner->RetireBatch(ps->id, batch_id);
}

absl::StatusOr<bool> Shop::Impl::TakeKeysLocked(ProductState* ps, uint32_t q,
                                                std::vector<TakenKey>* fresh, size_t* fresh_used,
                                                OrderKeys* out) {
  out->fresh.clear();
  out->pooled.clear();
  if (fresh != nullptr) {
    const size_t n = std::min<size_t>(q, fresh->size() - *fresh_used);
    for (size_t i = 0; i < n; ++i) out->fresh.push_back(std::move((*fresh)[*fresh_used + i]));
    *fresh_used += n;
  }
  if (out->fresh.size() < q) {
    absl::Status s =
        SelectKeysLocked(ps, q - static_cast<uint32_t>(out->fresh.size()), &out->pooled);
    if (!s.ok()) {
      ReturnKeysLocked(ps, out, fresh, fresh_used);
      return s;
    }
  }
  if (out->fresh.size() + out->pooled.size() < q) {
    ReturnKeysLocked(ps, out, fresh, fresh_used);
    return false;
  }
  return true;
}

void Shop::Impl::ReturnKeysLocked(ProductState* ps, OrderKeys* keys, std::vector<TakenKey>* fresh,
                                  size_t* fresh_used) {
  // Fresh keys go back where they came from: the last ones taken from `fresh`.
  const size_t n = keys->fresh.size();
  if (n > 0) {
    *fresh_used -= n;
    for (size_t i = 0; i < n; ++i) (*fresh)[*fresh_used + i] = std::move(keys->fresh[i]);
  }
  // Pool keys: still in the pool (the pool lock was held since they were selected, so no
  // retire has swept their batch), selectable again.
  for (const TakenKey& k : keys->pooled) {
    ps->inflight.erase(k.seq);
    ps->cursor = std::min(ps->cursor, k.seq);
  }
  keys->fresh.clear();
  keys->pooled.clear();
}

absl::StatusOr<size_t> Shop::Impl::ServeBackordersLocked(ProductState* ps,
                                                         std::vector<TakenKey>* fresh,
                                                         rocksdb::WriteBatch* b, StockTxn* txn,
                                                         BatchEffects* fx,
                                                         std::vector<ServedBackorder>* served) {
  size_t n = 0;
  size_t fresh_used = 0;
  for (auto it = ps->backorders.begin(); it != ps->backorders.end();) {
    const uint32_t q = it->second.quantity;
    // Strictly FIFO: a head that cannot be served now holds up the rest.
    if (!txn->CanServeOwed(q)) break;
    OrderKeys keys;
    KV_ASSIGN_OR_RETURN(const bool whole, TakeKeysLocked(ps, q, fresh, &fresh_used, &keys));
    if (!whole) break;  // not enough keys physically at hand (some are in flight): later
    auto cur = ReadOrder(it->second.oid);
    if (!cur.ok() || !cur->has_value() || (*cur)->status != OrderStatus::kBackordered) {
      // The batch is abandoned.
      ReturnKeysLocked(ps, &keys, fresh, &fresh_used);
      if (!cur.ok()) return cur.status();
      return absl::DataLossError("backorder queue names an order that is not backordered");
    }
    if (!txn->ServeOwed(q)) {
      ReturnKeysLocked(ps, &keys, fresh, &fresh_used);
      break;
    }
    OrderRecord prev = **cur;
    OrderRecord next = prev;
    // Fresh keys never entered the pool: they are attached without a pool delete.
    DeliverInto(b, &next, &keys.fresh, /*from_pool=*/false);
    DeliverInto(b, &next, &keys.pooled, /*from_pool=*/true);
    assert(next.keys.size() == next.quantity);
    next.log_seq = 0;
    const absl::Status put = PutOrder(b, &prev, next, fx);
    // The pool lock is held until the commit, so nobody can select these keys meanwhile
    // (a failed batch: RestoreBackorders makes them selectable again).
    for (const DeliveredKey& k : next.keys) ps->inflight.erase(k.seq);
    KV_RETURN_IF_ERROR(put);
    b->Delete(db->cf(storage::kCfDeliveryLog), storage::U64Key(prev.log_seq));
    fx->log.push_back(LogChange{prev.log_seq, true});
    b->Delete(db->cf(storage::kCfOrderIndex), storage::BackorderIndexKey(ps->id, prev.log_seq));
    served->push_back(ServedBackorder{it->first, it->second});
    it = ps->backorders.erase(it);
    ++n;
  }
  // Fresh keys not served stay for the pool.
  if (fresh != nullptr) {
    fresh->erase(fresh->begin(), fresh->begin() + static_cast<ptrdiff_t>(fresh_used));
  }
  return n;
}

absl::StatusOr<size_t> Shop::Impl::ServeBackorders(ProductState* ps) {
  MutexLock l(&ps->pool_mu);
  if (ps->backorders.empty()) return 0;
  StockTxn txn(ps);
  // Cheap test first (this runs on every worker pass): can the head be served at all?
  if (!txn.CanServeOwed(ps->backorders.begin()->second.quantity)) return 0;
  rocksdb::WriteBatch b;
  BatchEffects fx;
  std::vector<ServedBackorder> served;
  auto n = ServeBackordersLocked(ps, nullptr, &b, &txn, &fx, &served);
  absl::Status s = n.ok() ? absl::OkStatus() : n.status();
  if (s.ok() && *n > 0) {
    txn.AddTo(&b, db);
    KV_CRASH_POINT("backorder.before_write");
    s = db->Write(&b);
  }
  if (!s.ok()) {
    RestoreBackorders(ps, served);
    return s;
  }
  if (*n > 0) KV_CRASH_POINT("backorder.after_write");
  CommitBatch(&txn, &fx);
  return n;
}

void Shop::Impl::RestoreBackorders(ProductState* ps, const std::vector<ServedBackorder>& served) {
  ps->pool_mu.AssertHeld();
  for (const ServedBackorder& sb : served) ps->backorders.emplace(sb.log_seq, sb.item);
  ps->cursor = 0;  // keys they took from the pool are still there
}

absl::StatusOr<size_t> Shop::RunBackorders() {
  Impl& m = *impl_;
  // Per product: one product's queue never holds up another's.
  uint64_t last;
  {
    MutexLock l(&m.products_mu);
    last = m.next_product_id;
  }
  size_t delivered = 0;
  absl::Status first_error;
  for (uint64_t id = 1; id < last; ++id) {
    ProductState* ps = m.Product(id);
    if (ps == nullptr) continue;
    auto n = m.ServeBackorders(ps);
    if (!n.ok()) {
      if (first_error.ok()) first_error = n.status();
    } else {
      delivered += *n;
    }
  }
  if (!first_error.ok()) return first_error;
  return delivered;
}

absl::StatusOr<std::vector<DeliveryEntry>> Shop::ListDeliveries(
    std::optional<DeliveryState> state) {
  std::vector<DeliveryEntry> out;
  KV_RETURN_IF_ERROR(ForEachDelivery(*db_, [&](DeliveryEntry& e) -> absl::StatusOr<storage::Scan> {
    if (!state || e.state == *state) out.push_back(std::move(e));
    return storage::Scan::kNext;
  }));
  return out;
}

Result<ImportResult> Shop::ImportKeys(uint64_t product_id, std::string_view input,
                                      const ParseOptions& parse) {
  Impl& m = *impl_;
  ProductState* ps = m.Product(product_id);
  if (ps == nullptr) return {Refusal::kProductNotFound, "no such product"};
  auto parsed = ParseKeys(input, parse);
  if (!parsed.ok()) return {Refusal::kBadRequest, std::string(parsed.status().message())};
  if (parsed->keys.size() > limits::kImportKeysMax) {
    return {Refusal::kBadRequest,
            absl::StrCat("at most ", limits::kImportKeysMax, " keys per import; split the file")};
  }
  KV_CRASH_POINT("import.parsed");
  ImportResult res;
  for (const RejectedLine& r : parsed->rejected) {
    if (r.reason == LineReject::kDuplicateInInput) {
      res.duplicate_lines.push_back(DuplicateLine{r.line, true});
    } else {
      res.rejected.push_back(r);
    }
  }
  res.duplicates = parsed->duplicates_in_input;

  // Tags outside the locks: this is the CPU-heavy part.
  const size_t n_in = parsed->keys.size();
  std::vector<std::string> tags(n_in);
  for (size_t i = 0; i < n_in; ++i) tags[i] = m.KeyTag(parsed->keys[i].text);

  // The tags are random: every use below goes in tag order. Lookups in ascending order
  // walk the memtable and the table files with locality, and the memtable inserts them as an
  // ascending run (its skiplist reuses the last insert position) instead of a random walk
  // per tag — most of a large import's time otherwise.
  std::vector<size_t> by_tag(n_in);
  for (size_t i = 0; i < n_in; ++i) by_tag[i] = i;
  std::sort(by_tag.begin(), by_tag.end(), [&](size_t a, size_t c) { return tags[a] < tags[c]; });

  // Uniqueness spans the shop, so the check-then-write serializes imports.
  MutexLock il(&m.import_mu);
  std::vector<bool> stored(n_in, false);
  {
    std::vector<rocksdb::Slice> keys;
    keys.reserve(n_in);
    for (size_t i : by_tag) keys.emplace_back(tags[i]);
    std::vector<rocksdb::PinnableSlice> values(n_in);
    std::vector<rocksdb::Status> statuses(n_in);
    constexpr size_t kChunk = 4096;
    for (size_t off = 0; off < n_in; off += kChunk) {
      const size_t len = std::min(kChunk, n_in - off);
      m.db->raw()->MultiGet(rocksdb::ReadOptions(), m.db->cf(storage::kCfKeyTags), len,
                            keys.data() + off, values.data() + off, statuses.data() + off,
                            /*sorted_input=*/true);
    }
    for (size_t j = 0; j < n_in; ++j) {
      if (statuses[j].ok()) {
        stored[by_tag[j]] = true;
      } else if (!statuses[j].IsNotFound()) {
        return absl::UnavailableError(
            absl::StrCat("reading the key index: ", statuses[j].ToString()));
      }
    }
  }
  std::vector<size_t> fresh_idx;
  for (size_t i = 0; i < n_in; ++i) {
    if (stored[i]) {
      res.duplicate_lines.push_back(DuplicateLine{parsed->keys[i].line, false});
      ++res.duplicates;
    } else {
      fresh_idx.push_back(i);
    }
  }
  std::sort(res.duplicate_lines.begin(), res.duplicate_lines.end(),
            [](const DuplicateLine& a, const DuplicateLine& b) { return a.line < b.line; });
  if (fresh_idx.empty()) return res;

  MutexLock pl(&ps->pool_mu);
  const uint64_t batch_id = ps->next_batch_id;
  const uint64_t first_seq = ps->next_seq;
  std::vector<TakenKey> fresh;
  fresh.reserve(fresh_idx.size());
  rocksdb::WriteBatch b;
  for (size_t j = 0; j < fresh_idx.size(); ++j) {
    const uint64_t seq = first_seq + j;
    fresh.push_back(TakenKey{
        seq, batch_id,
        m.cipher->SealPoolKey(parsed->keys[fresh_idx[j]].text, product_id, seq, m.random)});
  }
  // A fresh key's seq follows its input order: fresh_idx[j] gets first_seq + j.
  std::vector<uint64_t> seq_of(n_in, 0);
  for (size_t j = 0; j < fresh_idx.size(); ++j) seq_of[fresh_idx[j]] = first_seq + j;
  for (size_t i : by_tag) {
    if (stored[i]) continue;
    b.Put(m.db->cf(storage::kCfKeyTags), tags[i], storage::PoolKey(product_id, seq_of[i]));
  }
  BatchRecord batch;
  batch.batch_id = batch_id;
  batch.created_ms = m.NowMs();
  batch.first_seq = first_seq;
  batch.last_seq = first_seq + fresh_idx.size() - 1;
  batch.imported = fresh_idx.size();
  StockTxn txn(ps);
  BatchEffects fx;
  txn.Import(static_cast<int64_t>(fresh_idx.size()));

  // Waiting backorders are served first, in this same batch (SPEC §6).
  std::vector<ServedBackorder> served;
  auto n_served = m.ServeBackordersLocked(ps, &fresh, &b, &txn, &fx, &served);
  if (!n_served.ok()) {
    m.RestoreBackorders(ps, served);
    return n_served.status();
  }
  for (const TakenKey& k : fresh) {
    b.Put(m.db->cf(storage::kCfPool), storage::PoolKey(product_id, k.seq),
          EncodePoolKey(PoolKeyRecord{k.batch_id, k.sealed}));
  }
  b.Put(m.db->cf(storage::kCfBatches), storage::BatchKey(product_id, batch_id), EncodeBatch(batch));
  txn.AddTo(&b, m.db);
  KV_CRASH_POINT("import.before_write");
  absl::Status s = m.db->Write(&b);
  if (!s.ok()) {
    m.RestoreBackorders(ps, served);
    return s;
  }
  KV_CRASH_POINT("import.after_write");
  ps->next_batch_id = batch_id + 1;
  ps->next_seq = batch.last_seq + 1;
  m.CommitBatch(&txn, &fx);
  res.batch_id = batch_id;
  res.imported = fresh_idx.size();
  res.backorders_served = *n_served;
  return res;
}

Result<RetireResult> Shop::RetireBatch(uint64_t product_id, uint64_t batch_id) {
  Impl& m = *impl_;
  ProductState* ps = m.Product(product_id);
  if (ps == nullptr) return {Refusal::kProductNotFound, "no such product"};
  MutexLock pl(&ps->pool_mu);
  auto v = m.db->Get(storage::kCfBatches, storage::BatchKey(product_id, batch_id));
  if (!v.ok()) return v.status();
  if (!v->has_value()) return {Refusal::kNotFound, "no such key batch"};
  BatchRecord batch;
  KV_RETURN_IF_ERROR(DecodeBatch(**v, &batch));
  batch.batch_id = batch_id;
  std::vector<uint64_t> seqs;
  KV_RETURN_IF_ERROR(m.db->ForEach(
      storage::kCfPool, storage::U64Key(product_id), storage::PoolKey(product_id, batch.first_seq),
      [&](std::string_view key, std::string_view) -> absl::StatusOr<storage::Scan> {
        ps->pool_mu.AssertHeld();  // pl, for the whole scan
        auto k = storage::ParsePoolKey(key);
        if (!k) return absl::DataLossError("malformed pool key");
        if (k->seq > batch.last_seq) return storage::Scan::kStop;
        // In flight: being delivered right now; see FinishInflight.
        if (!ps->inflight.contains(k->seq)) seqs.push_back(k->seq);
        return storage::Scan::kNext;
      }));
  const int64_t r = static_cast<int64_t>(seqs.size());
  rocksdb::WriteBatch b;
  for (uint64_t seq : seqs) b.Delete(m.db->cf(storage::kCfPool), storage::PoolKey(product_id, seq));
  batch.retired += seqs.size();
  batch.retired_flag = true;
  b.Put(m.db->cf(storage::kCfBatches), storage::BatchKey(product_id, batch_id), EncodeBatch(batch));
  StockTxn txn(ps);
  BatchEffects fx;
  txn.Retire(r);
  txn.AddTo(&b, m.db);
  KV_RETURN_IF_ERROR(m.db->Write(&b));  // on failure txn gives the units back
  m.CommitBatch(&txn, &fx);
  ps->retired_batches.insert(batch_id);
  return RetireResult{batch_id, static_cast<uint64_t>(r)};
}

Result<std::vector<PoolKeyView>> Shop::ListPoolKeys(uint64_t product_id, size_t limit,
                                                    uint64_t after_seq) {
  Impl& m = *impl_;
  if (m.Product(product_id) == nullptr) return {Refusal::kProductNotFound, "no such product"};
  std::vector<PoolKeyView> out;
  if (limit == 0) return out;
  KV_RETURN_IF_ERROR(m.db->ForEach(
      storage::kCfPool, storage::U64Key(product_id), storage::PoolKey(product_id, after_seq + 1),
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        auto k = storage::ParsePoolKey(key);
        if (!k) return absl::DataLossError("malformed pool key");
        PoolKeyRecord r;
        KV_RETURN_IF_ERROR(DecodePoolKey(value, &r));
        auto text = m.cipher->OpenPoolKey(r.sealed, product_id, k->seq);
        PoolKeyView v{k->seq, r.batch_id, "<unreadable key>"};
        if (text.ok()) {
          const std::string& t = *text;
          v.masked = t.size() <= 6
                         ? std::string(4, '*')
                         : t.substr(0, 2) + std::string(t.size() - 4, '*') + t.substr(t.size() - 2);
        }
        out.push_back(std::move(v));
        return out.size() < limit ? storage::Scan::kNext : storage::Scan::kStop;
      }));
  return out;
}

Result<std::vector<BatchRecord>> Shop::ListBatches(uint64_t product_id) {
  Impl& m = *impl_;
  if (m.Product(product_id) == nullptr) return {Refusal::kProductNotFound, "no such product"};
  std::vector<BatchRecord> out;
  KV_RETURN_IF_ERROR(m.db->ForEach(
      storage::kCfBatches, storage::U64Key(product_id),
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        auto k = storage::ParseBatchKey(key);
        if (!k) return absl::DataLossError("malformed batch key");
        BatchRecord b;
        KV_RETURN_IF_ERROR(DecodeBatch(value, &b));
        b.batch_id = k->batch_id;
        out.push_back(b);
        return storage::Scan::kNext;
      }));
  return out;
}

}  // namespace kv
