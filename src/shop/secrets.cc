#include "shop/secrets.h"

#include "base/coding.h"

namespace kv {
namespace {

std::string Tagged(const KeyCipher& c, std::string_view domain, std::string_view a,
                   std::string_view b = {}) {
  std::string in;
  in.reserve(domain.size() + a.size() + b.size());
  in.append(domain);
  in.append(a);
  in.append(b);
  return c.UniqueTag(in);
}

}  // namespace

std::string KeyTag(const KeyCipher& c, std::string_view key_text) {
  return Tagged(c, "k:", key_text);
}

std::string OrderToken(const KeyCipher& c, std::string_view oid) {
  return HexEncode(Tagged(c, "t:", oid));
}

std::string ContactTag(const KeyCipher& c, std::string_view contact) {
  std::string lower(contact);
  for (char& ch : lower) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
  }
  return Tagged(c, "c:", lower);
}

std::string PasswordTag(const KeyCipher& c, std::string_view oid, std::string_view password) {
  return Tagged(c, "p:", oid, password);
}

std::string LookupTag(const KeyCipher& c, std::string_view contact_tag, std::string_view password) {
  return Tagged(c, "q:", contact_tag, password);  // the contact tag has a fixed size
}

std::string IdempotencyTag(const KeyCipher& c, std::string_view key) {
  return Tagged(c, "i:", key);
}

std::string IdempotencyScope(const KeyCipher& c, std::string_view contact_tag,
                             std::string_view password, std::string_view client,
                             std::string_view fingerprint) {
  std::string in = "s:";
  PutLengthPrefixed(&in, contact_tag);
  PutLengthPrefixed(&in, password);
  PutLengthPrefixed(&in, client);
  in.append(fingerprint);
  return c.UniqueTag(in);
}

}  // namespace kv
