// Shop: orders — creation (the hot path), reads, lookup, cancel, refund and hold expiry.
#include <openssl/crypto.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/crash_point.h"
#include "base/status_macros.h"
#include "base/utf8.h"
#include "shop/secrets.h"
#include "shop/shop_internal.h"

namespace kv {

namespace {

bool ValidContact(std::string_view c) {
  if (c.empty() || c.size() > limits::kContactBytesMax) return false;
  for (unsigned char ch : c) {
    if (ch < 0x20 || ch == 0x7f) return false;
  }
  return true;
}

// Characters as a person counts them: UTF-8 code points (a stray byte counts as one).
size_t Chars(std::string_view s) {
  size_t n = 0;
  while (!s.empty()) {
    s.remove_prefix(std::max<size_t>(1, Utf8SequenceLength(s)));
    ++n;
  }
  return n;
}

// A lockout's wait as Retry-After: whole seconds, rounded up, at least 1.
int64_t RetrySeconds(int64_t wait_ns) {
  return std::max<int64_t>(1, (wait_ns + 999'999'999) / 1'000'000'000);
}

}  // namespace

// The checks of an order request that need nothing but the request and the product's
// settings, in the order CreateOrder applies them (PrecheckOrder repeats them exactly).
std::optional<Shop::OrderRefusal> Shop::CheckOrder(const OrderRequest& req,
                                                   ProductState** product) const {
  if (req.quantity < 1 || req.quantity > limits::kOrderQuantityMax) {
    return OrderRefusal{Refusal::kInvalidQuantity,
                        absl::StrCat("quantity must be 1..", limits::kOrderQuantityMax)};
  }
  ProductState* ps = impl_->Product(req.product_id);
  if (ps == nullptr) return OrderRefusal{Refusal::kProductNotFound, "no such product"};
  const ProductRecord* cfg = ps->Config();
  if (!cfg->active) return OrderRefusal{Refusal::kProductInactive, "product is not on sale"};
  const uint32_t q = static_cast<uint32_t>(req.quantity);
  if (q > cfg->max_per_order) {
    return OrderRefusal{Refusal::kQuantityLimit,
                        absl::StrCat("at most ", cfg->max_per_order, " keys per order")};
  }
  if (!ValidContact(req.contact)) {
    return OrderRefusal{
        Refusal::kBadRequest,
        absl::StrCat("contact must be 1..", limits::kContactBytesMax, " bytes of printable text")};
  }
  if (req.query_password.size() > limits::kQueryPasswordBytesMax) {
    return OrderRefusal{
        Refusal::kBadRequest,
        absl::StrCat("query_password must be at most ", limits::kQueryPasswordBytesMax, " bytes")};
  }
  if (!req.query_password.empty() && Chars(req.query_password) < limits::kQueryPasswordCharsMin) {
    return OrderRefusal{
        Refusal::kBadRequest,
        absl::StrCat("query_password must be at least ", limits::kQueryPasswordCharsMin,
                     " characters (or left out: the order then cannot be looked up)")};
  }

  *product = ps;
  return std::nullopt;
}

std::optional<Shop::OrderRefusal> Shop::PrecheckOrder(const OrderRequest& req) const {
  ProductState* ps = nullptr;
  if (std::optional<OrderRefusal> bad = CheckOrder(req, &ps)) return bad;
  const ProductRecord* cfg = ps->Config();
  // Enough stock (or backorders allowed): CreateOrder decides, at once (no contact tag is
  // computed for the orders that will go through).
  if (cfg->allow_backorder || ps->available.load() >= static_cast<int64_t>(req.quantity)) {
    return std::nullopt;
  }
  Impl& m = *impl_;
  OrderRecord r;
  r.contact_tag = m.ContactTag(req.contact);
  r.client = req.client.substr(0, limits::kOrderClientBytesMax);
  // CreateOrder's next check is the pending-order limit, which refuses before the stock
  // does: when it might, only CreateOrder can answer.
  if (m.PendingMayRefuse(r)) return std::nullopt;
  return OrderRefusal{Refusal::kOutOfStock, "not enough keys left"};
}

namespace {

// The answer to a new order: its view and token. Both follow from the record alone, so it
// is made before the write (on the caller's thread: for the asynchronous path, not on the one
// committer thread) and only handed on after it.
OrderView CreatedView(Shop::Impl& m, const OrderRecord& r) {
  OrderView v = m.View(r, false);
  v.token = m.TokenFor(r.oid);
  return v;
}

// CreateOrder after its batch's write: publishes what the commit made true and returns
// `answer` (CreatedView), or gives back what was taken in memory when nothing was written
// (the pending slot here; the units when the caller drops `txn` uncommitted).
Result<OrderView> FinishCreate(Shop::Impl& m, const OrderRecord& r, StockTxn* txn,
                               const absl::Status& s, OrderView answer) {
  if (!s.ok()) {
    m.ReleasePending(r);
    return s;
  }
  KV_CRASH_POINT("order.after_write");
  txn->Commit();
  m.ScheduleExpiry(r);
  return answer;
}

}  // namespace

Result<OrderView> Shop::CreateOrder(const OrderRequest& req, const IdempotencyKey* idem) {
  return CreateOrderCore(req, idem, nullptr);
}

std::optional<Result<OrderView>> Shop::CreateOrderAsync(const OrderRequest& req, OrderDoneFn done) {
  bool handed_over = false;
  Result<OrderView> r = CreateOrderCore(req, nullptr, &done, &handed_over);
  if (handed_over) return std::nullopt;
  return r;
}

Result<OrderView> Shop::CreateOrderCore(const OrderRequest& req, const IdempotencyKey* idem,
                                        OrderDoneFn* async_done, bool* handed_over) {
  Impl& m = *impl_;
  const std::string contact_tag = m.ContactTag(req.contact);
  std::string idem_tag, idem_scope;
  std::optional<MutexLock> idem_lock;
  if (idem != nullptr) {
    if (idem->key.empty() || idem->key.size() > limits::kIdempotencyKeyBytesMax) {
      return {Refusal::kBadRequest, absl::StrCat("Idempotency-Key must be 1..",
                                                 limits::kIdempotencyKeyBytesMax, " bytes")};
    }
    idem_tag = IdempotencyTag(*cipher_, idem->key);
    idem_scope =
        IdempotencyScope(*cipher_, contact_tag, req.query_password, req.client, idem->fingerprint);
    // One request per key at a time: check-then-create must not interleave.
    idem_lock.emplace(&m.StripeFor(idem_tag));
    auto rec = db_->Get(storage::kCfIdempotency, idem_tag);
    if (!rec.ok()) return rec.status();
    if (rec->has_value()) {
      IdempotencyRecord ir;
      absl::Status ds = DecodeIdempotency(**rec, &ir);
      if (!ds.ok()) return ds;
      // Only the same request from the same client gets the first answer (and its token)
      // again. Another body, the same body from another client (someone who learnt the key
      // and the body) and a record from before scopes were kept all get one refusal that
      // says nothing about the first order — not even whether the bodies matched, which
      // would confirm a guessed query password.
      if (ir.scope.size() != idem_scope.size() ||
          CRYPTO_memcmp(ir.scope.data(), idem_scope.data(), idem_scope.size()) != 0) {
        return {Refusal::kIdempotencyConflict,
                "this Idempotency-Key was already used, for another request or from another "
                "client; send a new key"};
      }
      auto order = m.ReadOrder(ir.oid);
      if (!order.ok()) return order.status();
      if (!order->has_value()) return absl::DataLossError("idempotency record of a lost order");
      OrderView v = m.View(**order, false);
      v.status = OrderStatus::kPendingPayment;  // the answer as first given
      v.token = m.TokenFor(ir.oid);
      v.idempotent_replay = true;
      return v;
    }
  }
  ProductState* ps = nullptr;
  if (std::optional<OrderRefusal> bad = CheckOrder(req, &ps)) {
    return {bad->refusal, std::move(bad->message)};
  }
  const ProductRecord* cfg = ps->Config();
  const uint32_t q = static_cast<uint32_t>(req.quantity);

  OrderRecord r;
  r.contact_tag = contact_tag;
  r.client = req.client.substr(0, limits::kOrderClientBytesMax);
  // Hoarding guard (SPEC §3): a slot per open pending order, taken before the stock.
  if (!m.TryHoldPending(r)) {
    return {Refusal::kPendingLimit,
            "too many open orders awaiting payment; pay or wait for "
            "them to expire"};
  }
  // The no-oversell decision (I1): taken here, in memory, before anything is written.
  StockTxn txn(ps);
  bool holding = false;
  if (cfg->stock_mode == StockMode::kReserve) {
    holding = txn.Hold(q);
    if (!holding && !cfg->allow_backorder) {
      m.ReleasePending(r);
      return {Refusal::kOutOfStock, "not enough keys left"};
    }
  } else if (ps->available.load() < static_cast<int64_t>(q) && !cfg->allow_backorder) {
    m.ReleasePending(r);
    return {Refusal::kOutOfStock, "not enough keys left"};
  }

  r.created_ms = r.updated_ms = m.NowMs();
  r.oid = storage::NewOrderId(r.created_ms, *m.random);
  r.status = OrderStatus::kPendingPayment;
  r.product_id = req.product_id;
  r.quantity = q;
  r.amount_cents = cfg->price_cents * q;
  r.currency = cfg->currency;
  r.contact = req.contact;
  if (!req.query_password.empty()) r.password_tag = m.PasswordTag(r.oid, req.query_password);
  r.holding = holding;
  r.expires_ms = r.created_ms + opts_.hold_seconds * 1000;

  rocksdb::WriteBatch b;
  if (absl::Status put = m.PutOrder(&b, nullptr, r, nullptr); !put.ok()) {
    m.ReleasePending(r);
    return put;
  }
  // Lookup finds only orders created with a query password, so only those are indexed; the
  // entry carries the password's lookup tag, so a lookup reads no order it does not return.
  if (!r.password_tag.empty()) {
    b.Put(db_->cf(storage::kCfOrderIndex),
          storage::ContactIndexKey(r.contact_tag, static_cast<uint64_t>(r.created_ms), r.oid),
          m.LookupTag(r.contact_tag, req.query_password));
  }
  if (idem != nullptr) {
    IdempotencyRecord ir;
    ir.scope = idem_scope;
    ir.created_ms = r.created_ms;
    ir.oid = r.oid;
    b.Put(db_->cf(storage::kCfIdempotency), idem_tag, EncodeIdempotency(ir));
  }
  txn.AddTo(&b, db_.get());
  KV_CRASH_POINT("order.before_write");
  if (async_done != nullptr) {
    // The committer finishes it: FinishCreate and the caller's callback run on its thread
    // once the group is synced (or has failed).
    *handed_over = true;
    OrderView answer = CreatedView(m, r);
    db_->WriteAsync(
        std::make_unique<rocksdb::WriteBatch>(std::move(b)),
        [&m, r = std::move(r), txn = std::make_shared<StockTxn>(std::move(txn)),
         answer = std::move(answer), done = std::move(*async_done)](const absl::Status& s) mutable {
          done(FinishCreate(m, r, txn.get(), s, std::move(answer)));
        });
    return OrderView{};  // not an answer: the callback gives it
  }
  OrderView answer = CreatedView(m, r);
  const absl::Status s = db_->Write(&b);
  return FinishCreate(m, r, &txn, s, std::move(answer));
}

Result<OrderView> Shop::GetOrder(std::string_view order_id, std::string_view token) {
  Impl& m = *impl_;
  std::string oid;
  if (!ParseOrderId(order_id, &oid)) return {Refusal::kOrderNotFound, "no such order"};
  // Wrong tokens count per order id, known or not (the answer must not tell them apart).
  if (const int64_t wait = m.order_lockout.Begin(oid); wait > 0) {
    return {Refusal::kRateLimited, "too many wrong tokens for this order; retry later",
            RetrySeconds(wait)};
  }
  const std::string want = m.TokenFor(oid);
  // Compare before reading so that timing does not tell a known id from an unknown one.
  const bool right =
      token.size() == want.size() && CRYPTO_memcmp(token.data(), want.data(), want.size()) == 0;
  m.order_lockout.Finish(oid, !right);
  if (!right) return {Refusal::kOrderNotFound, "no such order"};
  auto r = m.ReadOrder(oid);
  if (!r.ok()) return r.status();
  if (!r->has_value()) return {Refusal::kOrderNotFound, "no such order"};
  return m.View(**r, true);
}

Result<OrderView> Shop::AdminGetOrder(std::string_view order_id) {
  Impl& m = *impl_;
  std::string oid;
  if (!ParseOrderId(order_id, &oid)) return {Refusal::kOrderNotFound, "no such order"};
  auto r = m.ReadOrder(oid);
  if (!r.ok()) return r.status();
  if (!r->has_value()) return {Refusal::kOrderNotFound, "no such order"};
  return m.View(**r, true);
}

Result<std::vector<OrderView>> Shop::LookupOrders(std::string_view contact,
                                                  std::string_view query_password,
                                                  LookupWork* work) {
  Impl& m = *impl_;
  LookupWork unused;
  LookupWork& w = work != nullptr ? *work : unused;
  w = LookupWork{};
  if (!ValidContact(contact) || query_password.empty() ||
      query_password.size() > limits::kQueryPasswordBytesMax) {
    return std::vector<OrderView>();  // matches nothing; no secret was tried
  }
  const std::string ctag = m.ContactTag(contact);
  ++w.tags;
  if (const int64_t wait = m.contact_lockout.Begin(ctag); wait > 0) {
    return {Refusal::kRateLimited, "too many failed lookups for this contact; retry later",
            RetrySeconds(wait)};
  }
  // From here a failing lookup costs the same keyed work whether or not the contact has
  // orders: this one tag, compared against each index entry's (a cheap constant-time
  // compare per entry); an order is read only when its entry matches.
  const std::string ltag = m.LookupTag(ctag, query_password);
  ++w.tags;
  std::vector<OrderView> out;
  absl::Status s = [&]() -> absl::Status {
    const std::string prefix = storage::ContactIndexPrefix(ctag);
    // Newest first: seek past the prefix and walk back (the one backward scan, so not a
    // Db::ForEach; its status is checked below).
    auto it = db_->NewIterator(storage::kCfOrderIndex);
    std::string end = prefix;
    end.append(8 + storage::kOrderIdBytes, '\xff');
    it->SeekForPrev(end);
    for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limits::kLookupOrdersMax &&
           w.index_entries < limits::kLookupIndexEntriesMax;
         it->Prev()) {
      ++w.index_entries;
      const auto key =
          storage::ParseContactIndexKey(std::string_view(it->key().data(), it->key().size()));
      if (!key) continue;
      const rocksdb::Slice tag = it->value();
      if (tag.size() == storage::kTagBytes) {
        if (CRYPTO_memcmp(tag.data(), ltag.data(), ltag.size()) != 0) continue;
      } else if (!tag.empty()) {
        return absl::DataLossError("malformed contact index entry");
      }  // empty: an entry written before lookup tags; the order record decides alone
      std::string oid(key->oid);
      auto r = m.ReadOrder(oid);
      ++w.order_reads;
      if (!r.ok()) return r.status();
      if (!r->has_value() || (*r)->password_tag.empty()) continue;
      // The order record is the authority on its password.
      const std::string want = m.PasswordTag(oid, query_password);
      ++w.tags;
      if ((*r)->password_tag.size() != want.size() ||
          CRYPTO_memcmp(want.data(), (*r)->password_tag.data(), want.size()) != 0) {
        continue;
      }
      OrderView v = m.View(**r, true);
      v.token = m.TokenFor(oid);
      ++w.tags;
      out.push_back(std::move(v));
    }
    if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
    return absl::OkStatus();
  }();
  // A failure is a lookup that found nothing; an error tried nothing.
  m.contact_lockout.Finish(ctag, s.ok() && out.empty());
  if (!s.ok()) return s;
  return out;
}

Result<OrderView> Shop::CancelOrder(std::string_view order_id) {
  Impl& m = *impl_;
  std::string oid;
  if (!ParseOrderId(order_id, &oid)) return {Refusal::kOrderNotFound, "no such order"};
  MutexLock l(&m.OrderLock(oid));
  auto cur = m.ReadOrder(oid);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return {Refusal::kOrderNotFound, "no such order"};
  const OrderRecord& prev = **cur;
  if (!CanTransition(prev.status, OrderStatus::kCancelled)) {
    return {Refusal::kInvalidState, absl::StrCat("a ", std::string(OrderStatusName(prev.status)),
                                                 " order cannot be cancelled")};
  }
  ProductState* ps = m.Product(prev.product_id);
  if (ps == nullptr) return absl::DataLossError("order of an unknown product");
  OrderRecord next = prev;
  next.status = OrderStatus::kCancelled;
  next.updated_ms = m.NowMs();
  StockTxn txn(ps);
  BatchEffects fx;
  if (prev.holding) {
    txn.ReleaseHold(prev.quantity);
    next.holding = false;
  }
  rocksdb::WriteBatch b;
  KV_RETURN_IF_ERROR(m.PutOrder(&b, &prev, next, &fx));
  txn.AddTo(&b, db_.get());
  KV_CRASH_POINT("cancel.before_write");
  KV_RETURN_IF_ERROR(db_->Write(&b));
  m.CommitBatch(&txn, &fx);
  m.ReleasePending(prev);
  if (prev.holding) m.Kick();  // released keys may serve a waiting backorder
  return m.View(next, false);
}

Result<OrderView> Shop::RefundOrder(std::string_view order_id) {
  Impl& m = *impl_;
  std::string oid;
  if (!ParseOrderId(order_id, &oid)) return {Refusal::kOrderNotFound, "no such order"};
  MutexLock l(&m.OrderLock(oid));
  auto cur = m.ReadOrder(oid);
  if (!cur.ok()) return cur.status();
  if (!cur->has_value()) return {Refusal::kOrderNotFound, "no such order"};
  if (!CanTransition((*cur)->status, OrderStatus::kRefunded)) {
    return {Refusal::kInvalidState, absl::StrCat("a ", std::string(OrderStatusName((*cur)->status)),
                                                 " order cannot be refunded")};
  }
  ProductState* ps = m.Product((*cur)->product_id);
  if (ps == nullptr) return absl::DataLossError("order of an unknown product");

  // A backordered order's state is guarded by its product's pool lock (an import may be
  // serving it right now): take it and read again.
  std::optional<MutexLock> pool_lock;
  if ((*cur)->status == OrderStatus::kBackordered) {
    pool_lock.emplace(&ps->pool_mu);
    cur = m.ReadOrder(oid);
    if (!cur.ok()) return cur.status();
    if (!CanTransition((*cur)->status, OrderStatus::kRefunded)) {
      return {Refusal::kInvalidState,
              absl::StrCat("a ", std::string(OrderStatusName((*cur)->status)),
                           " order cannot be refunded")};
    }
  }
  const OrderRecord& prev = **cur;
  OrderRecord next = prev;
  next.status = OrderStatus::kRefunded;
  next.updated_ms = m.NowMs();
  StockTxn txn(ps);
  BatchEffects fx;
  rocksdb::WriteBatch b;
  if (prev.holding) {
    txn.ReleaseHold(prev.quantity);
    next.holding = false;
  }
  if (prev.status == OrderStatus::kBackordered) {
    txn.ReleaseOwed(prev.quantity);
    b.Delete(db_->cf(storage::kCfOrderIndex),
             storage::BackorderIndexKey(prev.product_id, prev.log_seq));
  }
  if (prev.log_seq != 0) {
    b.Delete(db_->cf(storage::kCfDeliveryLog), storage::U64Key(prev.log_seq));
    fx.log.push_back(LogChange{prev.log_seq, true});
    next.log_seq = 0;
  }
  KV_RETURN_IF_ERROR(m.PutOrder(&b, &prev, next, &fx));
  const bool released = !txn.empty();
  txn.AddTo(&b, db_.get());
  KV_CRASH_POINT("refund.before_write");
  KV_RETURN_IF_ERROR(db_->Write(&b));
  if (prev.status == OrderStatus::kBackordered) {
    ps->pool_mu.AssertHeld();
    ps->backorders.erase(prev.log_seq);
  }
  m.CommitBatch(&txn, &fx);
  if (released) m.Kick();
  return m.View(next, false);
}

absl::StatusOr<size_t> Shop::RunExpiry() {
  Impl& m = *impl_;
  std::vector<std::string> due;
  const int64_t now = m.clock->MonoNowNs();
  for (Impl::ExpiryShard& shard : m.expiry) {
    MutexLock l(&shard.mu);
    while (!shard.heap.empty() && shard.heap.top().deadline_mono_ns <= now) {
      due.push_back(shard.heap.top().oid);
      shard.heap.pop();
    }
  }
  size_t changed = 0;
  absl::Status first_error;
  for (size_t i = 0; i < due.size(); ++i) {
    const std::string& oid = due[i];
    MutexLock l(&m.OrderLock(oid));
    auto cur = m.ReadOrder(oid);
    absl::Status s = cur.status();
    if (s.ok() && cur->has_value() && (*cur)->status == OrderStatus::kPendingPayment) {
      const OrderRecord& prev = **cur;
      ProductState* ps = m.Product(prev.product_id);
      if (ps == nullptr) return absl::DataLossError("order of an unknown product");
      OrderRecord next = prev;
      next.status = OrderStatus::kExpired;
      next.updated_ms = m.NowMs();
      next.holding = false;
      StockTxn txn(ps);
      BatchEffects fx;
      if (prev.holding) txn.ReleaseHold(prev.quantity);
      rocksdb::WriteBatch b;
      s = m.PutOrder(&b, &prev, next, &fx);
      txn.AddTo(&b, db_.get());
      if (s.ok()) KV_CRASH_POINT("expiry.before_write");
      if (s.ok()) s = db_->Write(&b);
      if (s.ok()) {
        m.CommitBatch(&txn, &fx);
        m.ReleasePending(prev);
        ++changed;
      }
    }
    if (!s.ok()) {
      // Keep the hold; try again on a later pass.
      Impl::ExpiryShard& shard = m.ExpiryShardFor(oid);
      MutexLock el(&shard.mu);
      shard.heap.push(ExpiryItem{m.clock->MonoNowNs() + 1'000'000'000, oid});
      if (first_error.ok()) first_error = s;
    }
  }
  if (!first_error.ok()) return first_error;
  if (changed > 0) m.Kick();
  return changed;
}

}  // namespace kv
