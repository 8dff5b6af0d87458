#include "storage/counter_merge.h"

#include "base/coding.h"

namespace kv::storage {

std::string EncodeCounter(int64_t v) {
  std::string s;
  PutFixed64LE(&s, static_cast<uint64_t>(v));
  return s;
}

bool DecodeCounter(const rocksdb::Slice& s, int64_t* v) {
  if (s.size() != 8) return false;
  *v = static_cast<int64_t>(DecodeFixed64LE(s.data()));
  return true;
}

bool Int64AddOperator::Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing_value,
                             const rocksdb::Slice& value, std::string* new_value,
                             rocksdb::Logger* /*logger*/) const noexcept {
  int64_t base = 0;
  if (existing_value != nullptr && !DecodeCounter(*existing_value, &base)) return false;
  int64_t operand;
  if (!DecodeCounter(value, &operand)) return false;
  int64_t sum;
  if (__builtin_add_overflow(base, operand, &sum)) return false;
  new_value->clear();
  PutFixed64LE(new_value, static_cast<uint64_t>(sum));
  return true;
}

std::shared_ptr<rocksdb::MergeOperator> MakeInt64AddOperator() {
  return std::make_shared<Int64AddOperator>();
}

}  // namespace kv::storage
