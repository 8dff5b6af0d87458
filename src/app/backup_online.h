// `keyvend-backup create --url`: asks a running shop for an online backup through its admin
// API (POST /api/v1/admin/backups) and reads the answer. Uses cpp-httplib's client only —
// never keyvend's HTTP layer (tools link storage and shop, not http).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace kv {

// What the shop answered to a backup request.
struct OnlineBackupReply {
  int status = 0;  // HTTP status
  // From a 201: the backup. From an error answer: code and message.
  std::string id, created_at, source, key_check_hex, backup_dir;
  uint64_t size_bytes = 0, files = 0, products = 0, keys = 0, keys_in_pool = 0, orders = 0;
  int64_t duration_ms = 0;
  std::string error_code, error_message;
};

// "http://HOST:PORT" or "https://HOST:PORT" (one trailing '/' allowed, no path): true and
// the normalized form in *normalized; false otherwise.
bool ParseShopUrl(const std::string& url, std::string* normalized);

// POSTs the request with `Authorization: Bearer <admin_token>` and waits up to
// timeout_seconds for the answer (a backup of a large shop takes a while). Outcomes: the
// reply (any HTTP status; a 201's body parsed); Unavailable when the shop cannot be reached
// or the answer does not come in time (message says which); DataLoss when the answer is
// not the JSON the API documents.
absl::StatusOr<OnlineBackupReply> RequestOnlineBackup(const std::string& url,
                                                      const std::string& admin_token,
                                                      int64_t timeout_seconds);

}  // namespace kv
