// Shop: the merchant's views — order pages, export, payments, stats — and the
// collection of old idempotency records.
#include "base/coding.h"
#include "base/status_macros.h"
#include "shop/shop_internal.h"
#include "storage/counter_merge.h"

namespace kv {

Result<OrderPage> Shop::ListOrders(std::optional<OrderStatus> status, size_t limit,
                                   std::string_view cursor) {
  Impl& m = *impl_;
  if (limit == 0) return {Refusal::kBadRequest, "limit must be at least 1"};
  // Which CF and key prefix hold the listing, and where a key of it holds its oid (the
  // schema's parsers; a key of another shape is skipped, as a cursor of one is refused).
  storage::Cf cf = storage::kCfOrders;
  std::string prefix;
  std::optional<std::string_view> (*oid_of)(std::string_view) = [](std::string_view k) {
    return k.size() == storage::kOrderIdBytes ? std::optional<std::string_view>(k) : std::nullopt;
  };
  if (status == OrderStatus::kPendingPayment) {
    cf = storage::kCfOrderIndex;
    prefix = std::string(1, storage::kIdxExpiry);
    oid_of = [](std::string_view k) -> std::optional<std::string_view> {
      auto p = storage::ParseExpiryIndexKey(k);
      if (!p) return std::nullopt;
      return p->oid;
    };
  } else if (status) {
    cf = storage::kCfOrderIndex;
    prefix = storage::StatusIndexPrefix(static_cast<uint8_t>(*status));
    oid_of = [](std::string_view k) -> std::optional<std::string_view> {
      auto p = storage::ParseStatusIndexKey(k);
      if (!p) return std::nullopt;
      return p->oid;
    };
  }
  std::string start = prefix;
  if (!cursor.empty()) {
    std::string after;
    if (!HexDecode(cursor, &after) || !after.starts_with(prefix) || !oid_of(after)) {
      return {Refusal::kBadRequest, "malformed cursor"};
    }
    start = after;
    start.push_back('\0');  // strictly after the cursor's key
  }
  OrderPage page;
  std::string last;
  KV_RETURN_IF_ERROR(db_->ForEach(
      cf, prefix, start,
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        const auto oid_view = oid_of(key);
        if (!oid_view) return storage::Scan::kNext;
        if (page.orders.size() == limit) {
          page.next_cursor = HexEncode(last);
          return storage::Scan::kStop;
        }
        const std::string oid(*oid_view);
        std::optional<OrderRecord> rec;
        if (cf == storage::kCfOrders) {
          OrderRecord r;
          KV_RETURN_IF_ERROR(DecodeOrder(value, &r));
          r.oid = oid;
          rec = std::move(r);
        } else {
          auto r = m.ReadOrder(oid);
          if (!r.ok()) return r.status();
          rec = std::move(*r);
        }
        if (rec) page.orders.push_back(m.View(*rec, false));
        last = std::string(key);
        return storage::Scan::kNext;
      }));
  return page;
}

absl::Status Shop::ForEachOrder(const std::function<bool(const OrderView&)>& f) {
  return db_->ForEach(
      storage::kCfOrders, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        OrderRecord r;
        KV_RETURN_IF_ERROR(DecodeOrder(value, &r));
        r.oid = std::string(key);
        return f(impl_->View(r, false)) ? storage::Scan::kNext : storage::Scan::kStop;
      });
}

absl::StatusOr<std::vector<PaymentView>> Shop::ListPayments(std::optional<PaymentOutcome> outcome) {
  std::vector<PaymentView> out;
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfPayments, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        PaymentRecord p;
        KV_RETURN_IF_ERROR(DecodePayment(value, &p));
        p.payment_id = std::string(key);
        if (!outcome || p.outcome == *outcome) out.push_back(PaymentView{std::move(p)});
        return storage::Scan::kNext;
      }));
  return out;
}

absl::StatusOr<ShopStats> Shop::Stats() {
  ShopStats st;
  // The per-status counts PutOrder keeps (CF "counters", 'o' keys): one Get per status,
  // whatever the number of orders.
  for (OrderStatus s : kAllOrderStatuses) {
    auto v = db_->Get(storage::kCfCounters, storage::OrderCountKey(static_cast<uint8_t>(s)));
    if (!v.ok()) return v.status();
    int64_t n = 0;
    if (v->has_value() && !storage::DecodeCounter(**v, &n)) {
      return absl::DataLossError("malformed order count");
    }
    if (n < 0) return absl::DataLossError("negative order count");
    st.orders_by_status.emplace_back(s, static_cast<uint64_t>(n));
  }
  auto backlog = Backlog();
  if (!backlog.ok()) return backlog.status();
  st.deliveries = *backlog;
  auto refund = ListPayments(PaymentOutcome::kRefundDue);
  if (!refund.ok()) return refund.status();
  st.payments_refund_due = refund->size();
  return st;
}

absl::StatusOr<DeliveryBacklog> Shop::Backlog() {
  // From memory (Impl::logmem, issue 14): every scrape calls this. Recover refuses a log
  // with any other state, so every entry is a backorder.
  Impl& m = *impl_;
  DeliveryBacklog b;
  MutexLock l(&m.logmem_mu);
  const auto& backordered = m.logmem_by_state[static_cast<size_t>(DeliveryState::kBackordered)];
  b.backordered = backordered.size();
  b.oldest_backordered_ms = backordered.empty() ? 0 : backordered.begin()->first;
  return b;
}

absl::StatusOr<size_t> Shop::CollectIdempotency(absl::Duration max_age) {
  Impl& m = *impl_;
  const int64_t cutoff = m.NowMs() - absl::ToInt64Milliseconds(max_age);
  rocksdb::WriteBatch b;
  size_t n = 0;
  KV_RETURN_IF_ERROR(db_->ForEach(
      storage::kCfIdempotency, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        IdempotencyRecord r;
        KV_RETURN_IF_ERROR(DecodeIdempotency(value, &r));
        if (r.created_ms < cutoff) {
          b.Delete(db_->cf(storage::kCfIdempotency), rocksdb::Slice(key.data(), key.size()));
          ++n;
        }
        return storage::Scan::kNext;
      }));
  if (n > 0) KV_RETURN_IF_ERROR(db_->Write(&b));
  return n;
}

}  // namespace kv
