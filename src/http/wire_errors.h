// The API's error codes (SPEC §4), written once. Each row: the code on the wire, the HTTP
// status it travels with, and what it means. Every error response of src/http is built
// from a row (MakeError, ErrorFor), so no code or status is spelled anywhere else; a domain
// refusal's code is its RefusalCode (shop/refusal.h), and a test keeps the two in step.
// Errors always have the shape {"error": {"code": ..., "message": ...}}; 429 and 503 carry
// Retry-After (WriteError).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shop/refusal.h"

namespace kv::http {

enum class Wire : uint8_t {
  kBadRequest,
  kUnknownField,
  kInvalidQuantity,
  kInvalidKeyLine,
  kUnauthorized,
  kBadSignature,
  kNotFound,
  kProductNotFound,
  kOrderNotFound,
  kRequestTimeout,
  kOutOfStock,
  kProductInactive,
  kQuantityLimit,
  kInvalidState,
  kIdempotencyConflict,
  kPayloadTooLarge,
  kUnsupportedMediaType,
  kRateLimited,
  kPendingLimit,
  kHeaderTooLarge,
  kInternal,
  kNotImplemented,
  kOverloaded,
  kNotReady,
  kStorageUnavailable,
  kCount
};

struct WireErrorRow {
  Wire wire;
  std::string_view code;     // stable snake_case, part of the API
  int status;                // HTTP status
  std::string_view meaning;  // for ARCHITECTURE/SPEC readers; never sent
};

// Indexed by Wire (checked at compile time below).
inline constexpr WireErrorRow kWireErrors[] = {
    {Wire::kBadRequest, "bad_request", 400,
     "malformed JSON or request, wrong type, missing field, bad value"},
    {Wire::kUnknownField, "unknown_field", 400, "a body field the route does not know"},
    {Wire::kInvalidQuantity, "invalid_quantity", 400,
     "quantity < 1 or above the shop-wide maximum"},
    {Wire::kInvalidKeyLine, "invalid_key_line", 400, "a key import the shop could not read"},
    {Wire::kUnauthorized, "unauthorized", 401, "admin route without the admin token"},
    {Wire::kBadSignature, "bad_signature", 401,
     "notify: missing, malformed, stale or wrong signature"},
    {Wire::kNotFound, "not_found", 404, "no such route, or some other named thing (a key batch)"},
    {Wire::kProductNotFound, "product_not_found", 404, "no such product"},
    {Wire::kOrderNotFound, "order_not_found", 404, "no such order, or a wrong token"},
    {Wire::kRequestTimeout, "request_timeout", 408, "the header or body did not arrive in time"},
    {Wire::kOutOfStock, "out_of_stock", 409, "not enough keys"},
    {Wire::kProductInactive, "product_inactive", 409, "the product is not for sale"},
    {Wire::kQuantityLimit, "quantity_limit", 409, "above the product's max_per_order"},
    {Wire::kInvalidState, "invalid_state", 409, "the order's state does not allow it"},
    {Wire::kIdempotencyConflict, "idempotency_conflict", 409,
     "an Idempotency-Key reused for another request"},
    {Wire::kPayloadTooLarge, "payload_too_large", 413, "a body over the route's limit"},
    {Wire::kUnsupportedMediaType, "unsupported_media_type", 415,
     "a Content-Encoding other than identity"},
    {Wire::kRateLimited, "rate_limited", 429, "over a rate limit or a failed-lookup lockout"},
    {Wire::kPendingLimit, "pending_limit", 429,
     "too many open orders awaiting payment (hoarding guard)"},
    {Wire::kHeaderTooLarge, "header_too_large", 431, "a request header over its byte or line cap"},
    {Wire::kInternal, "internal", 500, "anything else (logged, never echoed)"},
    {Wire::kNotImplemented, "not_implemented", 501, "a transfer coding other than chunked"},
    {Wire::kOverloaded, "overloaded", 503, "the route class is at its in-flight cap"},
    {Wire::kNotReady, "not_ready", 503, "the shop is not ready (draining, not started)"},
    {Wire::kStorageUnavailable, "storage_unavailable", 503, "storage failed; retry later"},
};
static_assert(std::size(kWireErrors) == static_cast<size_t>(Wire::kCount));
constexpr bool WireRowsInEnumOrder() {
  for (size_t i = 0; i < std::size(kWireErrors); ++i) {
    if (static_cast<size_t>(kWireErrors[i].wire) != i) return false;
  }
  return true;
}
static_assert(WireRowsInEnumOrder(), "kWireErrors[i] must be the row of Wire(i)");

inline const WireErrorRow& RowOf(Wire w) { return kWireErrors[static_cast<size_t>(w)]; }

// The row a domain refusal travels as.
Wire WireFor(Refusal r);

// One error response: its status and code from the table, a message for people.
struct HttpError {
  int status;
  std::string code;
  std::string message;
  int64_t retry_after_seconds = 1;  // sent with 429 and 503
};
inline HttpError MakeError(Wire w, std::string message, int64_t retry_after_seconds = 1) {
  const WireErrorRow& row = RowOf(w);
  return HttpError{row.status, std::string(row.code), std::move(message), retry_after_seconds};
}

}  // namespace kv::http
