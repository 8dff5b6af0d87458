// Shop: the delivery log's outbound work (issue 14) — merchant webhook events and buyer
// mails in CF outbound, the in-memory outbox beside it, and the calls the workers
// (src/outbound/dispatcher.h) and the admin API make. Sending is not here: no HTTP, no SMTP.
#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/coding.h"
#include "base/crash_point.h"
#include "base/log.h"
#include "base/status_macros.h"
#include "shop/shop_internal.h"

namespace kv {

namespace {

constexpr std::string_view kWebhookIdPrefix = "evt_";
constexpr std::string_view kMailIdPrefix = "mail_";

size_t KindIndex(OutboundKind k) {
  return static_cast<size_t>(k) <= 2 ? static_cast<size_t>(k) : 0;
}
size_t StateIndex(OutboundState s) {
  return static_cast<size_t>(s) <= 3 ? static_cast<size_t>(s) : 0;
}

bool PrintableReason(std::string_view s) {
  if (s.empty() || s.size() > limits::kDeliveryErrorBytesMax) return false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

OutboundEvent EventOf(const OutboundRecord& r) {
  OutboundEvent e;
  e.id = OutboundEventId(r.oid, r.kind, r.status);
  e.order_id = HexEncode(r.oid);
  e.kind = r.kind;
  e.status = r.status;
  e.state = r.state;
  e.attempts = r.attempts;
  e.created_ms = r.created_ms;
  e.next_attempt_ms = r.next_attempt_ms;
  e.last_error = r.last_error;
  return e;
}

// The record behind a CF key and value; DataLoss on a malformed one.
absl::Status DecodeOutboundEntry(std::string_view key, std::string_view value, OutboundRecord* r) {
  auto k = storage::ParseOutboundKey(key);
  if (!k) return absl::DataLossError("malformed outbound key");
  OrderStatus st = static_cast<OrderStatus>(k->status);
  if ((k->kind != static_cast<uint8_t>(OutboundKind::kWebhook) &&
       k->kind != static_cast<uint8_t>(OutboundKind::kMail)) ||
      !EmitsOutbound(st)) {
    return absl::DataLossError("malformed outbound key");
  }
  KV_RETURN_IF_ERROR(DecodeOutbound(value, r));
  r->oid = std::string(k->oid);
  r->kind = static_cast<OutboundKind>(k->kind);
  r->status = st;
  return absl::OkStatus();
}

}  // namespace

bool EmitsOutbound(OrderStatus s) {
  return s == OrderStatus::kDelivered || s == OrderStatus::kBackordered ||
         s == OrderStatus::kRefundDue || s == OrderStatus::kRefunded ||
         s == OrderStatus::kCancelled;
}

std::string OutboundEventId(std::string_view oid, OutboundKind kind, OrderStatus status) {
  std::string id(kind == OutboundKind::kMail ? kMailIdPrefix : kWebhookIdPrefix);
  id += HexEncode(oid);
  id += '_';
  id += OrderStatusName(status);
  return id;
}

bool ParseOutboundEventId(std::string_view id, std::string* key) {
  OutboundKind kind;
  if (id.substr(0, kWebhookIdPrefix.size()) == kWebhookIdPrefix) {
    kind = OutboundKind::kWebhook;
    id.remove_prefix(kWebhookIdPrefix.size());
  } else if (id.substr(0, kMailIdPrefix.size()) == kMailIdPrefix) {
    kind = OutboundKind::kMail;
    id.remove_prefix(kMailIdPrefix.size());
  } else {
    return false;
  }
  constexpr size_t kHex = 2 * storage::kOrderIdBytes;
  if (id.size() < kHex + 2 || id[kHex] != '_') return false;
  std::string oid;
  OrderStatus st;
  if (!ParseOrderId(id.substr(0, kHex), &oid) || !ParseOrderStatus(id.substr(kHex + 1), &st) ||
      !EmitsOutbound(st)) {
    return false;
  }
  *key = storage::OutboundKey(oid, static_cast<uint8_t>(kind), static_cast<uint8_t>(st));
  return true;
}

// --- the outbox ------------------------------------------------------------------------

void Shop::Impl::OutboxPut(const std::string& key, const OutboundRecord& r) {
  auto it = outbox.find(key);
  if (it != outbox.end()) OutboxErase(key);
  OutboxItem item;
  item.state = r.state;
  item.attempts = r.attempts;
  item.created_ms = r.created_ms;
  item.next_attempt_ms = r.next_attempt_ms;
  outbox.emplace(key, item);
  ++outbox_counts[KindIndex(r.kind)][StateIndex(r.state)];
  outbox_created[KindIndex(r.kind)][StateIndex(r.state)].insert(r.created_ms);
  if (r.state == OutboundState::kPending) {
    outbox_due[KindIndex(r.kind)].emplace(r.next_attempt_ms, key);
  }
}

void Shop::Impl::OutboxErase(const std::string& key) {
  auto it = outbox.find(key);
  if (it == outbox.end()) return;
  auto k = storage::ParseOutboundKey(key);
  const size_t kind = k ? std::min<size_t>(k->kind, 2) : 0;
  --outbox_counts[kind][StateIndex(it->second.state)];
  auto& created = outbox_created[kind][StateIndex(it->second.state)];
  if (auto c = created.find(it->second.created_ms); c != created.end()) created.erase(c);
  if (it->second.state == OutboundState::kPending && !it->second.leased) {
    outbox_due[kind].erase({it->second.next_attempt_ms, key});
  }
  outbox.erase(it);
}

void Shop::Impl::PublishOutbound(const std::vector<OutboundRecord>& records) {
  {
    MutexLock l(&outbox_mu);
    for (const OutboundRecord& r : records) {
      OutboxPut(
          storage::OutboundKey(r.oid, static_cast<uint8_t>(r.kind), static_cast<uint8_t>(r.status)),
          r);
    }
  }
  outbox_cv.SignalAll();
}

absl::Status Shop::Impl::LoadOutbox() {
  // Read first, then fill memory under the lock (the scan's callback is a lambda the
  // thread-safety analysis cannot see the lock through).
  std::vector<std::pair<std::string, OutboundRecord>> loaded;
  KV_RETURN_IF_ERROR(db->ForEach(
      storage::kCfOutbound, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        OutboundRecord r;
        KV_RETURN_IF_ERROR(DecodeOutboundEntry(key, value, &r));
        loaded.emplace_back(std::string(key), std::move(r));
        return storage::Scan::kNext;
      }));
  MutexLock l(&outbox_mu);
  for (const auto& [key, r] : loaded) OutboxPut(key, r);
  return absl::OkStatus();
}

// --- the workers' calls -------------------------------------------------------------------

absl::StatusOr<std::vector<OutboundJob>> Shop::TakeDueOutbound(OutboundKind kind, size_t max,
                                                               absl::Duration wait) {
  Impl& m = *impl_;
  const size_t ki = KindIndex(kind);
  std::vector<std::string> keys;
  {
    MutexLock l(&m.outbox_mu);
    const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(wait);
    while (true) {
      const int64_t now = m.NowMs();
      auto& due = m.outbox_due[ki];
      while (!due.empty() && keys.size() < max && due.begin()->first <= now) {
        const std::string key = due.begin()->second;
        due.erase(due.begin());
        m.outbox[key].leased = true;
        keys.push_back(key);
      }
      if (!keys.empty() || std::chrono::steady_clock::now() >= deadline) break;
      // Wait for a new entry, or until the earliest one is due (at most the deadline).
      auto until = deadline;
      if (!due.empty()) {
        until = std::min(until, std::chrono::steady_clock::now() +
                                    std::chrono::milliseconds(due.begin()->first - now));
      }
      m.outbox_cv.WaitUntil(&m.outbox_mu, until);
    }
  }
  std::vector<OutboundJob> jobs;
  absl::Status error;
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& key = keys[i];
    auto v = m.db->Get(storage::kCfOutbound, key);
    OutboundRecord r;
    absl::Status s = v.status();
    if (s.ok() && !v->has_value()) s = absl::DataLossError("outbox entry missing in CF outbound");
    if (s.ok()) s = DecodeOutboundEntry(key, **v, &r);
    std::optional<OrderRecord> order;
    if (s.ok()) {
      auto o = m.ReadOrder(r.oid);
      s = o.status();
      if (s.ok()) order = std::move(*o);
    }
    if (!s.ok()) {
      // Release this and every later lease: a later TakeDueOutbound tries them again.
      MutexLock l(&m.outbox_mu);
      for (size_t j = i; j < keys.size(); ++j) {
        auto it = m.outbox.find(keys[j]);
        if (it == m.outbox.end()) continue;
        it->second.leased = false;
        m.outbox_due[ki].emplace(it->second.next_attempt_ms, keys[j]);
      }
      error = s;
      break;
    }
    OutboundJob job;
    job.event = EventOf(r);
    if (!order.has_value()) {
      // Cannot happen unless the data dir was edited: nothing to send, kept as failed.
      (void)FinishOutbound(job, OutboundFinish::kFailed, 0, "the order does not exist");
      continue;
    }
    const bool mail = kind == OutboundKind::kMail;
    job.order = m.View(*order, /*with_keys=*/mail);
    job.paid_ms = order->paid_ms;
    job.delivered_ms = order->delivered_ms;
    if (const ProductState* ps = m.Product(order->product_id); ps != nullptr) {
      job.product_name = ps->Config()->name;
    }
    if (mail) job.token = m.TokenFor(order->oid);
    jobs.push_back(std::move(job));
  }
  if (!error.ok() && jobs.empty()) return error;
  return jobs;
}

absl::Status Shop::FinishOutbound(const OutboundJob& job, OutboundFinish what,
                                  int64_t next_attempt_ms, std::string_view error) {
  std::vector<OutboundFinishItem> one(1);
  one[0].job = &job;
  one[0].what = what;
  one[0].next_attempt_ms = next_attempt_ms;
  one[0].error = std::string(error.substr(0, limits::kDeliveryErrorBytesMax));
  return FinishOutboundMany(one);
}

absl::Status Shop::FinishOutboundMany(const std::vector<OutboundFinishItem>& items) {
  Impl& m = *impl_;
  if (items.empty()) return absl::OkStatus();
  // The records to write, from the jobs: a job is read under its lease and only the
  // leaseholder writes the entry, so the job's copy is what the CF holds — no Get.
  std::vector<std::string> keys(items.size());
  std::vector<OutboundRecord> records(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const OutboundFinishItem& it = items[i];
    if (it.job == nullptr || !ParseOutboundEventId(it.job->event.id, &keys[i])) {
      return absl::InvalidArgumentError("not an outbound event id");
    }
    const OutboundEvent& e = it.job->event;
    OutboundRecord& r = records[i];
    auto k = storage::ParseOutboundKey(keys[i]);
    KV_CHECK(k.has_value(), "ParseOutboundEventId made the key");
    r.oid = std::string(k->oid);
    r.kind = static_cast<OutboundKind>(k->kind);
    r.status = static_cast<OrderStatus>(k->status);
    r.state = e.state;
    r.attempts = e.attempts;
    r.created_ms = e.created_ms;
    r.next_attempt_ms = e.next_attempt_ms;
    r.last_error = e.last_error;
  }
  {
    // Every entry must be leased (by the caller: leases are not named, a worker finishes only
    // the jobs it took) and appear once.
    MutexLock l(&m.outbox_mu);
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = m.outbox.find(keys[i]);
      if (it == m.outbox.end() || !it->second.leased) {
        return absl::FailedPreconditionError(
            absl::StrCat("outbound entry ", items[i].job->event.id, " is not leased"));
      }
      for (size_t j = 0; j < i; ++j) {
        if (keys[j] == keys[i]) {
          return absl::InvalidArgumentError(
              absl::StrCat("outbound entry ", items[i].job->event.id, " twice in one finish"));
        }
      }
    }
  }
  rocksdb::WriteBatch b;
  for (size_t i = 0; i < items.size(); ++i) {
    const OutboundFinish what = items[i].what;
    OutboundRecord& r = records[i];
    switch (what) {
      case OutboundFinish::kSent:
        b.Delete(m.db->cf(storage::kCfOutbound), keys[i]);
        break;
      case OutboundFinish::kRetry:
      case OutboundFinish::kFailed:
      case OutboundFinish::kDeferred:
        if (what != OutboundFinish::kDeferred) ++r.attempts;
        r.state =
            what == OutboundFinish::kFailed ? OutboundState::kFailed : OutboundState::kPending;
        r.next_attempt_ms = items[i].next_attempt_ms;
        if (what != OutboundFinish::kDeferred || r.last_error.empty()) {
          r.last_error = items[i].error.substr(0, limits::kDeliveryErrorBytesMax);
        }
        b.Put(m.db->cf(storage::kCfOutbound), keys[i], EncodeOutbound(r));
        break;
    }
  }
  // Synced, as a member of the committer's next group (Db::Write with sync): while the
  // shop is busy the settle rides in a group the orders and payments fill anyway, so it
  // costs no fsync of its own, and the workers never write to RocksDB themselves. They did,
  // unsynced, until issue 14's last measurements: a worker at nice 19 that led one of
  // RocksDB's write groups and was preempted stalled the committer's synced write queued
  // behind it, and orders/s with outbound on fell to 0.82-0.85 of off
  // (tools/bench-outbound.sh); synced settles gave 0.93-0.98 in the same runs. Being synced,
  // a sent event is not sent again after a power cut either (only after a crash between
  // the send and this write).
  KV_CRASH_POINT("outbound.before_finish");
  absl::Status s = m.db->Write(&b);
  if (s.ok()) KV_CRASH_POINT("outbound.after_finish");
  MutexLock l(&m.outbox_mu);
  for (size_t i = 0; i < items.size(); ++i) {
    auto it = m.outbox.find(keys[i]);
    if (it == m.outbox.end()) continue;
    if (!s.ok()) {
      // Nothing written: the entry is due again after a second (the work stays in the log).
      it->second.leased = false;
      it->second.next_attempt_ms = m.NowMs() + 1000;
      m.outbox_due[KindIndex(records[i].kind)].emplace(it->second.next_attempt_ms, keys[i]);
      continue;
    }
    m.OutboxErase(keys[i]);
    if (items[i].what != OutboundFinish::kSent) m.OutboxPut(keys[i], records[i]);
  }
  return s;
}

// --- admin ------------------------------------------------------------------------------

Result<std::vector<OutboundEvent>> Shop::ListOutbound(std::optional<OutboundState> state,
                                                      std::string_view order_id) {
  std::string prefix;
  if (!order_id.empty()) {
    std::string oid;
    if (!ParseOrderId(order_id, &oid)) return {Refusal::kBadRequest, "order_id is malformed"};
    prefix = storage::OutboundPrefix(oid);
  }
  std::vector<OutboundEvent> out;
  absl::Status s = db_->ForEach(
      storage::kCfOutbound, prefix,
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        OutboundRecord r;
        KV_RETURN_IF_ERROR(DecodeOutboundEntry(key, value, &r));
        if (!state || r.state == *state) out.push_back(EventOf(r));
        return storage::Scan::kNext;
      });
  if (!s.ok()) return s;
  return out;
}

Result<size_t> Shop::ReplayOutbound(std::string_view event_id) {
  Impl& m = *impl_;
  std::vector<std::string> keys;
  if (!event_id.empty()) {
    std::string key;
    if (!ParseOutboundEventId(event_id, &key)) return {Refusal::kNotFound, "no such event"};
    keys.push_back(std::move(key));
  } else {
    MutexLock l(&m.outbox_mu);
    for (const auto& [key, item] : m.outbox) {
      if (item.state == OutboundState::kFailed) keys.push_back(key);
    }
    std::sort(keys.begin(), keys.end());
  }
  size_t n = 0;
  for (const std::string& key : keys) {
    OutboundRecord r;
    {
      // Failed entries are never leased; taking the lease here keeps a settle out.
      MutexLock l(&m.outbox_mu);
      auto it = m.outbox.find(key);
      if (it == m.outbox.end()) {
        if (!event_id.empty()) return {Refusal::kNotFound, "no such event"};
        continue;
      }
      if (it->second.state != OutboundState::kFailed || it->second.leased) {
        if (!event_id.empty()) return {Refusal::kInvalidState, "the event has not failed"};
        continue;
      }
      it->second.leased = true;
    }
    auto v = db_->Get(storage::kCfOutbound, key);
    absl::Status s = v.status();
    if (s.ok() && !v->has_value()) s = absl::DataLossError("outbox entry missing in CF outbound");
    if (s.ok()) s = DecodeOutboundEntry(key, **v, &r);
    if (s.ok()) {
      r.state = OutboundState::kPending;
      r.attempts = 0;
      r.next_attempt_ms = m.NowMs();
      rocksdb::WriteBatch b;
      b.Put(db_->cf(storage::kCfOutbound), key, EncodeOutbound(r));
      s = db_->Write(&b);
    }
    {
      MutexLock l(&m.outbox_mu);
      auto it = m.outbox.find(key);
      if (it != m.outbox.end()) it->second.leased = false;
      if (s.ok()) m.OutboxPut(key, r);
    }
    if (!s.ok()) return s;
    ++n;
  }
  if (n > 0) m.outbox_cv.SignalAll();
  return n;
}

Result<OutboundEvent> Shop::SettleOutbound(std::string_view event_id, std::string_view reason) {
  Impl& m = *impl_;
  if (!PrintableReason(reason)) {
    return {Refusal::kBadRequest, absl::StrCat("reason must be 1..", limits::kDeliveryErrorBytesMax,
                                               " bytes of printable text")};
  }
  std::string key;
  if (!ParseOutboundEventId(event_id, &key)) return {Refusal::kNotFound, "no such event"};
  {
    MutexLock l(&m.outbox_mu);
    auto it = m.outbox.find(key);
    if (it == m.outbox.end()) return {Refusal::kNotFound, "no such event"};
    if (it->second.state == OutboundState::kSettled) {
      return {Refusal::kInvalidState, "the event is already settled"};
    }
    if (it->second.leased) {
      return {Refusal::kInvalidState, "the event is being sent right now; try again"};
    }
    if (it->second.state == OutboundState::kPending) {
      m.outbox_due[KindIndex(static_cast<OutboundKind>(key[storage::kOrderIdBytes]))].erase(
          {it->second.next_attempt_ms, key});
    }
    it->second.leased = true;
  }
  OutboundRecord r;
  auto v = db_->Get(storage::kCfOutbound, key);
  absl::Status s = v.status();
  if (s.ok() && !v->has_value()) s = absl::DataLossError("outbox entry missing in CF outbound");
  if (s.ok()) s = DecodeOutboundEntry(key, **v, &r);
  if (s.ok()) {
    r.state = OutboundState::kSettled;
    r.last_error = "settled by hand: " + std::string(reason);
    rocksdb::WriteBatch b;
    b.Put(db_->cf(storage::kCfOutbound), key, EncodeOutbound(r));
    s = db_->Write(&b);
  }
  MutexLock l(&m.outbox_mu);
  auto it = m.outbox.find(key);
  if (!s.ok()) {
    if (it != m.outbox.end()) {
      it->second.leased = false;
      if (it->second.state == OutboundState::kPending) {
        m.outbox_due[KindIndex(static_cast<OutboundKind>(key[storage::kOrderIdBytes]))].emplace(
            it->second.next_attempt_ms, key);
      }
    }
    return s;
  }
  if (it != m.outbox.end()) it->second.leased = false;
  m.OutboxErase(key);
  m.OutboxPut(key, r);
  KV_LOG(kInfo, "outbound event ", OutboundEventId(r.oid, r.kind, r.status),
         " settled by hand: ", reason);
  return EventOf(r);
}

int64_t OutboundBacklog::Unfinished() const {
  int64_t n = 0;
  for (OutboundKind k : {OutboundKind::kWebhook, OutboundKind::kMail}) {
    for (OutboundState st : {OutboundState::kPending, OutboundState::kFailed}) {
      n += count[KindIndex(k)][StateIndex(st)];
    }
  }
  return n;
}

OutboundBacklog Shop::OutboundCounts() {
  Impl& m = *impl_;
  OutboundBacklog out;
  MutexLock l(&m.outbox_mu);
  for (size_t k = 0; k < 3; ++k) {
    for (size_t s = 0; s < 4; ++s) {
      out.count[k][s] = m.outbox_counts[k][s];
      const auto& created = m.outbox_created[k][s];
      out.oldest_created_ms[k][s] = created.empty() ? 0 : *created.begin();
    }
  }
  return out;
}

void Shop::WakeOutbound() { impl_->outbox_cv.SignalAll(); }

}  // namespace kv
