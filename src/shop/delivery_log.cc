#include "shop/delivery_log.h"

#include "base/status_macros.h"
#include "storage/schema.h"

namespace kv {

absl::Status ForEachDelivery(const storage::Db& db, DeliveryFn fn) {
  return db.ForEach(
      storage::kCfDeliveryLog, "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<storage::Scan> {
        auto seq = storage::ParseU64Key(key);
        if (!seq) return absl::DataLossError("malformed delivery-log key");
        DeliveryEntry e;
        KV_RETURN_IF_ERROR(DecodeDelivery(value, &e));
        e.log_seq = *seq;
        return fn(e);
      });
}

}  // namespace kv
