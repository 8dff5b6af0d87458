// Private to the shop module: the in-memory state behind Shop and the helpers its .cc
// files share. Nothing outside src/shop includes this.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "base/mutex.h"
#include "base/time_format.h"
#include "rocksdb/write_batch.h"
#include "shop/shop.h"
#include "shop/stock_txn.h"
#include "storage/schema.h"

namespace kv {

// A card key taken from the pool for an in-flight write.
struct TakenKey {
  uint64_t seq = 0;
  uint64_t batch_id = 0;
  std::string sealed;
};

struct BackorderItem {
  std::string oid;
  uint32_t quantity = 0;
};

// The keys TakeKeysLocked found for one order: fresh ones (an import's, never in the pool)
// and pool ones (in flight until the write is finished).
struct OrderKeys {
  std::vector<TakenKey> fresh;
  std::vector<TakenKey> pooled;
};

// A backorder taken off the queue by a batch not yet committed (restored if it fails).
struct ServedBackorder {
  uint64_t log_seq = 0;
  BackorderItem item;
};

// A change one batch makes to the delivery log, mirrored in memory after its commit
// (Impl::logmem: the backlog counts without a scan).
struct LogChange {
  uint64_t seq = 0;
  bool erase = false;
  DeliveryState state = DeliveryState::kPending;  // !erase
  int64_t created_ms = 0;                         // !erase
};

// What one batch does besides its records and stock (a StockTxn, stock_txn.h): the webhook
// events and mails PutOrder puts into it (issue 14) and its delivery-log Puts and Deletes.
// Impl::CommitBatch hands them to the outbox and the log's memory after the commit (a failed
// batch drops them).
struct BatchEffects {
  std::vector<OutboundRecord> outbound;
  std::vector<LogChange> log;
};

struct Shop::ProductState {
  explicit ProductState(const ProductRecord& rec) : id(rec.id) {
    MutexLock l(&update_mu);
    SetConfigLocked(rec);
  }

  // The current settings. Lock-free (the order hot path reads it); the pointer stays valid
  // for the Shop's lifetime because old versions are kept (one per product update).
  const ProductRecord* Config() const { return cfg.load(std::memory_order_acquire); }
  void SetConfigLocked(const ProductRecord& rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(update_mu) {
    versions.push_back(std::make_unique<const ProductRecord>(rec));
    cfg.store(versions.back().get(), std::memory_order_release);
  }
  StockCounts Counts() const;

  const uint64_t id;
  Mutex update_mu;  // serializes UpdateProduct on this product
  std::vector<std::unique_ptr<const ProductRecord>> versions ABSL_GUARDED_BY(update_mu);
  std::atomic<const ProductRecord*> cfg{nullptr};

  // pool - held - owed - (units acquired by writes still in flight). Changed only by a
  // StockTxn (stock_txn.h), like the counters below.
  std::atomic<int64_t> available{0};
  // Mirrors of the durable counters, changed only after a commit (StockTxn::Commit).
  std::atomic<int64_t> pool{0}, held{0}, owed{0}, delivered{0}, imported{0}, retired{0};

  // Key selection, imports, retires and backorder service of this product.
  Mutex pool_mu;
  // Every pool key with seq < cursor is in flight (or a zombie of a retired batch).
  uint64_t cursor ABSL_GUARDED_BY(pool_mu) = 0;
  absl::flat_hash_set<uint64_t> inflight ABSL_GUARDED_BY(pool_mu);
  uint64_t next_seq ABSL_GUARDED_BY(pool_mu) = 1;
  uint64_t next_batch_id ABSL_GUARDED_BY(pool_mu) = 1;
  absl::flat_hash_set<uint64_t> retired_batches ABSL_GUARDED_BY(pool_mu);
  // Waiting backorders by delivery-log seq (= FIFO order). Guarded, like the state of every
  // backordered order of this product, by pool_mu.
  std::map<uint64_t, BackorderItem> backorders ABSL_GUARDED_BY(pool_mu);
};

struct ExpiryItem {
  int64_t deadline_mono_ns;
  std::string oid;
  bool operator>(const ExpiryItem& o) const { return deadline_mono_ns > o.deadline_mono_ns; }
};

struct Shop::Impl {
  Impl(Shop* s, const ShopOptions& o, storage::Db* d, KeyCipher* c)
      : owner(s),
        opts(o),
        db(d),
        cipher(c),
        clock(o.clock),
        random(o.random),
        contact_lockout(o.clock, o.lookup_lockout),
        order_lockout(o.clock, o.lookup_lockout) {
    for (auto& p : products) p.store(nullptr, std::memory_order_relaxed);
  }

  // --- lookups ---
  ProductState* Product(uint64_t id) const {
    if (id == 0 || id > limits::kProductsMax) return nullptr;
    return products[id].load(std::memory_order_acquire);
  }
  // The stripe lock of an order (oid is random, so its first bytes spread well).
  Mutex& OrderLock(std::string_view oid) {
    // The last 8 bytes: random in every order id (the first ones are a time, schema.h).
    uint64_t h = 0;
    for (size_t i = oid.size() > 8 ? oid.size() - 8 : 0; i < oid.size(); ++i) {
      h = h << 8 | static_cast<uint8_t>(oid[i]);
    }
    h ^= h >> 29;
    return order_locks[h & (limits::kOrderLockStripes - 1)];
  }
  // The stripe lock of any other name (payment ids share prefixes: hash all of it).
  Mutex& StripeFor(std::string_view name) {
    return order_locks[std::hash<std::string_view>{}(name) & (limits::kOrderLockStripes - 1)];
  }
  int64_t NowMs() const { return UnixMs(clock->WallNow()); }
  absl::StatusOr<std::optional<OrderRecord>> ReadOrder(const std::string& oid) const;

  // --- derived secrets (storage/key_cipher.h, domain-separated) ---
  std::string KeyTag(std::string_view text) const;
  std::string TokenFor(std::string_view oid) const;
  std::string ContactTag(std::string_view contact) const;
  std::string PasswordTag(std::string_view oid, std::string_view pw) const;
  std::string LookupTag(std::string_view contact_tag, std::string_view pw) const;

  // --- per-status order counts (CF "counters", 'o' keys) ---
  // Counts the order index ('e' for pending_payment, 's' per other status), in
  // kAllOrderStatuses order: O(orders), for the one-time count at open and for tests.
  absl::StatusOr<std::vector<std::pair<OrderStatus, int64_t>>> CountOrderIndex() const;
  // At open: when the dir has no "order_counts" marker, writes the counts from
  // CountOrderIndex and the marker in one synced batch.
  [[nodiscard]] absl::Status EnsureOrderCounts();

  // --- batch helpers ---
  // Writes `next` and keeps the status/expiry indexes in step with `prev` (nullptr: new).
  // A status change into delivered, backordered, refund_due, refunded or cancelled also
  // puts the outbound work it causes (a webhook event when webhook_events is on; for
  // delivered, a mail when mail_contact accepts the contact) into CF outbound, in this
  // batch, and lists it in fx->outbound (fx may be null only for a new order). The one place
  // order records are written: a write CanRecordTransition (records.h) does not allow is
  // refused with FailedPrecondition, in every build, and puts nothing into the batch.
  [[nodiscard]] absl::Status PutOrder(rocksdb::WriteBatch* b, const OrderRecord* prev,
                                      const OrderRecord& next, BatchEffects* fx) const;
  // After the synced write of a batch: its stock into memory (txn->Commit()), its
  // delivery-log changes into the log's memory and its outbound work into the outbox.
  void CommitBatch(StockTxn* txn, BatchEffects* fx);
  // Attaches `keys` to `order` (status delivered; its hold flag cleared) and, when they come
  // from the pool, deletes them there. The stock moves are the caller's (its StockTxn); the
  // caller checks the order is then whole.
  void DeliverInto(rocksdb::WriteBatch* b, OrderRecord* order, std::vector<TakenKey>* keys,
                   bool from_pool) const;
  OrderView View(const OrderRecord& r, bool with_keys) const;

  // --- pool (callers hold ps->pool_mu) ---
  [[nodiscard]] absl::Status SelectKeysLocked(ProductState* ps, uint32_t q,
                                              std::vector<TakenKey>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ps->pool_mu);
  // The keys for one order of q: first the unused ones of `fresh` (an import's keys, which
  // never enter the pool; from (*fresh)[*fresh_used], which it advances; fresh may be null),
  // the rest selected from the pool (in flight from then on). All or nothing: true with q
  // keys in *out; false when fewer are at hand (some are in flight, or a batch was retired
  // under open holds), with everything it took given back.
  absl::StatusOr<bool> TakeKeysLocked(ProductState* ps, uint32_t q, std::vector<TakenKey>* fresh,
                                      size_t* fresh_used, OrderKeys* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ps->pool_mu);
  // Gives back keys TakeKeysLocked took for a batch that will not be written: fresh keys to
  // `fresh`, pool keys selectable again.
  void ReturnKeysLocked(ProductState* ps, OrderKeys* keys, std::vector<TakenKey>* fresh,
                        size_t* fresh_used) ABSL_EXCLUSIVE_LOCKS_REQUIRED(ps->pool_mu);
  // After a write that took `keys`: drop them from the in-flight set; on failure make
  // them selectable again (or retire them, if their batch was retired meanwhile).
  void FinishInflight(ProductState* ps, const std::vector<TakenKey>& keys, bool committed);
  // Serves waiting backorders, oldest first, into the batch (each: TakeKeysLocked, then
  // txn->ServeOwed); stops at the first that cannot be served. `fresh`: keys this batch
  // imports (those served are removed from it; the rest are for the pool).
  absl::StatusOr<size_t> ServeBackordersLocked(ProductState* ps, std::vector<TakenKey>* fresh,
                                               rocksdb::WriteBatch* b, StockTxn* txn,
                                               BatchEffects* fx,
                                               std::vector<ServedBackorder>* served)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ps->pool_mu);
  // Puts backorders taken by a failed batch back on the queue.
  void RestoreBackorders(ProductState* ps, const std::vector<ServedBackorder>& served)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(ps->pool_mu);
  absl::StatusOr<size_t> ServeBackorders(ProductState* ps);

  // --- a paid order's keys: the one "assign keys or fall back" ---
  // Gives `order` (being paid) its keys in `b`: from its hold (order->holding) or from units
  // taken now (txn->Take), keys by TakeKeysLocked; *keys = the pool keys it took (the caller
  // FinishInflights them after the write). When there are no units or too few keys, falls
  // back per the product's policy: backordered (txn->Owe, a new delivery-log entry and `b`
  // index entry; *backorder_seq set: the caller queues it after the commit) or refund_due
  // (*flag = kNoStock). A hold not delivered is released (txn->ReleaseHold). An error
  // (reading the pool) leaves the batch unusable: the caller drops it and the txn.
  [[nodiscard]] absl::Status AssignKeysOrFallBack(rocksdb::WriteBatch* b, ProductState* ps,
                                                  const ProductRecord& cfg, OrderRecord* order,
                                                  StockTxn* txn, BatchEffects* fx,
                                                  std::vector<TakenKey>* keys, PaymentFlag* flag,
                                                  uint64_t* backorder_seq);
  // The answer to a repeat of a recorded payment (stored value `value`): its outcome and
  // flag, replay = true, and its order's current status when the order exists.
  Result<PaymentResult> AnswerRecordedPayment(std::string_view value) const;

  // Hoarding guard: counts of open pending_payment orders per contact and per client.
  // TryHoldPending takes a slot for a new order (false at the cap); ReleasePending gives it
  // back when the order leaves pending_payment or is never written. No-ops when the caps
  // are 0 (nothing is counted then).
  bool TryHoldPending(const OrderRecord& r);
  // True when TryHoldPending(r) might refuse now (a peek: nothing is taken).
  bool PendingMayRefuse(const OrderRecord& r);
  void ReleasePending(const OrderRecord& r);

  void ScheduleExpiry(const OrderRecord& r);
  void Kick();

  // --- the delivery log's entries in memory (issue 14): state and age per log_seq, rebuilt by
  // Recover and changed after each commit that writes the log (CommitBatch), so Backlog()
  // counts without reading the database ---
  struct LogMem {
    DeliveryState state = DeliveryState::kPending;
    int64_t created_ms = 0;
  };
  void LogMemApply(const LogChange& c);
  Mutex logmem_mu;
  absl::flat_hash_map<uint64_t, LogMem> logmem ABSL_GUARDED_BY(logmem_mu);
  // (created_ms, seq) per state (index = the state's number): counts and the oldest.
  std::array<std::set<std::pair<int64_t, uint64_t>>, 4> logmem_by_state ABSL_GUARDED_BY(logmem_mu);

  // --- outbound work (issue 14; shop_outbound.cc) ---
  // The outbox: every entry of CF outbound, in memory (rebuilt by Recover), so that the
  // workers find due entries and the backlog is counted without a scan. An entry is added
  // only after the batch that wrote it committed; a worker "leases" an entry while it sends
  // it, and only the leaseholder writes it.
  struct OutboxItem {
    OutboundState state = OutboundState::kPending;
    uint32_t attempts = 0;
    int64_t created_ms = 0;
    int64_t next_attempt_ms = 0;
    bool leased = false;
  };
  void OutboxPut(const std::string& key, const OutboundRecord& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(outbox_mu);
  void OutboxErase(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(outbox_mu);
  void PublishOutbound(const std::vector<OutboundRecord>& records);
  [[nodiscard]] absl::Status LoadOutbox();
  Mutex outbox_mu;
  CondVar outbox_cv;  // signalled when an entry becomes pending
  absl::flat_hash_map<std::string, OutboxItem> outbox ABSL_GUARDED_BY(outbox_mu);
  // Pending, unleased entries per kind (index = kind), by (next_attempt_ms, key).
  std::array<std::set<std::pair<int64_t, std::string>>, 3> outbox_due ABSL_GUARDED_BY(outbox_mu);
  // Entries per kind and state (indexes = the enums' numbers).
  std::array<std::array<int64_t, 4>, 3> outbox_counts ABSL_GUARDED_BY(outbox_mu) = {};
  // Their created_ms per kind and state: the oldest is the first (for /readyz and alerts).
  std::array<std::array<std::multiset<int64_t>, 4>, 3> outbox_created ABSL_GUARDED_BY(outbox_mu);

  Shop* owner;
  ShopOptions opts;
  storage::Db* db;
  KeyCipher* cipher;
  Clock* clock;
  Random* random;

  std::array<std::atomic<ProductState*>, limits::kProductsMax + 1> products;
  Mutex products_mu;  // product creation
  std::vector<std::unique_ptr<ProductState>> owned ABSL_GUARDED_BY(products_mu);
  uint64_t next_product_id ABSL_GUARDED_BY(products_mu) = 1;

  std::atomic<uint64_t> next_log_seq{1};
  std::array<Mutex, limits::kOrderLockStripes> order_locks;
  // Shop-wide: key uniqueness spans products, so imports (and the dedupe check) serialize.
  Mutex import_mu;

  // Holds to expire, in shards so that concurrent order creations rarely share a lock.
  static constexpr size_t kExpiryShards = 16;
  struct ExpiryShard {
    Mutex mu;
    std::priority_queue<ExpiryItem, std::vector<ExpiryItem>, std::greater<ExpiryItem>> heap
        ABSL_GUARDED_BY(mu);
  };
  std::array<ExpiryShard, kExpiryShards> expiry;
  ExpiryShard& ExpiryShardFor(std::string_view oid) {
    return expiry[(oid.empty() ? 0 : static_cast<uint8_t>(oid.back())) % kExpiryShards];
  }

  struct PendingShard {
    Mutex mu;
    absl::flat_hash_map<std::string, uint32_t> open ABSL_GUARDED_BY(mu);
  };
  std::array<PendingShard, 16> pending;

  // Failed lookups per contact tag, failed token reads per order id (SPEC §4). Two tables,
  // so that spraying random order ids cannot evict a contact's count.
  FailureLockout contact_lockout;
  FailureLockout order_lockout;
  PendingShard& PendingShardFor(const std::string& key) {
    return pending[std::hash<std::string>{}(key) % pending.size()];
  }
  // Takes one slot under `key` if fewer than max are open.
  bool TakeSlot(const std::string& key, uint32_t max);
  void GiveSlot(const std::string& key);

  // Worker thread.
  Mutex work_mu;
  CondVar work_cv;
  bool stop ABSL_GUARDED_BY(work_mu) = false;
  bool kicked ABSL_GUARDED_BY(work_mu) = false;
  std::thread worker;
};

}  // namespace kv
