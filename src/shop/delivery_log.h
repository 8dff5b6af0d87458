// The delivery log read in log order: the one place its keys (U64Key(log_seq), CF
// delivery_log) and values (DeliveryEntry) are decoded for a scan.
#pragma once

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shop/records.h"
#include "storage/db.h"

namespace kv {

// A visitor: one entry, decoded, with log_seq set from its key; answers as a Db::ForEach
// visitor does (kNext, kStop, or an error that ends the scan).
using DeliveryFn = absl::FunctionRef<absl::StatusOr<storage::Scan>(DeliveryEntry& e)>;

// Visits every delivery-log entry in log order. A malformed key or value ends the scan with
// DataLoss; a read error ends it with the iterator's status. Thread-safe (reads only).
[[nodiscard]] absl::Status ForEachDelivery(const storage::Db& db, DeliveryFn fn);

}  // namespace kv
