// Mail composition (outbound/mail_message.h): headers, RFC 2047 subjects, base64 bodies, and
// refusal of anything that could inject a header.
#include "outbound/mail_message.h"

#include <openssl/evp.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "base/utf8.h"
#include "gtest/gtest.h"

namespace kv::outbound {
namespace {

const absl::Time kDate = absl::FromUnixSeconds(1796335582);  // Thu, 03 Dec 2026 22:06:22 UTC

MailMessage Msg() {
  MailMessage m;
  m.from = "shop@keyvend.example";
  m.to = "buyer@example.com";
  m.subject = "Your order 42";
  m.body = "Hello\nKEY-1\n";
  m.id = "evt_42.mail";
  return m;
}

std::string Unbase64(const std::string& b64) {
  std::string out(b64.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return "<bad base64>";
  size_t pad = 0;
  for (size_t i = b64.size(); i > 0 && b64[i - 1] == '='; --i) ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// Splits a message into header block and body; the body's base64 lines joined and decoded.
void Split(const std::string& msg, std::string* head, std::string* body) {
  const size_t sep = msg.find("\r\n\r\n");
  ASSERT_NE(sep, std::string::npos);
  *head = msg.substr(0, sep + 2);
  std::string b64;
  for (absl::string_view line : absl::StrSplit(msg.substr(sep + 4), "\r\n")) {
    EXPECT_LE(line.size(), 76u);
    b64.append(line.data(), line.size());
  }
  *body = Unbase64(b64);
}

// Decodes a (folded) run of =?UTF-8?B?...?= words.
std::string DecodeWords(const std::string& v) {
  std::string out;
  for (absl::string_view w : absl::StrSplit(v, absl::ByAnyChar(" \r\n"), absl::SkipEmpty())) {
    EXPECT_LE(w.size(), 75u);
    EXPECT_EQ(w.substr(0, 10), "=?UTF-8?B?");
    EXPECT_EQ(w.substr(w.size() - 2), "?=");
    const std::string part = Unbase64(std::string(w.substr(10, w.size() - 12)));
    // No word splits a character: each decodes to whole UTF-8 characters.
    std::string_view p = part;
    while (!p.empty()) {
      const size_t n = Utf8SequenceLength(p);
      EXPECT_GT(n, 0u) << "a word splits a character: " << w;
      if (n == 0) break;
      p.remove_prefix(n);
    }
    out += part;
  }
  return out;
}

TEST(MailMessageTest, HeadersAndBase64Body) {
  auto msg = ComposeMessage(Msg(), kDate);
  ASSERT_TRUE(msg.ok()) << msg.status();
  std::string head, body;
  Split(*msg, &head, &body);
  EXPECT_EQ(head,
            "Date: Thu, 03 Dec 2026 22:06:22 +0000\r\n"
            "Message-ID: <evt_42.mail@keyvend.example>\r\n"
            "From: shop@keyvend.example\r\n"
            "To: buyer@example.com\r\n"
            "Subject: Your order 42\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n");
  EXPECT_EQ(body, "Hello\r\nKEY-1\r\n");  // canonical CRLF line ends
  // Every line ends in CRLF; no bare CR or LF anywhere; no line starts with a dot.
  for (size_t i = 0; i < msg->size(); ++i) {
    if ((*msg)[i] == '\n') {
      EXPECT_TRUE(i > 0 && (*msg)[i - 1] == '\r') << i;
    }
    if ((*msg)[i] == '\r') {
      EXPECT_TRUE(i + 1 < msg->size() && (*msg)[i + 1] == '\n') << i;
    }
  }
  EXPECT_EQ(msg->find("\r\n."), std::string::npos);
  EXPECT_EQ(msg->substr(msg->size() - 2), "\r\n");
}

TEST(MailMessageTest, ZhCnSubjectAndFromNameAreEncodedWords) {
  MailMessage m = Msg();
  m.subject = "您的订单 0011223344556677：游戏点卡 ×2 — 感谢您的购买，卡密请妥善保存";
  m.from_name = "卡密小店, \"Keys\" <shop>";
  m.body = "卡密：\nKEY-一二三\n";
  auto msg = ComposeMessage(m, kDate);
  ASSERT_TRUE(msg.ok()) << msg.status();
  std::string head, body;
  Split(*msg, &head, &body);
  const size_t s = head.find("Subject: ");
  ASSERT_NE(s, std::string::npos);
  const size_t e = head.find("\r\nMIME-Version:");
  const std::string subject = head.substr(s + 9, e - s - 9);
  EXPECT_NE(subject.find("\r\n "), std::string::npos) << "long subject is folded: " << subject;
  EXPECT_EQ(DecodeWords(subject), m.subject);
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) EXPECT_LE(line.size(), 78u) << line;
  const size_t f = head.find("From: ");
  const size_t fe = head.find("\r\n <shop@keyvend.example>\r\n");
  ASSERT_NE(fe, std::string::npos);
  EXPECT_EQ(DecodeWords(head.substr(f + 6, fe - f - 6)), m.from_name);
  EXPECT_EQ(body, "卡密：\r\nKEY-一二三\r\n");
  // Plain ASCII that merely looks like an encoded word is encoded too, so it reads literally.
  m.subject = "=?UTF-8?B?SGk=?=";
  auto msg2 = ComposeMessage(m, kDate);
  ASSERT_TRUE(msg2.ok());
  EXPECT_EQ(msg2->find("Subject: =?UTF-8?B?SGk=?=\r\n"), std::string::npos);
}

TEST(MailMessageTest, HeaderInjectionIsRefused) {
  struct Case {
    const char* what;
    void (*mutate)(MailMessage&);
  };
  const Case cases[] = {
      {"subject", [](MailMessage& m) { m.subject = "Hi\r\nBcc: victim@example.com"; }},
      {"subject", [](MailMessage& m) { m.subject = "Hi\nBcc: victim@example.com"; }},
      {"subject", [](MailMessage& m) { m.subject = "Hi\rX"; }},
      {"subject", [](MailMessage& m) { m.subject = std::string("Hi\0X", 4); }},
      {"subject", [](MailMessage& m) { m.subject = "Hi\xc2\x85X"; }},  // U+0085 NEL
      {"subject", [](MailMessage& m) { m.subject = "bad \xff utf8"; }},
      {"subject", [](MailMessage& m) { m.subject = ""; }},
      {"subject", [](MailMessage& m) { m.subject = std::string(513, 'a'); }},
      {"from name", [](MailMessage& m) { m.from_name = "Shop\r\nBcc: x@example.com"; }},
      {"to", [](MailMessage& m) { m.to = "buyer@example.com\r\nBcc: victim@example.com"; }},
      {"to", [](MailMessage& m) { m.to = "buyer@example.com>\r\nRCPT TO:<x@example.com"; }},
      {"to", [](MailMessage& m) { m.to = "Buyer <buyer@example.com>"; }},
      {"from", [](MailMessage& m) { m.from = "shop@keyvend.example\nBcc: x@example.com"; }},
      {"id", [](MailMessage& m) { m.id = "x\r\nBcc: y@example.com"; }},
      {"id", [](MailMessage& m) { m.id = "a@b"; }},
      {"id", [](MailMessage& m) { m.id = ""; }},
      {"body", [](MailMessage& m) { m.body = "bad \xc3 utf8"; }},
      {"body", [](MailMessage& m) { m.body = std::string("nul\0", 4); }},
  };
  for (const Case& c : cases) {
    MailMessage m = Msg();
    c.mutate(m);
    auto msg = ComposeMessage(m, kDate);
    ASSERT_FALSE(msg.ok()) << c.what;
    EXPECT_EQ(msg.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(msg.status().message().find(c.what), std::string_view::npos) << msg.status();
  }
  MailMessage tabs = Msg();
  tabs.body = "a\tb\r\nc\rd\n";
  auto ok = ComposeMessage(tabs, kDate);
  ASSERT_TRUE(ok.ok()) << ok.status();
}

TEST(MailMessageTest, MailboxValidation) {
  for (const char* good : {"a@b.co", "first.last+tag@mail.example.com", "o'brien@x-y.example",
                           "UPPER@EXAMPLE.COM", "1@2.3"}) {
    EXPECT_TRUE(IsValidMailbox(good)) << good;
  }
  const std::string long_local = std::string(65, 'a') + "@example.com";
  const std::string long_label = "a@" + std::string(64, 'b') + ".com";
  for (const std::string& bad : std::vector<std::string>{"",
                                                         "plain",
                                                         "@example.com",
                                                         "a@",
                                                         "a@localhost",
                                                         "a@@example.com",
                                                         ".a@example.com",
                                                         "a.@example.com",
                                                         "a..b@example.com",
                                                         "a b@example.com",
                                                         "\"a\"@example.com",
                                                         "a@[127.0.0.1]",
                                                         "a@-x.example",
                                                         "a@x-.example",
                                                         "a@x..example",
                                                         "a@x.example.",
                                                         "a<b@example.com",
                                                         "a@example.com>",
                                                         "ü@example.com",
                                                         "a@exämple.com",
                                                         "a\n@example.com",
                                                         long_local,
                                                         long_label}) {
    EXPECT_FALSE(IsValidMailbox(bad)) << bad;
  }
}

TEST(MailMessageTest, EncodeWordsKeepsCharactersWhole) {
  // 35 ASCII bytes then a 3-byte character: the character goes to the next word.
  const std::string text = std::string(35, 'x') + "界";
  const std::string w = EncodeWords(text);
  const std::vector<std::string> words = absl::StrSplit(w, "\r\n ");
  ASSERT_EQ(words.size(), 2u);
  EXPECT_EQ(DecodeWords(w), text);
  EXPECT_EQ(DecodeWords(words[0]), std::string(35, 'x'));
  EXPECT_EQ(EncodeWords(""), "");
}

}  // namespace
}  // namespace kv::outbound
