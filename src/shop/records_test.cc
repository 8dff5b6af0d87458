#include "shop/records.h"

#include <set>
#include <utility>

#include "gtest/gtest.h"

namespace kv {
namespace {

TEST(Records, ProductRoundTrip) {
  ProductRecord p;
  p.id = 42;
  p.name = "Gift card 50";
  p.description = "line1\nline2";
  p.price_cents = 4999;
  p.currency = "EUR";
  p.stock_mode = StockMode::kOnPayment;
  p.allow_backorder = true;
  p.max_per_order = 7;
  p.active = false;
  p.created_ms = 1;
  p.updated_ms = -5;
  ProductRecord q;
  ASSERT_TRUE(DecodeProduct(EncodeProduct(p), &q).ok());
  EXPECT_EQ(q.id, 42u);
  EXPECT_EQ(q.name, p.name);
  EXPECT_EQ(q.description, p.description);
  EXPECT_EQ(q.price_cents, 4999);
  EXPECT_EQ(q.currency, "EUR");
  EXPECT_EQ(q.stock_mode, StockMode::kOnPayment);
  EXPECT_TRUE(q.allow_backorder);
  EXPECT_EQ(q.max_per_order, 7u);
  EXPECT_FALSE(q.active);
  EXPECT_EQ(q.updated_ms, -5);
}

TEST(Records, OrderRoundTripWithKeys) {
  OrderRecord o;
  o.status = OrderStatus::kDelivered;
  o.product_id = 3;
  o.quantity = 2;
  o.amount_cents = 200;
  o.currency = "USD";
  o.contact = "a@b.c";
  o.contact_tag = std::string(16, 'c');
  o.password_tag = std::string(16, 'p');
  o.holding = true;
  o.created_ms = 10;
  o.expires_ms = 20;
  o.payment_id = "pay_1";
  o.log_seq = 9;
  o.keys = {{1, 1, "sealed-a"}, {2, 1, "sealed-b"}};
  OrderRecord q;
  ASSERT_TRUE(DecodeOrder(EncodeOrder(o), &q).ok());
  EXPECT_EQ(q.status, OrderStatus::kDelivered);
  EXPECT_EQ(q.quantity, 2u);
  EXPECT_TRUE(q.holding);
  EXPECT_EQ(q.payment_id, "pay_1");
  EXPECT_EQ(q.log_seq, 9u);
  ASSERT_EQ(q.keys.size(), 2u);
  EXPECT_EQ(q.keys[1].seq, 2u);
  EXPECT_EQ(q.keys[1].sealed, "sealed-b");
}

// A version 1 payment record (no malformed-notice fields).
PaymentRecord MismatchedPayment() {
  PaymentRecord p;
  p.order_id = "abc";
  p.amount_cents = 500;
  p.currency = "USD";
  p.received_ms = 77;
  p.outcome = PaymentOutcome::kRefundDue;
  p.flag = PaymentFlag::kAmountMismatch;
  return p;
}

TEST(Records, OtherRecordsRoundTrip) {
  const PaymentRecord p = MismatchedPayment();
  PaymentRecord p2;
  ASSERT_TRUE(DecodePayment(EncodePayment(p), &p2).ok());
  EXPECT_EQ(p2.flag, PaymentFlag::kAmountMismatch);
  EXPECT_EQ(p2.amount_cents, 500);
  DeliveryEntry e;
  e.oid = std::string(16, 'o');
  e.product_id = 1;
  e.quantity = 3;
  e.state = DeliveryState::kFailed;
  e.attempts = 8;
  e.last_error = "disk full";
  DeliveryEntry e2;
  ASSERT_TRUE(DecodeDelivery(EncodeDelivery(e), &e2).ok());
  EXPECT_EQ(e2.state, DeliveryState::kFailed);
  EXPECT_EQ(e2.last_error, "disk full");
  BatchRecord b{0, 5, 10, 19, 10, 3, true};
  BatchRecord b2;
  ASSERT_TRUE(DecodeBatch(EncodeBatch(b), &b2).ok());
  EXPECT_EQ(b2.last_seq, 19u);
  EXPECT_TRUE(b2.retired_flag);
  PoolKeyRecord k{4, "xyz"}, k2;
  ASSERT_TRUE(DecodePoolKey(EncodePoolKey(k), &k2).ok());
  EXPECT_EQ(k2.batch_id, 4u);
}

// Version 1 payment records (every record before "malformed" existed) stay as they were:
// the same bytes are written for such a record and read back; version 2 adds the malformed
// notice's problem, body size and excerpt.
TEST(Records, PaymentRecordVersions) {
  const PaymentRecord p = MismatchedPayment();
  // The version 1 layout, byte for byte: version, order_id, amount (zigzag varint),
  // currency, received_ms, outcome, flag.
  const std::string v1 =
      std::string("\x01\x03") + "abc" + "\xe8\x07" + "\x03" + "USD" + "\x9a\x01" + "\x02\x02";
  EXPECT_EQ(EncodePayment(p), v1);
  PaymentRecord q;
  q.problem = "stale";
  q.body_bytes = 9;
  q.body_excerpt = "stale";
  ASSERT_TRUE(DecodePayment(v1, &q).ok());
  EXPECT_EQ(q.order_id, "abc");
  EXPECT_EQ(q.flag, PaymentFlag::kAmountMismatch);
  EXPECT_EQ(q.problem, "");
  EXPECT_EQ(q.body_bytes, 0u);
  EXPECT_EQ(q.body_excerpt, "");

  PaymentRecord m;
  m.received_ms = 5;
  m.outcome = PaymentOutcome::kRefundDue;
  m.flag = PaymentFlag::kMalformed;
  m.problem = "field \"amount_cents\" must be an integer";
  m.body_bytes = 70'000;
  m.body_excerpt = std::string("{\"x\":\"\xff\x00\"", 9);
  const std::string enc = EncodePayment(m);
  EXPECT_EQ(enc[0], '\x02');
  ASSERT_TRUE(DecodePayment(enc, &q).ok());
  EXPECT_EQ(q.flag, PaymentFlag::kMalformed);
  EXPECT_EQ(PaymentFlagName(q.flag), "malformed");
  EXPECT_EQ(q.problem, m.problem);
  EXPECT_EQ(q.body_bytes, 70'000u);
  EXPECT_EQ(q.body_excerpt, m.body_excerpt);
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(DecodePayment(enc.substr(0, n), &q).code(), absl::StatusCode::kDataLoss) << n;
  }
  EXPECT_FALSE(DecodePayment(enc + "x", &q).ok());
  EXPECT_FALSE(DecodePayment(v1 + "x", &q).ok()) << "version 1 has no version 2 fields";
  std::string v3 = enc;
  v3[0] = 3;
  EXPECT_FALSE(DecodePayment(v3, &q).ok());
  std::string flag7 = v1;
  flag7.back() = 7;
  EXPECT_FALSE(DecodePayment(flag7, &q).ok());
}

TEST(Records, IdempotencyVersion2RoundTripsAndVersion1IsStillRead) {
  IdempotencyRecord r;
  r.scope = std::string(16, 's');
  r.created_ms = 1234;
  r.oid = std::string(16, 'o');
  const std::string enc = EncodeIdempotency(r);
  EXPECT_EQ(enc[0], 2);
  IdempotencyRecord q;
  ASSERT_TRUE(DecodeIdempotency(enc, &q).ok());
  EXPECT_EQ(q.scope, r.scope);
  EXPECT_TRUE(q.fingerprint.empty());
  EXPECT_EQ(q.created_ms, 1234);
  EXPECT_EQ(q.oid, r.oid);
  for (size_t n = 0; n < enc.size(); ++n)
    EXPECT_FALSE(DecodeIdempotency(enc.substr(0, n), &q).ok());
  EXPECT_FALSE(DecodeIdempotency(enc + "x", &q).ok());
  std::string v1 = enc;
  v1[0] = 1;  // the same layout with a fingerprint where the scope is
  ASSERT_TRUE(DecodeIdempotency(v1, &q).ok());
  EXPECT_EQ(q.fingerprint, r.scope);
  EXPECT_TRUE(q.scope.empty());
  std::string v3 = enc;
  v3[0] = 3;
  EXPECT_FALSE(DecodeIdempotency(v3, &q).ok());
}

TEST(Records, PayAttemptRoundTripsAndRefusesDamage) {
  PayAttemptRecord r;
  r.method = "alipay";
  r.ref = "cs_test_123";
  r.started_ms = 1700000000123;
  const std::string enc = EncodePayAttempt(r);
  PayAttemptRecord q;
  ASSERT_TRUE(DecodePayAttempt(enc, &q).ok());
  EXPECT_EQ(q.method, "alipay");
  EXPECT_EQ(q.ref, "cs_test_123");
  EXPECT_EQ(q.started_ms, 1700000000123);
  for (size_t n = 0; n < enc.size(); ++n) EXPECT_FALSE(DecodePayAttempt(enc.substr(0, n), &q).ok());
  EXPECT_FALSE(DecodePayAttempt(enc + "x", &q).ok());
  std::string v2 = enc;
  v2[0] = 2;
  EXPECT_FALSE(DecodePayAttempt(v2, &q).ok());
}

TEST(Records, EveryTruncationAndTrailingByteIsRefused) {
  OrderRecord o;
  o.currency = "USD";
  o.keys = {{1, 1, "s"}};
  const std::string enc = EncodeOrder(o);
  OrderRecord q;
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_EQ(DecodeOrder(enc.substr(0, n), &q).code(), absl::StatusCode::kDataLoss) << n;
  }
  EXPECT_FALSE(DecodeOrder(enc + "x", &q).ok());
  ProductRecord p;
  const std::string penc = EncodeProduct(p);
  for (size_t n = 0; n < penc.size(); ++n) EXPECT_FALSE(DecodeProduct(penc.substr(0, n), &p).ok());
}

TEST(Records, UnknownVersionOrEnumIsRefused) {
  std::string enc = EncodeProduct(ProductRecord{});
  enc[0] = 2;  // a future record version: never misread
  ProductRecord p;
  EXPECT_FALSE(DecodeProduct(enc, &p).ok());
  OrderRecord o;
  std::string oenc = EncodeOrder(o);
  oenc[1] = 9;  // no such status
  EXPECT_FALSE(DecodeOrder(oenc, &o).ok());
  PaymentRecord pr;
  std::string penc = EncodePayment(pr);
  penc.back() = 42;  // no such flag
  EXPECT_FALSE(DecodePayment(penc, &pr).ok());
}

TEST(StateMachine, ExactlyTheLegalTransitions) {
  using S = OrderStatus;
  const std::set<std::pair<S, S>> legal = {
      {S::kPendingPayment, S::kPaid},      {S::kPendingPayment, S::kExpired},
      {S::kPendingPayment, S::kCancelled}, {S::kExpired, S::kPaid},
      {S::kPaid, S::kDelivered},           {S::kPaid, S::kBackordered},
      {S::kPaid, S::kRefundDue},           {S::kPaid, S::kRefunded},
      {S::kBackordered, S::kDelivered},    {S::kBackordered, S::kRefunded},
      {S::kRefundDue, S::kRefunded},       {S::kDelivered, S::kRefunded}};
  int n = 0;
  for (S from : kAllOrderStatuses) {
    for (S to : kAllOrderStatuses) {
      EXPECT_EQ(CanTransition(from, to), legal.count({from, to}) == 1)
          << OrderStatusName(from) << " -> " << OrderStatusName(to);
      n += CanTransition(from, to);
    }
  }
  EXPECT_EQ(n, 12);
}

TEST(StateMachine, NamesRoundTrip) {
  for (OrderStatus s : kAllOrderStatuses) {
    OrderStatus back;
    ASSERT_TRUE(ParseOrderStatus(OrderStatusName(s), &back));
    EXPECT_EQ(back, s);
  }
  OrderStatus x;
  EXPECT_FALSE(ParseOrderStatus("shipped", &x));
  StockMode m;
  EXPECT_TRUE(ParseStockMode("on_payment", &m));
  EXPECT_EQ(m, StockMode::kOnPayment);
  EXPECT_FALSE(ParseStockMode("Reserve", &m));
}

}  // namespace
}  // namespace kv
