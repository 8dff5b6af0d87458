// The storefront and the admin console (issue 12): page shells and their files, served by
// the I/O loop from the asset table in memory (web/assets.h) — no worker, no disk, no
// outside origin. Route class kStatic: a rate limit and in-flight cap of their own.
//
// Every page and file carries the same strict headers: a Content-Security-Policy that
// allows only this origin's scripts, styles, images and fetches (no inline script or
// style, no eval, no framing, forms post only here), nosniff, and no Referer (order links
// carry their token in the fragment, which a Referer never holds, but a page's own URL
// must not leak either). Shells are never stored (the order page shows keys); files are
// revalidated by ETag (names carry no version).
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "http/server_internal.h"

namespace kv::http {
namespace {

constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

}  // namespace

void SetStrictPageHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Frame-Options", "DENY");
}

namespace {

void AnswerAsset(Ctx& c, const web::Asset& a, const char* cache_control, const char* vary) {
  SetStrictPageHeaders(c.res);
  c.res.set_header("Cache-Control", cache_control);
  c.res.set_header("Vary", vary);
  c.res.set_header("ETag", a.etag);
  if (c.req.has_header("If-None-Match") &&
      web::NoneMatchHits(c.req.get_header_value("If-None-Match"), a.etag)) {
    c.res.status = 304;  // no body, no Content-Type (response_writer.h)
    return;
  }
  c.res.status = 200;
  if (!a.gzip.empty() && web::AcceptsGzip(c.req.get_header_value("Accept-Encoding"))) {
    c.res.set_header("Content-Encoding", "gzip");
    c.res.set_content(a.gzip, a.content_type.c_str());
  } else {
    c.res.set_content(a.body, a.content_type.c_str());
  }
}

}  // namespace

void Server::Impl::RegisterWebRoutes() {
  auto built = web::AssetTable::BuildEmbedded();
  KV_CHECK(built.ok(), "the embedded web assets: ", built.status().ToString());
  assets = *std::move(built);
  const web::AssetTable* t = assets.get();
  const auto shell = [t](web::Shell s) {
    return [t, s](Ctx& c) {
      const web::Lang lang = web::PickLanguage(c.req.get_header_value("Accept-Language"));
      AnswerAsset(c, t->Page(s, lang), "no-store", "Accept-Encoding, Accept-Language");
    };
  };
  const auto file = [t](Ctx& c) {
    // /assets/{a} or /assets/{a}/{b}: the table holds only its own names, so "..", an
    // encoded slash or anything else unknown is simply not found.
    std::string path = c.params[0];
    if (c.params.size() > 1) absl::StrAppend(&path, "/", c.params[1]);
    const web::Asset* a = t->Find(path);
    if (a == nullptr) return WriteError(c.res, MakeError(Wire::kNotFound, "no such file"));
    AnswerAsset(c, *a, "no-cache", "Accept-Encoding");
  };
  constexpr RouteClass kStatic = RouteClass::kStatic;
  constexpr BodyKind kNoBody = BodyKind::kNone;
  constexpr Auth kPublic = Auth::kPublic;
  constexpr Exec kInline = Exec::kInline;
  for (const char* p : {"/", "/p/{product_id}", "/order/{order_id}", "/lookup"}) {
    router.Add({"GET", p, kStatic, kNoBody, kPublic, kInline}, shell(web::Shell::kShop));
  }
  for (const char* p : {"/admin", "/admin/{page}", "/admin/{page}/{id}"}) {
    router.Add({"GET", p, kStatic, kNoBody, kPublic, kInline}, shell(web::Shell::kAdmin));
  }
  // Browsers ask for /favicon.ico on their own: the same icon as the pages' <link rel=icon>.
  router.Add({"GET", "/favicon.ico", kStatic, kNoBody, kPublic, kInline}, [t](Ctx& c) {
    const web::Asset* a = t->Find("favicon.svg");
    if (a == nullptr) return WriteError(c.res, MakeError(Wire::kNotFound, "no such file"));
    AnswerAsset(c, *a, "no-cache", "Accept-Encoding");
  });
  router.Add({"GET", "/assets/{file}", kStatic, kNoBody, kPublic, kInline}, file);
  router.Add({"GET", "/assets/{dir}/{file}", kStatic, kNoBody, kPublic, kInline}, file);
}

}  // namespace kv::http
