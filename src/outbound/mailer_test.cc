// The mailer (outbound/mailer.h) over real libcurl SMTP against a real SMTP server on
// loopback: tests/fakes/smtp_sink.py (Debian's python3-aiosmtpd), which records each mail as
// Python's own email package reads it. Keys must arrive exactly; refusals and a dead server
// map to the documented outcomes.
#include "outbound/mailer.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/clock.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "kit/json.h"
#include "kit/process.h"
#include "outbound/mail_template.h"

namespace kv::outbound {
namespace {

using ::kv::testing::Json;

class MailerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartSink(); }

  void StartSink(const std::vector<std::string>& extra = {}) {
    kv::testing::ChildOptions o;
    o.out = kv::testing::Output::Pipe();
    o.env = {"PYTHONDONTWRITEBYTECODE=1"};
    std::string error;
    std::vector<std::string> args = {KV_PYTHON, SMTP_SINK, "--dir", dir_.path()};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(sink_.Start(args, o, &error)) << error;
    std::string line;
    char c;
    while (line.size() < 64 && ::read(sink_.stdout_fd(), &c, 1) == 1 && c != '\n') line += c;
    ASSERT_EQ(line.rfind("PORT ", 0), 0u) << "sink did not start: " << line;
    port_ = std::stoi(line.substr(5));
  }

  std::unique_ptr<Mailer> MakeMailer(const std::string& scheme = "smtp",
                                     const std::string& ca_file = "",
                                     absl::Duration timeout = absl::Seconds(5)) {
    MailerOptions o;
    o.smtp_url = absl::StrCat(scheme, "://127.0.0.1:", port_);
    o.ca_file = ca_file;
    o.mail_from = "shop@keyvend.example";
    o.from_name = "卡密小店 Keys";
    o.connect_timeout = timeout;
    o.total_timeout = timeout * 6;
    auto m = Mailer::Create(o, &clock_);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }

  std::unique_ptr<Mailer> MakeMailer(uint32_t parallel_sessions, uint32_t mails_per_session) {
    MailerOptions o;
    o.smtp_url = absl::StrCat("smtp://127.0.0.1:", port_);
    o.mail_from = "shop@keyvend.example";
    o.parallel_sessions = parallel_sessions;
    o.mails_per_session = mails_per_session;
    auto m = Mailer::Create(o, &clock_);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }

  // The sink's connection counts (smtp_sink.py: sessions.stats).
  Json SessionStats() { return Json::Parse(kv::testing::ReadFile(dir_.Sub("sessions.stats"))); }

  // The sink's records, in arrival order.
  std::vector<Json> Received() {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(dir_.path().c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (absl::EndsWith(e->d_name, ".json")) names.emplace_back(e->d_name);
      }
      ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    std::vector<Json> out;
    for (const auto& n : names) out.push_back(Json::Parse(kv::testing::ReadFile(dir_.Sub(n))));
    return out;
  }

  kv::testing::TempDir dir_;
  kv::testing::Child sink_;
  int port_ = 0;
  FakeClock clock_{absl::FromUnixSeconds(1796335582)};
};

TEST_F(MailerTest, RoundTripKeysArriveExactly) {
  auto templates = MailTemplates::Load("");
  ASSERT_TRUE(templates.ok()) << templates.status();
  MailFields f;
  f.order_id = "00112233445566778899aabbccddeeff";
  f.product = "游戏点卡 100";
  f.quantity = 3;
  // Keys with what a mail path could mangle: a leading dot (dot-stuffing), trailing spaces,
  // a long line, non-ASCII, characters of MIME and SMTP syntax.
  f.keys = {".DOT-LEADING-KEY", "KEY-WITH-TRAILING-SPACES   ", std::string(300, 'Z'),
            "卡密-ÄÖÜ-=?UTF-8?B?x?=-<>@\"'", "."};
  f.order_url = "https://shop.example/order/00112233445566778899aabbccddeeff";
  const RenderedMail r = templates->Render(MailKind::kWithKeys, "zh-CN", f);

  std::unique_ptr<Mailer> mailer = MakeMailer();
  ASSERT_NE(mailer, nullptr);
  Mail mail{"buyer@example.com", r.subject, r.body, "evt_7.mail"};
  const MailResult res = mailer->Send(mail);
  ASSERT_EQ(res.outcome, MailOutcome::kSent) << res.detail;
  EXPECT_EQ(res.smtp_code, 250);

  const std::vector<Json> got = Received();
  ASSERT_EQ(got.size(), 1u);
  const Json& m = got[0];
  EXPECT_EQ(m["mail_from"].str(), "shop@keyvend.example");
  ASSERT_EQ(m["rcpt_tos"].size(), 1u);
  EXPECT_EQ(m["rcpt_tos"][0].str(), "buyer@example.com");
  EXPECT_EQ(m["headers"]["Subject"].str(), r.subject);  // decoded by Python's email package
  EXPECT_EQ(m["headers"]["To"].str(), "buyer@example.com");
  EXPECT_EQ(m["headers"]["From"].str(), "卡密小店 Keys <shop@keyvend.example>");
  EXPECT_EQ(m["headers"]["Message-ID"].str(), "<evt_7.mail@keyvend.example>");
  EXPECT_EQ(m["headers"]["Date"].str(), "Thu, 03 Dec 2026 22:06:22 +0000");
  EXPECT_EQ(m["headers"]["MIME-Version"].str(), "1.0");
  EXPECT_EQ(m["content_type"].str(), "text/plain");
  EXPECT_EQ(m["charset"].str(), "utf-8");
  EXPECT_EQ(m["defects"].size(), 0u);
  // The body, decoded by Python: exactly the rendered text (CRLF made LF by the reader), so
  // every key is there byte for byte, each on its own line.
  const std::string body = absl::StrReplaceAll(m["body"].str(), {{"\r\n", "\n"}});
  EXPECT_EQ(body, r.body);
  for (const std::string& k : f.keys) {
    EXPECT_TRUE(absl::StrContains(body, "\n" + k + "\n")) << k;
  }
}

TEST_F(MailerTest, PermanentAndTransientRefusals) {
  std::unique_ptr<Mailer> mailer = MakeMailer();
  ASSERT_NE(mailer, nullptr);
  MailResult r = mailer->Send({"reject-me@example.com", "S", "body", "m1"});
  EXPECT_EQ(r.outcome, MailOutcome::kFailedPermanently) << r.detail;
  EXPECT_EQ(r.smtp_code, 550);
  r = mailer->Send({"later-please@example.com", "S", "body", "m2"});
  EXPECT_EQ(r.outcome, MailOutcome::kRetry) << r.detail;
  EXPECT_EQ(r.smtp_code, 451);
  // Composition refusals never reach the server.
  r = mailer->Send({"buyer@example.com\r\nBcc: victim@example.com", "S", "body", "m3"});
  EXPECT_EQ(r.outcome, MailOutcome::kFailedPermanently);
  EXPECT_EQ(r.smtp_code, 0);
  r = mailer->Send({"buyer@example.com", "S\r\nBcc: victim@example.com", "body", "m4"});
  EXPECT_EQ(r.outcome, MailOutcome::kFailedPermanently);
  EXPECT_TRUE(Received().empty());
  // The server is still fine afterwards.
  EXPECT_EQ(mailer->Send({"buyer@example.com", "S", "body", "m5"}).outcome, MailOutcome::kSent);
  EXPECT_EQ(Received().size(), 1u);
}

// Session reuse: mails go over one connection until mails_per_session, then a new one; a
// refused mail closes its session (the next mail starts clean on a new connection).
TEST_F(MailerTest, SessionsCarryMailsUpToTheirCapAndEndOnARefusal) {
  MailerOptions o;
  o.smtp_url = absl::StrCat("smtp://127.0.0.1:", port_);
  o.mail_from = "shop@keyvend.example";
  o.mails_per_session = 3;
  auto mailer = Mailer::Create(o, &clock_);
  ASSERT_TRUE(mailer.ok()) << mailer.status();
  for (int i = 0; i < 7; ++i) {
    const MailResult r =
        (*mailer)->Send({"buyer@example.com", "S", absl::StrCat("KEY-", i), absl::StrCat("m", i)});
    ASSERT_EQ(r.outcome, MailOutcome::kSent) << r.detail;
  }
  std::vector<Json> got = Received();
  ASSERT_EQ(got.size(), 7u);
  std::vector<std::string> peers;
  for (const Json& j : got) peers.push_back(j["peer"].str());
  // 3 + 3 + 1: three sessions, in order.
  EXPECT_EQ(peers[0], peers[1]);
  EXPECT_EQ(peers[0], peers[2]);
  EXPECT_NE(peers[2], peers[3]);
  EXPECT_EQ(peers[3], peers[5]);
  EXPECT_NE(peers[5], peers[6]);
  EXPECT_NE(peers[0], peers[6]);

  // The 7th mail's session is open; a refusal on it closes it.
  MailResult r = (*mailer)->Send({"reject-me@example.com", "S", "body", "r1"});
  EXPECT_EQ(r.outcome, MailOutcome::kFailedPermanently) << r.detail;
  r = (*mailer)->Send({"buyer@example.com", "S", "body", "m7"});
  ASSERT_EQ(r.outcome, MailOutcome::kSent) << r.detail;
  got = Received();
  ASSERT_EQ(got.size(), 8u);
  EXPECT_NE(got[7]["peer"].str(), peers[6]);

  o.mails_per_session = 0;
  EXPECT_EQ(Mailer::Create(o, &clock_).status().code(), absl::StatusCode::kInvalidArgument);
  o.mails_per_session = kMailsPerSessionMax + 1;
  EXPECT_EQ(Mailer::Create(o, &clock_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MailerTest, SinkDownIsRetryThenSinkBackIsSent) {
  std::unique_ptr<Mailer> mailer = MakeMailer();
  ASSERT_NE(mailer, nullptr);
  sink_.Kill9();
  const MailResult r = mailer->Send({"buyer@example.com", "S", "KEY-1", "m1"});
  EXPECT_EQ(r.outcome, MailOutcome::kRetry) << r.detail;
  EXPECT_EQ(r.smtp_code, 0);
  StartSink();  // a new port
  mailer = MakeMailer();
  ASSERT_NE(mailer, nullptr);
  EXPECT_EQ(mailer->Send({"buyer@example.com", "S", "KEY-1", "m1"}).outcome, MailOutcome::kSent);
  ASSERT_EQ(Received().size(), 1u);
}

// SendMany: 40 mails over 4 concurrent sessions from one thread. Each arrives once, to its
// own recipient with exactly its own body (nothing of one transfer in another), and the sink
// saw 4 connections, never more at once.
TEST_F(MailerTest, SendManyCarriesEachMailIntactOverAtMostItsParallelSessions) {
  std::unique_ptr<Mailer> mailer = MakeMailer(4, 100);
  ASSERT_NE(mailer, nullptr);
  std::vector<Mail> mails;
  for (int i = 0; i < 40; ++i) {
    // Bodies of different lengths (some above curl's 64 KiB upload buffer) and contents.
    const size_t len = (i % 5 == 0) ? 70000 + static_cast<size_t>(i) : static_cast<size_t>(i) * 37;
    mails.push_back(
        {absl::StrCat("buyer-", i, "@example.com"), absl::StrCat("S", i),
         absl::StrCat("KEY-", i, "\n", std::string(len, static_cast<char>('a' + i % 26)), "\nEND-",
                      i, "\n"),
         absl::StrCat("m", i)});
  }
  const std::vector<MailResult> res = mailer->SendMany(mails);
  ASSERT_EQ(res.size(), mails.size());
  for (size_t i = 0; i < res.size(); ++i) {
    EXPECT_EQ(res[i].outcome, MailOutcome::kSent) << i << ": " << res[i].detail;
    EXPECT_EQ(res[i].smtp_code, 250) << i;
  }
  const std::vector<Json> got = Received();
  ASSERT_EQ(got.size(), mails.size());
  std::vector<bool> seen(mails.size(), false);
  std::vector<std::string> peers;
  for (const Json& m : got) {
    ASSERT_EQ(m["rcpt_tos"].size(), 1u);
    const std::string to = m["rcpt_tos"][0].str();
    ASSERT_TRUE(absl::StartsWith(to, "buyer-")) << to;
    const size_t i = std::stoul(to.substr(6));
    ASSERT_LT(i, mails.size());
    EXPECT_FALSE(seen[i]) << to << " twice";
    seen[i] = true;
    EXPECT_EQ(m["headers"]["To"].str(), mails[i].to);
    EXPECT_EQ(m["headers"]["Subject"].str(), mails[i].subject);
    EXPECT_EQ(m["headers"]["Message-ID"].str(), absl::StrCat("<m", i, "@keyvend.example>"));
    EXPECT_EQ(absl::StrReplaceAll(m["body"].str(), {{"\r\n", "\n"}}), mails[i].body) << to;
    if (std::find(peers.begin(), peers.end(), m["peer"].str()) == peers.end()) {
      peers.push_back(m["peer"].str());
    }
  }
  // Every session opened at the start and carried a share (none hit mails_per_session).
  EXPECT_EQ(peers.size(), 4u);
  const Json stats = SessionStats();
  EXPECT_EQ(stats["connections"].num(), 4);
  EXPECT_LE(stats["max_open"].num(), 4);
  // The sessions stay open for the next call: no new connection.
  ASSERT_EQ(mailer->SendMany(std::vector<Mail>(3, mails[1]))[2].outcome, MailOutcome::kSent);
  EXPECT_EQ(SessionStats()["connections"].num(), 4);
  EXPECT_EQ(Received().size(), mails.size() + 3);
}

// Each mail of a batch gets its own outcome: 550 -> failed permanently, 451 -> retry, an
// uncomposable mail -> failed permanently without I/O, the rest sent; whatever the order
// in which the concurrent transfers end.
TEST_F(MailerTest, SendManyGivesEachMailItsOwnOutcome) {
  std::unique_ptr<Mailer> mailer = MakeMailer(4, 100);
  ASSERT_NE(mailer, nullptr);
  std::vector<Mail> mails;
  for (int i = 0; i < 24; ++i) {
    const char* local[] = {"reject", "later", "buyer", "buyer"};
    Mail m{absl::StrCat(local[i % 4], "-", i, "@example.com"), "S", absl::StrCat("KEY-", i),
           absl::StrCat("m", i)};
    if (i % 8 == 3) m.subject = "S\r\nBcc: victim@example.com";
    mails.push_back(m);
  }
  const std::vector<MailResult> res = mailer->SendMany(mails);
  ASSERT_EQ(res.size(), mails.size());
  std::vector<std::string> want_sent;
  for (size_t i = 0; i < res.size(); ++i) {
    if (i % 8 == 3) {
      EXPECT_EQ(res[i].outcome, MailOutcome::kFailedPermanently) << i;
      EXPECT_EQ(res[i].smtp_code, 0) << i;
    } else if (i % 4 == 0) {
      EXPECT_EQ(res[i].outcome, MailOutcome::kFailedPermanently) << i << ": " << res[i].detail;
      EXPECT_EQ(res[i].smtp_code, 550) << i;
    } else if (i % 4 == 1) {
      EXPECT_EQ(res[i].outcome, MailOutcome::kRetry) << i << ": " << res[i].detail;
      EXPECT_EQ(res[i].smtp_code, 451) << i;
    } else {
      EXPECT_EQ(res[i].outcome, MailOutcome::kSent) << i << ": " << res[i].detail;
      EXPECT_EQ(res[i].smtp_code, 250) << i;
      want_sent.push_back(mails[i].to);
    }
  }
  std::vector<std::string> sent;
  for (const Json& m : Received()) {
    ASSERT_EQ(m["rcpt_tos"].size(), 1u);
    sent.push_back(m["rcpt_tos"][0].str());
    const size_t i = std::stoul(sent.back().substr(sent.back().find('-') + 1));
    EXPECT_EQ(absl::StrReplaceAll(m["body"].str(), {{"\r\n", "\n"}}), mails[i].body);
  }
  std::sort(sent.begin(), sent.end());
  std::sort(want_sent.begin(), want_sent.end());
  EXPECT_EQ(sent, want_sent);
  EXPECT_LE(SessionStats()["max_open"].num(), 4);
}

// A refused mail closes its session: with one session, the mails after each refusal go over
// a new connection; and a session carries at most mails_per_session mails in SendMany too.
TEST_F(MailerTest, SendManyClosesAFailedSessionAndOneAtItsCap) {
  std::unique_ptr<Mailer> one = MakeMailer(1, 100);
  ASSERT_NE(one, nullptr);
  std::vector<MailResult> res =
      one->SendMany(std::vector<Mail>{{"buyer-0@example.com", "S", "KEY-0", "m0"},
                                      {"reject-1@example.com", "S", "KEY-1", "m1"},
                                      {"buyer-2@example.com", "S", "KEY-2", "m2"},
                                      {"later-3@example.com", "S", "KEY-3", "m3"},
                                      {"buyer-4@example.com", "S", "KEY-4", "m4"}});
  ASSERT_EQ(res.size(), 5u);
  EXPECT_EQ(res[1].outcome, MailOutcome::kFailedPermanently);
  EXPECT_EQ(res[3].outcome, MailOutcome::kRetry);
  std::vector<Json> got = Received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NE(got[0]["peer"].str(), got[1]["peer"].str());
  EXPECT_NE(got[1]["peer"].str(), got[2]["peer"].str());
  EXPECT_EQ(SessionStats()["connections"].num(), 3);
  one.reset();

  // 10 mails, 2 sessions of at most 3 mails: 4 sessions (3 + 3 + the last 4 over two).
  std::unique_ptr<Mailer> capped = MakeMailer(2, 3);
  ASSERT_NE(capped, nullptr);
  std::vector<Mail> mails;
  for (int i = 0; i < 10; ++i) {
    mails.push_back({"buyer@example.com", "S", absl::StrCat("KEY-", i), absl::StrCat("c", i)});
  }
  res = capped->SendMany(mails);
  for (const MailResult& r : res) EXPECT_EQ(r.outcome, MailOutcome::kSent) << r.detail;
  got = Received();
  ASSERT_EQ(got.size(), 13u);
  std::map<std::string, int> per_peer;
  for (size_t i = 3; i < got.size(); ++i) ++per_peer[got[i]["peer"].str()];
  EXPECT_EQ(per_peer.size(), 4u);
  for (const auto& [peer, n] : per_peer) EXPECT_LE(n, 3) << peer;
  EXPECT_EQ(SessionStats()["connections"].num(), 3 + 4);
}

TEST_F(MailerTest, SendManyToADeadServerIsRetryForEveryMail) {
  std::unique_ptr<Mailer> mailer = MakeMailer(4, 100);
  ASSERT_NE(mailer, nullptr);
  sink_.Kill9();
  std::vector<Mail> mails;
  for (int i = 0; i < 10; ++i) {
    mails.push_back({"buyer@example.com", "S", absl::StrCat("KEY-", i), absl::StrCat("m", i)});
  }
  const std::vector<MailResult> res = mailer->SendMany(mails);
  ASSERT_EQ(res.size(), mails.size());
  for (const MailResult& r : res) {
    EXPECT_EQ(r.outcome, MailOutcome::kRetry) << r.detail;
    EXPECT_EQ(r.smtp_code, 0);
  }
  EXPECT_TRUE(mailer->SendMany({}).empty());
}

// A self-signed certificate for 127.0.0.1 made by Debian's openssl: PEM files in `dir`.
void MakeCert(const kv::testing::TempDir& dir, const std::string& stem) {
  const kv::testing::RunResult r = kv::testing::RunCommand(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
       dir.Sub(stem + ".key"), "-out", dir.Sub(stem + ".crt"), "-subj", "/CN=localhost", "-addext",
       "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
}

TEST_F(MailerTest, StartTlsWhenOfferedAndTheCertificateIsVerified) {
  kv::testing::TempDir certs;
  MakeCert(certs, "sink");
  MakeCert(certs, "other");
  sink_.Kill9();
  StartSink({"--tls-cert", certs.Sub("sink.crt"), "--tls-key", certs.Sub("sink.key")});
  // smtp:// to a server that offers STARTTLS: the mail goes over TLS.
  std::unique_ptr<Mailer> mailer = MakeMailer("smtp", certs.Sub("sink.crt"));
  ASSERT_NE(mailer, nullptr);
  MailResult r = mailer->Send({"buyer@example.com", "S", "KEY-TLS", "m1"});
  ASSERT_EQ(r.outcome, MailOutcome::kSent) << r.detail;
  std::vector<Json> got = Received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0]["tls"].boolean());
  // A certificate the CA file does not vouch for: no fallback to clear text, a retry.
  mailer = MakeMailer("smtp", certs.Sub("other.crt"));
  ASSERT_NE(mailer, nullptr);
  r = mailer->Send({"buyer@example.com", "S", "KEY-TLS", "m2"});
  EXPECT_EQ(r.outcome, MailOutcome::kRetry) << r.detail;
  EXPECT_EQ(Received().size(), 1u);
}

TEST_F(MailerTest, SmtpsIsTlsFromTheFirstByte) {
  kv::testing::TempDir certs;
  MakeCert(certs, "sink");
  sink_.Kill9();
  StartSink(
      {"--tls-cert", certs.Sub("sink.crt"), "--tls-key", certs.Sub("sink.key"), "--implicit-tls"});
  std::unique_ptr<Mailer> mailer = MakeMailer("smtps", certs.Sub("sink.crt"));
  ASSERT_NE(mailer, nullptr);
  const MailResult r = mailer->Send({"buyer@example.com", "S", "KEY-TLS", "m1"});
  ASSERT_EQ(r.outcome, MailOutcome::kSent) << r.detail;
  ASSERT_EQ(Received().size(), 1u);
  // smtp:// (clear text first) to the implicit-TLS port: no greeting ever comes; the
  // timeouts make it a retry, not a hang.
  mailer = MakeMailer("smtp", certs.Sub("sink.crt"), absl::Milliseconds(500));
  EXPECT_EQ(mailer->Send({"buyer@example.com", "S", "KEY-TLS", "m2"}).outcome, MailOutcome::kRetry);
}

TEST(MailerOptionsTest, EachBadFieldIsNamed) {
  MailerOptions good;
  good.smtp_url = "smtp://mail.example:587";
  good.mail_from = "shop@keyvend.example";
  EXPECT_TRUE(ValidateMailerOptions(good).ok());
  good.smtp_url = "smtps://mail.example";
  EXPECT_TRUE(ValidateMailerOptions(good).ok());
  auto bad = [&](auto mutate, const std::string& word) {
    MailerOptions o = good;
    mutate(o);
    const absl::Status s = ValidateMailerOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << word;
    EXPECT_NE(s.message().find(word), std::string::npos) << s;
    EXPECT_FALSE(Mailer::Create(o, RealClock::Get()).ok()) << word;
  };
  bad([](MailerOptions& o) { o.smtp_url = ""; }, "smtp url");
  bad([](MailerOptions& o) { o.smtp_url = "http://mail.example"; }, "smtp url");
  bad([](MailerOptions& o) { o.smtp_url = "smtp://mail.example/\r\nX"; }, "smtp url");
  bad([](MailerOptions& o) { o.mail_from = "not an address"; }, "mail from");
  bad([](MailerOptions& o) { o.password = "pw"; }, "smtp user");
  bad(
      [](MailerOptions& o) {
        o.user = "u";
        o.password = "p\r\nQUIT";
      },
      "password");
  bad([](MailerOptions& o) { o.from_name = "a\nb"; }, "from name");
  bad([](MailerOptions& o) { o.connect_timeout = absl::ZeroDuration(); }, "connect");
  bad([](MailerOptions& o) { o.total_timeout = absl::Seconds(1); }, "total");
  bad([](MailerOptions& o) { o.parallel_sessions = 0; }, "parallel sessions");
  bad([](MailerOptions& o) { o.parallel_sessions = kParallelSessionsMax + 1; },
      "parallel sessions");
}

}  // namespace
}  // namespace kv::outbound
