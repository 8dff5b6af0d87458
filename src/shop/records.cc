#include "shop/records.h"

#include "base/coding.h"

namespace kv {
namespace {

absl::Status Malformed(const char* what) {
  return absl::DataLossError(std::string("malformed ") + what + " record");
}

bool GetVersion(Reader* r) {
  uint8_t v;
  return r->GetU8(&v) && v == kRecordVersion;
}

bool GetBool(Reader* r, bool* b) {
  uint8_t v;
  if (!r->GetU8(&v) || v > 1) return false;
  *b = v == 1;
  return true;
}

}  // namespace

// The value among `all` whose name is `s` (the Parse* functions of the enums below).
template <typename E, size_t N>
bool ParseByName(std::string_view s, const E (&all)[N], std::string_view (*name)(E), E* out) {
  for (E e : all) {
    if (name(e) == s) {
      *out = e;
      return true;
    }
  }
  return false;
}

std::string_view StockModeName(StockMode m) {
  return m == StockMode::kOnPayment ? "on_payment" : "reserve";
}

bool ParseStockMode(std::string_view s, StockMode* out) {
  if (s == "reserve")
    *out = StockMode::kReserve;
  else if (s == "on_payment")
    *out = StockMode::kOnPayment;
  else
    return false;
  return true;
}

std::string_view OrderStatusName(OrderStatus s) {
  switch (s) {
    case OrderStatus::kPendingPayment:
      return "pending_payment";
    case OrderStatus::kPaid:
      return "paid";
    case OrderStatus::kDelivered:
      return "delivered";
    case OrderStatus::kExpired:
      return "expired";
    case OrderStatus::kCancelled:
      return "cancelled";
    case OrderStatus::kBackordered:
      return "backordered";
    case OrderStatus::kRefundDue:
      return "refund_due";
    case OrderStatus::kRefunded:
      return "refunded";
  }
  return "unknown";
}

bool ParseOrderStatus(std::string_view s, OrderStatus* out) {
  return ParseByName(s, kAllOrderStatuses, OrderStatusName, out);
}

bool CanTransition(OrderStatus from, OrderStatus to) {
  using S = OrderStatus;
  switch (from) {
    case S::kPendingPayment:
      return to == S::kPaid || to == S::kExpired || to == S::kCancelled;
    case S::kExpired:
      return to == S::kPaid;
    case S::kPaid:
      return to == S::kDelivered || to == S::kBackordered || to == S::kRefundDue ||
             to == S::kRefunded;
    case S::kBackordered:
      return to == S::kDelivered || to == S::kRefunded;
    case S::kRefundDue:
      return to == S::kRefunded;
    case S::kDelivered:
      return to == S::kRefunded;
    case S::kCancelled:
    case S::kRefunded:
      return false;
  }
  return false;
}

bool CanRecordTransition(std::optional<OrderStatus> prev, OrderStatus next) {
  if (!prev) return next == OrderStatus::kPendingPayment;
  if (*prev == next || CanTransition(*prev, next)) return true;
  // The payment's batch: paid, then at once its outcome (a refund is a write of its own).
  return CanTransition(*prev, OrderStatus::kPaid) && next != OrderStatus::kRefunded &&
         CanTransition(OrderStatus::kPaid, next);
}

std::string_view PaymentFlagName(PaymentFlag f) {
  switch (f) {
    case PaymentFlag::kNone:
      return "none";
    case PaymentFlag::kUnknownOrder:
      return "unknown_order";
    case PaymentFlag::kAmountMismatch:
      return "amount_mismatch";
    case PaymentFlag::kOrderClosed:
      return "order_closed";
    case PaymentFlag::kSecondPayment:
      return "second_payment";
    case PaymentFlag::kNoStock:
      return "no_stock";
    case PaymentFlag::kMalformed:
      return "malformed";
  }
  return "unknown";
}

std::string_view DeliveryStateName(DeliveryState s) {
  switch (s) {
    case DeliveryState::kPending:
      return "pending";
    case DeliveryState::kBackordered:
      return "backordered";
    case DeliveryState::kFailed:
      return "failed";
  }
  return "unknown";
}

bool ParseDeliveryState(std::string_view s, DeliveryState* out) {
  static constexpr DeliveryState kAll[] = {DeliveryState::kPending, DeliveryState::kBackordered,
                                           DeliveryState::kFailed};
  return ParseByName(s, kAll, DeliveryStateName, out);
}

// --- products ---------------------------------------------------------------------------

std::string EncodeProduct(const ProductRecord& r) {
  std::string s;
  s.push_back(static_cast<char>(kRecordVersion));
  PutVarint64(&s, r.id);
  PutLengthPrefixed(&s, r.name);
  PutLengthPrefixed(&s, r.description);
  PutVarsint64(&s, r.price_cents);
  PutLengthPrefixed(&s, r.currency);
  s.push_back(static_cast<char>(r.stock_mode));
  s.push_back(r.allow_backorder ? 1 : 0);
  PutVarint64(&s, r.max_per_order);
  s.push_back(r.active ? 1 : 0);
  PutVarsint64(&s, r.created_ms);
  PutVarsint64(&s, r.updated_ms);
  return s;
}

absl::Status DecodeProduct(std::string_view in, ProductRecord* r) {
  Reader rd(in);
  uint8_t mode = 0;
  if (!GetVersion(&rd) || !rd.GetVarint64(&r->id) || !rd.GetLengthPrefixed(&r->name) ||
      !rd.GetLengthPrefixed(&r->description) || !rd.GetVarsint64(&r->price_cents) ||
      !rd.GetLengthPrefixed(&r->currency) || !rd.GetU8(&mode) ||
      !GetBool(&rd, &r->allow_backorder) || !rd.GetVarint32(&r->max_per_order) ||
      !GetBool(&rd, &r->active) || !rd.GetVarsint64(&r->created_ms) ||
      !rd.GetVarsint64(&r->updated_ms) || !rd.done()) {
    return Malformed("product");
  }
  if (mode != static_cast<uint8_t>(StockMode::kReserve) &&
      mode != static_cast<uint8_t>(StockMode::kOnPayment)) {
    return Malformed("product");
  }
  r->stock_mode = static_cast<StockMode>(mode);
  return absl::OkStatus();
}

// --- orders -----------------------------------------------------------------------------

std::string EncodeOrder(const OrderRecord& r) {
  std::string s;
  s.reserve(128 + r.keys.size() * 80);
  s.push_back(static_cast<char>(kRecordVersion));
  s.push_back(static_cast<char>(r.status));
  PutVarint64(&s, r.product_id);
  PutVarint64(&s, r.quantity);
  PutVarsint64(&s, r.amount_cents);
  PutLengthPrefixed(&s, r.currency);
  PutLengthPrefixed(&s, r.contact);
  PutLengthPrefixed(&s, r.contact_tag);
  PutLengthPrefixed(&s, r.password_tag);
  s.push_back(r.holding ? 1 : 0);
  PutVarsint64(&s, r.created_ms);
  PutVarsint64(&s, r.expires_ms);
  PutVarsint64(&s, r.updated_ms);
  PutVarsint64(&s, r.paid_ms);
  PutVarsint64(&s, r.delivered_ms);
  PutLengthPrefixed(&s, r.payment_id);
  PutVarint64(&s, r.log_seq);
  PutVarint64(&s, r.keys.size());
  for (const DeliveredKey& k : r.keys) {
    PutVarint64(&s, k.seq);
    PutVarint64(&s, k.batch_id);
    PutLengthPrefixed(&s, k.sealed);
  }
  PutLengthPrefixed(&s, r.client);
  return s;
}

absl::Status DecodeOrder(std::string_view in, OrderRecord* r) {
  Reader rd(in);
  uint8_t status = 0;
  uint64_t nkeys = 0;
  if (!GetVersion(&rd) || !rd.GetU8(&status) || !rd.GetVarint64(&r->product_id) ||
      !rd.GetVarint32(&r->quantity) || !rd.GetVarsint64(&r->amount_cents) ||
      !rd.GetLengthPrefixed(&r->currency) || !rd.GetLengthPrefixed(&r->contact) ||
      !rd.GetLengthPrefixed(&r->contact_tag) || !rd.GetLengthPrefixed(&r->password_tag) ||
      !GetBool(&rd, &r->holding) || !rd.GetVarsint64(&r->created_ms) ||
      !rd.GetVarsint64(&r->expires_ms) || !rd.GetVarsint64(&r->updated_ms) ||
      !rd.GetVarsint64(&r->paid_ms) || !rd.GetVarsint64(&r->delivered_ms) ||
      !rd.GetLengthPrefixed(&r->payment_id) || !rd.GetVarint64(&r->log_seq) ||
      !rd.GetVarint64(&nkeys)) {
    return Malformed("order");
  }
  if (status < 1 || status > 8 || nkeys > rd.remaining()) return Malformed("order");
  r->status = static_cast<OrderStatus>(status);
  r->keys.clear();
  r->keys.resize(nkeys);
  for (DeliveredKey& k : r->keys) {
    if (!rd.GetVarint64(&k.seq) || !rd.GetVarint64(&k.batch_id) ||
        !rd.GetLengthPrefixed(&k.sealed)) {
      return Malformed("order");
    }
  }
  if (!rd.GetLengthPrefixed(&r->client) || !rd.done()) return Malformed("order");
  return absl::OkStatus();
}

// --- payments ---------------------------------------------------------------------------

namespace {
constexpr uint8_t kPaymentVersionMalformed = 2;  // version 1 + problem, body size, excerpt
}  // namespace

std::string EncodePayment(const PaymentRecord& r) {
  const bool v2 = !r.problem.empty() || r.body_bytes != 0 || !r.body_excerpt.empty();
  std::string s;
  s.push_back(static_cast<char>(v2 ? kPaymentVersionMalformed : kRecordVersion));
  PutLengthPrefixed(&s, r.order_id);
  PutVarsint64(&s, r.amount_cents);
  PutLengthPrefixed(&s, r.currency);
  PutVarsint64(&s, r.received_ms);
  s.push_back(static_cast<char>(r.outcome));
  s.push_back(static_cast<char>(r.flag));
  if (v2) {
    PutLengthPrefixed(&s, r.problem);
    PutVarint64(&s, r.body_bytes);
    PutLengthPrefixed(&s, r.body_excerpt);
  }
  return s;
}

absl::Status DecodePayment(std::string_view in, PaymentRecord* r) {
  Reader rd(in);
  uint8_t version = 0, outcome = 0, flag = 0;
  if (!rd.GetU8(&version) || (version != kRecordVersion && version != kPaymentVersionMalformed) ||
      !rd.GetLengthPrefixed(&r->order_id) || !rd.GetVarsint64(&r->amount_cents) ||
      !rd.GetLengthPrefixed(&r->currency) || !rd.GetVarsint64(&r->received_ms) ||
      !rd.GetU8(&outcome) || !rd.GetU8(&flag) || outcome < 1 || outcome > 2 ||
      flag > static_cast<uint8_t>(PaymentFlag::kMalformed)) {
    return Malformed("payment");
  }
  r->problem.clear();
  r->body_bytes = 0;
  r->body_excerpt.clear();
  if (version == kPaymentVersionMalformed &&
      (!rd.GetLengthPrefixed(&r->problem) || !rd.GetVarint64(&r->body_bytes) ||
       !rd.GetLengthPrefixed(&r->body_excerpt))) {
    return Malformed("payment");
  }
  if (!rd.done()) return Malformed("payment");
  r->outcome = static_cast<PaymentOutcome>(outcome);
  r->flag = static_cast<PaymentFlag>(flag);
  return absl::OkStatus();
}

// --- delivery log -----------------------------------------------------------------------

std::string EncodeDelivery(const DeliveryEntry& r) {
  std::string s;
  s.push_back(static_cast<char>(kRecordVersion));
  PutLengthPrefixed(&s, r.oid);
  PutVarint64(&s, r.product_id);
  PutVarint64(&s, r.quantity);
  s.push_back(static_cast<char>(r.state));
  PutVarint64(&s, r.attempts);
  PutVarsint64(&s, r.created_ms);
  PutVarsint64(&s, r.next_attempt_ms);
  PutLengthPrefixed(&s, r.last_error);
  return s;
}

absl::Status DecodeDelivery(std::string_view in, DeliveryEntry* r) {
  Reader rd(in);
  uint8_t state = 0;
  if (!GetVersion(&rd) || !rd.GetLengthPrefixed(&r->oid) || !rd.GetVarint64(&r->product_id) ||
      !rd.GetVarint32(&r->quantity) || !rd.GetU8(&state) || !rd.GetVarint32(&r->attempts) ||
      !rd.GetVarsint64(&r->created_ms) || !rd.GetVarsint64(&r->next_attempt_ms) ||
      !rd.GetLengthPrefixed(&r->last_error) || !rd.done() || state < 1 || state > 3) {
    return Malformed("delivery log");
  }
  r->state = static_cast<DeliveryState>(state);
  return absl::OkStatus();
}

// --- outbound (issue 14) ----------------------------------------------------------------

std::string_view OutboundKindName(OutboundKind k) {
  switch (k) {
    case OutboundKind::kWebhook:
      return "webhook";
    case OutboundKind::kMail:
      return "mail";
  }
  return "unknown";
}

bool ParseOutboundKind(std::string_view s, OutboundKind* out) {
  static constexpr OutboundKind kAll[] = {OutboundKind::kWebhook, OutboundKind::kMail};
  return ParseByName(s, kAll, OutboundKindName, out);
}

std::string_view OutboundStateName(OutboundState s) {
  switch (s) {
    case OutboundState::kPending:
      return "pending";
    case OutboundState::kFailed:
      return "failed";
    case OutboundState::kSettled:
      return "settled";
  }
  return "unknown";
}

bool ParseOutboundState(std::string_view s, OutboundState* out) {
  static constexpr OutboundState kAll[] = {OutboundState::kPending, OutboundState::kFailed,
                                           OutboundState::kSettled};
  return ParseByName(s, kAll, OutboundStateName, out);
}

std::string EncodeOutbound(const OutboundRecord& r) {
  std::string s;
  s.push_back(static_cast<char>(kRecordVersion));
  s.push_back(static_cast<char>(r.state));
  PutVarint64(&s, r.attempts);
  PutVarsint64(&s, r.created_ms);
  PutVarsint64(&s, r.next_attempt_ms);
  PutLengthPrefixed(&s, r.last_error);
  return s;
}

absl::Status DecodeOutbound(std::string_view in, OutboundRecord* r) {
  Reader rd(in);
  uint8_t state = 0;
  if (!GetVersion(&rd) || !rd.GetU8(&state) || !rd.GetVarint32(&r->attempts) ||
      !rd.GetVarsint64(&r->created_ms) || !rd.GetVarsint64(&r->next_attempt_ms) ||
      !rd.GetLengthPrefixed(&r->last_error) || !rd.done() || state < 1 || state > 3) {
    return Malformed("outbound");
  }
  r->state = static_cast<OutboundState>(state);
  return absl::OkStatus();
}

// --- batches and pool keys ----------------------------------------------------------------

std::string EncodeBatch(const BatchRecord& r) {
  std::string s;
  s.push_back(static_cast<char>(kRecordVersion));
  PutVarsint64(&s, r.created_ms);
  PutVarint64(&s, r.first_seq);
  PutVarint64(&s, r.last_seq);
  PutVarint64(&s, r.imported);
  PutVarint64(&s, r.retired);
  s.push_back(r.retired_flag ? 1 : 0);
  return s;
}

absl::Status DecodeBatch(std::string_view in, BatchRecord* r) {
  Reader rd(in);
  if (!GetVersion(&rd) || !rd.GetVarsint64(&r->created_ms) || !rd.GetVarint64(&r->first_seq) ||
      !rd.GetVarint64(&r->last_seq) || !rd.GetVarint64(&r->imported) ||
      !rd.GetVarint64(&r->retired) || !GetBool(&rd, &r->retired_flag) || !rd.done()) {
    return Malformed("batch");
  }
  return absl::OkStatus();
}

std::string EncodeIdempotency(const IdempotencyRecord& r) {
  std::string s;
  s.push_back(static_cast<char>(kIdempotencyRecordVersion));
  PutLengthPrefixed(&s, r.scope);
  PutVarsint64(&s, r.created_ms);
  PutLengthPrefixed(&s, r.oid);
  return s;
}

absl::Status DecodeIdempotency(std::string_view in, IdempotencyRecord* r) {
  Reader rd(in);
  uint8_t version = 0;
  if (!rd.GetU8(&version)) return Malformed("idempotency");
  r->scope.clear();
  r->fingerprint.clear();
  std::string* bound = version == kIdempotencyRecordVersion ? &r->scope
                       : version == 1                       ? &r->fingerprint
                                                            : nullptr;
  if (bound == nullptr || !rd.GetLengthPrefixed(bound) || !rd.GetVarsint64(&r->created_ms) ||
      !rd.GetLengthPrefixed(&r->oid) || !rd.done()) {
    return Malformed("idempotency");
  }
  return absl::OkStatus();
}

std::string EncodePayAttempt(const PayAttemptRecord& r) {
  std::string s;
  s.push_back(static_cast<char>(kRecordVersion));
  PutLengthPrefixed(&s, r.method);
  PutLengthPrefixed(&s, r.ref);
  PutVarsint64(&s, r.started_ms);
  return s;
}

absl::Status DecodePayAttempt(std::string_view in, PayAttemptRecord* r) {
  Reader rd(in);
  if (!GetVersion(&rd) || !rd.GetLengthPrefixed(&r->method) || !rd.GetLengthPrefixed(&r->ref) ||
      !rd.GetVarsint64(&r->started_ms) || !rd.done()) {
    return Malformed("pay attempt");
  }
  return absl::OkStatus();
}

std::string EncodePoolKey(const PoolKeyRecord& r) {
  std::string s;
  s.reserve(r.sealed.size() + 12);
  s.push_back(static_cast<char>(kRecordVersion));
  PutVarint64(&s, r.batch_id);
  PutLengthPrefixed(&s, r.sealed);
  return s;
}

absl::Status DecodePoolKey(std::string_view in, PoolKeyRecord* r) {
  Reader rd(in);
  if (!GetVersion(&rd) || !rd.GetVarint64(&r->batch_id) || !rd.GetLengthPrefixed(&r->sealed) ||
      !rd.done()) {
    return Malformed("pool key");
  }
  return absl::OkStatus();
}

}  // namespace kv
