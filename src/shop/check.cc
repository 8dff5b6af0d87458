#include "shop/check.h"

#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/status_macros.h"
#include "shop/delivery_log.h"
#include "shop/records.h"
#include "shop/secrets.h"
#include "shop/shop.h"
#include "storage/counter_merge.h"
#include "storage/schema.h"

namespace kv {
namespace {

using storage::CounterKind;
using storage::Scan;
using StepOr = absl::StatusOr<Scan>;

struct Counts {
  int64_t pool = 0, held = 0, owed = 0, delivered = 0, imported = 0, retired = 0;
};

int64_t& Field(Counts& c, CounterKind k) {
  switch (k) {
    case CounterKind::kPool:
      return c.pool;
    case CounterKind::kHeld:
      return c.held;
    case CounterKind::kOwed:
      return c.owed;
    case CounterKind::kDelivered:
      return c.delivered;
    case CounterKind::kImported:
      return c.imported;
    case CounterKind::kRetired:
      return c.retired;
  }
  return c.pool;
}

std::string_view CounterName(CounterKind k) {
  switch (k) {
    case CounterKind::kPool:
      return "pool";
    case CounterKind::kHeld:
      return "held";
    case CounterKind::kOwed:
      return "owed";
    case CounterKind::kDelivered:
      return "delivered";
    case CounterKind::kImported:
      return "imported";
    case CounterKind::kRetired:
      return "retired";
  }
  return "?";
}

class Checker {
 public:
  Checker(const storage::Db& db, const KeyCipher& c) : db_(db), cipher_(c) {}

  absl::StatusOr<CheckReport> Run() {
    KV_RETURN_IF_ERROR(ScanProducts());
    KV_RETURN_IF_ERROR(ScanBatches());
    KV_RETURN_IF_ERROR(ScanPool());
    KV_RETURN_IF_ERROR(ScanOrders());
    KV_RETURN_IF_ERROR(ScanLog());
    KV_RETURN_IF_ERROR(ScanIndex());
    KV_RETURN_IF_ERROR(ScanPayments());
    KV_RETURN_IF_ERROR(ScanPayAttempts());
    KV_RETURN_IF_ERROR(ScanOutbound());
    KV_RETURN_IF_ERROR(ScanKeyTags());
    KV_RETURN_IF_ERROR(CompareCounters());
    return report_;
  }

 private:
  void Violation(std::string s) { report_.violations.push_back(std::move(s)); }

  // Decrypts one stored key and checks it owns its uniqueness tag.
  void CheckKey(uint64_t pid, uint64_t seq, std::string_view sealed, std::string_view where) {
    auto text = cipher_.OpenPoolKey(sealed, pid, seq);
    if (!text.ok()) {
      Violation(
          absl::StrCat("key ", pid, "/", seq, " (", std::string(where), ") fails authentication"));
      return;
    }
    const std::string tag = KeyTag(cipher_, *text);
    // CF "key_tags" maps the tag to the key's position, its pool key.
    const std::string position = storage::PoolKey(pid, seq);
    auto [pos, fresh] = expected_tags_.emplace(tag, position);
    if (!fresh && pos->second != position) {
      Violation(absl::StrCat("key ", pid, "/", seq, " has the same text as another stored key"));
    }
  }

  // Payment attempts (issue 13): every key and record parses (DataLoss otherwise). An
  // attempt may name an order that no longer needs it (the reconciler drops it later).
  absl::Status ScanPayAttempts() {
    return db_.ForEach(storage::kCfPayAttempts, "",
                       [&](std::string_view key, std::string_view value) -> StepOr {
                         if (!storage::ParsePayAttemptKey(key)) {
                           return absl::DataLossError("malformed pay attempt key");
                         }
                         PayAttemptRecord r;
                         KV_RETURN_IF_ERROR(DecodePayAttempt(value, &r));
                         ++report_.pay_attempts;
                         return storage::Scan::kNext;
                       });
  }

  // Outbound work (issue 14): every key and record parses (DataLoss otherwise), names a
  // kind and a status that writes outbound work, and an order that exists.
  absl::Status ScanOutbound() {
    return db_.ForEach(
        storage::kCfOutbound, "", [&](std::string_view key, std::string_view value) -> StepOr {
          auto k = storage::ParseOutboundKey(key);
          if (!k ||
              (k->kind != static_cast<uint8_t>(OutboundKind::kWebhook) &&
               k->kind != static_cast<uint8_t>(OutboundKind::kMail)) ||
              !EmitsOutbound(static_cast<OrderStatus>(k->status))) {
            return absl::DataLossError("malformed outbound key");
          }
          OutboundRecord r;
          KV_RETURN_IF_ERROR(DecodeOutbound(value, &r));
          ++report_.outbound;
          if (orders_.find(std::string(k->oid)) == orders_.end()) {
            Violation(absl::StrCat("outbound entry ",
                                   OutboundEventId(k->oid, static_cast<OutboundKind>(k->kind),
                                                   static_cast<OrderStatus>(k->status)),
                                   " names no order"));
          }
          return storage::Scan::kNext;
        });
  }

  // Every scan is a Db::ForEach, so a failed read ends `check` with an error instead of
  // passing for the end of the data.
  absl::Status ScanProducts() {
    return db_.ForEach(storage::kCfProducts, "",
                       [&](std::string_view, std::string_view value) -> StepOr {
                         ProductRecord p;
                         KV_RETURN_IF_ERROR(DecodeProduct(value, &p));
                         products_.insert(p.id);
                         recount_[p.id];
                         ++report_.products;
                         return Scan::kNext;
                       });
  }

  absl::Status ScanBatches() {
    return db_.ForEach(storage::kCfBatches, "",
                       [&](std::string_view key, std::string_view value) -> StepOr {
                         auto k = storage::ParseBatchKey(key);
                         if (!k) return absl::DataLossError("malformed batch key");
                         BatchRecord b;
                         KV_RETURN_IF_ERROR(DecodeBatch(value, &b));
                         if (!products_.contains(k->pid))
                           Violation(absl::StrCat("batch of unknown product ", k->pid));
                         recount_[k->pid].imported += static_cast<int64_t>(b.imported);
                         recount_[k->pid].retired += static_cast<int64_t>(b.retired);
                         return Scan::kNext;
                       });
  }

  absl::Status ScanPool() {
    return db_.ForEach(storage::kCfPool, "",
                       [&](std::string_view key, std::string_view value) -> StepOr {
                         auto k = storage::ParsePoolKey(key);
                         if (!k) return absl::DataLossError("malformed pool key");
                         PoolKeyRecord r;
                         KV_RETURN_IF_ERROR(DecodePoolKey(value, &r));
                         recount_[k->pid].pool += 1;
                         pool_.insert({k->pid, k->seq});
                         CheckKey(k->pid, k->seq, r.sealed, "pool");
                         ++report_.keys_in_pool;
                         return Scan::kNext;
                       });
  }

  absl::Status ScanOrders() {
    std::map<std::pair<uint64_t, uint64_t>, std::string> owner;
    return db_.ForEach(
        storage::kCfOrders, "", [&](std::string_view key, std::string_view value) -> StepOr {
          OrderRecord o;
          KV_RETURN_IF_ERROR(DecodeOrder(value, &o));
          o.oid = std::string(key);
          const std::string id = HexEncode(o.oid);
          ++report_.orders;
          Counts& c = recount_[o.product_id];
          if (!products_.contains(o.product_id))
            Violation(absl::StrCat("order ", id, ": unknown product"));
          if (o.holding) {
            c.held += o.quantity;
            if (o.status != OrderStatus::kPendingPayment && o.status != OrderStatus::kPaid) {
              Violation(absl::StrCat("order ", id, " holds keys but is ",
                                     std::string(OrderStatusName(o.status))));
            }
          }
          if (o.status == OrderStatus::kBackordered) c.owed += o.quantity;
          c.delivered += static_cast<int64_t>(o.keys.size());
          const bool has_keys_state =
              o.status == OrderStatus::kDelivered || o.status == OrderStatus::kRefunded;
          if (o.status == OrderStatus::kDelivered && o.keys.size() != o.quantity) {
            Violation(absl::StrCat("order ", id, " is delivered with ", o.keys.size(), " of ",
                                   o.quantity, " keys"));
          }
          if (!has_keys_state && !o.keys.empty()) {
            Violation(absl::StrCat("order ", id, " holds keys while ",
                                   std::string(OrderStatusName(o.status))));
          }
          for (const DeliveredKey& k : o.keys) {
            auto [pos, fresh] = owner.emplace(std::make_pair(o.product_id, k.seq), id);
            if (!fresh) {
              Violation(absl::StrCat("key ", o.product_id, "/", k.seq, " is attached to orders ",
                                     pos->second, " and ", id));
            }
            if (pool_.contains({o.product_id, k.seq})) {
              Violation(absl::StrCat("key ", o.product_id, "/", k.seq, " of order ", id,
                                     " is still in the pool"));
            }
            CheckKey(o.product_id, k.seq, k.sealed, "delivered");
            ++report_.keys_delivered;
          }
          const bool paid_like =
              o.status == OrderStatus::kPaid || o.status == OrderStatus::kDelivered ||
              o.status == OrderStatus::kBackordered || o.status == OrderStatus::kRefundDue;
          if (paid_like && o.payment_id.empty()) {
            Violation(absl::StrCat("order ", id, " is ", std::string(OrderStatusName(o.status)),
                                   " without a payment"));
          }
          if (o.status == OrderStatus::kPaid || o.status == OrderStatus::kBackordered) {
            if (o.log_seq == 0) {
              Violation(absl::StrCat("order ", id, " is ", std::string(OrderStatusName(o.status)),
                                     " without a delivery-log entry"));
            } else {
              want_log_[o.log_seq] = {o.oid, o.status};
            }
          }
          orders_[o.oid] = o;
          orders_[o.oid].keys.clear();  // keep memory small: keys were checked above
          return Scan::kNext;
        });
  }

  absl::Status ScanLog() {
    KV_RETURN_IF_ERROR(ForEachDelivery(db_, [&](DeliveryEntry& e) -> StepOr {
      ++report_.log_entries;
      if (e.state != DeliveryState::kBackordered) {
        // A write-ahead delivery of a paid order: no build writes one, and Shop::Open
        // refuses a dir that has one.
        Violation(absl::StrCat("delivery-log entry ", e.log_seq, " of order ", HexEncode(e.oid),
                               " is ", std::string(DeliveryStateName(e.state)),
                               ": a write-ahead delivery, which keyvend no longer performs (the "
                               "shop will not open this dir)"));
      }
      auto w = want_log_.find(e.log_seq);
      if (w == want_log_.end() || w->second.first != e.oid) {
        Violation(absl::StrCat("delivery-log entry ", e.log_seq, " names no order waiting for it"));
        return Scan::kNext;
      }
      if (e.state == DeliveryState::kBackordered && w->second.second != OrderStatus::kBackordered) {
        Violation(absl::StrCat("delivery-log entry ", e.log_seq, " is ",
                               std::string(DeliveryStateName(e.state)), " for a ",
                               std::string(OrderStatusName(w->second.second)), " order"));
      }
      want_log_.erase(w);
      return Scan::kNext;
    }));
    for (const auto& [seq, v] : want_log_) {
      Violation(absl::StrCat("order ", HexEncode(v.first), " is ",
                             std::string(OrderStatusName(v.second)), " but its delivery-log entry ",
                             seq, " is missing"));
    }
    return absl::OkStatus();
  }

  absl::Status ScanIndex() {
    size_t status_entries = 0, expiry_entries = 0, backorder_entries = 0;
    const auto find = [&](std::string_view oid) -> const OrderRecord* {
      auto o = orders_.find(std::string(oid));
      return o == orders_.end() ? nullptr : &o->second;
    };
    KV_RETURN_IF_ERROR(db_.ForEach(
        storage::kCfOrderIndex, "", [&](std::string_view k, std::string_view value) -> StepOr {
          switch (k.empty() ? '\0' : k[0]) {
            case storage::kIdxStatus: {
              ++status_entries;
              const auto sk = storage::ParseStatusIndexKey(k);
              if (sk) ++index_by_status_[sk->status];
              const OrderRecord* o = sk ? find(sk->oid) : nullptr;
              if (o == nullptr || sk->status != static_cast<uint8_t>(o->status) ||
                  o->status == OrderStatus::kPendingPayment) {
                Violation("status index entry disagrees with its order");
              }
              break;
            }
            case storage::kIdxExpiry: {
              ++expiry_entries;
              const auto ek = storage::ParseExpiryIndexKey(k);
              ++index_by_status_[static_cast<uint8_t>(OrderStatus::kPendingPayment)];
              const OrderRecord* o = ek ? find(ek->oid) : nullptr;
              if (o == nullptr || o->status != OrderStatus::kPendingPayment) {
                Violation("expiry index entry for an order that is not pending");
              }
              break;
            }
            case storage::kIdxBackorder: {
              ++backorder_entries;
              const auto bk = storage::ParseBackorderIndexKey(k);
              const OrderRecord* o = find(value);
              if (o == nullptr || o->status != OrderStatus::kBackordered || !bk ||
                  bk->log_seq != o->log_seq) {
                Violation("backorder queue entry for an order that is not backordered");
              }
              break;
            }
            case storage::kIdxContact: {
              // 'c' contact_tag ms oid -> "" (before lookup tags) or the 16-byte lookup tag;
              // only for orders created with a query password.
              const auto ck = storage::ParseContactIndexKey(k);
              const OrderRecord* o = ck ? find(ck->oid) : nullptr;
              const size_t v = value.size();
              if (o == nullptr || o->password_tag.empty() || ck->contact_tag != o->contact_tag ||
                  (v != 0 && v != storage::kTagBytes)) {
                Violation("contact index entry disagrees with its order");
              }
              break;
            }
            default:
              Violation("unknown order index entry");
          }
          return Scan::kNext;
        }));
    size_t pending = 0, backordered = 0;
    for (const auto& [oid, o] : orders_) {
      if (o.status == OrderStatus::kPendingPayment) ++pending;
      if (o.status == OrderStatus::kBackordered) ++backordered;
    }
    if (status_entries + pending != orders_.size()) {
      Violation(absl::StrCat("status index has ", status_entries, " entries for ",
                             orders_.size() - pending, " orders that are not pending"));
    }
    if (expiry_entries != pending) {
      Violation(absl::StrCat("expiry index has ", expiry_entries, " entries for ", pending,
                             " pending orders"));
    }
    if (backorder_entries != backordered) {
      Violation(absl::StrCat("backorder queue has ", backorder_entries, " entries for ",
                             backordered, " backordered orders"));
    }
    return absl::OkStatus();
  }

  absl::Status ScanPayments() {
    absl::flat_hash_map<std::string, PaymentFlag> recorded;
    KV_RETURN_IF_ERROR(db_.ForEach(
        storage::kCfPayments, "", [&](std::string_view key, std::string_view value) -> StepOr {
          PaymentRecord p;
          KV_RETURN_IF_ERROR(DecodePayment(value, &p));
          p.payment_id = std::string(key);
          ++report_.payments;
          const bool flagged =
              p.outcome == PaymentOutcome::kRefundDue && p.flag != PaymentFlag::kNone;
          if (p.outcome == PaymentOutcome::kRefundDue && p.flag == PaymentFlag::kNone) {
            Violation(absl::StrCat("payment ", p.payment_id, " is refund_due without a reason"));
          }
          std::string oid;
          const OrderRecord* o = nullptr;
          if (ParseOrderId(p.order_id, &oid)) {
            auto f = orders_.find(oid);
            if (f != orders_.end()) o = &f->second;
          }
          recorded[p.payment_id] = p.flag;
          if (flagged) return Scan::kNext;
          if (o == nullptr) {
            Violation(absl::StrCat("payment ", p.payment_id, " is applied to an unknown order"));
            return Scan::kNext;
          }
          const bool matches = o->payment_id == p.payment_id && o->amount_cents == p.amount_cents &&
                               o->currency == p.currency;
          const bool paid_state =
              o->status == OrderStatus::kPaid || o->status == OrderStatus::kDelivered ||
              o->status == OrderStatus::kBackordered || o->status == OrderStatus::kRefunded;
          if (!matches || !paid_state) {
            Violation(absl::StrCat("payment ", p.payment_id,
                                   " is applied but does not match order ", p.order_id, " (",
                                   std::string(OrderStatusName(o->status)), ")"));
          }
          return Scan::kNext;
        }));
    // The payment that paid an order is recorded: applied, or flagged "no stock" when the
    // order ended refund_due (and maybe refunded since).
    for (const auto& [oid, o] : orders_) {
      if (o.payment_id.empty()) continue;
      auto r = recorded.find(o.payment_id);
      const bool ok =
          r != recorded.end() &&
          (r->second == PaymentFlag::kNone ||
           (r->second == PaymentFlag::kNoStock &&
            (o.status == OrderStatus::kRefundDue || o.status == OrderStatus::kRefunded)));
      if (!ok) {
        Violation(absl::StrCat("order ", HexEncode(oid), " names payment ", o.payment_id,
                               " that is not recorded for it"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ScanKeyTags() {
    uint64_t n = 0;
    KV_RETURN_IF_ERROR(db_.ForEach(storage::kCfKeyTags, "",
                                   [&](std::string_view key, std::string_view value) -> StepOr {
                                     ++n;
                                     auto e = expected_tags_.find(std::string(key));
                                     if (e != expected_tags_.end() && e->second != value) {
                                       Violation("a key's uniqueness tag points at another key");
                                     }
                                     if (e != expected_tags_.end()) expected_tags_.erase(e);
                                     return Scan::kNext;
                                   }));
    if (!expected_tags_.empty()) {
      Violation(absl::StrCat(expected_tags_.size(), " stored keys have no uniqueness tag"));
    }
    int64_t imported = 0;
    for (const auto& [pid, c] : recount_) imported += c.imported;
    if (static_cast<int64_t>(n) != imported) {
      Violation(absl::StrCat("key_tags holds ", n, " tags but ", imported, " keys were imported"));
    }
    return absl::OkStatus();
  }

  absl::Status CompareCounters() {
    std::map<uint64_t, Counts> stored;
    std::map<uint8_t, int64_t> order_counts;  // 'o' keys: status -> count
    KV_RETURN_IF_ERROR(db_.ForEach(storage::kCfCounters, "",
                                   [&](std::string_view key, std::string_view value) -> StepOr {
                                     int64_t v;
                                     if (!storage::DecodeCounter(value, &v))
                                       return absl::DataLossError("malformed counter value");
                                     if (auto s = storage::ParseOrderCountKey(key)) {
                                       order_counts[*s] = v;
                                       return Scan::kNext;
                                     }
                                     auto k = storage::ParseCounterKey(key);
                                     if (!k) return absl::DataLossError("malformed counter key");
                                     Field(stored[k->pid], k->kind) = v;
                                     return Scan::kNext;
                                   }));
    KV_RETURN_IF_ERROR(CompareOrderCounts(order_counts));
    std::set<uint64_t> pids;
    for (const auto& [pid, c] : stored) pids.insert(pid);
    for (const auto& [pid, c] : recount_) pids.insert(pid);
    for (uint64_t pid : pids) {
      Counts& s = stored[pid];
      Counts& r = recount_[pid];
      for (CounterKind k : storage::kAllCounterKinds) {
        if (Field(s, k) != Field(r, k)) {
          Violation(absl::StrCat("product ", pid, ": counter ", std::string(CounterName(k)), " is ",
                                 Field(s, k), " but a recount gives ", Field(r, k)));
        }
      }
      if (r.imported != r.pool + r.delivered + r.retired) {
        Violation(absl::StrCat("product ", pid, ": imported ", r.imported, " != pool ", r.pool,
                               " + delivered ", r.delivered, " + retired ", r.retired));
      }
      if (r.held + r.delivered > r.imported) {
        Violation(absl::StrCat("product ", pid, ": oversold: held ", r.held, " + delivered ",
                               r.delivered, " > imported ", r.imported));
      }
    }
    return absl::OkStatus();
  }

  // Each status's order count (what Stats shows) equals its index entries ('e' for
  // pending_payment, 's' otherwise). A dir without the "order_counts" marker has no counts
  // yet (the shop writes them when it next opens): nothing to compare.
  absl::Status CompareOrderCounts(const std::map<uint8_t, int64_t>& stored) {
    auto marker = db_.Get(storage::kCfMeta, storage::kMetaOrderCounts);
    if (!marker.ok()) return marker.status();
    if (!marker->has_value()) return absl::OkStatus();
    std::set<uint8_t> statuses;
    for (OrderStatus s : kAllOrderStatuses) statuses.insert(static_cast<uint8_t>(s));
    for (const auto& [s, n] : stored) statuses.insert(s);
    for (const auto& [s, n] : index_by_status_) statuses.insert(s);
    for (uint8_t s : statuses) {
      const auto c = stored.find(s);
      const auto i = index_by_status_.find(s);
      const int64_t count = c == stored.end() ? 0 : c->second;
      const int64_t entries = i == index_by_status_.end() ? 0 : i->second;
      if (count == entries) continue;
      // OrderStatus is a uint8_t enum: any byte converts; a byte no status has names
      // "unknown".
      std::string name(OrderStatusName(static_cast<OrderStatus>(s)));
      if (name == "unknown") name = absl::StrCat("status ", int{s});
      Violation(absl::StrCat("order count ", name, " is ", count, " but the order index has ",
                             entries, " entries"));
    }
    return absl::OkStatus();
  }

  const storage::Db& db_;
  const KeyCipher& cipher_;
  CheckReport report_;
  std::set<uint64_t> products_;
  std::map<uint64_t, Counts> recount_;
  std::map<uint8_t, int64_t> index_by_status_;  // order-index entries per status byte
  std::set<std::pair<uint64_t, uint64_t>> pool_;
  absl::flat_hash_map<std::string, std::string> expected_tags_;
  absl::flat_hash_map<std::string, OrderRecord> orders_;
  std::map<uint64_t, std::pair<std::string, OrderStatus>> want_log_;
};

}  // namespace

absl::StatusOr<CheckReport> CheckShop(const storage::Db& db, const KeyCipher& cipher) {
  return Checker(db, cipher).Run();
}

}  // namespace kv
