#include "storage/memtable_hint.h"

namespace kv::storage {
namespace {

class HintPrefix final : public rocksdb::SliceTransform {
 public:
  explicit HintPrefix(Cf cf) : cf_(cf) {}
  const char* Name() const override { return "kv.MemtableHintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), MemtableHintPrefixBytes(cf_, Sv(key)));
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return MemtableHintPrefixBytes(cf_, Sv(key)) > 0;
  }

 private:
  static std::string_view Sv(const rocksdb::Slice& s) { return {s.data(), s.size()}; }
  const Cf cf_;
};

}  // namespace

size_t MemtableHintPrefixBytes(Cf cf, std::string_view key) {
  switch (cf) {
    case kCfOrders:
    case kCfOutbound:
    case kCfPayAttempts:
      return key.size() >= kOrderIdBytes ? 1 : 0;
    case kCfDeliveryLog:
      return key.size() == kU64KeyBytes ? 1 : 0;
    case kCfPool:
      return key.size() == kPoolKeyBytes ? 8 : 0;
    case kCfOrderIndex:
      if (key.empty()) return 0;
      switch (key[0]) {
        case kIdxExpiry:
          return key.size() == kExpiryIndexKeyBytes ? 1 : 0;
        case kIdxStatus:
          return key.size() == kStatusIndexKeyBytes ? 2 : 0;
        case kIdxBackorder:
          return key.size() == kBackorderIndexKeyBytes ? 9 : 0;
        default:
          return 0;  // 'c': one hint per buyer would be unbounded
      }
    default:
      return 0;
  }
}

std::shared_ptr<const rocksdb::SliceTransform> MemtableHintExtractor(Cf cf) {
  switch (cf) {
    case kCfOrders:
    case kCfOutbound:
    case kCfPayAttempts:
    case kCfDeliveryLog:
    case kCfPool:
    case kCfOrderIndex:
      return std::make_shared<HintPrefix>(cf);
    default:
      return nullptr;
  }
}

}  // namespace kv::storage
