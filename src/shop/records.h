// The records keyvend stores, their binary codecs and the order state machine.
// Layout of keys and column families: storage/schema.h. Every value starts with a format
// version byte (kRecordVersion); a decoder refuses versions it does not know (DataLoss),
// so a record is never misread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace kv {

inline constexpr uint8_t kRecordVersion = 1;

enum class StockMode : uint8_t { kReserve = 1, kOnPayment = 2 };
std::string_view StockModeName(StockMode m);  // "reserve" | "on_payment"
bool ParseStockMode(std::string_view s, StockMode* out);

struct ProductRecord {
  uint64_t id = 0;
  std::string name;
  std::string description;
  int64_t price_cents = 0;
  std::string currency;  // ISO 4217, 3 uppercase letters
  StockMode stock_mode = StockMode::kReserve;
  bool allow_backorder = false;
  uint32_t max_per_order = 0;
  bool active = true;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// Order states (SPEC §3). Numbers are stored on disk: never renumber.
enum class OrderStatus : uint8_t {
  kPendingPayment = 1,
  kPaid = 2,
  kDelivered = 3,
  kExpired = 4,
  kCancelled = 5,
  kBackordered = 6,
  kRefundDue = 7,
  kRefunded = 8,
};
inline constexpr OrderStatus kAllOrderStatuses[] = {
    OrderStatus::kPendingPayment, OrderStatus::kPaid,      OrderStatus::kDelivered,
    OrderStatus::kExpired,        OrderStatus::kCancelled, OrderStatus::kBackordered,
    OrderStatus::kRefundDue,      OrderStatus::kRefunded};
std::string_view OrderStatusName(OrderStatus s);  // "pending_payment", ...
bool ParseOrderStatus(std::string_view s, OrderStatus* out);

// The state machine: true when `from` -> `to` is a legal single step.
//   pending_payment -> paid | expired | cancelled
//   expired         -> paid                       (late payment)
//   paid            -> delivered | backordered | refund_due | refunded
//   backordered     -> delivered | refunded
//   refund_due      -> refunded
//   delivered       -> refunded
bool CanTransition(OrderStatus from, OrderStatus to);

// What one write of an order record may do (Impl::PutOrder refuses anything else, in every
// build): the first write of a new order (prev empty) makes it pending_payment; a rewrite
// keeps its status or takes one legal step — or two through paid, since a payment's batch
// records pending_payment/expired -> paid -> delivered/backordered/refund_due at once (not
// refunded: a refund is a write of its own).
bool CanRecordTransition(std::optional<OrderStatus> prev, OrderStatus next);

// A card key given to an order: its identity in the pool and the sealed text.
struct DeliveredKey {
  uint64_t seq = 0;
  uint64_t batch_id = 0;
  std::string sealed;  // KeyCipher::Seal(text, aad = PoolKey(pid, seq))
};

struct OrderRecord {
  std::string oid;  // 16 raw bytes (the CF key; not encoded in the value)
  OrderStatus status = OrderStatus::kPendingPayment;
  uint64_t product_id = 0;
  uint32_t quantity = 0;
  int64_t amount_cents = 0;
  std::string currency;
  std::string contact;
  std::string contact_tag;   // 16 bytes, key of the contact index
  std::string password_tag;  // empty, or 16 bytes
  // True while this order's quantity is counted in the product's "held" counter: a
  // reserve-mode order awaiting payment (or a paid order of the removed write-ahead path,
  // which Shop::Open refuses).
  bool holding = false;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t updated_ms = 0;
  int64_t paid_ms = 0;
  int64_t delivered_ms = 0;
  std::string payment_id;  // the payment that paid this order; empty before
  uint64_t log_seq = 0;    // delivery-log entry while one is open (backordered)
  std::string client;      // the buyer's address at creation (hoarding guard); may be empty
  std::vector<DeliveredKey> keys;
};

// What became of a payment notice (stored with it; SPEC §4).
enum class PaymentOutcome : uint8_t { kApplied = 1, kRefundDue = 2 };
enum class PaymentFlag : uint8_t {
  kNone = 0,
  kUnknownOrder = 1,
  kAmountMismatch = 2,
  kOrderClosed = 3,    // cancelled or refunded order
  kSecondPayment = 4,  // the order was already paid by another payment
  kNoStock = 5,        // no keys and no backorder: the order is refund_due
  kMalformed = 6,      // a correctly signed notice the shop cannot use (see PaymentRecord)
};
std::string_view PaymentFlagName(PaymentFlag f);  // "none", "unknown_order", ...

// Record versions: 1 = order_id .. flag; 2 = version 1 + problem, body_bytes, body_excerpt.
// EncodePayment writes version 2 only for a record that carries those fields (a malformed
// notice), so every other payment record stays byte-identical to version 1.
struct PaymentRecord {
  std::string payment_id;  // the CF key; not encoded in the value
  std::string order_id;    // as sent by the gateway (hex), may name no order
  int64_t amount_cents = 0;
  std::string currency;
  int64_t received_ms = 0;
  PaymentOutcome outcome = PaymentOutcome::kApplied;
  PaymentFlag flag = PaymentFlag::kNone;
  // kMalformed only (version 2): what made the notice unusable (names fields, never their
  // values), the raw body's size and its first bytes (<= limits::kPaymentBodyExcerptBytesMax,
  // cut at a UTF-8 boundary; may hold any bytes: escape before showing).
  std::string problem;
  uint64_t body_bytes = 0;
  std::string body_excerpt;
};

// Stored in entries: never renumber. Only kBackordered is written; kPending and kFailed
// (the removed write-ahead delivery path) are decoded so that Open and check can name them.
enum class DeliveryState : uint8_t { kPending = 1, kBackordered = 2, kFailed = 3 };
std::string_view DeliveryStateName(DeliveryState s);  // "pending" | "backordered" | "failed"
bool ParseDeliveryState(std::string_view s, DeliveryState* out);

struct DeliveryEntry {
  uint64_t log_seq = 0;  // the CF key; not encoded in the value
  std::string oid;
  uint64_t product_id = 0;
  uint32_t quantity = 0;
  DeliveryState state = DeliveryState::kPending;
  uint32_t attempts = 0;
  int64_t created_ms = 0;
  int64_t next_attempt_ms = 0;
  std::string last_error;  // never holds a card key
};

// The delivery log's outbound work (issue 14; CF outbound, keyed by oid, kind, status). Kind
// numbers are stored in keys: never renumber.
enum class OutboundKind : uint8_t { kWebhook = 1, kMail = 2 };
std::string_view OutboundKindName(OutboundKind k);  // "webhook" | "mail"
bool ParseOutboundKind(std::string_view s, OutboundKind* out);
// pending: to be sent (now or at next_attempt_ms); failed: out of attempts, or refused for
// good by the receiver; waits for an admin's replay or settle. settled: an admin marked it
// done by hand (kept, with the reason, as the record of that decision; never sent). A sent
// entry is deleted.
enum class OutboundState : uint8_t { kPending = 1, kFailed = 2, kSettled = 3 };
std::string_view OutboundStateName(OutboundState s);  // "pending" | "failed" | "settled"
bool ParseOutboundState(std::string_view s, OutboundState* out);

// One webhook event or mail. What the sender needs beyond it (the order's fields, its keys
// for a mail) is read from the order record at send time; the event's type and the status
// it reports are the key's (the status the order entered), not the order's current one.
struct OutboundRecord {
  std::string oid;  // 16 bytes: the CF key's first part, not encoded in the value
  OutboundKind kind = OutboundKind::kWebhook;    // the key's, not encoded
  OrderStatus status = OrderStatus::kDelivered;  // the key's, not encoded
  OutboundState state = OutboundState::kPending;
  uint32_t attempts = 0;        // sends that reached (or tried to reach) the endpoint
  int64_t created_ms = 0;       // when the state change committed
  int64_t next_attempt_ms = 0;  // pending: not before (Unix ms)
  std::string last_error;       // never holds a card key, a token or a secret
};

struct BatchRecord {
  uint64_t batch_id = 0;  // the CF key part; not encoded in the value
  int64_t created_ms = 0;
  uint64_t first_seq = 0;  // keys of this batch have seqs first_seq..last_seq (may be empty:
  uint64_t last_seq = 0;   // last_seq = first_seq - 1)
  uint64_t imported = 0;   // keys stored by the import (incl. those served to backorders)
  uint64_t retired = 0;    // keys retired unsold
  bool retired_flag = false;
};

// An Idempotency-Key's first successful order creation (CF idempotency). Written as
// version 2; version 1 records (before the scope) are still read.
inline constexpr uint8_t kIdempotencyRecordVersion = 2;
struct IdempotencyRecord {
  // Version 2: IdempotencyScope(contact, query password, client, body fingerprint), 16
  // bytes (shop/secrets.h). Empty in a version 1 record, whose scope is unknown.
  std::string scope;
  // Version 1 only: the body fingerprint as the caller gave it (empty in version 2).
  std::string fingerprint;
  int64_t created_ms = 0;
  std::string oid;  // 16 bytes
};

// A buyer started paying an order at a gateway (CF pay_attempts, issue 13): what the
// reconciler needs to ask the gateway later. Record version 1.
struct PayAttemptRecord {
  std::string oid;      // 16 bytes (the CF key's first part; not encoded in the value)
  std::string gateway;  // the CF key's second part; not encoded in the value
  std::string method;   // the sub-method chosen ("alipay"), may be empty
  std::string ref;      // the gateway's id of the attempt (PayStart::ref), may be empty
  int64_t started_ms = 0;
};

struct PoolKeyRecord {
  uint64_t batch_id = 0;
  std::string sealed;
};

// Codecs. Encode* never fails; Decode* returns DataLoss on a malformed value or an unknown
// record version, and never reads past the input.
std::string EncodeProduct(const ProductRecord& r);
[[nodiscard]] absl::Status DecodeProduct(std::string_view in, ProductRecord* r);
std::string EncodeOrder(const OrderRecord& r);
[[nodiscard]] absl::Status DecodeOrder(std::string_view in, OrderRecord* r);
std::string EncodePayment(const PaymentRecord& r);
[[nodiscard]] absl::Status DecodePayment(std::string_view in, PaymentRecord* r);
std::string EncodeDelivery(const DeliveryEntry& r);
[[nodiscard]] absl::Status DecodeDelivery(std::string_view in, DeliveryEntry* r);
std::string EncodeOutbound(const OutboundRecord& r);
[[nodiscard]] absl::Status DecodeOutbound(std::string_view in, OutboundRecord* r);
std::string EncodeBatch(const BatchRecord& r);
[[nodiscard]] absl::Status DecodeBatch(std::string_view in, BatchRecord* r);
std::string EncodeIdempotency(const IdempotencyRecord& r);
[[nodiscard]] absl::Status DecodeIdempotency(std::string_view in, IdempotencyRecord* r);
std::string EncodePayAttempt(const PayAttemptRecord& r);
[[nodiscard]] absl::Status DecodePayAttempt(std::string_view in, PayAttemptRecord* r);
std::string EncodePoolKey(const PoolKeyRecord& r);
[[nodiscard]] absl::Status DecodePoolKey(std::string_view in, PoolKeyRecord* r);

}  // namespace kv
