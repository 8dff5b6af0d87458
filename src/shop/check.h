// `keyvend check`: an offline proof of SPEC §2's invariants on a stopped shop's data dir.
// It only reads; it never repairs. Violation texts name products, orders, payments and key
// sequence numbers — never a card key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/db.h"
#include "storage/key_cipher.h"

namespace kv {

struct [[nodiscard]] CheckReport {
  std::vector<std::string> violations;  // empty: every invariant holds
  uint64_t products = 0;
  uint64_t orders = 0;
  uint64_t payments = 0;
  uint64_t keys_in_pool = 0;
  uint64_t keys_delivered = 0;
  uint64_t log_entries = 0;
  uint64_t pay_attempts = 0;  // CF pay_attempts records (issue 13), each parsed
  uint64_t outbound = 0;      // CF outbound entries (issue 14), each parsed
};

// Verifies, by full scans:
//  - per product, every durable counter (pool, held, owed, delivered, imported, retired)
//    equals its recount, and imported = pool + delivered + retired;
//  - no key is attached to two orders, and no delivered key is still in the pool;
//  - every stored key decrypts under the master key and owns its uniqueness tag;
//  - every paid order is delivered, backordered, refund_due or refunded (keys are assigned
//    in the payment's batch): an order left `paid`, or a `pending` or `failed` delivery-log
//    entry (the removed write-ahead path; Shop::Open refuses such a dir), is reported;
//    holds only on pending (or such paid) orders;
//  - every payment matches its order or is flagged for refund;
//  - the order indexes and the backorder queue agree with the orders.
// Returns an error only when the scan itself fails (I/O, undecodable record).
absl::StatusOr<CheckReport> CheckShop(const storage::Db& db, const KeyCipher& cipher);

}  // namespace kv
