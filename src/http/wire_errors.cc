#include "http/wire_errors.h"

namespace kv::http {

Wire WireFor(Refusal r) {
  switch (r) {
    case Refusal::kBadRequest:
      return Wire::kBadRequest;
    case Refusal::kInvalidQuantity:
      return Wire::kInvalidQuantity;
    case Refusal::kProductNotFound:
      return Wire::kProductNotFound;
    case Refusal::kOrderNotFound:
      return Wire::kOrderNotFound;
    case Refusal::kOutOfStock:
      return Wire::kOutOfStock;
    case Refusal::kProductInactive:
      return Wire::kProductInactive;
    case Refusal::kQuantityLimit:
      return Wire::kQuantityLimit;
    case Refusal::kInvalidState:
      return Wire::kInvalidState;
    case Refusal::kIdempotencyConflict:
      return Wire::kIdempotencyConflict;
    case Refusal::kPendingLimit:
      return Wire::kPendingLimit;
    case Refusal::kNotFound:
      return Wire::kNotFound;
    case Refusal::kRateLimited:
      return Wire::kRateLimited;
  }
  return Wire::kInternal;
}

}  // namespace kv::http
