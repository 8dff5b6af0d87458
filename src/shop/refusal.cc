#include "shop/refusal.h"

namespace kv {

std::string_view RefusalCode(Refusal r) {
  switch (r) {
    case Refusal::kBadRequest:
      return "bad_request";
    case Refusal::kInvalidQuantity:
      return "invalid_quantity";
    case Refusal::kProductNotFound:
      return "product_not_found";
    case Refusal::kOrderNotFound:
      return "order_not_found";
    case Refusal::kOutOfStock:
      return "out_of_stock";
    case Refusal::kProductInactive:
      return "product_inactive";
    case Refusal::kQuantityLimit:
      return "quantity_limit";
    case Refusal::kInvalidState:
      return "invalid_state";
    case Refusal::kIdempotencyConflict:
      return "idempotency_conflict";
    case Refusal::kPendingLimit:
      return "pending_limit";
    case Refusal::kNotFound:
      return "not_found";
    case Refusal::kRateLimited:
      return "rate_limited";
  }
  return "internal";
}

}  // namespace kv
