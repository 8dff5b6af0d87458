// The outbound workers (issue 14): threads of their own that take due webhook events and
// mails from the shop's outbox (Shop::TakeDueOutbound), call the senders and settle,
// reschedule or fail each entry (Shop::FinishOutbound). Never the key-delivery worker's
// thread, an I/O loop or the group committer: a slow or dead endpoint holds only these
// threads, and the order path's only cost is one Put in a batch it writes anyway.
//
// Policy per sender outcome:
//   delivered / sent                 -> kSent (the entry is deleted)
//   retry                            -> kRetry at now + Backoff(attempts), or kFailed when
//                                       this was attempt number *_max_attempts
//   failed permanently               -> kFailed at once (the receiver said no: an admin
//                                       replays it after the cause is fixed)
//   breaker open (webhook)           -> kDeferred at now + retry_after: not an attempt
// The outcomes of one round's jobs are written together, in one write after the round (or,
// for webhooks, sent one after another, sooner, once kSettleDelay has passed since the
// first unsettled one; a mail round is one Mailer::SendMany, its mails sent concurrently
// over up to parallel_sessions SMTP sessions from the worker's thread, and settles when it
// returns): a sent event stays leased until then, and a crash in between sends it again
// (at least once, as before).
// Backoff(n) = min(backoff_max, backoff_initial * 2^(n-1)) scaled by a random factor in
// [0.5, 1.0] (jitter: a thousand events failing together do not come back together).
//
// The mail: rendered from MailTemplates in options.mail_language (the order does not record
// the buyer's page language; the shop chooses one), with the keys when email_keys (decrypted
// by the shop for this job only, never logged) or the order link only. The link is
// public_url + "/order/<id>#t=<token>" (a fragment: the token never reaches a server log).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "base/clock.h"
#include "base/random.h"
#include "metrics/metrics.h"
#include "outbound/mail_template.h"
#include "outbound/mailer.h"
#include "outbound/webhook.h"
#include "shop/shop.h"

namespace kv::outbound {

struct DispatcherOptions {
  uint32_t webhook_max_attempts = 12;  // >= 1
  uint32_t mail_max_attempts = 12;     // >= 1
  absl::Duration backoff_initial = absl::Seconds(2);
  absl::Duration backoff_max = absl::Hours(1);
  int webhook_threads = 2;  // when a webhook sender is given
  int mail_threads = 1;     // when a mailer is given
  // The worker threads' nice value (0..19; raised once at the thread's start, never
  // lowered): under a full CPU the order and payment threads (nice 0) come first and the
  // outbound work takes what they leave, so the side effects take less from a sale (not
  // nothing: tools/bench-outbound.sh) — a backlog grows during a burst and drains after it (the
  // server passes outbound_nice, default 19: CFS weight 15 against a nice-0 thread's 1024).
  int worker_nice = 0;
  // Also put each worker thread in the SCHED_IDLE policy (Linux; no privilege needed to
  // lower). The kernel's EEVDF scheduler lets a running task finish its protected slice
  // before a waking one preempts it, whatever its nice value, so a niced worker that has just
  // been scheduled can hold a core while an I/O loop or the committer, woken by the network
  // or the disk, waits behind it; a SCHED_IDLE task is preempted at once by any normal task
  // that wakes. The server passes outbound_sched_idle (default true).
  bool worker_sched_idle = false;
  size_t batch = 16;                                   // entries leased at a time per thread
  absl::Duration idle_wait = absl::Milliseconds(500);  // longest wait for work per round
  std::string public_url;  // the shop's base URL, for the order link in mails
  bool email_keys = true;
  std::string mail_language = "en";
};

// The wait before the next attempt after `attempts` attempts (>= 1), with jitter.
absl::Duration OutboundBackoff(uint32_t attempts, absl::Duration initial, absl::Duration max,
                               Random* random);

class Dispatcher {
 public:
  // webhook / mailer+templates may be null (that kind is not sent: its entries wait).
  // Every pointer outlives the dispatcher.
  Dispatcher(Shop* shop, WebhookSender* webhook, Mailer* mailer, const MailTemplates* templates,
             const Clock* clock, Random* random, DispatcherOptions options);
  ~Dispatcher();  // Stop()

  // Families: keyvend_outbound_attempts_total{kind,result}, keyvend_outbound_events{kind,
  // state} (from the shop's counts), keyvend_webhook_breaker_state (0 closed, 1 open, 2 half
  // open), keyvend_webhook_breaker_opened_total, keyvend_webhook_breaker_closed_total.
  void RegisterMetrics(Registry* registry);
  // The shop's base URL for the order link in mails (the server knows it once bound).
  // Before Start.
  void SetPublicUrl(std::string url) { public_url_ = std::move(url); }
  void Start();
  // Stops the threads (an attempt in progress finishes: at most its sender's timeout).
  void Stop();

  // One round for `kind` on the caller's thread, without waiting: leases what is due and
  // sends it. Returns how many entries were handled. For tests with a FakeClock.
  absl::StatusOr<size_t> RunOnce(OutboundKind kind);

 private:
  void Loop(OutboundKind kind);
  absl::StatusOr<size_t> Round(OutboundKind kind, absl::Duration wait);
  // Sends one job (HandleWebhook) or all of a round's mail jobs at once (HandleMails:
  // Mailer::SendMany) and appends the outcomes to `done` (settled together: Settle).
  void HandleWebhook(const OutboundJob& job, std::vector<OutboundFinishItem>* done);
  void HandleMails(std::vector<OutboundJob>& jobs, std::vector<OutboundFinishItem>* done);
  // How an attempt ended, whatever the kind: sent; failed but may pass (retried after the
  // backoff, or failed at the kind's *_max_attempts, counting this one on top of
  // job.event.attempts); refused for good (failed at once). A webhook's open breaker is
  // no attempt and is not one of these.
  enum class Attempt { kSent, kRetry, kRefused };
  // Appends the outcome to `done`, counts it in keyvend_outbound_attempts_total and logs a
  // failure (`detail`: the sender's text, never a key).
  void Conclude(const OutboundJob& job, Attempt a, std::string_view detail,
                std::vector<OutboundFinishItem>* done);
  // Writes the outcomes in `done` in one write (Shop::FinishOutboundMany) and clears it.
  void Settle(std::vector<OutboundFinishItem>* done);
  void Count(OutboundKind kind, const char* result);

  Shop* const shop_;
  WebhookSender* const webhook_;
  Mailer* const mailer_;
  const MailTemplates* const templates_;
  const Clock* const clock_;
  Random* const random_;
  const DispatcherOptions options_;
  std::string public_url_;
  Registry* registry_ = nullptr;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace kv::outbound
