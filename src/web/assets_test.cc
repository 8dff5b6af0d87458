#include "web/assets.h"

#include <string>

#include "gtest/gtest.h"
#include "kit/gunzip.h"

namespace kv::web {
namespace {

using testkit::Gunzip;

const std::string kShell = "<html lang=\"{{lang}}\"><body>" + std::string(400, 'x') + "</body>";

TEST(AssetTable, TypesGzipsAndTagsEveryFile) {
  const std::string js(3000, 'a');
  const EmbeddedFile files[] = {{"shop.html", kShell},
                                {"admin.html", kShell},
                                {"shop.js", js},
                                {"i18n/shop.en.json", "{}"},
                                {"vendor/chart.min.js", "x"}};
  auto t = AssetTable::Build(files, 5);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->size(), 3u);  // the shells are pages, not files
  const Asset* a = (*t)->Find("shop.js");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(a->body, js);
  ASSERT_FALSE(a->gzip.empty());
  EXPECT_LT(a->gzip.size(), js.size());
  EXPECT_EQ(Gunzip(a->gzip), js);
  EXPECT_EQ(a->etag.substr(0, 3), "W/\"");
  EXPECT_EQ(a->etag.size(), 3u + 16u + 1u);
  // Tiny files are not worth gzip: kept identity only.
  const Asset* tiny = (*t)->Find("vendor/chart.min.js");
  ASSERT_NE(tiny, nullptr);
  EXPECT_TRUE(tiny->gzip.empty());
  EXPECT_EQ((*t)->Find("i18n/shop.en.json")->content_type, "application/json; charset=utf-8");
  EXPECT_EQ((*t)->Find("shop.html"), nullptr);
  EXPECT_EQ((*t)->Find("../shop.js"), nullptr);
  EXPECT_EQ((*t)->Find("/shop.js"), nullptr);
  EXPECT_EQ((*t)->Find(""), nullptr);
}

TEST(AssetTable, RendersEachShellPerLanguage) {
  const EmbeddedFile files[] = {{"shop.html", kShell}, {"admin.html", "<p lang={{lang}}>"}};
  auto t = AssetTable::Build(files, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  const Asset& en = (*t)->Page(Shell::kShop, Lang::kEn);
  const Asset& zh = (*t)->Page(Shell::kShop, Lang::kZhCn);
  EXPECT_NE(en.body.find("<html lang=\"en\">"), std::string::npos);
  EXPECT_NE(zh.body.find("<html lang=\"zh-CN\">"), std::string::npos);
  EXPECT_EQ(en.body.find("{{lang}}"), std::string::npos);
  EXPECT_NE(en.etag, zh.etag);
  EXPECT_EQ(Gunzip(zh.gzip), zh.body);
  EXPECT_EQ((*t)->Page(Shell::kAdmin, Lang::kZhCn).body, "<p lang=zh-CN>");
  EXPECT_EQ((*t)->Page(Shell::kAdmin, Lang::kEn).content_type, "text/html; charset=utf-8");
}

TEST(AssetTable, RefusesWhatItCannotServe) {
  const EmbeddedFile untyped[] = {{"shop.html", kShell}, {"admin.html", kShell}, {"x.exe", "MZ"}};
  EXPECT_FALSE(AssetTable::Build(untyped, 3).ok());
  const EmbeddedFile no_admin[] = {{"shop.html", kShell}};
  EXPECT_FALSE(AssetTable::Build(no_admin, 1).ok());
  for (const char* bad : {"../a.js", "a/../b.js", "/a.js", "a//b.js", "a b.js", "a/", "./a.js"}) {
    const EmbeddedFile f[] = {{"shop.html", kShell}, {"admin.html", kShell}, {bad, "x"}};
    EXPECT_FALSE(AssetTable::Build(f, 3).ok()) << bad;
  }
  const EmbeddedFile twice[] = {
      {"shop.html", kShell}, {"admin.html", kShell}, {"a.js", "1"}, {"a.js", "2"}};
  EXPECT_FALSE(AssetTable::Build(twice, 4).ok());
}

TEST(AssetTable, TheEmbeddedFilesBuild) {
  auto t = AssetTable::BuildEmbedded();
  ASSERT_TRUE(t.ok()) << t.status();
  const Asset* chart = (*t)->Find("vendor/chart.min.js");
  ASSERT_NE(chart, nullptr);  // Debian's Chart.js, embedded at build time
  EXPECT_GT(chart->body.size(), 100000u);
  EXPECT_NE(chart->body.find("Chart.js v3"), std::string::npos);
  EXPECT_NE((*t)->Page(Shell::kShop, Lang::kZhCn).body.find("lang=\"zh-CN\""), std::string::npos);
}

TEST(AcceptsGzip, FollowsTheCodingsAndTheirQuality) {
  EXPECT_TRUE(AcceptsGzip("gzip, deflate, br"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.000"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=zzz"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=7"));  // out of range: malformed, as for languages
  EXPECT_FALSE(AcceptsGzip("gzipped, xgzip"));
}

TEST(NoneMatchHits, ComparesWeakly) {
  const std::string tag = "W/\"0123456789abcdef\"";
  EXPECT_TRUE(NoneMatchHits(tag, tag));
  EXPECT_TRUE(NoneMatchHits("\"0123456789abcdef\"", tag));
  EXPECT_TRUE(NoneMatchHits("\"x\", W/\"0123456789abcdef\"", tag));
  EXPECT_TRUE(NoneMatchHits("*", tag));
  EXPECT_FALSE(NoneMatchHits("\"0123456789abcdee\"", tag));
  EXPECT_FALSE(NoneMatchHits("", tag));
  EXPECT_FALSE(NoneMatchHits("0123456789abcdef", tag));  // unquoted is another value
}

}  // namespace
}  // namespace kv::web
