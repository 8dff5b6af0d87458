// The buyer's mail over SMTP (issue 14): libcurl's SMTP client (Debian's libcurl4-openssl),
// sessions reused (a connection carries up to mails_per_session mails), bounded in time. The sender
// only; the delivery log decides when to call it again.
//
// TLS: `smtps://host[:465]` is TLS from the first byte. `smtp://host[:25|587]` upgrades with
// STARTTLS when the server offers it and goes on in clear when it does not
// (CURLUSESSL_TRY) — except when a password is set and the host is not loopback: then
// STARTTLS is required (CURLUSESSL_ALL), because a password must never cross a network in
// clear. Certificates and host names are always verified (ca_file or the system's store).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "outbound/mail_message.h"

namespace kv::outbound {

struct MailerOptions {
  std::string smtp_url;   // smtp://host[:port] or smtps://host[:port]. Required.
  std::string user;       // SMTP AUTH user; empty = no AUTH. Default empty.
  std::string password;   // KEYVEND_SMTP_PASSWORD; never logged. Default empty.
  std::string mail_from;  // the envelope sender and From address (IsValidMailbox). Required.
  std::string from_name;  // From's display name (the shop's name); may be empty.
  absl::Duration connect_timeout = absl::Seconds(10);  // > 0. Default 10 s.
  absl::Duration total_timeout = absl::Seconds(60);    // >= connect_timeout. Default 60 s.
  std::string ca_file;  // PEM bundle for the server's certificate; empty = the system's.
  // Mails sent over one SMTP session before it is closed (QUIT) and a new one opened;
  // 1..kMailsPerSessionMax. A failed send always closes its session. Default 100.
  uint32_t mails_per_session = 100;
  // SMTP sessions SendMany keeps busy at once (1..kParallelSessionsMax). Default 4.
  uint32_t parallel_sessions = 4;
};
inline constexpr uint32_t kMailsPerSessionMax = 10000;
inline constexpr uint32_t kParallelSessionsMax = 16;  // = mail_parallel_sessions's bound (config.h)

// Why an options struct is unusable (names the field), or OK.
absl::Status ValidateMailerOptions(const MailerOptions& options);

// One mail to send: the Mailer adds From, Date and the MIME headers.
struct Mail {
  std::string to;       // the buyer's address (IsValidMailbox)
  std::string subject;  // UTF-8, one line
  std::string body;     // UTF-8 text
  std::string id;       // Message-ID left part, stable across retries: [A-Za-z0-9._-]{1,64}
};

// Stable numbers (the lead may store or export them).
enum class MailOutcome : int {
  // The server accepted the message (250 after the data).
  kSent = 0,
  // Try again later: no connection, a timeout, a TLS failure, a dropped connection, or a 4xx
  // (transient) SMTP reply.
  kRetry = 1,
  // Retrying cannot help: a 5xx (permanent) SMTP reply — 550 no such mailbox, 554
  // rejected, 535 authentication failed — or a mail that cannot be composed (a bad address,
  // a control character in the subject). An admin replays it after fixing the cause.
  kFailedPermanently = 2,
};
const char* MailOutcomeName(MailOutcome o);  // "sent", "retry", "failed_permanently"

struct MailResult {
  MailOutcome outcome = MailOutcome::kRetry;
  int smtp_code = 0;   // the server's last reply code; 0 when none came
  std::string detail;  // curl's error text or the composition error; never the password
};

class Mailer {
 public:
  // Errors: InvalidArgument (ValidateMailerOptions). clock outlives the mailer.
  static absl::StatusOr<std::unique_ptr<Mailer>> Create(const MailerOptions& options,
                                                        const Clock* clock);

  ~Mailer();  // closes the idle sessions (QUIT)
  Mailer(const Mailer&) = delete;
  Mailer& operator=(const Mailer&) = delete;

  // Composes (mail_message.h) and sends each of `mails` once, concurrently from the calling
  // thread (libcurl's multi interface, one poll loop): up to parallel_sessions SMTP sessions
  // at once, each carrying one mail after another (an idle session's open connection carries
  // a mail without a new connect, EHLO, STARTTLS or AUTH) until mails_per_session or a
  // failure closes it. Returns one result per mail, in order, each what Send gives that mail
  // alone. Each mail has its own connect_timeout and total_timeout from the moment its
  // transfer starts, so a call blocks for at most ceil(n / parallel_sessions) total_timeouts
  // (plus the QUITs of the sessions it closes). The composed texts are wiped before it
  // returns. Thread-safe: concurrent calls use sessions of their own.
  std::vector<MailResult> SendMany(std::span<const Mail> mails);

  // SendMany of one mail.
  MailResult Send(const Mail& mail);

 private:
  struct Session;  // an SMTP session: a multi handle, its easy handle, its connection
  struct Batch;    // one SendMany call's mails, transfers and results
  struct Lane;     // one of a call's concurrent sessions and the mail it carries
  Mailer(const MailerOptions& options, const Clock* clock, bool require_tls);
  std::unique_ptr<Session> TakeSession();  // nullptr when curl cannot make one
  void GiveSession(std::unique_ptr<Session> s, bool reuse);
  // Starts the batch's next mail on the lane's session (a new one when the lane has none);
  // false when no mail is left.
  bool StartNext(Batch* batch, Lane* lane);
  // The lane's mail is done (curl_result: its CURLcode): its result, and its session kept
  // for the next mail or closed.
  void Finish(Batch* batch, Lane* lane, int curl_result);

  const MailerOptions options_;
  const Clock* const clock_;
  const bool require_tls_;
  Mutex mu_;
  std::vector<std::unique_ptr<Session>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv::outbound
