// Values derived from the master key for one purpose each (domain-separated inputs to
// KeyCipher::UniqueTag), shared by the shop and `keyvend check`.
#pragma once

#include <string>
#include <string_view>

#include "storage/key_cipher.h"

namespace kv {

// The shop-wide uniqueness tag of a card key's text (CF key_tags). 16 bytes.
std::string KeyTag(const KeyCipher& c, std::string_view key_text);
// An order's secret read token: 32 hex chars, derived from the order id, never stored.
std::string OrderToken(const KeyCipher& c, std::string_view oid);
// The lookup tag of a contact (ASCII-case-insensitive). 16 bytes.
std::string ContactTag(const KeyCipher& c, std::string_view contact);
// The tag of an order's query password, bound to the order id. 16 bytes.
std::string PasswordTag(const KeyCipher& c, std::string_view oid, std::string_view password);
// The tag of a query password bound to its contact (contact_tag: ContactTag's 16 bytes), the
// value of the order's contact-index entry: a lookup computes it once, whatever the number of
// orders under the contact. 16 bytes.
std::string LookupTag(const KeyCipher& c, std::string_view contact_tag, std::string_view password);

// The tag of a client's Idempotency-Key (CF idempotency). 16 bytes.
std::string IdempotencyTag(const KeyCipher& c, std::string_view key);
// What an idempotency record is bound to (its scope): the request's contact (its 16-byte
// ContactTag), query password, client address and body fingerprint. Keyed, so the record
// holds nothing a copied data dir could brute-force a password from. 16 bytes.
std::string IdempotencyScope(const KeyCipher& c, std::string_view contact_tag,
                             std::string_view password, std::string_view client,
                             std::string_view fingerprint);

}  // namespace kv
