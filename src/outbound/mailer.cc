// Mailer over libcurl's SMTP: MAIL FROM, RCPT TO, DATA with the composed message read from
// memory; libcurl does the protocol, the STARTTLS upgrade, AUTH and the dot-stuffing.
#include "outbound/mailer.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kv::outbound {
namespace {

constexpr size_t kUrlBytesMax = 2048;
// Idle sessions kept (one per mail thread is what is used; more concurrent sends close
// theirs after the mail).
constexpr size_t kIdleSessionsMax = 4;
// An idle session older than this is closed rather than reused (servers drop idle SMTP
// clients after a few minutes, RFC 5321 4.5.3.2.7; curl also checks the socket before reuse).
constexpr long kIdleSessionSecondsMax = 30;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

bool IsLoopbackHost(const std::string& host) {
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    in6_addr a6{};
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a6) == 1 &&
           IN6_IS_ADDR_LOOPBACK(&a6);
  }
  return false;
}

// The scheme and host of an smtp(s) URL, or InvalidArgument.
absl::Status ParseSmtpUrl(const std::string& url, std::string* scheme, std::string* host) {
  if (url.empty()) return absl::InvalidArgumentError("smtp url: empty");
  if (url.size() > kUrlBytesMax ||
      std::any_of(url.begin(), url.end(), [](char c) { return c <= 0x20 || c == 0x7f; })) {
    return absl::InvalidArgumentError("smtp url: malformed");
  }
  GlobalInitOnce();
  std::unique_ptr<CURLU, CurlUrlDeleter> u(curl_url());
  if (!u) return absl::ResourceExhaustedError("smtp url: out of memory");
  if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError("smtp url: malformed");
  }
  char* s = nullptr;
  char* h = nullptr;
  if (curl_url_get(u.get(), CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
      curl_url_get(u.get(), CURLUPART_HOST, &h, 0) != CURLUE_OK) {
    curl_free(s);
    return absl::InvalidArgumentError("smtp url: want smtp://host[:port] or smtps://host[:port]");
  }
  *scheme = s;
  *host = h;
  curl_free(s);
  curl_free(h);
  if (*scheme != "smtp" && *scheme != "smtps") {
    return absl::InvalidArgumentError("smtp url: the scheme must be smtp or smtps");
  }
  return absl::OkStatus();
}

long ClampMs(absl::Duration d) {
  return static_cast<long>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, int64_t{24} * 3600 * 1000));
}

struct Upload {
  std::string_view rest;
};

size_t OnRead(char* buf, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  const size_t len = std::min(size * n, u->rest.size());
  std::memcpy(buf, u->rest.data(), len);
  u->rest.remove_prefix(len);
  return len;
}

}  // namespace

const char* MailOutcomeName(MailOutcome o) {
  switch (o) {
    case MailOutcome::kSent:
      return "sent";
    case MailOutcome::kRetry:
      return "retry";
    case MailOutcome::kFailedPermanently:
      return "failed_permanently";
  }
  return "unknown";
}

absl::Status ValidateMailerOptions(const MailerOptions& o) {
  std::string scheme, host;
  if (absl::Status s = ParseSmtpUrl(o.smtp_url, &scheme, &host); !s.ok()) return s;
  if (!IsValidMailbox(o.mail_from)) {
    return absl::InvalidArgumentError("mail from: not a valid address (user@example.com)");
  }
  if (!o.password.empty() && o.user.empty()) {
    return absl::InvalidArgumentError("smtp user: empty while a password is set");
  }
  const auto has_ctl = [](const std::string& v) {
    return std::any_of(v.begin(), v.end(), [](char c) { return c == '\r' || c == '\n' || c == 0; });
  };
  if (has_ctl(o.user) || has_ctl(o.password)) {
    return absl::InvalidArgumentError("smtp user or password: CR, LF or NUL not allowed");
  }
  if (o.from_name.size() > kMailFromNameBytesMax || has_ctl(o.from_name)) {
    return absl::InvalidArgumentError("mail from name: too long or a control character");
  }
  if (o.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("smtp connect timeout: must be > 0");
  }
  if (o.total_timeout < o.connect_timeout) {
    return absl::InvalidArgumentError("smtp total timeout: must be >= the connect timeout");
  }
  if (o.mails_per_session < 1 || o.mails_per_session > kMailsPerSessionMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("mails per session: must be 1..", kMailsPerSessionMax));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Mailer>> Mailer::Create(const MailerOptions& options,
                                                       const Clock* clock) {
  if (absl::Status s = ValidateMailerOptions(options); !s.ok()) return s;
  std::string scheme, host;
  if (absl::Status s = ParseSmtpUrl(options.smtp_url, &scheme, &host); !s.ok()) return s;
  const bool require_tls =
      scheme == "smtps" || (!options.password.empty() && !IsLoopbackHost(host));
  return std::unique_ptr<Mailer>(new Mailer(options, clock, require_tls));
}

// One easy handle and the mails its connection has carried. curl keeps the connection open
// in the handle after a transfer and reuses it when the same handle sends again to the same
// server: the next mail starts at MAIL FROM.
struct Mailer::Session {
  CURL* curl = nullptr;
  uint32_t mails = 0;
};

Mailer::Mailer(const MailerOptions& options, const Clock* clock, bool require_tls)
    : options_(options), clock_(clock), require_tls_(require_tls) {}

Mailer::~Mailer() {
  MutexLock l(&mu_);
  for (Session& s : idle_) curl_easy_cleanup(s.curl);
}

Mailer::Session Mailer::TakeSession() {
  {
    MutexLock l(&mu_);
    if (!idle_.empty()) {
      Session s = idle_.back();
      idle_.pop_back();
      return s;
    }
  }
  return Session{curl_easy_init(), 0};
}

void Mailer::GiveSession(Session s, bool reuse) {
  if (reuse && s.mails < options_.mails_per_session) {
    // Every option back to its default (nothing of this mail reaches the next), the open
    // connection kept.
    curl_easy_reset(s.curl);
    MutexLock l(&mu_);
    if (idle_.size() < kIdleSessionsMax) {
      idle_.push_back(s);
      return;
    }
  }
  // QUIT and close: the session is used up, failed (a 4xx/5xx or a broken connection leaves
  // the transaction in an unknown state: the next mail starts a new session), or not needed.
  curl_easy_cleanup(s.curl);
}

MailResult Mailer::Send(const Mail& mail) {
  MailResult r;
  MailMessage m;
  m.from = options_.mail_from;
  m.from_name = options_.from_name;
  m.to = mail.to;
  m.subject = mail.subject;
  m.body = mail.body;
  m.id = mail.id;
  absl::StatusOr<std::string> text = ComposeMessage(m, clock_->WallNow());
  if (!text.ok()) {
    r.outcome = MailOutcome::kFailedPermanently;
    r.detail = std::string(text.status().message());
    return r;
  }

  GlobalInitOnce();
  // Everything the handle points at is declared before the session is taken, so it outlives
  // the session's return to the pool (a close sends QUIT and may report into errbuf).
  char errbuf[CURL_ERROR_SIZE] = {0};
  Upload up{*text};
  // Addresses are validated (IsValidMailbox): no <, >, CR or LF can reach the SMTP commands.
  const std::string rcpt = absl::StrCat("<", mail.to, ">");
  std::unique_ptr<curl_slist, SlistDeleter> rcpts(curl_slist_append(nullptr, rcpt.c_str()));
  const std::string from = absl::StrCat("<", options_.mail_from, ">");
  Session session = TakeSession();
  if (session.curl == nullptr) {
    r.detail = "curl_easy_init failed";
    return r;  // kRetry: out of memory passes
  }
  CURL* c = session.curl;
  bool reuse = false;
  const auto give_back = [this, &session, &reuse](void*) { GiveSession(session, reuse); };
  std::unique_ptr<void, decltype(give_back)> session_guard(c, give_back);
  bool ok = rcpts != nullptr;
  auto set = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
  set(curl_easy_setopt(c, CURLOPT_URL, options_.smtp_url.c_str()));
  set(curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps"));
  set(curl_easy_setopt(c, CURLOPT_USE_SSL, require_tls_ ? CURLUSESSL_ALL : CURLUSESSL_TRY));
  set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L));
  set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L));
  if (!options_.ca_file.empty()) set(curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str()));
  if (!options_.user.empty()) {
    set(curl_easy_setopt(c, CURLOPT_USERNAME, options_.user.c_str()));
    set(curl_easy_setopt(c, CURLOPT_PASSWORD, options_.password.c_str()));
  }
  set(curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str()));
  set(curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts.get()));
  set(curl_easy_setopt(c, CURLOPT_UPLOAD, 1L));
  set(curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead));
  set(curl_easy_setopt(c, CURLOPT_READDATA, &up));
  set(curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ClampMs(options_.connect_timeout)));
  set(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ClampMs(options_.total_timeout)));
  set(curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L));
  set(curl_easy_setopt(c, CURLOPT_MAXCONNECTS, 1L));
  set(curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, kIdleSessionSecondsMax));
  set(curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf));
  if (!ok) {
    r.detail = "curl setup failed";
    return r;
  }
  const CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  r.smtp_code = static_cast<int>(code);
  if (rc == CURLE_OK) {
    r.outcome = MailOutcome::kSent;
    r.detail = absl::StrCat("SMTP ", code);
    ++session.mails;
    reuse = true;
    return r;
  }
  r.detail = absl::StrCat(errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc), " (SMTP ", code, ")");
  // The last reply decides: 5xx is the server's permanent no (RFC 5321 4.2.1); 4xx, no reply
  // at all (connect, TLS, timeout, a dropped connection) may pass.
  r.outcome = (code >= 500 && code <= 599) ? MailOutcome::kFailedPermanently : MailOutcome::kRetry;
  return r;
}

}  // namespace kv::outbound
