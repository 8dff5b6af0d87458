// The mail templates (outbound/mail_template.h): the compiled-in defaults, placeholder
// substitution in one pass, the keys-less variant, and a shop's override directory.
#include "outbound/mail_template.h"

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "kit/files.h"

namespace kv::outbound {
namespace {

MailFields Fields() {
  MailFields f;
  f.order_id = "00112233445566778899aabbccddeeff";
  f.product = "Game card 100";
  f.quantity = 2;
  f.keys = {"AAAA-BBBB-CCCC", "key with {order_url} and {keys} inside"};
  f.order_url = "https://shop.example/order/00112233445566778899aabbccddeeff";
  return f;
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(MailTemplateTest, EmbeddedEnglishWithKeys) {
  auto t = MailTemplates::Load("");
  ASSERT_TRUE(t.ok()) << t.status();
  const RenderedMail m = t->Render(MailKind::kWithKeys, "en", Fields());
  EXPECT_EQ(m.subject, "Your order 00112233445566778899aabbccddeeff: Game card 100");
  // The keys, one per line, exactly; a key's text is never expanded again.
  EXPECT_TRUE(
      absl::StrContains(m.body, "\nAAAA-BBBB-CCCC\nkey with {order_url} and {keys} inside\n"))
      << m.body;
  EXPECT_TRUE(absl::StrContains(m.body, "Quantity: 2\n"));
  EXPECT_TRUE(absl::StrContains(m.body, Fields().order_url));
  EXPECT_FALSE(absl::StrContains(m.body, "{product}"));
  EXPECT_FALSE(absl::StrContains(m.body, "{quantity}"));
}

TEST(MailTemplateTest, ZhCnAndLanguageFallback) {
  auto t = MailTemplates::Load("");
  ASSERT_TRUE(t.ok()) << t.status();
  const RenderedMail zh = t->Render(MailKind::kWithKeys, "zh-CN", Fields());
  EXPECT_EQ(zh.subject, "您的订单 00112233445566778899aabbccddeeff：Game card 100");
  EXPECT_TRUE(absl::StrContains(zh.body, "数量：2\n"));
  EXPECT_TRUE(absl::StrContains(zh.body, "AAAA-BBBB-CCCC"));
  EXPECT_EQ(t->Render(MailKind::kWithKeys, "zh", Fields()).body, zh.body);
  EXPECT_EQ(t->Render(MailKind::kWithKeys, "fr", Fields()).body,
            t->Render(MailKind::kWithKeys, "en", Fields()).body);
}

TEST(MailTemplateTest, LinkOnlyNeverCarriesKeys) {
  auto t = MailTemplates::Load("");
  ASSERT_TRUE(t.ok()) << t.status();
  for (const char* lang : {"en", "zh-CN"}) {
    const RenderedMail m = t->Render(MailKind::kLinkOnly, lang, Fields());
    EXPECT_FALSE(absl::StrContains(m.body, "AAAA-BBBB-CCCC")) << lang;
    EXPECT_FALSE(absl::StrContains(m.subject, "AAAA-BBBB-CCCC")) << lang;
    EXPECT_TRUE(absl::StrContains(m.body, Fields().order_url)) << lang;
  }
}

TEST(MailTemplateTest, SubjectValuesStayOnOneLine) {
  auto t = MailTemplates::Load("");
  ASSERT_TRUE(t.ok()) << t.status();
  MailFields f = Fields();
  f.product = "Evil\r\nBcc: victim@example.com";
  const RenderedMail m = t->Render(MailKind::kWithKeys, "en", f);
  EXPECT_EQ(m.subject.find_first_of("\r\n"), std::string::npos) << m.subject;
}

TEST(MailTemplateTest, OverrideDirectoryReplacesOneFileAndUnknownBracesStay) {
  kv::testing::TempDir dir;
  Write(dir.Sub("order_delivered.en.txt"),
        "Keys for {order_id} {unknown}\r\n\r\n{product} x{quantity}: {keys} {not closed\n");
  auto t = MailTemplates::Load(dir.path());
  ASSERT_TRUE(t.ok()) << t.status();
  const RenderedMail m = t->Render(MailKind::kWithKeys, "en", Fields());
  EXPECT_EQ(m.subject, "Keys for 00112233445566778899aabbccddeeff {unknown}");
  EXPECT_EQ(m.body,
            "Game card 100 x2: AAAA-BBBB-CCCC\nkey with {order_url} and {keys} inside {not "
            "closed\n");
  // The other files are still the compiled-in ones.
  EXPECT_TRUE(absl::StrContains(t->Render(MailKind::kWithKeys, "zh-CN", Fields()).body, "数量"));
}

TEST(MailTemplateTest, BadOverridesAreRefusedNamingTheFile) {
  struct Case {
    const char* file;
    std::string text;
    const char* why;
  };
  const Case cases[] = {
      {"order_delivered_link.en.txt", "S\n\nsee {order_url} and {keys}\n", "{keys}"},
      {"order_delivered_link.zh-CN.txt", "S\n\nno link here\n", "{order_url}"},
      {"order_delivered.en.txt", "S\n\nno keys here {order_url}\n", "{keys}"},
      {"order_delivered.en.txt", "S {keys}\n\n{keys}\n", "subject"},
      {"order_delivered.en.txt", "S\nnot empty\n{keys}\n", "second line"},
      {"order_delivered.en.txt", "\n\n{keys}\n", "subject"},
      {"order_delivered.zh-CN.txt", "S\n\n\xff{keys}\n", "UTF-8"},
      {"order_delivered.en.txt", "S\n\n" + std::string(70000, 'a') + "{keys}", "bytes"},
  };
  for (const Case& c : cases) {
    kv::testing::TempDir dir;
    Write(dir.Sub(c.file), c.text);
    auto t = MailTemplates::Load(dir.path());
    ASSERT_FALSE(t.ok()) << c.file << " " << c.why;
    EXPECT_NE(t.status().message().find(c.file), std::string_view::npos) << t.status();
    EXPECT_NE(t.status().message().find(c.why), std::string_view::npos) << t.status();
  }
}

}  // namespace
}  // namespace kv::outbound
