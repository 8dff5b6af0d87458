#include "shop/check.h"

#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/status_macros.h"
#include "shop/records.h"
#include "shop/secrets.h"
#include "shop/shop.h"
#include "storage/counter_merge.h"
#include "storage/schema.h"

namespace kv {
namespace {

using storage::CounterKind;

struct Counts {
  int64_t pool = 0, held = 0, owed = 0, delivered = 0, imported = 0, retired = 0;
};

std::string_view Sv(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

int64_t& Field(Counts& c, CounterKind k) {
  switch (k) {
    case CounterKind::kPool: return c.pool;
    case CounterKind::kHeld: return c.held;
    case CounterKind::kOwed: return c.owed;
    case CounterKind::kDelivered: return c.delivered;
    case CounterKind::kImported: return c.imported;
    case CounterKind::kRetired: return c.retired;
  }
  return c.pool;
}

std::string_view CounterName(CounterKind k) {
  switch (k) {
    case CounterKind::kPool: return "pool";
    case CounterKind::kHeld: return "held";
    case CounterKind::kOwed: return "owed";
    case CounterKind::kDelivered: return "delivered";
    case CounterKind::kImported: return "imported";
    case CounterKind::kRetired: return "retired";
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
    KV_RETURN_IF_ERROR(ScanKeyTags());
    KV_RETURN_IF_ERROR(CompareCounters());
    return report_;
  }

 private:
  void Violation(std::string s) { report_.violations.push_back(std::move(s)); }

  // Decrypts one stored key and checks it owns its uniqueness tag.
  void CheckKey(uint64_t pid, uint64_t seq, std::string_view sealed, std::string_view where) {
    const std::string aad = storage::PoolKey(pid, seq);
    auto text = cipher_.Open(sealed, aad);
    if (!text.ok()) {
      Violation(absl::StrCat("key ", pid, "/", seq, " (", std::string(where),
                             ") fails authentication"));
      return;
    }
    const std::string tag = KeyTag(cipher_, *text);
    auto [pos, fresh] = expected_tags_.emplace(tag, aad);
    if (!fresh && pos->second != aad) {
      Violation(absl::StrCat("key ", pid, "/", seq, " has the same text as another stored key"));
    }
  }

  absl::Status ScanProducts() {
    auto it = db_.NewIterator(storage::kCfProducts);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ProductRecord p;
      KV_RETURN_IF_ERROR(DecodeProduct(Sv(it->value()), &p));
      products_.insert(p.id);
      recount_[p.id];
      ++report_.products;
    }
    return absl::OkStatus();
  }

  absl::Status ScanBatches() {
    auto it = db_.NewIterator(storage::kCfBatches);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const uint64_t pid = DecodeFixed64BE(it->key().data());
      BatchRecord b;
      KV_RETURN_IF_ERROR(DecodeBatch(Sv(it->value()), &b));
      if (!products_.contains(pid)) Violation(absl::StrCat("batch of unknown product ", pid));
      recount_[pid].imported += static_cast<int64_t>(b.imported);
      recount_[pid].retired += static_cast<int64_t>(b.retired);
    }
    return absl::OkStatus();
  }

  absl::Status ScanPool() {
    auto it = db_.NewIterator(storage::kCfPool);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const uint64_t pid = DecodeFixed64BE(it->key().data());
      const uint64_t seq = DecodeFixed64BE(it->key().data() + 8);
      PoolKeyRecord r;
      KV_RETURN_IF_ERROR(DecodePoolKey(Sv(it->value()), &r));
      recount_[pid].pool += 1;
      pool_.insert({pid, seq});
      CheckKey(pid, seq, r.sealed, "pool");
      ++report_.keys_in_pool;
    }
    return absl::OkStatus();
  }

  absl::Status ScanOrders() {
    auto it = db_.NewIterator(storage::kCfOrders);
    std::map<std::pair<uint64_t, uint64_t>, std::string> owner;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      OrderRecord o;
      KV_RETURN_IF_ERROR(DecodeOrder(Sv(it->value()), &o));
      o.oid = it->key().ToString();
      const std::string id = HexEncode(o.oid);
      ++report_.orders;
      Counts& c = recount_[o.product_id];
      if (!products_.contains(o.product_id)) Violation(absl::StrCat("order ", id, ": unknown product"));
      if (o.holding) {
        c.held += o.quantity;
        if (o.status != OrderStatus::kPendingPayment && o.status != OrderStatus::kPaid) {
          Violation(absl::StrCat("order ", id, " holds keys but is ", std::string(OrderStatusName(o.status))));
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
        Violation(absl::StrCat("order ", id, " holds keys while ", std::string(OrderStatusName(o.status))));
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
      const bool paid_like = o.status == OrderStatus::kPaid ||
                             o.status == OrderStatus::kDelivered ||
                             o.status == OrderStatus::kBackordered ||
                             o.status == OrderStatus::kRefundDue;
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
    }
    return absl::OkStatus();
  }

  absl::Status ScanLog() {
    auto it = db_.NewIterator(storage::kCfDeliveryLog);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const uint64_t seq = DecodeFixed64BE(it->key().data());
      DeliveryEntry e;
      KV_RETURN_IF_ERROR(DecodeDelivery(Sv(it->value()), &e));
      ++report_.log_entries;
      auto w = want_log_.find(seq);
      if (w == want_log_.end() || w->second.first != e.oid) {
        Violation(absl::StrCat("delivery-log entry ", seq, " names no order waiting for it"));
        continue;
      }
      const bool ok = (w->second.second == OrderStatus::kPaid &&
                       (e.state == DeliveryState::kPending || e.state == DeliveryState::kFailed)) ||
                      (w->second.second == OrderStatus::kBackordered &&
                       e.state == DeliveryState::kBackordered);
      if (!ok) {
        Violation(absl::StrCat("delivery-log entry ", seq, " is ", std::string(DeliveryStateName(e.state)),
                               " for a ", std::string(OrderStatusName(w->second.second)), " order"));
      }
      want_log_.erase(w);
    }
    for (const auto& [seq, v] : want_log_) {
      Violation(absl::StrCat("order ", HexEncode(v.first), " is ", std::string(OrderStatusName(v.second)),
                             " but its delivery-log entry ", seq, " is missing"));
    }
    return absl::OkStatus();
  }

  absl::Status ScanIndex() {
    size_t status_entries = 0, expiry_entries = 0, backorder_entries = 0;
    auto it = db_.NewIterator(storage::kCfOrderIndex);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view k = Sv(it->key());
      const auto find = [&](std::string_view oid) -> const OrderRecord* {
        auto o = orders_.find(std::string(oid));
        return o == orders_.end() ? nullptr : &o->second;
      };
      switch (k[0]) {
        case storage::kIdxStatus: {
          ++status_entries;
          const OrderRecord* o = k.size() == 26 ? find(k.substr(10)) : nullptr;
          if (o == nullptr || static_cast<uint8_t>(k[1]) != static_cast<uint8_t>(o->status) ||
              o->status == OrderStatus::kPendingPayment) {
            Violation("status index entry disagrees with its order");
          }
          break;
        }
        case storage::kIdxExpiry: {
          ++expiry_entries;
          const OrderRecord* o = k.size() == 25 ? find(k.substr(9)) : nullptr;
          if (o == nullptr || o->status != OrderStatus::kPendingPayment) {
            Violation("expiry index entry for an order that is not pending");
          }
          break;
        }
        case storage::kIdxBackorder: {
          ++backorder_entries;
          const OrderRecord* o = find(Sv(it->value()));
          if (o == nullptr || o->status != OrderStatus::kBackordered ||
              k.size() != 17 || DecodeFixed64BE(k.data() + 9) != o->log_seq) {
            Violation("backorder queue entry for an order that is not backordered");
          }
          break;
        }
        case storage::kIdxContact: {
          // 'c' contact_tag ms oid -> "" (before lookup tags) or the 16-byte lookup tag;
          // only for orders created with a query password.
          const size_t tag = storage::kTagBytes, oid = storage::kOrderIdBytes;
          const OrderRecord* o =
              k.size() == 1 + tag + 8 + oid ? find(k.substr(1 + tag + 8)) : nullptr;
          const size_t v = it->value().size();
          if (o == nullptr || o->password_tag.empty() || k.substr(1, tag) != o->contact_tag ||
              (v != 0 && v != tag)) {
            Violation("contact index entry disagrees with its order");
          }
          break;
        }
        default:
          Violation("unknown order index entry");
      }
    }
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
    auto it = db_.NewIterator(storage::kCfPayments);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      PaymentRecord p;
      KV_RETURN_IF_ERROR(DecodePayment(Sv(it->value()), &p));
      p.payment_id = it->key().ToString();
      ++report_.payments;
      const bool flagged = p.outcome == PaymentOutcome::kRefundDue && p.flag != PaymentFlag::kNone;
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
      if (flagged) continue;
      if (o == nullptr) {
        Violation(absl::StrCat("payment ", p.payment_id, " is applied to an unknown order"));
        continue;
      }
      const bool matches = o->payment_id == p.payment_id && o->amount_cents == p.amount_cents &&
                           o->currency == p.currency;
      const bool paid_state = o->status == OrderStatus::kPaid ||
                              o->status == OrderStatus::kDelivered ||
                              o->status == OrderStatus::kBackordered ||
                              o->status == OrderStatus::kRefunded;
      if (!matches || !paid_state) {
        Violation(absl::StrCat("payment ", p.payment_id, " is applied but does not match order ",
                               p.order_id, " (", std::string(OrderStatusName(o->status)), ")"));
      }
    }
    // The payment that paid an order is recorded: applied, or flagged "no stock" when the
    // order ended refund_due (and maybe refunded since).
    for (const auto& [oid, o] : orders_) {
      if (o.payment_id.empty()) continue;
      auto r = recorded.find(o.payment_id);
      const bool ok = r != recorded.end() &&
                      (r->second == PaymentFlag::kNone ||
                       (r->second == PaymentFlag::kNoStock &&
                        (o.status == OrderStatus::kRefundDue ||
                         o.status == OrderStatus::kRefunded)));
      if (!ok) {
        Violation(absl::StrCat("order ", HexEncode(oid), " names payment ", o.payment_id,
                               " that is not recorded for it"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ScanKeyTags() {
    uint64_t n = 0;
    auto it = db_.NewIterator(storage::kCfKeyTags);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      ++n;
      auto e = expected_tags_.find(it->key().ToString());
      if (e != expected_tags_.end() && e->second != it->value().ToString()) {
        Violation("a key's uniqueness tag points at another key");
      }
      if (e != expected_tags_.end()) expected_tags_.erase(e);
    }
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
    auto it = db_.NewIterator(storage::kCfCounters);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 9) return absl::DataLossError("malformed counter key");
      int64_t v;
      if (!storage::DecodeCounter(it->value(), &v)) {
        return absl::DataLossError("malformed counter value");
      }
      const uint64_t pid = DecodeFixed64BE(it->key().data());
      Field(stored[pid], static_cast<CounterKind>(it->key()[8])) = v;
    }
    if (!it->status().ok()) return absl::DataLossError(it->status().ToString());
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

  const storage::Db& db_;
  const KeyCipher& cipher_;
  CheckReport report_;
  std::set<uint64_t> products_;
  std::map<uint64_t, Counts> recount_;
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
