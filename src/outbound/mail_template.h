// The buyer's mail text from templates (issue 14): data/mail/order_delivered.<lang>.txt (with
// the keys) and order_delivered_link.<lang>.txt (email_keys = false: only the order link),
// for lang "en" and "zh-CN".
//
// A template file is UTF-8: its first line is the subject, the second line is empty, the rest
// is the body. Placeholders {order_id} {product} {quantity} {keys} {order_url} are replaced in
// one pass (a substituted value is never scanned again, so a key that reads "{order_url}"
// stays that text); any other {...} is left as written. {keys} is the keys, one per line.
//
// The defaults are compiled in from data/mail at build time. A shop may override any of the
// four files by putting a file of the same name in its template directory (the lead's
// option, e.g. `mail_template_dir`); a file missing there falls back to the compiled-in one.
// Every template is checked when loaded: the keys variant must have {keys} in its body and
// not in its subject; the link variant must have {order_url} and must NOT have {keys}
// anywhere, so `email_keys = false` can never mail a key whatever the override says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kv::outbound {

inline constexpr size_t kMailTemplateBytesMax = 64 * 1024;

enum class MailKind { kWithKeys, kLinkOnly };

struct MailFields {
  std::string order_id;
  std::string product;
  uint32_t quantity = 0;
  std::vector<std::string> keys;  // kWithKeys only; ignored for kLinkOnly
  std::string order_url;
};

struct RenderedMail {
  std::string subject;  // one line: CR, LF and other controls in values became spaces
  std::string body;
};

class MailTemplates {
 public:
  // The compiled-in templates, each overridden by `override_dir`/<file name> when that file
  // exists ("" = none). Errors: InvalidArgument naming the file (unreadable, too big, not
  // UTF-8, malformed, a missing or forbidden placeholder).
  static absl::StatusOr<MailTemplates> Load(const std::string& override_dir);

  // The mail for `language` ("zh-CN", "zh", "zh-Hans..." -> zh-CN; anything else -> en).
  // Thread-safe (const).
  RenderedMail Render(MailKind kind, std::string_view language, const MailFields& fields) const;

 private:
  struct Template {
    std::string subject;
    std::string body;
  };
  // [kind][language]: kind 0 = with keys, 1 = link only; language 0 = en, 1 = zh-CN.
  Template t_[2][2];
};

}  // namespace kv::outbound
