#include "pay/reconciler.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/time_format.h"

namespace kv::pay {

std::string_view QueryStateName(QueryState s) {
  switch (s) {
    case QueryState::kPaid:
      return "paid";
    case QueryState::kNotPaid:
      return "not_paid";
    case QueryState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

Reconciler::Reconciler(Shop* shop, const Gateways* gateways, const Clock* clock,
                       ReconcilerOptions opts, Registry* metrics)
    : shop_(shop), gateways_(gateways), clock_(clock), opts_(opts) {
  if (metrics == nullptr) return;
  constexpr char kQueries[] = "keyvend_gateway_queries_total";
  constexpr char kQueriesHelp[] =
      "Payment queries the reconciler (or an admin's check-payment) sent, by gateway and "
      "answer.";
  for (Gateway* g : gateways_->all()) {
    const std::string name(g->name());
    GatewayCounters& c = counters_[name];
    c.paid = metrics->GetCounter(kQueries, kQueriesHelp, {{"gateway", name}, {"state", "paid"}});
    c.not_paid =
        metrics->GetCounter(kQueries, kQueriesHelp, {{"gateway", name}, {"state", "not_paid"}});
    c.unknown =
        metrics->GetCounter(kQueries, kQueriesHelp, {{"gateway", name}, {"state", "unknown"}});
    c.reconciled = metrics->GetCounter(
        "keyvend_gateway_reconciled_total",
        "Payments applied because a query found them (their notify never came), by gateway.",
        {{"gateway", name}});
  }
}

Reconciler::~Reconciler() { Stop(); }

std::string Reconciler::KeyOf(std::string_view order_id, std::string_view gateway) {
  std::string k(order_id);
  k.push_back('/');
  k.append(gateway);
  return k;
}

int64_t Reconciler::NowMs() const { return UnixMs(clock_->WallNow()); }

absl::Status Reconciler::Load() {
  auto all = shop_->ListPayAttempts();
  if (!all.ok()) return all.status();
  MutexLock l(&mu_);
  for (PayAttempt& a : *all) {
    Entry e;
    e.next_ms = a.started_ms + absl::ToInt64Milliseconds(opts_.after);
    std::string key = KeyOf(a.order_id, a.gateway);
    e.attempt = std::move(a);
    entries_[key] = std::move(e);
  }
  return absl::OkStatus();
}

void Reconciler::Start() {
  MutexLock l(&mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
}

void Reconciler::Stop() {
  {
    MutexLock l(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void Reconciler::Loop() {
  const auto tick = absl::ToChronoMilliseconds(opts_.tick);
  for (;;) {
    {
      MutexLock l(&mu_);
      if (!stop_) cv_.WaitFor(&mu_, tick);
      if (stop_) return;
    }
    RunOnce();
  }
}

std::optional<PayAttempt> Reconciler::Find(std::string_view order_id,
                                           std::string_view gateway) const {
  MutexLock l(&mu_);
  auto it = entries_.find(KeyOf(order_id, gateway));
  if (it == entries_.end()) return std::nullopt;
  return it->second.attempt;
}

absl::Status Reconciler::Track(PayAttempt attempt) {
  if (absl::Status s = shop_->RecordPayAttempt(attempt); !s.ok()) return s;
  Entry e;
  e.next_ms = attempt.started_ms + absl::ToInt64Milliseconds(opts_.after);
  std::string key = KeyOf(attempt.order_id, attempt.gateway);
  e.attempt = std::move(attempt);
  MutexLock l(&mu_);
  entries_[key] = std::move(e);
  return absl::OkStatus();
}

size_t Reconciler::size() const {
  MutexLock l(&mu_);
  return entries_.size();
}

void Reconciler::Drop(const PayAttempt& a) {
  if (absl::Status s = shop_->DeletePayAttempt(a.order_id, a.gateway); !s.ok()) {
    KV_LOG(kWarn, "reconciler: cannot drop the pay attempt of order ", a.order_id, " at ",
           a.gateway, ": ", std::string(s.message()));
    return;  // kept: the next look tries again
  }
  MutexLock l(&mu_);
  entries_.erase(KeyOf(a.order_id, a.gateway));
}

CheckedAttempt Reconciler::QueryOne(const PayAttempt& a) {
  CheckedAttempt out;
  out.gateway = a.gateway;
  Gateway* g = gateways_->Find(a.gateway);
  if (g == nullptr) {
    out.error = "gateway not configured";
    return out;
  }
  QueryResult q = g->Query(a.order_id, a.ref);
  out.state = q.state;
  auto c = counters_.find(a.gateway);
  const GatewayCounters* gc = c == counters_.end() ? nullptr : &c->second;
  if (q.state == QueryState::kUnknown) {
    out.error = q.error;
    if (gc != nullptr) gc->unknown->Inc();
    return out;
  }
  if (q.state == QueryState::kNotPaid) {
    if (gc != nullptr) gc->not_paid->Inc();
    return out;
  }
  if (gc != nullptr) gc->paid->Inc();
  // The gateway's word that money was received, for this order (an adapter that answered
  // for another order would be a bug: the shop records what it was told either way).
  Result<PaymentResult> r = shop_->ApplyPayment(q.notice);
  if (!r.ok()) {
    out.error = r.refused() ? r.message() : std::string(r.status().message());
    KV_LOG(kWarn, "reconciler: the payment a query of ", a.gateway, " found for order ", a.order_id,
           " was not applied: ", out.error);
    return out;
  }
  out.applied = !r->replay;
  if (out.applied) {
    if (gc != nullptr) gc->reconciled->Inc();
    KV_LOG(kInfo, "reconciler: order ", a.order_id, " paid at ", a.gateway,
           " without a notify; applied from the gateway's query");
  }
  return out;
}

size_t Reconciler::RunOnce() {
  const int64_t now = NowMs();
  std::vector<PayAttempt> due;
  {
    MutexLock l(&mu_);
    for (const auto& [key, e] : entries_) {
      if (e.next_ms <= now) due.push_back(e.attempt);
    }
  }
  size_t queries = 0;
  const int64_t window_ms = absl::ToInt64Milliseconds(opts_.window);
  for (const PayAttempt& a : due) {
    {
      MutexLock l(&mu_);
      if (stop_) break;
    }
    auto o = shop_->AdminGetOrder(a.order_id);
    if (o.refused()) {  // no such order (any more)
      Drop(a);
      continue;
    }
    if (!o.ok()) continue;  // storage trouble: next tick
    if (o->status != OrderStatus::kPendingPayment && o->status != OrderStatus::kExpired) {
      Drop(a);  // paid (by the notify or an earlier query), cancelled, ...
      continue;
    }
    if (now - a.started_ms >= window_ms) {
      Drop(a);
      continue;
    }
    const CheckedAttempt c = QueryOne(a);
    ++queries;
    MutexLock l(&mu_);
    auto it = entries_.find(KeyOf(a.order_id, a.gateway));
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    const int64_t first = absl::ToInt64Milliseconds(opts_.after);
    e.interval_ms = e.interval_ms == 0 ? first : e.interval_ms * 2;
    e.interval_ms = std::min(e.interval_ms, absl::ToInt64Milliseconds(opts_.backoff_max));
    // Paid and applied: the next look finds the order paid and drops the attempt.
    e.next_ms = (c.state == QueryState::kPaid && c.error.empty()) ? now : now + e.interval_ms;
  }
  return queries;
}

absl::StatusOr<std::vector<CheckedAttempt>> Reconciler::CheckNow(std::string_view order_id) {
  std::string raw;
  if (!ParseOrderId(order_id, &raw)) return absl::InvalidArgumentError("malformed order id");
  std::vector<PayAttempt> mine;
  {
    MutexLock l(&mu_);
    for (const auto& [key, e] : entries_) {
      if (e.attempt.order_id == order_id) mine.push_back(e.attempt);
    }
  }
  std::vector<CheckedAttempt> out;
  for (const PayAttempt& a : mine) out.push_back(QueryOne(a));
  return out;
}

}  // namespace kv::pay
