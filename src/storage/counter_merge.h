// The "kv.int64add" merge operator for stock counters (CF "counters").
//
// Values and operands are int64 little-endian, exactly 8 bytes. A missing base value is 0.
// A malformed operand or base (wrong size) or a sum that overflows int64 makes Merge
// return false, which RocksDB surfaces as Corruption: a bad counter is an error, never a
// silent zero. The operator never refuses on sign: the no-oversell decision is taken by
// the shop before the write (a Merge cannot refuse a write).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "rocksdb/merge_operator.h"

namespace kv::storage {

class Int64AddOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing_value,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* logger) const noexcept override;
  const char* Name() const noexcept override { return "kv.int64add"; }
};

// Encodes a counter operand / value (8 bytes LE).
std::string EncodeCounter(int64_t v);
// Decodes a stored counter value; false if it is not exactly 8 bytes.
bool DecodeCounter(const rocksdb::Slice& s, int64_t* v);

std::shared_ptr<rocksdb::MergeOperator> MakeInt64AddOperator();

}  // namespace kv::storage
