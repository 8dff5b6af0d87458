#include "web/language.h"

#include <string>

#include "gtest/gtest.h"

namespace kv::web {
namespace {

TEST(PickLanguage, TakesTheHighestQualityOfOurLanguages) {
  EXPECT_EQ(PickLanguage("zh-CN,zh;q=0.9,en;q=0.8"), Lang::kZhCn);
  EXPECT_EQ(PickLanguage("en-US,en;q=0.9,zh-CN;q=0.8"), Lang::kEn);
  EXPECT_EQ(PickLanguage("fr-FR, zh-Hans-CN;q=0.5, en;q=0.4"), Lang::kZhCn);
  EXPECT_EQ(PickLanguage("en;q=0.2, ZH-tw;q=0.7"), Lang::kZhCn);
  EXPECT_EQ(PickLanguage("zh;q=0.5, en;q=0.5"), Lang::kZhCn);  // a tie: the earlier
  EXPECT_EQ(PickLanguage("zh;q=0, en;q=0.1"), Lang::kEn);      // q=0: not this one
}

TEST(PickLanguage, EnglishWhenNothingWeHaveIsAsked) {
  EXPECT_EQ(PickLanguage(""), Lang::kEn);
  EXPECT_EQ(PickLanguage("*"), Lang::kEn);
  EXPECT_EQ(PickLanguage("fr, de;q=0.9"), Lang::kEn);
  EXPECT_EQ(PickLanguage("zh;q=0"), Lang::kEn);
}

TEST(PickLanguage, HostileValuesOnlyEverYieldALanguage) {
  EXPECT_EQ(PickLanguage("zh;q=abc, en"), Lang::kEn);        // a malformed q skips the range
  EXPECT_EQ(PickLanguage("zh;q=7"), Lang::kEn);              // out of range
  EXPECT_EQ(PickLanguage("zh;q=0.99999999999"), Lang::kEn);  // longer than q allows
  EXPECT_EQ(PickLanguage(";;;,,,;q=;-,zh-"), Lang::kZhCn);
  std::string many;
  for (int i = 0; i < 5000; ++i) many += "xx;q=0.1,";
  many += "zh;q=0.2";
  EXPECT_EQ(PickLanguage(many), Lang::kZhCn);
  EXPECT_EQ(PickLanguage(std::string("zh\0en", 5)), Lang::kEn);  // "zh\0en" is not zh
}

TEST(QValue, ReadsQOrSaysMalformed) {
  EXPECT_EQ(QValue(""), 1.0);
  EXPECT_EQ(QValue(" level=1"), 1.0);
  EXPECT_EQ(QValue("q=0.5"), 0.5);
  EXPECT_EQ(QValue(" Q=0 "), 0.0);
  EXPECT_EQ(QValue("q=1.000"), 1.0);
  for (const char* bad : {"q=", "q=x", "q=1.0001", "q=-0.1", "q=7", "q=0.99999"}) {
    EXPECT_EQ(QValue(bad), -1.0) << bad;
  }
}

TEST(LangTag, IsTheHtmlLangValue) {
  EXPECT_STREQ(LangTag(Lang::kEn), "en");
  EXPECT_STREQ(LangTag(Lang::kZhCn), "zh-CN");
}

}  // namespace
}  // namespace kv::web
