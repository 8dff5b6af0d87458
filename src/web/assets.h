// The storefront's and the admin console's files, served from memory (issue 12).
//
// Built once at start from the embedded files (embedded.h): each gets its Content-Type (by
// extension; an unknown extension fails the build of the table — a file added to
// src/web/assets without a type is a programming error every test run finds), its gzip
// (zlib level 9, kept only when smaller) and a weak ETag over its bytes. The two page
// shells (shop.html, admin.html) are rendered once per language: the literal `{{lang}}`
// becomes the language's tag. Nothing here changes after Build, so requests on any
// thread read it without a lock, and a request costs a map lookup and a copy.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "web/embedded.h"
#include "web/language.h"

namespace kv::web {

struct Asset {
  std::string content_type;
  std::string body;  // identity
  std::string gzip;  // the body gzip'ed; empty when that would not be smaller
  std::string etag;  // W/"<16 hex digits of SHA-256 of body>"
};

enum class Shell { kShop = 0, kAdmin = 1 };

class AssetTable {
 public:
  // From `count` files (names unique, relative, no "..", no leading '/'); fails on a file
  // whose extension has no type, a bad name, or a missing shell (shop.html / admin.html).
  static absl::StatusOr<std::unique_ptr<AssetTable>> Build(const EmbeddedFile* files, size_t count);
  // The compiled-in files (kEmbeddedFiles).
  static absl::StatusOr<std::unique_ptr<AssetTable>> BuildEmbedded();

  // The file at /assets/<path>, or nullptr. The shells are not served under /assets/.
  const Asset* Find(std::string_view path) const;
  // A page shell in a language.
  const Asset& Page(Shell s, Lang l) const {
    return shells_[static_cast<int>(s)][static_cast<int>(l)];
  }
  size_t size() const { return files_.size(); }

 private:
  AssetTable() = default;
  absl::flat_hash_map<std::string, Asset> files_;
  Asset shells_[2][kLangCount];
};

// The Content-Type for a file name by its extension; empty when unknown.
std::string_view ContentTypeFor(std::string_view name);

// Whether an Accept-Encoding value accepts gzip (a "gzip" or "x-gzip" coding, or "*", with
// q > 0; RFC 9110 §12.5.3).
bool AcceptsGzip(std::string_view accept_encoding);

// Whether an If-None-Match value matches `etag` (weak comparison: "*", or any listed tag
// equal once W/ prefixes are set aside).
bool NoneMatchHits(std::string_view if_none_match, std::string_view etag);

// gzip (RFC 1952) of `in` at zlib level 9.
std::string Gzip(std::string_view in);

}  // namespace kv::web
