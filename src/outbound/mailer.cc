// Mailer over libcurl's SMTP: MAIL FROM, RCPT TO, DATA with the composed message read from
// memory; libcurl does the protocol, the STARTTLS upgrade, AUTH and the dot-stuffing.
#include "outbound/mailer.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kv::outbound {
namespace {

constexpr size_t kUrlBytesMax = 2048;
// Idle sessions kept at least (parallel_sessions when more: what one mail thread uses; more
// concurrent callers close theirs after their mails).
constexpr size_t kIdleSessionsMin = 4;
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

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What curl wants watched for one session's multi handle: its sockets
// (CURLMOPT_SOCKETFUNCTION) and when it wants to be called without I/O
// (CURLMOPT_TIMERFUNCTION: its connect and total timeouts, its own retries).
struct PollState {
  std::vector<std::pair<curl_socket_t, int>> sockets;  // CURL_POLL_IN, _OUT or _INOUT
  int64_t timer_ns = -1;                               // SteadyNs; -1: none
};

int OnSocket(CURL*, curl_socket_t s, int what, void* user, void*) {
  auto* p = static_cast<PollState*>(user);
  std::erase_if(p->sockets, [s](const auto& e) { return e.first == s; });
  if (what != CURL_POLL_REMOVE) p->sockets.emplace_back(s, what);
  return 0;
}

int OnTimer(CURLM*, long ms, void* user) {
  auto* p = static_cast<PollState*>(user);
  p->timer_ns = ms < 0 ? -1 : SteadyNs() + int64_t{ms} * 1'000'000;
  return 0;
}

// A finished transfer's outcome from curl's result and the server's last reply code.
MailResult Classify(CURLcode rc, long code, const char* errbuf) {
  MailResult r;
  r.smtp_code = static_cast<int>(code);
  if (rc == CURLE_OK) {
    r.outcome = MailOutcome::kSent;
    r.detail = absl::StrCat("SMTP ", code);
    return r;
  }
  r.detail = absl::StrCat(errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc), " (SMTP ", code, ")");
  // The last reply decides: 5xx is the server's permanent no (RFC 5321 4.2.1); 4xx, no reply
  // at all (connect, TLS, timeout, a dropped connection) may pass.
  r.outcome = (code >= 500 && code <= 599) ? MailOutcome::kFailedPermanently : MailOutcome::kRetry;
  return r;
}

void Wipe(std::string* s) { std::fill(s->begin(), s->end(), '\0'); }

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
  if (o.parallel_sessions < 1 || o.parallel_sessions > kParallelSessionsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("parallel sessions: must be 1..", kParallelSessionsMax));
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

// An SMTP session: an easy handle in a multi handle of its own, whose connection cache (one
// connection) keeps the SMTP connection between mails, so the next mail starts at MAIL
// FROM. A multi handle per session, not one for all: curl picks which cached connection a
// transfer reuses, and a session must count its own mails and be closed alone. Destroying
// it closes the connection (QUIT).
struct Mailer::Session {
  CURLM* multi = nullptr;
  CURL* curl = nullptr;  // never inside `multi` when the session is idle or destroyed
  uint32_t mails = 0;    // mails its connection has carried
  PollState poll;        // the callbacks' (a heap object: its address is theirs)

  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (multi != nullptr) curl_multi_cleanup(multi);  // QUIT on the cached connection
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

namespace {
// One mail's transfer: what curl points at while it runs.
struct Transfer {
  std::string text;  // the composed message; wiped once sent (or not)
  Upload up;
  std::string rcpt;
  std::unique_ptr<curl_slist, SlistDeleter> rcpts;
  char errbuf[CURL_ERROR_SIZE] = {0};
};
}  // namespace

struct Mailer::Batch {
  std::span<const Mail> mails;
  std::vector<MailResult> results;
  std::vector<Transfer> transfers;  // sized once: curl holds pointers into them
  std::vector<size_t> queue;        // the mails composed, to send in this order
  size_t next = 0;                  // into queue
  std::string from;                 // <mail_from>
};

struct Mailer::Lane {
  std::unique_ptr<Session> session;
  size_t mail = 0;    // the mail in flight (an index into the batch)
  bool busy = false;  // session->curl is inside session->multi
};

Mailer::Mailer(const MailerOptions& options, const Clock* clock, bool require_tls)
    : options_(options), clock_(clock), require_tls_(require_tls) {}

Mailer::~Mailer() {
  MutexLock l(&mu_);
  idle_.clear();
}

std::unique_ptr<Mailer::Session> Mailer::TakeSession() {
  {
    MutexLock l(&mu_);
    if (!idle_.empty()) {
      std::unique_ptr<Session> s = std::move(idle_.back());
      idle_.pop_back();
      return s;
    }
  }
  auto s = std::make_unique<Session>();
  s->multi = curl_multi_init();
  s->curl = curl_easy_init();
  if (s->multi == nullptr || s->curl == nullptr) return nullptr;
  bool ok = true;
  auto set = [&ok](CURLMcode rc) { ok = ok && rc == CURLM_OK; };
  set(curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, OnSocket));
  set(curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, &s->poll));
  set(curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, OnTimer));
  set(curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, &s->poll));
  set(curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, 1L));
  return ok ? std::move(s) : nullptr;
}

void Mailer::GiveSession(std::unique_ptr<Session> s, bool reuse) {
  if (reuse && s->mails < options_.mails_per_session) {
    // Every option back to its default (nothing of this mail reaches the next), the open
    // connection kept in the session's multi handle.
    curl_easy_reset(s->curl);
    MutexLock l(&mu_);
    if (idle_.size() < std::max<size_t>(kIdleSessionsMin, options_.parallel_sessions)) {
      idle_.push_back(std::move(s));
      return;
    }
  }
  // QUIT and close: the session is used up, failed (a 4xx/5xx or a broken connection leaves
  // the transaction in an unknown state: the next mail starts a new session), or not needed.
  s.reset();
}

bool Mailer::StartNext(Batch* b, Lane* lane) {
  while (b->next < b->queue.size()) {
    const size_t i = b->queue[b->next++];
    MailResult& r = b->results[i];
    if (lane->session == nullptr) lane->session = TakeSession();
    if (lane->session == nullptr) {
      r.detail = "curl_easy_init failed";
      continue;  // kRetry: out of memory passes
    }
    Transfer& t = b->transfers[i];
    t.up.rest = t.text;
    // Addresses are validated (IsValidMailbox): no <, >, CR or LF can reach the SMTP commands.
    t.rcpt = absl::StrCat("<", b->mails[i].to, ">");
    t.rcpts.reset(curl_slist_append(nullptr, t.rcpt.c_str()));
    CURL* c = lane->session->curl;
    bool ok = t.rcpts != nullptr;
    auto set = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
    set(curl_easy_setopt(c, CURLOPT_URL, options_.smtp_url.c_str()));
    set(curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps"));
    set(curl_easy_setopt(c, CURLOPT_USE_SSL, require_tls_ ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L));
    set(curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L));
    if (!options_.ca_file.empty()) {
      set(curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str()));
    }
    if (!options_.user.empty()) {
      set(curl_easy_setopt(c, CURLOPT_USERNAME, options_.user.c_str()));
      set(curl_easy_setopt(c, CURLOPT_PASSWORD, options_.password.c_str()));
    }
    set(curl_easy_setopt(c, CURLOPT_MAIL_FROM, b->from.c_str()));
    set(curl_easy_setopt(c, CURLOPT_MAIL_RCPT, t.rcpts.get()));
    set(curl_easy_setopt(c, CURLOPT_UPLOAD, 1L));
    set(curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead));
    set(curl_easy_setopt(c, CURLOPT_READDATA, &t.up));
    // Per mail, from the moment its transfer starts (curl arms them when it is added).
    set(curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ClampMs(options_.connect_timeout)));
    set(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ClampMs(options_.total_timeout)));
    set(curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(c, CURLOPT_MAXAGE_CONN, kIdleSessionSecondsMax));
    set(curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t.errbuf));
    if (ok) ok = curl_multi_add_handle(lane->session->multi, c) == CURLM_OK;
    if (!ok) {
      r.detail = "curl setup failed";
      GiveSession(std::move(lane->session), false);
      Wipe(&t.text);
      continue;  // kRetry
    }
    lane->mail = i;
    lane->busy = true;
    return true;
  }
  return false;
}

void Mailer::Finish(Batch* b, Lane* lane, int curl_result) {
  Transfer& t = b->transfers[lane->mail];
  Session& s = *lane->session;
  long code = 0;
  curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &code);
  MailResult& r = b->results[lane->mail];
  r = Classify(static_cast<CURLcode>(curl_result), code, t.errbuf);
  curl_multi_remove_handle(s.multi, s.curl);
  lane->busy = false;
  Wipe(&t.text);
  if (r.outcome == MailOutcome::kSent) ++s.mails;
  if (r.outcome != MailOutcome::kSent || s.mails >= options_.mails_per_session) {
    GiveSession(std::move(lane->session), false);  // QUIT and close
  } else {
    curl_easy_reset(s.curl);  // the connection stays for the lane's next mail
  }
}

std::vector<MailResult> Mailer::SendMany(std::span<const Mail> mails) {
  Batch b;
  b.mails = mails;
  b.results.resize(mails.size());
  b.transfers.resize(mails.size());
  b.from = absl::StrCat("<", options_.mail_from, ">");
  const absl::Time now = clock_->WallNow();
  for (size_t i = 0; i < mails.size(); ++i) {
    MailMessage m;
    m.from = options_.mail_from;
    m.from_name = options_.from_name;
    m.to = mails[i].to;
    m.subject = mails[i].subject;
    m.body = mails[i].body;
    m.id = mails[i].id;
    absl::StatusOr<std::string> text = ComposeMessage(m, now);
    Wipe(&m.body);
    if (!text.ok()) {
      b.results[i].outcome = MailOutcome::kFailedPermanently;
      b.results[i].detail = std::string(text.status().message());
      continue;
    }
    b.transfers[i].text = std::move(*text);
    b.queue.push_back(i);
  }
  GlobalInitOnce();

  // Declared after the batch: a lane's session may close (QUIT) as the lanes go, while the
  // batch's buffers are still there.
  std::vector<Lane> lanes(std::min<size_t>(options_.parallel_sessions, b.queue.size()));
  for (Lane& lane : lanes) StartNext(&b, &lane);
  std::vector<pollfd> fds;
  std::vector<Lane*> owners;
  while (std::any_of(lanes.begin(), lanes.end(), [](const Lane& l) { return l.busy; })) {
    // One wait for every busy session: the sockets curl watches, the nearest timer.
    fds.clear();
    owners.clear();
    int64_t wait_ns = 1'000'000'000;  // a bound only: curl's timers end every transfer
    const int64_t now_ns = SteadyNs();
    for (Lane& lane : lanes) {
      if (!lane.busy) continue;
      const PollState& p = lane.session->poll;
      for (const auto& [sock, what] : p.sockets) {
        const short events = static_cast<short>(((what & CURL_POLL_IN) != 0 ? POLLIN : 0) |
                                                ((what & CURL_POLL_OUT) != 0 ? POLLOUT : 0));
        fds.push_back(pollfd{sock, events, 0});
        owners.push_back(&lane);
      }
      if (p.timer_ns >= 0) wait_ns = std::min(wait_ns, std::max<int64_t>(0, p.timer_ns - now_ns));
    }
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>((wait_ns + 999'999) / 1'000'000));
    int running = 0;
    if (n > 0) {
      for (size_t k = 0; k < fds.size(); ++k) {
        const short re = fds[k].revents;
        if (re == 0 || !owners[k]->busy) continue;
        const int ev = ((re & (POLLIN | POLLHUP)) != 0 ? CURL_CSELECT_IN : 0) |
                       ((re & POLLOUT) != 0 ? CURL_CSELECT_OUT : 0) |
                       ((re & POLLERR) != 0 ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(owners[k]->session->multi, fds[k].fd, ev, &running);
      }
    } else if (n < 0 && errno != EINTR) {
      ::poll(nullptr, 0, 10);  // cannot happen with valid fds; the timers still end it
    }
    for (Lane& lane : lanes) {
      if (!lane.busy) continue;
      PollState& p = lane.session->poll;
      if (p.timer_ns >= 0 && p.timer_ns <= SteadyNs()) {
        p.timer_ns = -1;
        curl_multi_socket_action(lane.session->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      }
    }
    for (Lane& lane : lanes) {
      if (!lane.busy) continue;
      int left = 0;
      CURLcode done = CURLE_OK;
      bool finished = false;
      while (CURLMsg* msg = curl_multi_info_read(lane.session->multi, &left)) {
        if (msg->msg == CURLMSG_DONE) {
          done = msg->data.result;
          finished = true;
        }
      }
      if (finished) {
        Finish(&b, &lane, done);
        StartNext(&b, &lane);
      }
    }
  }
  for (Lane& lane : lanes) {
    if (lane.session != nullptr) GiveSession(std::move(lane.session), true);
  }
  for (Transfer& t : b.transfers) Wipe(&t.text);
  return b.results;
}

MailResult Mailer::Send(const Mail& mail) { return SendMany(std::span<const Mail>(&mail, 1))[0]; }

}  // namespace kv::outbound
