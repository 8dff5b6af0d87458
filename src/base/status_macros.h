// Early-return helpers for absl::Status / absl::StatusOr. Only for our own code paths;
// no exceptions cross module boundaries.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KV_CONCAT_INNER_(a, b) a##b
#define KV_CONCAT_(a, b) KV_CONCAT_INNER_(a, b)

// Evaluates expr (an absl::Status); returns it from the enclosing function if not OK.
#define KV_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status kv_status_ = (expr);      \
    if (!kv_status_.ok()) return kv_status_; \
  } while (0)

// lhs = value of expr (an absl::StatusOr<T>), or returns its status if not OK.
#define KV_ASSIGN_OR_RETURN(lhs, expr) \
  KV_ASSIGN_OR_RETURN_IMPL_(KV_CONCAT_(kv_statusor_, __LINE__), lhs, expr)
#define KV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
