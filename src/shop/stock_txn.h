// StockTxn: the one way a product's stock moves (issue 15). Every path that changes pool,
// held, owed, delivered, imported or retired — order creation, payment, expiry, cancel,
// refund, import, retire, the backorder worker — names its moves here, on the transaction of
// its write batch, instead of adjusting counters by hand.
//
// A transaction belongs to one product and one write batch:
//   1. moves (Hold, Take, Owe, Retire, DeliverFromHold, DeliverTaken, ServeOwed, ReleaseHold,
//      ReleaseOwed, Import) record the counter changes; a move that can be refused (not
//      enough stock) returns false and changes nothing; a move whose precondition is our own
//      bookkeeping (releasing a hold the order has) asserts it;
//   2. AddTo() puts the counter Merges into the batch;
//   3. after the synced write succeeded, Commit() mirrors them in memory.
// Destroyed without Commit() (the write failed, or was never made), it gives back every unit
// it took from `available`: memory is as before.
//
// `available` (= pool - held - owed - units taken by writes in flight, shop.h I1/I5):
// acquisitions (Hold, Take, Owe, Retire) lower it now, before the write, so that memory
// never overstates stock; releases (ReleaseHold, ReleaseOwed, Import) raise it in Commit();
// deliveries and backorder service leave it unchanged (they lower pool with held or owed).
//
// Not thread-safe: one thread builds and commits a transaction. Many transactions of one
// product may be open at once (the counters are atomics); the no-oversell decision is the
// compare-and-swap in Hold and Take. Moves that select keys run under the product's pool_mu
// (the caller's lock, shop_keys.cc).
#pragma once

#include <cstdint>

#include "rocksdb/write_batch.h"
#include "shop/shop.h"
#include "storage/schema.h"

namespace kv {

class StockTxn {
 public:
  explicit StockTxn(Shop::ProductState* ps) : ps_(ps) {}
  StockTxn(StockTxn&& o) noexcept;
  StockTxn(const StockTxn&) = delete;
  StockTxn& operator=(const StockTxn&) = delete;
  StockTxn& operator=(StockTxn&&) = delete;
  // Not committed: gives back the units taken from `available`.
  ~StockTxn();

  // --- acquisitions (lower `available` now) ---
  // A reserve-mode order holds q units: held += q. False (nothing changed) when fewer than
  // q are available.
  [[nodiscard]] bool Hold(int64_t q);
  // A payment without a hold takes q units to deliver from the pool (DeliverTaken). False
  // (nothing changed) when fewer than q are available.
  [[nodiscard]] bool Take(int64_t q);
  // Gives back units Take took that will not be delivered (too few keys found); at once,
  // since nothing was written for them.
  void Untake(int64_t q);
  // A paid order waits for q keys (backorder): owed += q. Never refused: `available` may go
  // below zero, and the order is served only from keys that keep every hold covered.
  void Owe(int64_t q);
  // n unsold pool keys leave for good: pool -= n, retired += n. Never refused (holds may
  // end up uncovered: their payments then find too few keys and fall back).
  void Retire(int64_t n);

  // --- deliveries (leave `available` unchanged) ---
  // An order holding q units gets q keys from the pool: held -= q, pool -= q,
  // delivered += q.
  void DeliverFromHold(int64_t q);
  // q keys taken by Take are delivered: pool -= q, delivered += q.
  void DeliverTaken(int64_t q);
  // A backorder of q keys is served (from the pool, or from keys this batch imports):
  // owed -= q, pool -= q, delivered += q. False (nothing changed) unless CanServeOwed(q).
  [[nodiscard]] bool ServeOwed(int64_t q);
  // Serving q keys keeps every open hold covered: pool' - q >= held, i.e.
  // available + (units this txn releases) + owed' >= q (primes: with this txn's changes).
  bool CanServeOwed(int64_t q) const;

  // --- releases (raise `available` in Commit) ---
  // An order's hold of q units ends without a delivery (expiry, cancel, refund, payment
  // that finds too few keys): held -= q.
  void ReleaseHold(int64_t q);
  // A backorder of q keys is refunded: owed -= q.
  void ReleaseOwed(int64_t q);
  // n fresh keys join the product: imported += n, pool += n (those this batch hands to
  // backorders leave again by ServeOwed).
  void Import(int64_t n);

  // True when no counter changes.
  bool empty() const;
  // The counter Merges of this transaction, into the batch (CF counters).
  void AddTo(rocksdb::WriteBatch* b, storage::Db* db) const;
  // After the synced write of the batch: the counters into memory, the releases into
  // `available`. Every Take must have been delivered or given back.
  void Commit();

  // --- open (not moves): the durable counters into memory, then `available` from them ---
  static void LoadCounter(Shop::ProductState* ps, storage::CounterKind kind, int64_t v);
  static void ResetAvailable(Shop::ProductState* ps);

 private:
  bool TryAcquire(int64_t q);
  void Acquire(int64_t q);

  Shop::ProductState* ps_;
  int64_t pool_ = 0, held_ = 0, owed_ = 0, delivered_ = 0, imported_ = 0, retired_ = 0;
  int64_t acquired_ = 0;  // units taken from `available` (given back on abort)
  int64_t taken_ = 0;     // of those, Take units not yet delivered
  int64_t release_ = 0;   // units added to `available` in Commit
  bool done_ = false;     // committed, or moved from
};

}  // namespace kv
