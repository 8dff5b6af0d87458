#include "web/assets.h"

#include <openssl/evp.h>
#include <zlib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/log.h"

namespace kv::web {
namespace {
// Debian's abseil has a string_view of its own.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }
}  // namespace

std::string_view ContentTypeFor(std::string_view name) {
  struct Type {
    const char* ext;
    const char* type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
  };
  for (const Type& t : kTypes) {
    if (absl::EndsWith(A(name), t.ext)) return t.type;
  }
  return {};
}

std::string Gzip(std::string_view in) {
  z_stream z{};
  // 15 + 16: a gzip wrapper around the deflate stream; level 9 (once, at start).
  KV_CHECK(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  KV_CHECK(rc == Z_STREAM_END, "deflate: ", rc);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

namespace {

std::string WeakEtag(std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  static const char kEmpty[1] = {0};
  EVP_Digest(body.empty() ? kEmpty : body.data(), body.size(), md, &n, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string e = "W/\"";
  for (int i = 0; i < 8; ++i) {
    e.push_back(kHex[md[i] >> 4]);
    e.push_back(kHex[md[i] & 15]);
  }
  e.push_back('"');
  return e;
}

Asset MakeAsset(std::string_view type, std::string body) {
  Asset a;
  a.content_type = std::string(type);
  a.etag = WeakEtag(body);
  std::string gz = Gzip(body);
  if (gz.size() < body.size()) a.gzip = std::move(gz);
  a.body = std::move(body);
  return a;
}

bool GoodName(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.back() == '/') return false;
  for (absl::string_view seg : absl::StrSplit(A(name), '/')) {
    if (seg.empty() || seg == "." || seg == "..") return false;
  }
  for (char ch : name) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
          ch == '_' || ch == '/')) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AssetTable>> AssetTable::Build(const EmbeddedFile* files,
                                                              size_t count) {
  std::unique_ptr<AssetTable> t(new AssetTable());
  const EmbeddedFile* shells[2] = {nullptr, nullptr};
  for (size_t i = 0; i < count; ++i) {
    const EmbeddedFile& f = files[i];
    const std::string_view name(f.name);
    if (!GoodName(name))
      return absl::InvalidArgumentError(absl::StrCat("bad asset name ", A(name)));
    const std::string_view type = ContentTypeFor(name);
    if (type.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("no Content-Type for asset ", A(name)));
    }
    if (name == "shop.html") shells[0] = &f;
    if (name == "admin.html") shells[1] = &f;
    if (name == "shop.html" || name == "admin.html") continue;
    if (!t->files_.emplace(std::string(name), MakeAsset(type, std::string(f.bytes))).second) {
      return absl::InvalidArgumentError(absl::StrCat("asset ", A(name), " twice"));
    }
  }
  for (int s = 0; s < 2; ++s) {
    if (shells[s] == nullptr) {
      return absl::InvalidArgumentError(s == 0 ? "no shop.html" : "no admin.html");
    }
    for (int l = 0; l < kLangCount; ++l) {
      t->shells_[s][l] = MakeAsset(
          ContentTypeFor(".html"),
          absl::StrReplaceAll(A(shells[s]->bytes), {{"{{lang}}", LangTag(static_cast<Lang>(l))}}));
    }
  }
  return t;
}

absl::StatusOr<std::unique_ptr<AssetTable>> AssetTable::BuildEmbedded() {
  return Build(kEmbeddedFiles, kEmbeddedFileCount);
}

const Asset* AssetTable::Find(std::string_view path) const {
  auto it = files_.find(A(path));
  return it == files_.end() ? nullptr : &it->second;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  for (absl::string_view item : absl::StrSplit(A(accept_encoding), ',', absl::SkipWhitespace())) {
    const size_t semi = item.find(';');
    const absl::string_view coding = absl::StripAsciiWhitespace(item.substr(0, semi));
    if (!absl::EqualsIgnoreCase(coding, "gzip") && !absl::EqualsIgnoreCase(coding, "x-gzip") &&
        coding != "*") {
      continue;
    }
    if (semi == absl::string_view::npos) return true;
    const absl::string_view params = item.substr(semi + 1);
    const double q = QValue(std::string_view(params.data(), params.size()));
    if (q > 0.0) return true;
  }
  return false;
}

bool NoneMatchHits(std::string_view if_none_match, std::string_view etag) {
  const absl::string_view want = absl::StripPrefix(A(etag), "W/");
  for (absl::string_view tag : absl::StrSplit(A(if_none_match), ',', absl::SkipWhitespace())) {
    tag = absl::StripAsciiWhitespace(tag);
    if (tag == "*") return true;
    if (absl::StripPrefix(tag, "W/") == want) return true;
  }
  return false;
}

}  // namespace kv::web
