// Shop: the domain core of keyvend — products, card keys, stock, orders, payments and the
// delivery log — on one RocksDB data dir. No HTTP, no JSON.
//
// Invariants this class maintains (SPEC §2; `keyvend check` verifies them on disk):
//  I1 no oversell: per product, keys delivered + keys held by open orders <= keys imported;
//     the decision is taken in memory (an atomic compare-and-swap on `available`) BEFORE
//     the write; the durable counters change by Merge in the same batch as the records.
//  I2 a key leaves the pool and joins an order in one atomic batch; the pool selection
//     hands a key to one in-flight write at a time.
//  I4 every state-changing call returns only after its synced (fsync'd WAL) commit.
//  I5 available = pool - held - owed, in memory and on disk; memory is rebuilt from the
//     durable counters on open. Acquisitions lower `available` before the write,
//     releases raise it after the commit, so memory never overstates stock.
//  Every stock move (I1, I5) goes through a StockTxn (stock_txn.h); every order record
//  write through Impl::PutOrder, which refuses a step the state machine does not allow
//  (CanRecordTransition, records.h) in every build.
//
// Thread safety: every public method may be called from any number of threads.
// Lock order (never the other way round): order stripe lock -> product pool lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backup/backup.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "base/random.h"
#include "limits/failure_lockout.h"
#include "limits/limits.h"
#include "shop/key_import.h"
#include "shop/records.h"
#include "shop/refusal.h"
#include "storage/data_dir.h"

namespace kv {

struct ShopOptions {
  std::string data_dir = "./keyvend-data";
  std::string master_key_file;  // required; outside data_dir
  bool create_if_missing = true;
  Clock* clock = RealClock::Get();       // not owned
  Random* random = SecureRandom::Get();  // not owned
  // How long a reserve-mode order holds its keys, seconds. Default 900.
  int64_t hold_seconds = limits::kHoldSecondsDefault;
  // Grace after expires_at before a hold is released, seconds. Default 120.
  int64_t hold_grace_seconds = limits::kHoldGraceSecondsDefault;
  // Start the expiry and delivery threads (default true). Tests that drive a FakeClock set
  // false and call RunExpiry()/RunBackorders() themselves.
  bool start_workers = true;
  // Hoarding guard (SPEC §3): most open pending_payment orders per contact (case-
  // insensitive) and per client address; 0 = no cap. Default: 0 here (the server passes
  // its configured values).
  uint32_t pending_orders_per_contact_max = 0;
  uint32_t pending_orders_per_client_max = 0;
  // Failed order lookups per contact, and failed token reads per order id, lock that
  // contact's lookups (that order's reads) for a growing time, whatever the client (SPEC
  // §4; limits/failure_lockout.h). In memory: a restart forgets the counts. Default:
  // LockoutPolicy{} (10 failures in 600 s lock for 60 s, doubling up to 86400 s; 100000
  // contacts and 100000 order ids kept); failures_max = 0 turns it off.
  LockoutPolicy lookup_lockout;
  // Outbound work (issue 14): what the order's state changes write into CF outbound, in
  // their own batch. webhook_events: one merchant webhook event per change into delivered,
  // backordered, refund_due, refunded or cancelled (the server sets it when webhook_url is
  // set). mail_contact: when set, a change into delivered whose contact it accepts gets a
  // buyer mail (the server passes outbound::IsValidMailbox when mail is configured).
  // Defaults: none.
  bool webhook_events = false;
  std::function<bool(std::string_view)> mail_contact;
  size_t block_cache_bytes = limits::kBlockCacheBytesDefault;
  // Test hook (storage::DbOptions::write_fault): called before each synced group write; an
  // error fails every state change of that group with it, nothing of them written (each
  // gives back what it held in memory). Default: empty.
  storage::WriteFaultFn write_fault = nullptr;
  // storage::DbOptions::min_free_bytes: writes answer Unavailable while the data dir's file
  // system has less free (0 = no guard). Default: 0; serve passes min_free_disk_mb.
  uint64_t min_free_disk_bytes = 0;
  // Test hook (storage::DbOptions::env): the RocksDB Env the database uses, e.g. a
  // fault-injecting file system's (tests/kit/fault_fs.h). Not owned; outlives the
  // Shop. Default: nullptr (RocksDB's default).
  rocksdb::Env* env = nullptr;

  // --- backups (backup/backup.h; the server sets these from its config) ---
  // Directory of the shop's backups; "" = backups off. Must not overlap data_dir nor hold
  // the master key file (Open refuses). Default: "".
  std::string backup_dir;
  // Seconds between scheduled backups (a thread, only with start_workers); 0 = none.
  // Default: 0.
  int64_t backup_interval_seconds = 0;
  // Backups a scheduled round keeps (it purges older ones after its backup); 0 = keep all.
  // Default: 0.
  uint32_t backup_keep = 0;
  // Bytes per second a backup may write; 0 = as fast as it can. Default: 0.
  uint64_t backup_rate_limit_bytes_per_second = 0;
};

// What a merchant sets when creating a product. Validated by CreateProduct.
struct ProductSpec {
  std::string name;
  std::string description;
  int64_t price_cents = 0;
  std::string currency;
  StockMode stock_mode = StockMode::kReserve;
  bool allow_backorder = false;
  uint32_t max_per_order = limits::kMaxPerOrderDefault;
  bool active = true;
};

// A partial update; unset fields keep their value.
struct ProductPatch {
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::optional<int64_t> price_cents;
  std::optional<std::string> currency;
  std::optional<StockMode> stock_mode;
  std::optional<bool> allow_backorder;
  std::optional<uint32_t> max_per_order;
  std::optional<bool> active;
};

struct StockCounts {
  int64_t available = 0;  // pool - held - owed (may be negative after a retire or backorders)
  int64_t pool = 0;
  int64_t held = 0;
  int64_t owed = 0;
  int64_t delivered = 0;
  int64_t imported = 0;
  int64_t retired = 0;
  // What buyers see: max(0, available).
  int64_t sellable() const { return available > 0 ? available : 0; }
};

struct ProductView {
  ProductRecord product;
  StockCounts stock;
};

struct DuplicateLine {
  uint32_t line = 0;
  bool in_input = false;  // true: repeats an earlier line; false: the shop already had it
};

struct [[nodiscard]] ImportResult {
  uint64_t batch_id = 0;           // 0 when nothing was imported (no batch written)
  uint64_t imported = 0;           // keys stored by this import (incl. those served to backorders)
  uint64_t duplicates = 0;         // within the input + already stored anywhere in the shop
  uint64_t backorders_served = 0;  // orders delivered from this batch
  std::vector<RejectedLine> rejected;          // empty/too long/non-printable/bad CSV row
  std::vector<DuplicateLine> duplicate_lines;  // by line number
};

struct [[nodiscard]] RetireResult {
  uint64_t batch_id = 0;
  uint64_t retired = 0;  // unsold keys removed from sale by this call
};

struct OrderRequest {
  OrderRequest() = default;
  OrderRequest(uint64_t pid, int64_t q, std::string contact_, std::string password = "",
               std::string client_ = "")
      : product_id(pid),
        quantity(q),
        contact(std::move(contact_)),
        query_password(std::move(password)),
        client(std::move(client_)) {}
  uint64_t product_id = 0;
  int64_t quantity = 0;
  std::string contact;
  std::string query_password;  // optional
  std::string client;  // the buyer's address (hoarding guard, idempotency scope); may be empty
};

struct OrderView {
  std::string order_id;  // 32 hex chars
  OrderStatus status = OrderStatus::kPendingPayment;
  uint64_t product_id = 0;
  uint32_t quantity = 0;
  int64_t amount_cents = 0;
  std::string currency;
  std::string contact;
  absl::Time created_at;
  absl::Time expires_at;
  std::string payment_id;
  std::vector<std::string> keys;   // plaintext; empty until delivered
  std::string token;               // filled by CreateOrder and LookupOrders only
  bool idempotent_replay = false;  // CreateOrder answered an earlier request with this key
};

// Idempotency for order creation (SPEC §4): a client-chosen key bound to a fingerprint of
// the request body.
struct IdempotencyKey {
  std::string key;          // 1..255 bytes, as the client sent it
  std::string fingerprint;  // e.g. SHA-256 of the raw body; compared byte-exactly
};

// The work one LookupOrders call did (tests check that a failing lookup costs the same
// whether or not the contact has orders).
struct LookupWork {
  uint32_t tags = 0;           // keyed HMACs computed
  uint32_t order_reads = 0;    // order records read
  uint32_t index_entries = 0;  // contact-index entries visited
};

struct OrderPage {
  std::vector<OrderView> orders;  // without keys
  std::string next_cursor;        // empty at the end
};

struct PaymentView {
  PaymentRecord record;  // payment_id filled in
};

// A key still in the pool, as the merchant's listing shows it: masked, never whole.
struct PoolKeyView {
  uint64_t seq = 0;
  uint64_t batch_id = 0;
  std::string masked;  // first 2 and last 2 characters, the rest '*' ("****" if short)
};

// The delivery log's unfinished work: paid orders waiting for keys (backorders).
struct DeliveryBacklog {
  uint64_t backordered = 0;
  int64_t oldest_backordered_ms = 0;  // created time of the oldest, or 0 when none
};

struct ShopStats {
  std::vector<std::pair<OrderStatus, uint64_t>> orders_by_status;
  uint64_t payments_refund_due = 0;
  DeliveryBacklog deliveries;
};

struct PaymentNotice {
  std::string order_id;  // hex, as the gateway sends it (may be anything)
  std::string payment_id;
  int64_t amount_cents = 0;
  std::string currency;
};

// A correctly signed notice the shop cannot use as a payment (SPEC §4): its body is not a
// JSON object, a field is missing or of the wrong type, or its payment_id is not one
// ValidPaymentId accepts. The HTTP layer fills in what it could read; the rest stays empty.
struct MalformedPaymentNotice {
  std::string raw_body;      // the notice exactly as signed (only an excerpt is stored)
  std::string payment_id;    // as sent, when it was a string
  std::string order_id;      // as sent, when it was a string
  int64_t amount_cents = 0;  // when it was an integer
  std::string currency;      // as sent, when it was a string
  std::string problem;       // what is wrong, naming fields, never their values
};

struct [[nodiscard]] PaymentResult {
  PaymentOutcome outcome = PaymentOutcome::kApplied;
  PaymentFlag flag = PaymentFlag::kNone;
  bool replay = false;                      // this payment_id was already recorded; nothing changed
  std::optional<OrderStatus> order_status;  // after the payment, when the order exists
};

// A buyer started paying an order at a gateway (issue 13; CF pay_attempts): one per order
// and gateway. The reconciler (src/pay) asks the gateway about it when no notify came.
struct PayAttempt {
  std::string order_id;    // 32 lowercase hex chars
  std::string gateway;     // the gateway's name: 1..storage::kGatewayNameBytesMax of [a-z0-9_]
  std::string method;      // the sub-method chosen, may be empty
  std::string ref;         // the gateway's id of the attempt (PayStart::ref), may be empty
  int64_t started_ms = 0;  // Unix ms
};

// This process's backups so far, for metrics and the admin API.
struct BackupRunStats {
  bool running = false;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  // When the newest backup in backup_dir finished (read from the dir at open, then set by
  // each success), Unix ms; 0 = none.
  int64_t last_success_unix_ms = 0;
  int64_t last_failure_unix_ms = 0;  // 0 = none since the shop opened
  double last_duration_seconds = 0;  // of the last finished attempt, successful or not
  std::string last_error;            // of the last attempt when it failed, else ""
};

// --- outbound work (issue 14): merchant webhook events and buyer mails in CF outbound ---

// True for the statuses whose entry writes outbound work: delivered, backordered,
// refund_due, refunded, cancelled.
bool EmitsOutbound(OrderStatus s);
// An entry's id, unique for ever and the same on every retry: "evt_<order id>_<status>" for
// a webhook event (the merchant dedupes on it), "mail_<order id>_<status>" for a mail.
std::string OutboundEventId(std::string_view oid, OutboundKind kind, OrderStatus status);
// The CF key an id names; false for anything that is not such an id.
bool ParseOutboundEventId(std::string_view id, std::string* key);

// One outbound entry as the admin API and the workers see it.
struct OutboundEvent {
  std::string id;        // OutboundEventId
  std::string order_id;  // 32 hex chars
  OutboundKind kind = OutboundKind::kWebhook;
  OrderStatus status = OrderStatus::kDelivered;  // the status the order entered
  OutboundState state = OutboundState::kPending;
  uint32_t attempts = 0;
  int64_t created_ms = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;  // for kSettled: "settled by hand: <reason>"
};

// An entry a worker leased (TakeDueOutbound) with what its sender needs.
struct OutboundJob {
  OutboundEvent event;
  OrderView order;           // keys only for a mail (decrypted here, for the mail only)
  int64_t paid_ms = 0;       // 0: never
  int64_t delivered_ms = 0;  // 0: never
  std::string product_name;
  std::string token;  // mail only: the order's access token (its link)
};

// What became of a leased entry (FinishOutbound).
enum class OutboundFinish {
  kSent,      // delete it
  kRetry,     // attempts + 1, pending again at next_attempt_ms
  kFailed,    // attempts + 1, failed (out of attempts, or refused for good)
  kDeferred,  // not an attempt (the breaker was open): pending again at next_attempt_ms
};

// One leased entry's outcome, for FinishOutboundMany.
struct OutboundFinishItem {
  const OutboundJob* job = nullptr;  // leased by TakeDueOutbound; not owned
  OutboundFinish what = OutboundFinish::kSent;
  int64_t next_attempt_ms = 0;  // kRetry / kDeferred: due again at (Unix ms)
  std::string error;            // stored (cut); never a key or secret
};

// Outbound entries per kind and state, from memory (no scan).
struct OutboundBacklog {
  // [kind][state]: kind 1 webhook, 2 mail; state 1 pending, 2 failed, 3 settled by hand.
  int64_t count[3][4] = {};
  // created_ms of the oldest entry of each, 0 when there is none.
  int64_t oldest_created_ms[3][4] = {};
  // Pending + failed entries of every kind: the work still owed to someone.
  int64_t Unfinished() const;
};

class Shop {
 public:
  // Opens (creating when allowed) the data dir, rebuilds memory from the durable counters,
  // serves the backorders stock allows and starts the workers. Errors: those of
  // storage::OpenDataDir; DataLoss on a malformed record; FailedPrecondition when the
  // delivery log holds a `pending` or `failed` entry (a paid order waiting for the removed
  // write-ahead delivery path; no keyvend build wrote one: `keyvend check` lists them).
  static absl::StatusOr<std::unique_ptr<Shop>> Open(const ShopOptions& opts);
  // Stops the workers and closes the database. Unfinished work (backorders, outbound
  // entries) stays in the log.
  ~Shop();

  // --- products (merchant) ---
  // Refusals: kBadRequest (message names the field). Returns the stored product.
  Result<ProductView> CreateProduct(const ProductSpec& spec);
  // Refusals: kProductNotFound, kBadRequest.
  Result<ProductView> UpdateProduct(uint64_t product_id, const ProductPatch& patch);
  // nullopt when there is no such product. Reads memory only (no DB access).
  std::optional<ProductView> GetProduct(uint64_t product_id) const;
  // All products (active_only: only active ones), by id. Reads memory only.
  std::vector<ProductView> ListProducts(bool active_only) const;

  // --- keys (merchant) ---
  // Parses and imports keys in ONE synced batch: valid, new keys join the pool (after
  // serving waiting backorders, oldest first, in the same batch); rejected lines and
  // duplicates are reported. Refusals: kProductNotFound, kBadRequest (whole-input error,
  // e.g. a CSV without the key column, or more than limits::kImportKeysMax keys).
  Result<ImportResult> ImportKeys(uint64_t product_id, std::string_view input,
                                  const ParseOptions& parse);
  // Takes the unsold keys of a batch out of sale for good (one synced batch).
  // Refusals: kProductNotFound, kNotFound (no such batch).
  Result<RetireResult> RetireBatch(uint64_t product_id, uint64_t batch_id);
  // Up to `limit` pool keys of the product with seq > after_seq, masked.
  // Refusal: kProductNotFound.
  Result<std::vector<PoolKeyView>> ListPoolKeys(uint64_t product_id, size_t limit,
                                                uint64_t after_seq);
  // The product's batches, oldest first. Refusal: kProductNotFound.
  Result<std::vector<BatchRecord>> ListBatches(uint64_t product_id);

  // --- orders (buyer) ---
  // Creates an order, filled whole or refused whole. Refusals: kInvalidQuantity,
  // kProductNotFound, kProductInactive, kQuantityLimit, kOutOfStock, kBadRequest (contact;
  // a query password that is not empty and shorter than limits::kQueryPasswordCharsMin
  // characters), kPendingLimit (the contact or client already has the most open pending
  // orders allowed). The view carries the order's secret token (shown once; it is derived,
  // never stored).
  // With an idempotency key: the first success is recorded in the order's own batch, bound
  // to its scope (contact, query password, client, fingerprint). The same key in the same
  // scope answers that order again (idempotent_replay, token included, status as first
  // answered: pending_payment) and creates nothing; in any other scope — another body, or
  // the same body from another client — kIdempotencyConflict, which tells nothing about the
  // first order. A refused attempt records nothing. Records live >= 24 h.
  Result<OrderView> CreateOrder(const OrderRequest& req, const IdempotencyKey* idem = nullptr);
  // The refusal CreateOrder(req) without an idempotency key would give now, judged from
  // in-memory state alone — the same checks in the same order, taking nothing and writing
  // nothing — when that refusal is certain: a validation refusal, or kOutOfStock. nullopt
  // when CreateOrder must decide (it may create the order, or refuse for a reason only it
  // can see, such as the pending-order limit). For the edge's fast path (issue 11): a flash
  // sale's sold-out answers need no worker thread and no commit. Thread-safe.
  struct OrderRefusal {
    Refusal refusal;
    std::string message;
  };
  std::optional<OrderRefusal> PrecheckOrder(const OrderRequest& req) const;
  // CreateOrder without an idempotency key and without waiting for the commit (issue 11:
  // no thread blocks for an order's fsync). A refusal or an error found before the write
  // is returned at once and `done` is not called; otherwise nullopt: the order's batch is
  // with the group committer, and done(result) runs ON THE COMMITTER THREAD once its group
  // is synced (the order) or has failed (the error; everything taken in memory is given
  // back first) — it must be short. Every pending call completes before the Db closes; the
  // server's drain waits for them.
  using OrderDoneFn = std::function<void(Result<OrderView>)>;
  std::optional<Result<OrderView>> CreateOrderAsync(const OrderRequest& req, OrderDoneFn done);
  // The order, with plaintext keys once delivered. A wrong token and an unknown id give the
  // same refusal (kOrderNotFound). Token compared in constant time. Wrong tokens count per
  // order id: after lookup_lockout.failures_max of them the id's reads are refused for a
  // while, the right token included (kRateLimited, with retry_after_seconds).
  Result<OrderView> GetOrder(std::string_view order_id, std::string_view token);
  // Orders created with this contact and password (newest first, at most
  // limits::kLookupOrdersMax, among the newest limits::kLookupIndexEntriesMax of the
  // contact's lookable orders), each with its token. No match: an empty list, counted as a
  // failure of the contact; after lookup_lockout.failures_max of them the contact's lookups
  // are refused for a while, the right password included (kRateLimited, with
  // retry_after_seconds). A failing lookup does the same keyed work whether or not the
  // contact has orders (one contact tag, one lookup tag, no order read); `work`, when not
  // null, receives what this call did.
  Result<std::vector<OrderView>> LookupOrders(std::string_view contact,
                                              std::string_view query_password,
                                              LookupWork* work = nullptr);

  // --- payments (gateway) ---
  // Records a payment exactly once per payment_id and applies it (SPEC §3, §4): pays the
  // order (delivering at once when the keys are at hand), or backorders it, or flags the
  // payment for refund. Never refuses a well-formed notice: money received is always
  // recorded. Refusal: kBadRequest (a payment_id ValidPaymentId refuses: a caller with a
  // signed notice records that with RecordMalformedPayment instead).
  Result<PaymentResult> ApplyPayment(const PaymentNotice& notice);
  // Records a correctly signed notice that cannot be used as a payment: outcome refund_due,
  // flag kMalformed, with the problem, the body's size and its first
  // limits::kPaymentBodyExcerptBytesMax bytes (cut at a UTF-8 boundary). Exactly once per
  // record id: the notice's payment_id when ValidPaymentId accepts it, else
  // "sha256:" + lowercase hex SHA-256 of the raw body, so the gateway's retries of one body
  // (each signed with a new timestamp) are one record. A repeat (also of a payment_id
  // ApplyPayment recorded) answers as the first did, replay = true, and changes nothing.
  // Never pays or delivers: when order_id names an order, the record names it (the
  // merchant finds the order) and order_status is the order's, unchanged. Returns after the
  // synced write; errors are storage errors only (never a refusal).
  Result<PaymentResult> RecordMalformedPayment(const MalformedPaymentNotice& notice);

  // --- payment attempts (issue 13; src/pay reads and drops them) ---
  // Stores the attempt (replacing one of the same order and gateway) with a synced write:
  // OK means it survives kill -9. Errors: InvalidArgument (a malformed order id or gateway
  // name; nothing written), storage errors. The order is not read.
  [[nodiscard]] absl::Status RecordPayAttempt(const PayAttempt& attempt);
  // Every stored attempt, by order id then gateway. Errors: DataLoss on a malformed key or
  // record, storage errors.
  absl::StatusOr<std::vector<PayAttempt>> ListPayAttempts();
  // Deletes the attempt (none: OK), synced. Errors: InvalidArgument, storage errors.
  [[nodiscard]] absl::Status DeletePayAttempt(std::string_view order_id, std::string_view gateway);

  // --- merchant order actions ---
  // The order with keys (no token needed). Refusal: kOrderNotFound.
  Result<OrderView> AdminGetOrder(std::string_view order_id);
  // pending_payment -> cancelled (hold released). Refusals: kOrderNotFound, kInvalidState.
  Result<OrderView> CancelOrder(std::string_view order_id);
  // paid|backordered|refund_due|delivered -> refunded (a backorder's claim is dropped).
  // Refusals: kOrderNotFound, kInvalidState.
  Result<OrderView> RefundOrder(std::string_view order_id);

  // Orders page by page: all (by id), or one status (pending_payment by expiry, others by
  // creation time). Refusal: kBadRequest for a malformed cursor or limit 0.
  Result<OrderPage> ListOrders(std::optional<OrderStatus> status, size_t limit,
                               std::string_view cursor);
  // Calls f for every order (without keys) until it returns false. For CSV export.
  [[nodiscard]] absl::Status ForEachOrder(const std::function<bool(const OrderView&)>& f);
  // Recorded payments, optionally only those with the given outcome.
  absl::StatusOr<std::vector<PaymentView>> ListPayments(std::optional<PaymentOutcome> outcome);
  // Counts by a full scan of the order indexes and payments: for the admin, not probes.
  absl::StatusOr<ShopStats> Stats();
  // From memory (no scan): cheap enough for every /metrics scrape.
  absl::StatusOr<DeliveryBacklog> Backlog();
  // Deletes idempotency records older than `max_age`. Returns how many.
  absl::StatusOr<size_t> CollectIdempotency(absl::Duration max_age);

  // --- workers (also called by tests with a FakeClock) ---
  // Expires every hold whose monotonic deadline has passed. Returns how many orders
  // changed state.
  absl::StatusOr<size_t> RunExpiry();
  // Serves, per product, the waiting backorders that stock allows (keys freed by a released
  // hold; an import serves the queue itself). Returns how many orders were delivered; the
  // first error of a product's batch (the others are still served).
  absl::StatusOr<size_t> RunBackorders();
  // Entries of the delivery log (unfinished work), oldest first, optionally by state.
  absl::StatusOr<std::vector<DeliveryEntry>> ListDeliveries(std::optional<DeliveryState> state);

  // --- outbound work (issue 14; the workers are in src/outbound/dispatcher.h) ---
  // Leases up to `max` pending entries of `kind` that are due, waiting up to `wait` for one,
  // and reads what they need (the order; for a mail its keys and token). An entry whose
  // order is gone is failed on the spot and not returned. Errors: storage errors (every
  // entry leased by this call is released).
  absl::StatusOr<std::vector<OutboundJob>> TakeDueOutbound(OutboundKind kind, size_t max,
                                                           absl::Duration wait);
  // Settles (deletes), reschedules or fails a leased entry and releases the lease, writing
  // what the job read under its lease (no read first). Synced, as a member of the group
  // committer's next group (no fsync of its own while the shop is busy). `error` is
  // stored (cut to limits::kDeliveryErrorBytesMax); never pass a key or secret. Errors:
  // InvalidArgument (not an outbound id), FailedPrecondition (the entry is not leased: a
  // job finished twice), storage errors (nothing written; the entry is due again in 1 s).
  [[nodiscard]] absl::Status FinishOutbound(const OutboundJob& job, OutboundFinish what,
                                            int64_t next_attempt_ms, std::string_view error);
  // FinishOutbound for several leased entries in ONE synced write:
  // all or none. The same errors, for any item (then nothing is written and, for the
  // InvalidArgument / FailedPrecondition refusals, no lease changes).
  [[nodiscard]] absl::Status FinishOutboundMany(const std::vector<OutboundFinishItem>& items);
  // Entries from the CF (admin: a scan), oldest order first; by state and/or one order
  // (order_id hex; "" = all). Refusal: kBadRequest (a malformed order id).
  Result<std::vector<OutboundEvent>> ListOutbound(std::optional<OutboundState> state,
                                                  std::string_view order_id);
  // Puts one failed entry (event_id) or every failed entry (event_id "") back to pending,
  // attempts 0, due now. Returns how many. Refusals: kNotFound (no such entry),
  // kInvalidState (the entry is not failed).
  Result<size_t> ReplayOutbound(std::string_view event_id);
  // Marks a pending or failed entry settled by hand: it is kept in CF outbound as
  // "settled" with the reason (an audit record the order's detail shows) and never sent.
  // Refusals: kBadRequest (reason empty or over limits::kDeliveryErrorBytesMax bytes or not
  // printable), kNotFound, kInvalidState (already settled, or being sent right now).
  Result<OutboundEvent> SettleOutbound(std::string_view event_id, std::string_view reason);
  // Counts from memory: cheap for /readyz and every scrape.
  OutboundBacklog OutboundCounts();
  // Wakes every TakeDueOutbound waiting (shutdown).
  void WakeOutbound();

  // --- backups (SPEC §4, §8; backup/backup.h) ---
  // Takes an online backup of this shop into backup_dir while it keeps selling; `source`
  // is recorded in the backup ("api", "schedule"). One at a time. Refusal kInvalidState:
  // backups are off (no backup_dir), or a backup of this shop is already running, or
  // another keyvend process is creating or purging in backup_dir (the message says which).
  // Errors: Cancelled once StopBackups was called; otherwise the backup's error (nothing of
  // a failed backup is kept). Every attempt past the refusals counts in BackupStats.
  Result<backup::BackupInfo> CreateBackup(std::string_view source);
  // The backups in backup_dir (a dir not created yet: none). Refusal kInvalidState:
  // backups are off, or a purge is running on the dir.
  Result<backup::BackupList> ListBackups();
  // One scheduled round: CreateBackup("schedule"), then a purge down to backup_keep (when
  // > 0). The scheduler thread runs it every backup_interval_seconds; tests call it.
  // Returns the first failure (a refusal becomes FailedPrecondition).
  [[nodiscard]] absl::Status RunScheduledBackup();
  BackupRunStats BackupStats() const;
  // Stops a running backup (it ends with Cancelled) and refuses every later one. Called at
  // shutdown: a backup is not worth holding up a drain; its partial files are removed at
  // once or by the next backup. Thread-safe, idempotent.
  void StopBackups();
  const std::string& backup_dir() const { return opts_.backup_dir; }

  StockCounts Stock(uint64_t product_id) const;
  storage::Db* db() const { return db_.get(); }
  // The data dir's key cipher, for an offline tool in the same process that writes records
  // the shop reads (keyvend-preload seals keys and tags them exactly as ImportKeys does).
  const KeyCipher& cipher() const { return *cipher_; }

  // Internal state, defined in shop_internal.h (Backups: in shop_backup.h).
  struct ProductState;
  struct Impl;
  struct Backups;

 private:
  explicit Shop(const ShopOptions& opts);
  [[nodiscard]] absl::Status Recover();
  void StartWorkers();
  // Backups (shop_backup.cc): state, last success from the dir, the scheduler thread; and
  // its shutdown (before the database closes).
  void InitBackups();
  void ShutdownBackups();
  // CreateOrder's checks of the request against the product's settings (quantity, product,
  // active, per-order cap, contact, query password), in its order; sets *product when
  // they pass.
  std::optional<OrderRefusal> CheckOrder(const OrderRequest& req, ProductState** product) const;
  // CreateOrder's body; with async_done, the write is handed to the committer (and
  // *handed_over set) instead of waited for.
  Result<OrderView> CreateOrderCore(const OrderRequest& req, const IdempotencyKey* idem,
                                    OrderDoneFn* async_done = nullptr, bool* handed_over = nullptr);

  ShopOptions opts_;
  std::unique_ptr<storage::Db> db_;
  std::unique_ptr<KeyCipher> cipher_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<Backups> backups_;
};

// Order ids on the wire: 32 lowercase hex chars for 16 random bytes. False on anything else.
bool ParseOrderId(std::string_view hex, std::string* raw);

// Payment ids ApplyPayment accepts: 1..limits::kPaymentIdBytesMax bytes of printable ASCII
// without spaces (they are stored as keys and shown to the merchant as they are).
bool ValidPaymentId(std::string_view payment_id);

}  // namespace kv
