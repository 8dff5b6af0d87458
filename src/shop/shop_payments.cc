// Shop: payments (recorded exactly once, applied in one batch) and payment attempts.
#include <openssl/evp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/crash_point.h"
#include "base/status_macros.h"
#include "base/utf8.h"
#include "shop/shop_internal.h"

namespace kv {

namespace {

// Locks two stripes in a fixed order (once when they coincide): no deadlock between two
// payments whose (payment, order) stripes cross.
class TwoLocks {
 public:
  TwoLocks(Mutex* a, Mutex* b) : a_(std::min(a, b)), b_(a == b ? nullptr : std::max(a, b)) {
    a_->Lock();
    if (b_ != nullptr) b_->Lock();
  }
  ~TwoLocks() {
    if (b_ != nullptr) b_->Unlock();
    a_->Unlock();
  }

 private:
  Mutex* a_;
  Mutex* b_;
};

// The record id of a malformed notice without a usable payment_id: one body, one id.
std::string BodyDigestId(std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(body.data(), body.size(), md, &n, EVP_sha256(), nullptr);
  return "sha256:" + HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
}

// The longest prefix of s of at most max_bytes that does not split a UTF-8 character (a
// byte that is not well-formed UTF-8 counts as one).
std::string_view Excerpt(std::string_view s, size_t max_bytes) {
  size_t n = 0;
  while (n < s.size()) {
    const size_t len = std::max<size_t>(1, Utf8SequenceLength(s.substr(n)));
    if (n + len > max_bytes) break;
    n += len;
  }
  return s.substr(0, n);
}

}  // namespace

bool ValidPaymentId(std::string_view s) {
  if (s.empty() || s.size() > limits::kPaymentIdBytesMax) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

Result<PaymentResult> Shop::Impl::AnswerRecordedPayment(std::string_view value) const {
  PaymentRecord prev;
  KV_RETURN_IF_ERROR(DecodePayment(value, &prev));
  PaymentResult res{prev.outcome, prev.flag, /*replay=*/true, std::nullopt};
  std::string prev_oid;
  if (ParseOrderId(prev.order_id, &prev_oid)) {
    auto o = ReadOrder(prev_oid);
    if (!o.ok()) return o.status();
    if (o->has_value()) res.order_status = (*o)->status;
  }
  return res;
}

absl::Status Shop::Impl::AssignKeysOrFallBack(rocksdb::WriteBatch* b, ProductState* ps,
                                              const ProductRecord& cfg, OrderRecord* order,
                                              StockTxn* txn, BatchEffects* fx,
                                              std::vector<TakenKey>* keys, PaymentFlag* flag,
                                              uint64_t* backorder_seq) {
  const int64_t q = order->quantity;
  // Units of stock for this order: already held, or taken now (the no-oversell decision).
  const bool held = order->holding;
  if (held || txn->Take(q)) {
    // The keys are assigned in this batch: a paid order never holds keys waiting for a
    // worker.
    OrderKeys got;
    absl::StatusOr<bool> whole;
    {
      MutexLock pl(&ps->pool_mu);
      whole = TakeKeysLocked(ps, static_cast<uint32_t>(q), nullptr, nullptr, &got);
    }
    if (!whole.ok()) return whole.status();
    if (*whole) {
      KV_CRASH_POINT("payment.keys_chosen");
      if (held) {
        txn->DeliverFromHold(q);
      } else {
        txn->DeliverTaken(q);
      }
      DeliverInto(b, order, &got.pooled, /*from_pool=*/true);
      *keys = std::move(got.pooled);
      return absl::OkStatus();
    }
    // Fewer keys in the pool than counted (a batch was retired under open holds).
    if (held) {
      txn->ReleaseHold(q);
      order->holding = false;
    } else {
      txn->Untake(q);
    }
  }
  // No keys: the product's policy decides.
  if (cfg.allow_backorder) {
    const uint64_t seq = next_log_seq.fetch_add(1);
    DeliveryEntry e;
    e.oid = order->oid;
    e.product_id = order->product_id;
    e.quantity = order->quantity;
    e.state = DeliveryState::kBackordered;
    e.created_ms = NowMs();
    b->Put(db->cf(storage::kCfDeliveryLog), storage::U64Key(seq), EncodeDelivery(e));
    fx->log.push_back(LogChange{seq, false, e.state, e.created_ms});
    b->Put(db->cf(storage::kCfOrderIndex), storage::BackorderIndexKey(ps->id, seq), order->oid);
    order->status = OrderStatus::kBackordered;
    order->log_seq = seq;
    txn->Owe(q);
    *backorder_seq = seq;
  } else {
    order->status = OrderStatus::kRefundDue;
    *flag = PaymentFlag::kNoStock;
  }
  return absl::OkStatus();
}

Result<PaymentResult> Shop::ApplyPayment(const PaymentNotice& notice) {
  Impl& m = *impl_;
  if (!ValidPaymentId(notice.payment_id)) {
    return {Refusal::kBadRequest,
            absl::StrCat("payment_id must be 1..", limits::kPaymentIdBytesMax, " printable bytes")};
  }
  // Anything else a correctly signed notice carries is money received: it is recorded (and
  // flagged when it cannot pay its order), never refused. Gateways send lowercase codes.
  std::string currency = notice.currency.substr(0, limits::kPaymentCurrencyBytesMax);
  for (char& ch : currency) {
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 32);
  }
  const bool currency_ok =
      currency.size() == limits::kCurrencyBytes &&
      std::all_of(currency.begin(), currency.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; });
  std::string oid;
  const bool oid_ok = ParseOrderId(notice.order_id, &oid);
  TwoLocks locks(&m.StripeFor(notice.payment_id), &m.OrderLock(oid_ok ? oid : notice.order_id));

  // Exactly once per payment_id: a repeat answers the same and changes nothing.
  auto existing = m.db->Get(storage::kCfPayments, notice.payment_id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return m.AnswerRecordedPayment(**existing);

  PaymentRecord pay;
  pay.payment_id = notice.payment_id;
  pay.order_id = notice.order_id.substr(0, 2 * limits::kPaymentIdBytesMax);
  pay.amount_cents = notice.amount_cents;
  pay.currency = currency;
  pay.received_ms = m.NowMs();
  PaymentResult res;

  std::optional<OrderRecord> order;
  if (oid_ok) {
    auto o = m.ReadOrder(oid);
    if (!o.ok()) return o.status();
    order = std::move(*o);
  }
  rocksdb::WriteBatch b;
  auto record_flagged = [&](PaymentFlag flag) -> Result<PaymentResult> {
    pay.outcome = PaymentOutcome::kRefundDue;
    pay.flag = flag;
    b.Put(m.db->cf(storage::kCfPayments), pay.payment_id, EncodePayment(pay));
    KV_RETURN_IF_ERROR(m.db->Write(&b));
    res.outcome = pay.outcome;
    res.flag = flag;
    if (order) res.order_status = order->status;
    return res;
  };
  if (!order) return record_flagged(PaymentFlag::kUnknownOrder);
  if (!currency_ok || notice.amount_cents < 0 || order->amount_cents != notice.amount_cents ||
      order->currency != currency) {
    return record_flagged(PaymentFlag::kAmountMismatch);
  }
  switch (order->status) {
    case OrderStatus::kCancelled:
    case OrderStatus::kRefunded:
      return record_flagged(PaymentFlag::kOrderClosed);
    case OrderStatus::kPaid:
    case OrderStatus::kDelivered:
    case OrderStatus::kBackordered:
    case OrderStatus::kRefundDue:
      return record_flagged(PaymentFlag::kSecondPayment);
    case OrderStatus::kPendingPayment:
    case OrderStatus::kExpired:
      break;
  }

  // The order gets paid by this payment.
  ProductState* ps = m.Product(order->product_id);
  if (ps == nullptr) return absl::DataLossError("order of an unknown product");
  const ProductRecord* cfg = ps->Config();
  const OrderRecord& prev = *order;
  OrderRecord next = prev;
  next.status = OrderStatus::kPaid;
  next.paid_ms = next.updated_ms = pay.received_ms;
  next.payment_id = notice.payment_id;

  StockTxn txn(ps);
  BatchEffects fx;
  std::vector<TakenKey> keys;
  uint64_t backorder_seq = 0;
  KV_RETURN_IF_ERROR(
      m.AssignKeysOrFallBack(&b, ps, *cfg, &next, &txn, &fx, &keys, &pay.flag, &backorder_seq));
  pay.outcome =
      pay.flag == PaymentFlag::kNone ? PaymentOutcome::kApplied : PaymentOutcome::kRefundDue;
  b.Put(m.db->cf(storage::kCfPayments), pay.payment_id, EncodePayment(pay));
  absl::Status s = m.PutOrder(&b, &prev, next, &fx);
  txn.AddTo(&b, m.db);
  if (s.ok()) KV_CRASH_POINT("payment.before_write");
  if (s.ok()) s = m.db->Write(&b);
  if (!s.ok()) {
    m.FinishInflight(ps, keys, /*committed=*/false);
    return s;  // txn gives back the units it took
  }
  KV_CRASH_POINT("payment.after_write");
  m.CommitBatch(&txn, &fx);
  m.FinishInflight(ps, keys, /*committed=*/true);
  if (prev.status == OrderStatus::kPendingPayment) m.ReleasePending(prev);
  if (backorder_seq != 0) {
    MutexLock pl(&ps->pool_mu);
    ps->backorders[backorder_seq] = BackorderItem{next.oid, next.quantity};
  }
  res.outcome = pay.outcome;
  res.flag = pay.flag;
  res.order_status = next.status;
  return res;
}

Result<PaymentResult> Shop::RecordMalformedPayment(const MalformedPaymentNotice& notice) {
  Impl& m = *impl_;
  const std::string id =
      ValidPaymentId(notice.payment_id) ? notice.payment_id : BodyDigestId(notice.raw_body);
  // Only the payment's stripe: the order is read, never written, so its lock is not needed
  // (a concurrent payment of that order changes nothing this record says).
  MutexLock l(&m.StripeFor(id));
  auto existing = m.db->Get(storage::kCfPayments, id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return m.AnswerRecordedPayment(**existing);

  PaymentRecord pay;
  pay.order_id = notice.order_id.substr(0, 2 * limits::kPaymentIdBytesMax);
  pay.amount_cents = notice.amount_cents;
  pay.currency = notice.currency.substr(0, limits::kPaymentCurrencyBytesMax);
  pay.received_ms = m.NowMs();
  pay.outcome = PaymentOutcome::kRefundDue;
  pay.flag = PaymentFlag::kMalformed;
  pay.problem = Excerpt(notice.problem, limits::kPaymentProblemBytesMax);
  if (pay.problem.empty()) pay.problem = "unusable notice";
  pay.body_bytes = notice.raw_body.size();
  pay.body_excerpt = Excerpt(notice.raw_body, limits::kPaymentBodyExcerptBytesMax);
  PaymentResult res;
  res.outcome = pay.outcome;
  res.flag = pay.flag;
  std::string oid;
  if (ParseOrderId(notice.order_id, &oid)) {
    auto o = m.ReadOrder(oid);
    if (!o.ok()) return o.status();
    if (o->has_value()) res.order_status = (*o)->status;
  }
  rocksdb::WriteBatch b;
  b.Put(m.db->cf(storage::kCfPayments), id, EncodePayment(pay));
  KV_RETURN_IF_ERROR(m.db->Write(&b));
  return res;
}

// --- payment attempts (issue 13) -----------------------------------------------------------

namespace {

// The CF key of an attempt; false when the order id or the gateway name is not one a key
// may hold.
bool AttemptKey(std::string_view order_id, std::string_view gateway, std::string* key) {
  std::string oid;
  if (!ParseOrderId(order_id, &oid)) return false;
  *key = storage::PayAttemptKey(oid, gateway);
  return storage::ParsePayAttemptKey(*key).has_value();
}

}  // namespace

absl::Status Shop::RecordPayAttempt(const PayAttempt& a) {
  std::string key;
  if (!AttemptKey(a.order_id, a.gateway, &key)) {
    return absl::InvalidArgumentError("pay attempt: malformed order id or gateway name");
  }
  PayAttemptRecord r;
  r.method = a.method;
  r.ref = a.ref;
  r.started_ms = a.started_ms;
  rocksdb::WriteBatch b;
  b.Put(db_->cf(storage::kCfPayAttempts), key, EncodePayAttempt(r));
  return db_->Write(&b);
}

absl::StatusOr<std::vector<PayAttempt>> Shop::ListPayAttempts() {
  std::vector<PayAttempt> out;
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfPayAttempts, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        auto k = storage::ParsePayAttemptKey(key);
        if (!k) return absl::DataLossError("malformed pay attempt key");
        PayAttemptRecord r;
        KV_RETURN_IF_ERROR(DecodePayAttempt(value, &r));
        PayAttempt a;
        a.order_id = HexEncode(k->oid);
        a.gateway = std::string(k->gateway);
        a.method = std::move(r.method);
        a.ref = std::move(r.ref);
        a.started_ms = r.started_ms;
        out.push_back(std::move(a));
        return storage::Scan::kNext;
      }));
  return out;
}

absl::Status Shop::DeletePayAttempt(std::string_view order_id, std::string_view gateway) {
  std::string key;
  if (!AttemptKey(order_id, gateway, &key)) {
    return absl::InvalidArgumentError("pay attempt: malformed order id or gateway name");
  }
  rocksdb::WriteBatch b;
  b.Delete(db_->cf(storage::kCfPayAttempts), key);
  return db_->Write(&b);
}

}  // namespace kv
