#include "shop/stock_txn.h"

#include <cassert>

#include "shop/shop_internal.h"
#include "storage/counter_merge.h"

namespace kv {

StockTxn::StockTxn(StockTxn&& o) noexcept
    : ps_(o.ps_),
      pool_(o.pool_),
      held_(o.held_),
      owed_(o.owed_),
      delivered_(o.delivered_),
      imported_(o.imported_),
      retired_(o.retired_),
      acquired_(o.acquired_),
      taken_(o.taken_),
      release_(o.release_),
      done_(o.done_) {
  o.done_ = true;  // the units are ours now
}

StockTxn::~StockTxn() {
  if (!done_ && acquired_ != 0) ps_->available += acquired_;  // nothing was written
}

bool StockTxn::TryAcquire(int64_t q) {
  assert(q > 0 && !done_);
  int64_t v = ps_->available.load(std::memory_order_relaxed);
  while (v >= q) {
    if (ps_->available.compare_exchange_weak(v, v - q, std::memory_order_acq_rel)) {
      acquired_ += q;
      return true;
    }
  }
  return false;
}

void StockTxn::Acquire(int64_t q) {
  assert(q >= 0 && !done_);
  ps_->available -= q;
  acquired_ += q;
}

bool StockTxn::Hold(int64_t q) {
  if (!TryAcquire(q)) return false;
  held_ += q;
  return true;
}

bool StockTxn::Take(int64_t q) {
  if (!TryAcquire(q)) return false;
  taken_ += q;
  return true;
}

void StockTxn::Untake(int64_t q) {
  assert(q >= 0 && q <= taken_);
  taken_ -= q;
  acquired_ -= q;
  ps_->available += q;
}

void StockTxn::Owe(int64_t q) {
  assert(q > 0);
  Acquire(q);
  owed_ += q;
}

void StockTxn::Retire(int64_t n) {
  assert(n >= 0 && ps_->pool.load() + pool_ >= n);
  Acquire(n);
  pool_ -= n;
  retired_ += n;
}

void StockTxn::DeliverFromHold(int64_t q) {
  // The order's hold is in the committed counters (it was written before this batch).
  assert(q > 0 && ps_->held.load() + held_ >= q);
  held_ -= q;
  pool_ -= q;
  delivered_ += q;
}

void StockTxn::DeliverTaken(int64_t q) {
  assert(q > 0 && q <= taken_);
  taken_ -= q;
  pool_ -= q;
  delivered_ += q;
}

bool StockTxn::CanServeOwed(int64_t q) const {
  return ps_->available.load() + release_ + ps_->owed.load() + owed_ >= q;
}

bool StockTxn::ServeOwed(int64_t q) {
  assert(q > 0 && ps_->owed.load() + owed_ >= q);  // the backorder is owed (committed)
  if (!CanServeOwed(q)) return false;
  owed_ -= q;
  pool_ -= q;
  delivered_ += q;
  return true;
}

void StockTxn::ReleaseHold(int64_t q) {
  assert(q > 0 && ps_->held.load() + held_ >= q);
  held_ -= q;
  release_ += q;
}

void StockTxn::ReleaseOwed(int64_t q) {
  assert(q > 0 && ps_->owed.load() + owed_ >= q);
  owed_ -= q;
  release_ += q;
}

void StockTxn::Import(int64_t n) {
  assert(n >= 0);
  imported_ += n;
  pool_ += n;
  release_ += n;
}

bool StockTxn::empty() const {
  return pool_ == 0 && held_ == 0 && owed_ == 0 && delivered_ == 0 && imported_ == 0 &&
         retired_ == 0;
}

void StockTxn::AddTo(rocksdb::WriteBatch* b, storage::Db* db) const {
  auto add = [&](storage::CounterKind k, int64_t v) {
    if (v != 0) {
      b->Merge(db->cf(storage::kCfCounters), storage::CounterKey(ps_->id, k),
               storage::EncodeCounter(v));
    }
  };
  add(storage::CounterKind::kPool, pool_);
  add(storage::CounterKind::kHeld, held_);
  add(storage::CounterKind::kOwed, owed_);
  add(storage::CounterKind::kDelivered, delivered_);
  add(storage::CounterKind::kImported, imported_);
  add(storage::CounterKind::kRetired, retired_);
}

void StockTxn::Commit() {
  assert(!done_ && taken_ == 0);
  done_ = true;
  ps_->pool += pool_;
  ps_->held += held_;
  ps_->owed += owed_;
  ps_->delivered += delivered_;
  ps_->imported += imported_;
  ps_->retired += retired_;
  if (release_ != 0) ps_->available += release_;  // a release: after the commit
}

void StockTxn::LoadCounter(Shop::ProductState* ps, storage::CounterKind kind, int64_t v) {
  switch (kind) {
    case storage::CounterKind::kPool:
      ps->pool = v;
      break;
    case storage::CounterKind::kHeld:
      ps->held = v;
      break;
    case storage::CounterKind::kOwed:
      ps->owed = v;
      break;
    case storage::CounterKind::kDelivered:
      ps->delivered = v;
      break;
    case storage::CounterKind::kImported:
      ps->imported = v;
      break;
    case storage::CounterKind::kRetired:
      ps->retired = v;
      break;
  }
}

void StockTxn::ResetAvailable(Shop::ProductState* ps) {
  ps->available = ps->pool.load() - ps->held.load() - ps->owed.load();
}

}  // namespace kv
