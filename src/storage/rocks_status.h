// Conversion of rocksdb::Status to absl::Status at the storage boundary.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "rocksdb/status.h"

namespace kv::storage {

// OK stays OK. Otherwise maps the RocksDB code to the closest absl code (NotFound,
// Corruption->DataLoss, IOError/NoSpace->Unavailable, Busy/TryAgain->Unavailable, ...) and
// prefixes the message with `context`. Messages never contain record values.
[[nodiscard]] absl::Status FromRocks(const rocksdb::Status& s, std::string_view context);

}  // namespace kv::storage
