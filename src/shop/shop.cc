// Shop: opening, recovery, products, derived secrets and the worker thread.
#include <algorithm>
#include <cassert>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/status_macros.h"
#include "shop/delivery_log.h"
#include "shop/secrets.h"
#include "shop/shop_backup.h"
#include "shop/shop_internal.h"
#include "storage/counter_merge.h"

namespace kv {

using storage::Db;

// --- small shared helpers ---------------------------------------------------------------

bool ParseOrderId(std::string_view hex, std::string* raw) {
  if (hex.size() != 2 * storage::kOrderIdBytes) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return HexDecode(hex, raw);
}

void Shop::Impl::CommitBatch(StockTxn* txn, BatchEffects* fx) {
  txn->Commit();
  for (const LogChange& c : fx->log) LogMemApply(c);
  if (!fx->outbound.empty()) PublishOutbound(fx->outbound);
}

void Shop::Impl::LogMemApply(const LogChange& c) {
  MutexLock l(&logmem_mu);
  auto it = logmem.find(c.seq);
  if (it != logmem.end()) {
    logmem_by_state[static_cast<size_t>(it->second.state) & 3].erase(
        {it->second.created_ms, c.seq});
    logmem.erase(it);
  }
  if (c.erase) return;
  logmem.emplace(c.seq, LogMem{c.state, c.created_ms});
  logmem_by_state[static_cast<size_t>(c.state) & 3].emplace(c.created_ms, c.seq);
}

StockCounts Shop::ProductState::Counts() const {
  StockCounts c;
  c.available = available.load();
  c.pool = pool.load();
  c.held = held.load();
  c.owed = owed.load();
  c.delivered = delivered.load();
  c.imported = imported.load();
  c.retired = retired.load();
  return c;
}

std::string Shop::Impl::KeyTag(std::string_view text) const { return kv::KeyTag(*cipher, text); }
std::string Shop::Impl::TokenFor(std::string_view oid) const { return OrderToken(*cipher, oid); }
std::string Shop::Impl::ContactTag(std::string_view contact) const {
  return kv::ContactTag(*cipher, contact);
}
std::string Shop::Impl::PasswordTag(std::string_view oid, std::string_view pw) const {
  return kv::PasswordTag(*cipher, oid, pw);
}
std::string Shop::Impl::LookupTag(std::string_view contact_tag, std::string_view pw) const {
  return kv::LookupTag(*cipher, contact_tag, pw);
}

absl::StatusOr<std::optional<OrderRecord>> Shop::Impl::ReadOrder(const std::string& oid) const {
  auto v = db->Get(storage::kCfOrders, oid);
  if (!v.ok()) return v.status();
  if (!v->has_value()) return std::optional<OrderRecord>();
  OrderRecord r;
  KV_RETURN_IF_ERROR(DecodeOrder(**v, &r));
  r.oid = oid;
  return std::optional<OrderRecord>(std::move(r));
}

absl::Status Shop::Impl::PutOrder(rocksdb::WriteBatch* b, const OrderRecord* prev,
                                  const OrderRecord& next, BatchEffects* fx) const {
  using storage::kCfOrderIndex;
  assert(prev == nullptr || fx != nullptr);
  if (!CanRecordTransition(prev == nullptr ? std::nullopt : std::optional(prev->status),
                           next.status)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "an order cannot go from ",
        prev == nullptr ? std::string("new") : std::string(OrderStatusName(prev->status)), " to ",
        std::string(OrderStatusName(next.status))));
  }
  b->Put(db->cf(storage::kCfOrders), next.oid, EncodeOrder(next));
  if (prev != nullptr && prev->status == next.status) return absl::OkStatus();
  // The outbound work this change causes (issue 14), in the same batch: no state change
  // commits without it, none is queued for a change that did not commit.
  if (prev != nullptr && EmitsOutbound(next.status)) {
    const auto emit = [&](OutboundKind kind) {
      OutboundRecord r;
      r.oid = next.oid;
      r.kind = kind;
      r.status = next.status;
      r.state = OutboundState::kPending;
      r.created_ms = NowMs();
      r.next_attempt_ms = r.created_ms;
      b->Put(
          db->cf(storage::kCfOutbound),
          storage::OutboundKey(r.oid, static_cast<uint8_t>(kind), static_cast<uint8_t>(r.status)),
          EncodeOutbound(r));
      fx->outbound.push_back(std::move(r));
    };
    if (opts.webhook_events) emit(OutboundKind::kWebhook);
    if (next.status == OrderStatus::kDelivered && opts.mail_contact != nullptr &&
        opts.mail_contact(next.contact)) {
      emit(OutboundKind::kMail);
    }
  }
  // The per-status order counts (Stats) move with the index entries, in the same batch.
  const auto count = [&](OrderStatus s, int64_t d) {
    b->Merge(db->cf(storage::kCfCounters), storage::OrderCountKey(static_cast<uint8_t>(s)),
             storage::EncodeCounter(d));
  };
  if (prev != nullptr) count(prev->status, -1);
  count(next.status, +1);
  // pending_payment orders are indexed by expiry ('e'), every other status by status ('s'):
  // the hot path (order creation) writes one index entry, not two.
  if (prev != nullptr) {
    if (prev->status == OrderStatus::kPendingPayment) {
      b->Delete(db->cf(kCfOrderIndex), storage::ExpiryIndexKey(prev->expires_ms, prev->oid));
    } else {
      b->Delete(db->cf(kCfOrderIndex), storage::StatusIndexKey(static_cast<uint8_t>(prev->status),
                                                               prev->created_ms, prev->oid));
    }
  }
  if (next.status == OrderStatus::kPendingPayment) {
    b->Put(db->cf(kCfOrderIndex), storage::ExpiryIndexKey(next.expires_ms, next.oid),
           rocksdb::Slice());
  } else {
    b->Put(db->cf(kCfOrderIndex),
           storage::StatusIndexKey(static_cast<uint8_t>(next.status), next.created_ms, next.oid),
           rocksdb::Slice());
  }
  return absl::OkStatus();
}

void Shop::Impl::DeliverInto(rocksdb::WriteBatch* b, OrderRecord* order,
                             std::vector<TakenKey>* keys, bool from_pool) const {
  for (TakenKey& k : *keys) {
    if (from_pool) b->Delete(db->cf(storage::kCfPool), storage::PoolKey(order->product_id, k.seq));
    order->keys.push_back(DeliveredKey{k.seq, k.batch_id, std::move(k.sealed)});
  }
  order->holding = false;
  order->status = OrderStatus::kDelivered;
  order->delivered_ms = NowMs();
  order->updated_ms = order->delivered_ms;
}

OrderView Shop::Impl::View(const OrderRecord& r, bool with_keys) const {
  OrderView v;
  v.order_id = HexEncode(r.oid);
  v.status = r.status;
  v.product_id = r.product_id;
  v.quantity = r.quantity;
  v.amount_cents = r.amount_cents;
  v.currency = r.currency;
  v.contact = r.contact;
  v.created_at = FromUnixMs(r.created_ms);
  v.expires_at = FromUnixMs(r.expires_ms);
  v.payment_id = r.payment_id;
  if (with_keys) {
    for (const DeliveredKey& k : r.keys) {
      auto text = cipher->OpenPoolKey(k.sealed, r.product_id, k.seq);
      // A key that fails authentication is never shown (tampered data dir); the order
      // view shows a placeholder so the merchant sees something is wrong.
      v.keys.push_back(text.ok() ? *text : std::string("<unreadable key>"));
    }
  }
  return v;
}

bool Shop::Impl::TakeSlot(const std::string& key, uint32_t max) {
  PendingShard& sh = PendingShardFor(key);
  MutexLock l(&sh.mu);
  uint32_t& n = sh.open[key];
  if (n >= max) return false;
  ++n;
  return true;
}

void Shop::Impl::GiveSlot(const std::string& key) {
  PendingShard& sh = PendingShardFor(key);
  MutexLock l(&sh.mu);
  auto it = sh.open.find(key);
  if (it == sh.open.end()) return;
  if (--it->second == 0) sh.open.erase(it);
}

bool Shop::Impl::TryHoldPending(const OrderRecord& r) {
  const std::string ckey = "c:" + r.contact_tag;
  const std::string ikey = "i:" + r.client;
  if (opts.pending_orders_per_contact_max > 0 &&
      !TakeSlot(ckey, opts.pending_orders_per_contact_max)) {
    return false;
  }
  if (opts.pending_orders_per_client_max > 0 && !r.client.empty() &&
      !TakeSlot(ikey, opts.pending_orders_per_client_max)) {
    if (opts.pending_orders_per_contact_max > 0) GiveSlot(ckey);
    return false;
  }
  return true;
}

bool Shop::Impl::PendingMayRefuse(const OrderRecord& r) {
  const auto full = [this](const std::string& key, uint32_t max) {
    PendingShard& sh = PendingShardFor(key);
    MutexLock l(&sh.mu);
    auto it = sh.open.find(key);
    return it != sh.open.end() && it->second >= max;
  };
  return (opts.pending_orders_per_contact_max > 0 &&
          full("c:" + r.contact_tag, opts.pending_orders_per_contact_max)) ||
         (opts.pending_orders_per_client_max > 0 && !r.client.empty() &&
          full("i:" + r.client, opts.pending_orders_per_client_max));
}

void Shop::Impl::ReleasePending(const OrderRecord& r) {
  if (opts.pending_orders_per_contact_max > 0) GiveSlot("c:" + r.contact_tag);
  if (opts.pending_orders_per_client_max > 0 && !r.client.empty()) GiveSlot("i:" + r.client);
}

void Shop::Impl::ScheduleExpiry(const OrderRecord& r) {
  const int64_t window_ms = (opts.hold_seconds + opts.hold_grace_seconds) * 1000;
  int64_t remaining_ms = r.expires_ms + opts.hold_grace_seconds * 1000 - NowMs();
  remaining_ms = std::clamp<int64_t>(remaining_ms, 0, window_ms);
  ExpiryShard& shard = ExpiryShardFor(r.oid);
  MutexLock l(&shard.mu);
  shard.heap.push(ExpiryItem{clock->MonoNowNs() + remaining_ms * 1'000'000, r.oid});
}

void Shop::Impl::Kick() {
  {
    MutexLock l(&work_mu);
    kicked = true;
  }
  work_cv.Signal();
}

// --- lifecycle --------------------------------------------------------------------------

Shop::Shop(const ShopOptions& opts) : opts_(opts) {}

Shop::~Shop() {
  ShutdownBackups();  // a backup reads the database: it ends before anything closes
  if (impl_ != nullptr) {
    {
      MutexLock l(&impl_->work_mu);
      impl_->stop = true;
    }
    impl_->work_cv.SignalAll();
    if (impl_->worker.joinable()) impl_->worker.join();
  }
  impl_.reset();
  db_.reset();
}

absl::StatusOr<std::unique_ptr<Shop>> Shop::Open(const ShopOptions& opts) {
  if (opts.hold_seconds < 1 || opts.hold_seconds > limits::kHoldSecondsMax ||
      opts.hold_grace_seconds < 0 || opts.hold_grace_seconds > limits::kHoldGraceSecondsMax) {
    return absl::InvalidArgumentError("hold_seconds / hold_grace_seconds out of range");
  }
  KV_RETURN_IF_ERROR(ValidateBackupOptions(opts));
  storage::DataDirOptions dopts;
  dopts.data_dir = opts.data_dir;
  dopts.master_key_file = opts.master_key_file;
  dopts.create_if_missing = opts.create_if_missing;
  dopts.block_cache_bytes = opts.block_cache_bytes;
  dopts.write_fault = opts.write_fault;
  dopts.min_free_bytes = opts.min_free_disk_bytes;
  dopts.env = opts.env;
  auto opened = storage::OpenDataDir(dopts, opts.random);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<Shop> shop(new Shop(opts));
  shop->db_ = std::move(opened->db);
  shop->cipher_ = std::move(opened->cipher);
  shop->impl_ =
      std::make_unique<Impl>(shop.get(), shop->opts_, shop->db_.get(), shop->cipher_.get());
  KV_RETURN_IF_ERROR(shop->Recover());
  // Serve the backorders that stock allows (a hold released just before a crash) before
  // serving anything.
  auto served = shop->RunBackorders();
  if (!served.ok()) return served.status();
  if (opts.start_workers) shop->StartWorkers();
  shop->InitBackups();
  return shop;
}

absl::StatusOr<std::vector<std::pair<OrderStatus, int64_t>>> Shop::Impl::CountOrderIndex() const {
  std::vector<std::pair<OrderStatus, int64_t>> out;
  for (OrderStatus s : kAllOrderStatuses) {
    const std::string prefix = s == OrderStatus::kPendingPayment
                                   ? std::string(1, storage::kIdxExpiry)
                                   : storage::StatusIndexPrefix(static_cast<uint8_t>(s));
    int64_t n = 0;
    KV_RETURN_IF_ERROR(
        db->ForEach(storage::kCfOrderIndex, prefix, [&](std::string_view, std::string_view) {
          ++n;
          return storage::Scan::kNext;
        }));
    out.emplace_back(s, n);
  }
  return out;
}

absl::Status Shop::Impl::EnsureOrderCounts() {
  auto marker = db->Get(storage::kCfMeta, storage::kMetaOrderCounts);
  if (!marker.ok()) return marker.status();
  if (marker->has_value()) {
    if ((*marker)->size() != 4 ||
        DecodeFixed32BE((*marker)->data()) != storage::kOrderCountsVersion) {
      return absl::DataLossError("malformed order_counts record");
    }
    return absl::OkStatus();
  }
  // A dir written before the counts: count the index once (what Stats did on every call).
  auto counts = CountOrderIndex();
  if (!counts.ok()) return counts.status();
  rocksdb::WriteBatch b;
  for (const auto& [s, n] : *counts) {
    b.Put(db->cf(storage::kCfCounters), storage::OrderCountKey(static_cast<uint8_t>(s)),
          storage::EncodeCounter(n));
  }
  std::string v;
  PutFixed32BE(&v, storage::kOrderCountsVersion);
  b.Put(db->cf(storage::kCfMeta),
        rocksdb::Slice(storage::kMetaOrderCounts.data(), storage::kMetaOrderCounts.size()), v);
  return db->Write(&b, /*sync=*/true);
}

absl::Status Shop::Recover() {
  Impl& m = *impl_;
  // Before anything else writes: the per-status order counts of a dir written without them.
  KV_RETURN_IF_ERROR(m.EnsureOrderCounts());
  // Every scan below returns its read error (Db::ForEach): a failed read taken for the end
  // of the data would undercount next_seq / next_log_seq and reuse sequence numbers.
  // Products.
  KV_RETURN_IF_ERROR(
      db_->ForEach(storage::kCfProducts, "",
                   [&](std::string_view, std::string_view value) -> absl::StatusOr<storage::Scan> {
                     ProductRecord r;
                     KV_RETURN_IF_ERROR(DecodeProduct(value, &r));
                     if (r.id == 0 || r.id > limits::kProductsMax)
                       return absl::DataLossError("bad product id");
                     MutexLock l(&m.products_mu);
                     m.owned.push_back(std::make_unique<ProductState>(r));
                     m.products[r.id].store(m.owned.back().get(), std::memory_order_release);
                     m.next_product_id = std::max(m.next_product_id, r.id + 1);
                     return storage::Scan::kNext;
                   }));
  // Counters.
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfCounters, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        if (storage::ParseOrderCountKey(key)) return storage::Scan::kNext;  // Stats reads them
        auto k = storage::ParseCounterKey(key);
        if (!k) return absl::DataLossError("malformed counter key");
        ProductState* ps = m.Product(k->pid);
        if (ps == nullptr) return absl::DataLossError("counter for an unknown product");
        int64_t v;
        if (!storage::DecodeCounter(value, &v)) return absl::DataLossError("malformed counter");
        StockTxn::LoadCounter(ps, k->kind, v);
        return storage::Scan::kNext;
      }));
  // Batches: next seq / batch id, retired batches.
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfBatches, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        auto k = storage::ParseBatchKey(key);
        if (!k) return absl::DataLossError("malformed batch key");
        ProductState* ps = m.Product(k->pid);
        if (ps == nullptr) return absl::DataLossError("batch of an unknown product");
        BatchRecord b;
        KV_RETURN_IF_ERROR(DecodeBatch(value, &b));
        b.batch_id = k->batch_id;
        MutexLock l(&ps->pool_mu);
        ps->next_batch_id = std::max(ps->next_batch_id, b.batch_id + 1);
        ps->next_seq = std::max(ps->next_seq, b.last_seq + 1);
        if (b.retired_flag) ps->retired_batches.insert(b.batch_id);
        return storage::Scan::kNext;
      }));
  // Delivery log: next seq.
  uint64_t max_log = 0;
  {
    auto last = db_->LastKey(storage::kCfDeliveryLog);
    if (!last.ok()) return last.status();
    if (last->has_value()) {
      auto seq = storage::ParseU64Key(**last);
      if (!seq) return absl::DataLossError("malformed delivery-log key");
      max_log = *seq;
    }
  }
  // Order index: backorder queues and holds to expire.
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfOrderIndex, std::string(1, storage::kIdxBackorder),
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        auto k = storage::ParseBackorderIndexKey(key);
        if (!k) return absl::DataLossError("malformed backorder index key");
        ProductState* ps = m.Product(k->pid);
        if (ps == nullptr) return absl::DataLossError("backorder of an unknown product");
        std::string oid(value);
        auto order = m.ReadOrder(oid);
        if (!order.ok()) return order.status();
        if (!order->has_value()) return absl::DataLossError("backorder of an unknown order");
        MutexLock l(&ps->pool_mu);
        ps->backorders[k->log_seq] = BackorderItem{oid, (*order)->quantity};
        max_log = std::max(max_log, k->log_seq);
        return storage::Scan::kNext;
      }));
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfOrderIndex, std::string(1, storage::kIdxExpiry),
      [&](std::string_view key, std::string_view) -> absl::StatusOr<storage::Scan> {
        auto k = storage::ParseExpiryIndexKey(key);
        if (!k) return absl::DataLossError("malformed expiry index key");
        OrderRecord r;
        r.expires_ms = static_cast<int64_t>(k->expires_ms);
        r.oid = std::string(k->oid);
        m.ScheduleExpiry(r);
        if (opts_.pending_orders_per_contact_max > 0 || opts_.pending_orders_per_client_max > 0) {
          // The hoarding guard's counts of open pending orders, from the orders themselves
          // (over the cap is allowed here: caps may have been lowered since).
          auto order = m.ReadOrder(r.oid);
          if (!order.ok()) return order.status();
          if (!order->has_value()) return absl::DataLossError("expiry index names a lost order");
          if (opts_.pending_orders_per_contact_max > 0) {
            Impl::PendingShard& sh = m.PendingShardFor("c:" + (*order)->contact_tag);
            MutexLock pl(&sh.mu);
            ++sh.open["c:" + (*order)->contact_tag];
          }
          if (opts_.pending_orders_per_client_max > 0 && !(*order)->client.empty()) {
            Impl::PendingShard& sh = m.PendingShardFor("i:" + (*order)->client);
            MutexLock pl(&sh.mu);
            ++sh.open["i:" + (*order)->client];
          }
        }
        return storage::Scan::kNext;
      }));
  m.next_log_seq = max_log + 1;
  // The delivery log's entries (issue 14): into memory, for Backlog() without a scan. Only
  // backorders may wait there: a `pending` or `failed` entry is a paid order waiting for
  // the write-ahead delivery path, which is gone (no keyvend build wrote one; a dir that
  // has one is not ours, or corrupt). Refused whole, naming the count, rather than leaving
  // paid orders stuck without a trace.
  uint64_t write_ahead = 0;
  KV_RETURN_IF_ERROR(ForEachDelivery(*db_, [&](DeliveryEntry& e) -> absl::StatusOr<storage::Scan> {
    if (e.state != DeliveryState::kBackordered) {
      ++write_ahead;
    } else {
      m.LogMemApply(LogChange{e.log_seq, false, e.state, e.created_ms});
    }
    return storage::Scan::kNext;
  }));
  if (write_ahead > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the delivery log holds ", write_ahead,
        " pending or failed write-ahead entries (paid orders waiting for keys), which this "
        "build cannot deliver; `keyvend check` lists them"));
  }
  // The outbound work still to send (issue 14): into the outbox, counted.
  KV_RETURN_IF_ERROR(m.LoadOutbox());
  // Memory view of stock from the durable counters (I5).
  for (uint64_t id = 1; id <= limits::kProductsMax; ++id) {
    ProductState* ps = m.Product(id);
    if (ps == nullptr) continue;
    StockTxn::ResetAvailable(ps);
  }
  return absl::OkStatus();
}

void Shop::StartWorkers() {
  Impl* m = impl_.get();
  m->worker = std::thread([this, m] {
    int64_t last_collect_ns = m->clock->MonoNowNs();
    while (true) {
      {
        MutexLock l(&m->work_mu);
        // A pass every kWorkerPassMs, or at once when kicked (a spurious wakeup: a pass
        // early).
        if (!m->stop && !m->kicked) {
          m->work_cv.WaitFor(&m->work_mu, std::chrono::milliseconds(limits::kWorkerPassMs));
        }
        if (m->stop) break;
        m->kicked = false;
      }
      // Errors are retried on the next pass; the log keeps the work.
      (void)RunExpiry();
      (void)RunBackorders();
      // Idempotency records are kept at least 24 h; collected about once an hour.
      const int64_t now = m->clock->MonoNowNs();
      if (now - last_collect_ns >= limits::kIdempotencyCollectEverySeconds * 1'000'000'000) {
        last_collect_ns = now;
        (void)CollectIdempotency(absl::Seconds(limits::kIdempotencyKeepSeconds));
      }
    }
  });
}

// --- products ---------------------------------------------------------------------------

namespace {

bool ValidCurrency(std::string_view c) {
  if (c.size() != limits::kCurrencyBytes) return false;
  for (char ch : c) {
    if (ch < 'A' || ch > 'Z') return false;
  }
  return true;
}

bool ValidText(std::string_view s, size_t max, bool allow_newlines) {
  if (s.size() > max) return false;
  for (unsigned char c : s) {
    if (c == 0x7f || (c < 0x20 && !(allow_newlines && (c == '\n' || c == '\t')))) return false;
  }
  return true;
}

// Returns an empty string when the product is valid, else the message of the refusal.
std::string ValidateProduct(const ProductRecord& p) {
  if (p.name.empty() || !ValidText(p.name, limits::kProductNameBytesMax, false)) {
    return absl::StrCat("name must be 1..", limits::kProductNameBytesMax,
                        " bytes of printable text");
  }
  if (!ValidText(p.description, limits::kProductDescriptionBytesMax, true)) {
    return absl::StrCat("description must be at most ", limits::kProductDescriptionBytesMax,
                        " bytes of text");
  }
  if (p.price_cents < 0 || p.price_cents > limits::kPriceCentsMax) {
    return absl::StrCat("price_cents must be 0..", limits::kPriceCentsMax);
  }
  if (!ValidCurrency(p.currency)) return "currency must be 3 uppercase letters (ISO 4217)";
  if (p.max_per_order < 1 || p.max_per_order > limits::kOrderQuantityMax) {
    return absl::StrCat("max_per_order must be 1..", limits::kOrderQuantityMax);
  }
  return "";
}

}  // namespace

Result<ProductView> Shop::CreateProduct(const ProductSpec& spec) {
  Impl& m = *impl_;
  ProductRecord r;
  r.name = spec.name;
  r.description = spec.description;
  r.price_cents = spec.price_cents;
  r.currency = spec.currency;
  r.stock_mode = spec.stock_mode;
  r.allow_backorder = spec.allow_backorder;
  r.max_per_order = spec.max_per_order;
  r.active = spec.active;
  if (std::string why = ValidateProduct(r); !why.empty()) return {Refusal::kBadRequest, why};
  MutexLock l(&m.products_mu);
  if (m.next_product_id > limits::kProductsMax) {
    return {Refusal::kBadRequest,
            absl::StrCat("the shop holds the maximum of ", limits::kProductsMax, " products")};
  }
  r.id = m.next_product_id;
  r.created_ms = r.updated_ms = m.NowMs();
  rocksdb::WriteBatch b;
  b.Put(db_->cf(storage::kCfProducts), storage::U64Key(r.id), EncodeProduct(r));
  absl::Status s = db_->Write(&b);
  if (!s.ok()) return s;
  ++m.next_product_id;
  m.owned.push_back(std::make_unique<ProductState>(r));
  m.products[r.id].store(m.owned.back().get(), std::memory_order_release);
  return ProductView{r, StockCounts{}};
}

Result<ProductView> Shop::UpdateProduct(uint64_t product_id, const ProductPatch& patch) {
  Impl& m = *impl_;
  ProductState* ps = m.Product(product_id);
  if (ps == nullptr) return {Refusal::kProductNotFound, "no such product"};
  MutexLock ul(&ps->update_mu);
  ProductRecord r = *ps->Config();
  if (patch.name) r.name = *patch.name;
  if (patch.description) r.description = *patch.description;
  if (patch.price_cents) r.price_cents = *patch.price_cents;
  if (patch.currency) r.currency = *patch.currency;
  if (patch.stock_mode) r.stock_mode = *patch.stock_mode;
  if (patch.allow_backorder) r.allow_backorder = *patch.allow_backorder;
  if (patch.max_per_order) r.max_per_order = *patch.max_per_order;
  if (patch.active) r.active = *patch.active;
  if (std::string why = ValidateProduct(r); !why.empty()) return {Refusal::kBadRequest, why};
  r.updated_ms = m.NowMs();
  rocksdb::WriteBatch b;
  b.Put(db_->cf(storage::kCfProducts), storage::U64Key(r.id), EncodeProduct(r));
  absl::Status s = db_->Write(&b);
  if (!s.ok()) return s;
  ps->SetConfigLocked(r);
  return ProductView{r, ps->Counts()};
}

std::optional<ProductView> Shop::GetProduct(uint64_t product_id) const {
  ProductState* ps = impl_->Product(product_id);
  if (ps == nullptr) return std::nullopt;
  return ProductView{*ps->Config(), ps->Counts()};
}

std::vector<ProductView> Shop::ListProducts(bool active_only) const {
  std::vector<ProductView> out;
  uint64_t last;
  {
    MutexLock l(&impl_->products_mu);
    last = impl_->next_product_id;
  }
  for (uint64_t id = 1; id < last; ++id) {
    ProductState* ps = impl_->Product(id);
    if (ps == nullptr) continue;
    const ProductRecord* cfg = ps->Config();
    if (active_only && !cfg->active) continue;
    out.push_back(ProductView{*cfg, ps->Counts()});
  }
  return out;
}

StockCounts Shop::Stock(uint64_t product_id) const {
  ProductState* ps = impl_->Product(product_id);
  return ps == nullptr ? StockCounts{} : ps->Counts();
}

}  // namespace kv
