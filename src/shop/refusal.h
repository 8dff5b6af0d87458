// Domain refusals: the stable, numbered outcomes of the shop that are part of the API.
// Their names ARE the HTTP error codes (SPEC §4). Infrastructure failures are not
// refusals; they travel as absl::Status (STYLE.md: two error channels).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "base/log.h"

namespace kv {

// Numbers are stable: never renumber, only append.
enum class Refusal : uint8_t {
  kBadRequest = 1,       // a field is missing, malformed or out of range
  kInvalidQuantity = 2,  // quantity < 1 or above the shop-wide maximum
  kProductNotFound = 3,
  kOrderNotFound = 4,  // also: wrong token (indistinguishable by design)
  kOutOfStock = 5,
  kProductInactive = 6,
  kQuantityLimit = 7,  // above the product's max_per_order
  kInvalidState = 8,   // the order's state does not allow the operation
  kIdempotencyConflict = 9,
  kPendingLimit = 10,  // hoarding guard
  kNotFound = 11,      // some other named thing (e.g. a key batch) does not exist
  kRateLimited = 12,   // too many failed lookups of this contact or order (HTTP 429,
                       // with retry_after_seconds)
};

// The API error code ("out_of_stock", ...). Never empty.
std::string_view RefusalCode(Refusal r);

// The outcome of a domain call: a value, a refusal (with a human message that never holds
// a card key), or an infrastructure error. Exactly one is set. [[nodiscard]]: a caller
// that drops one has dropped a refusal or an error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Refusal r, std::string message = {}, int64_t retry_after_seconds = 0)
      : v_(RefusalBox{r, std::move(message), retry_after_seconds}) {}
  // An infrastructure error; an OK status here is our bug (aborts, in every build).
  Result(absl::Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    KV_CHECK(!std::get<2>(v_).ok(), "Result built from an OK status");
  }

  bool ok() const { return v_.index() == 0; }
  bool refused() const { return v_.index() == 1; }
  bool failed() const { return v_.index() == 2; }

  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Refusal refusal() const { return std::get<1>(v_).refusal; }
  const std::string& message() const { return std::get<1>(v_).message; }
  // For a refusal that passes with time (kRateLimited): seconds until a retry may succeed;
  // 0 otherwise.
  int64_t retry_after_seconds() const { return std::get<1>(v_).retry_after_seconds; }
  const absl::Status& status() const { return std::get<2>(v_); }

 private:
  struct RefusalBox {
    Refusal refusal;
    std::string message;
    int64_t retry_after_seconds = 0;
  };
  std::variant<T, RefusalBox, absl::Status> v_;
};

}  // namespace kv
