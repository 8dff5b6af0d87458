#include "app/backup_online.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "simdjson.h"

namespace kv {
namespace {

// Reads a member, leaving the output untouched when it is absent or of another type.
template <typename T>
void Get(simdjson::dom::object& o, const char* name, T* out) {
  T v;
  if (o[name].get(v) == simdjson::SUCCESS) *out = v;
}

void GetString(simdjson::dom::object& o, const char* name, std::string* out) {
  std::string_view v;
  if (o[name].get(v) == simdjson::SUCCESS) *out = std::string(v);
}

}  // namespace

bool ParseShopUrl(const std::string& url, std::string* normalized) {
  static const std::regex kUrl(R"(^(https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5})/?$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) return false;
  *normalized = m[1].str();
  return true;
}

absl::StatusOr<OnlineBackupReply> RequestOnlineBackup(const std::string& url,
                                                      const std::string& admin_token,
                                                      int64_t timeout_seconds) {
  httplib::Client client(url);
  if (!client.is_valid()) return absl::InvalidArgumentError(absl::StrCat("bad URL ", url));
  client.set_connection_timeout(10, 0);
  client.set_read_timeout(static_cast<time_t>(timeout_seconds), 0);
  client.set_write_timeout(10, 0);
  client.set_keep_alive(false);
  client.set_bearer_token_auth(admin_token);
  httplib::Result res = client.Post("/api/v1/admin/backups", "", "application/json");
  if (!res) {
    const httplib::Error e = res.error();
    if (e == httplib::Error::Read) {
      return absl::UnavailableError(
          absl::StrCat("no answer from ", url, " within ", timeout_seconds,
                       " s (the backup may still finish: check with keyvend-backup list, or GET "
                       "/api/v1/admin/backups)"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot reach the shop at ", url, ": ", httplib::to_string(e)));
  }
  OnlineBackupReply r;
  r.status = res->status;
  simdjson::dom::parser parser;
  simdjson::padded_string body(res->body);
  simdjson::dom::object root;
  if (parser.parse(body).get(root) != simdjson::SUCCESS) {
    return absl::DataLossError(absl::StrCat("the answer from ", url, " (HTTP ", res->status,
                                            ") is not JSON; is this a keyvend shop?"));
  }
  if (r.status != 201) {
    simdjson::dom::object err;
    if (root["error"].get(err) == simdjson::SUCCESS) {
      GetString(err, "code", &r.error_code);
      GetString(err, "message", &r.error_message);
    }
    return r;
  }
  simdjson::dom::object b;
  if (root["backup"].get(b) != simdjson::SUCCESS) {
    return absl::DataLossError("the shop's 201 answer has no \"backup\" object");
  }
  GetString(b, "id", &r.id);
  GetString(b, "created_at", &r.created_at);
  GetString(b, "source", &r.source);
  GetString(b, "key_check", &r.key_check_hex);
  Get(b, "size_bytes", &r.size_bytes);
  Get(b, "files", &r.files);
  Get(b, "products", &r.products);
  Get(b, "keys", &r.keys);
  Get(b, "keys_in_pool", &r.keys_in_pool);
  Get(b, "orders", &r.orders);
  GetString(root, "backup_dir", &r.backup_dir);
  Get(root, "duration_ms", &r.duration_ms);
  if (r.id.empty()) return absl::DataLossError("the shop's 201 answer has no backup id");
  return r;
}

}  // namespace kv
