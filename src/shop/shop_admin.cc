// Shop: the merchant's views — order pages, export, payments, redelivery, stats — and the
// collection of old idempotency records.
#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/status_macros.h"
#include "shop/shop_internal.h"

namespace kv {

namespace {

std::string_view Sv(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

Result<OrderPage> Shop::ListOrders(std::optional<OrderStatus> status, size_t limit,
                                   std::string_view cursor) {
  Impl& m = *impl_;
  if (limit == 0) return {Refusal::kBadRequest, "limit must be at least 1"};
  // Which CF and key prefix hold the listing; an oid sits at a fixed offset of each key.
  storage::Cf cf = storage::kCfOrders;
  std::string prefix;
  size_t oid_offset = 0;
  if (status == OrderStatus::kPendingPayment) {
    cf = storage::kCfOrderIndex;
    prefix = std::string(1, storage::kIdxExpiry);
    oid_offset = 1 + 8;
  } else if (status) {
    cf = storage::kCfOrderIndex;
    prefix = std::string(1, storage::kIdxStatus) + static_cast<char>(*status);
    oid_offset = 2 + 8;
  }
  const size_t key_size = oid_offset + storage::kOrderIdBytes;
  std::string start = prefix;
  if (!cursor.empty()) {
    std::string after;
    if (!HexDecode(cursor, &after) || after.size() != key_size ||
        after.compare(0, prefix.size(), prefix) != 0) {
      return {Refusal::kBadRequest, "malformed cursor"};
    }
    start = after;
    start.push_back('\0');  // strictly after the cursor's key
  }
  OrderPage page;
  auto it = db_->NewIterator(cf);
  std::string last;
  for (it->Seek(start); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != key_size) continue;
    if (page.orders.size() == limit) {
      page.next_cursor = HexEncode(last);
      break;
    }
    const std::string oid(it->key().data() + oid_offset, storage::kOrderIdBytes);
    std::optional<OrderRecord> rec;
    if (cf == storage::kCfOrders) {
      OrderRecord r;
      KV_RETURN_IF_ERROR(DecodeOrder(Sv(it->value()), &r));
      r.oid = oid;
      rec = std::move(r);
    } else {
      auto r = m.ReadOrder(oid);
      if (!r.ok()) return r.status();
      rec = std::move(*r);
    }
    if (rec) page.orders.push_back(m.View(*rec, false));
    last = it->key().ToString();
  }
  if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
  return page;
}

absl::Status Shop::ForEachOrder(const std::function<bool(const OrderView&)>& f) {
  auto it = db_->NewIterator(storage::kCfOrders);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    OrderRecord r;
    KV_RETURN_IF_ERROR(DecodeOrder(Sv(it->value()), &r));
    r.oid = it->key().ToString();
    if (!f(impl_->View(r, false))) break;
  }
  if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PaymentView>> Shop::ListPayments(
    std::optional<PaymentOutcome> outcome) {
  std::vector<PaymentView> out;
  auto it = db_->NewIterator(storage::kCfPayments);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    PaymentRecord p;
    KV_RETURN_IF_ERROR(DecodePayment(Sv(it->value()), &p));
    p.payment_id = it->key().ToString();
    if (!outcome || p.outcome == *outcome) out.push_back(PaymentView{std::move(p)});
  }
  if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
  return out;
}

Result<OrderView> Shop::RedeliverOrder(std::string_view order_id) {
  Impl& m = *impl_;
  std::string oid;
  if (!ParseOrderId(order_id, &oid)) return {Refusal::kOrderNotFound, "no such order"};
  std::optional<DeliveryEntry> entry;
  {
    MutexLock l(&m.OrderLock(oid));
    auto cur = m.ReadOrder(oid);
    if (!cur.ok()) return cur.status();
    if (!cur->has_value()) return {Refusal::kOrderNotFound, "no such order"};
    const OrderRecord& o = **cur;
    if (o.status == OrderStatus::kDelivered) return m.View(o, true);
    if (o.status != OrderStatus::kPaid || o.log_seq == 0) {
      return {Refusal::kInvalidState, absl::StrCat("a ", std::string(OrderStatusName(o.status)),
                                                   " order has no delivery to redo")};
    }
    auto ev = db_->Get(storage::kCfDeliveryLog, storage::U64Key(o.log_seq));
    if (!ev.ok()) return ev.status();
    if (!ev->has_value()) return absl::DataLossError("paid order without its delivery-log entry");
    DeliveryEntry e;
    KV_RETURN_IF_ERROR(DecodeDelivery(**ev, &e));
    e.log_seq = o.log_seq;
    e.state = DeliveryState::kPending;
    e.attempts = 0;
    e.next_attempt_ms = m.NowMs();
    rocksdb::WriteBatch b;
    b.Put(db_->cf(storage::kCfDeliveryLog), storage::U64Key(e.log_seq), EncodeDelivery(e));
    KV_RETURN_IF_ERROR(db_->Write(&b));
    entry = e;
  }
  m.log_dirty = true;
  auto delivered = m.DeliverPending(*entry);
  if (!delivered.ok()) return delivered.status();
  return AdminGetOrder(order_id);
}

absl::StatusOr<ShopStats> Shop::Stats() {
  ShopStats st;
  auto it = db_->NewIterator(storage::kCfOrderIndex);
  uint64_t pending = 0;
  const std::string e(1, storage::kIdxExpiry);
  for (it->Seek(e); it->Valid() && it->key().starts_with(e); it->Next()) ++pending;
  st.orders_by_status.emplace_back(OrderStatus::kPendingPayment, pending);
  for (OrderStatus s : kAllOrderStatuses) {
    if (s == OrderStatus::kPendingPayment) continue;
    const std::string p = std::string(1, storage::kIdxStatus) + static_cast<char>(s);
    uint64_t n = 0;
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) ++n;
    st.orders_by_status.emplace_back(s, n);
  }
  if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
  auto backlog = Backlog();
  if (!backlog.ok()) return backlog.status();
  st.deliveries = *backlog;
  auto refund = ListPayments(PaymentOutcome::kRefundDue);
  if (!refund.ok()) return refund.status();
  st.payments_refund_due = refund->size();
  return st;
}

absl::StatusOr<DeliveryBacklog> Shop::Backlog() {
  auto log = ListDeliveries(std::nullopt);
  if (!log.ok()) return log.status();
  DeliveryBacklog b;
  for (const DeliveryEntry& d : *log) {
    if (d.state == DeliveryState::kPending) ++b.pending;
    if (d.state == DeliveryState::kBackordered) ++b.backordered;
    if (d.state == DeliveryState::kFailed) ++b.failed;
    const auto older = [&d](int64_t* oldest) {
      if (*oldest == 0 || d.created_ms < *oldest) *oldest = d.created_ms;
    };
    older(&b.oldest_created_ms);
    if (d.state == DeliveryState::kPending) older(&b.oldest_pending_ms);
    if (d.state == DeliveryState::kBackordered) older(&b.oldest_backordered_ms);
    if (d.state == DeliveryState::kFailed) older(&b.oldest_failed_ms);
  }
  return b;
}

absl::StatusOr<size_t> Shop::CollectIdempotency(absl::Duration max_age) {
  Impl& m = *impl_;
  const int64_t cutoff = m.NowMs() - absl::ToInt64Milliseconds(max_age);
  rocksdb::WriteBatch b;
  size_t n = 0;
  auto it = db_->NewIterator(storage::kCfIdempotency);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    IdempotencyRecord r;
    KV_RETURN_IF_ERROR(DecodeIdempotency(Sv(it->value()), &r));
    if (r.created_ms < cutoff) {
      b.Delete(db_->cf(storage::kCfIdempotency), it->key());
      ++n;
    }
  }
  if (!it->status().ok()) return absl::UnavailableError(it->status().ToString());
  if (n > 0) KV_RETURN_IF_ERROR(db_->Write(&b));
  return n;
}

}  // namespace kv
