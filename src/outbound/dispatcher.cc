#include "outbound/dispatcher.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/time_format.h"

namespace kv::outbound {

absl::Duration OutboundBackoff(uint32_t attempts, absl::Duration initial, absl::Duration max,
                               Random* random) {
  absl::Duration d = initial;
  for (uint32_t i = 1; i < attempts && d < max; ++i) d *= 2;
  d = std::min(d, max);
  uint8_t b[2];
  random->Fill(b, sizeof b);
  const double u = static_cast<double>(b[0] << 8 | b[1]) / 65535.0;  // [0, 1]
  return d * (0.5 + 0.5 * u);
}

Dispatcher::Dispatcher(Shop* shop, WebhookSender* webhook, Mailer* mailer,
                       const MailTemplates* templates, const Clock* clock, Random* random,
                       DispatcherOptions options)
    : shop_(shop),
      webhook_(webhook),
      mailer_(templates != nullptr ? mailer : nullptr),
      templates_(templates),
      clock_(clock),
      random_(random),
      options_(std::move(options)),
      public_url_(options_.public_url) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::RegisterMetrics(Registry* registry) {
  registry_ = registry;
  Shop* shop = shop_;
  registry->AddCollector(
      "keyvend_outbound_events",
      "Outbound entries (webhook events, buyer mails) in the delivery log, by kind and state.",
      "gauge", [shop](std::vector<Sample>* out) {
        const OutboundBacklog b = shop->OutboundCounts();
        for (OutboundKind k : {OutboundKind::kWebhook, OutboundKind::kMail}) {
          for (OutboundState s :
               {OutboundState::kPending, OutboundState::kFailed, OutboundState::kSettled}) {
            out->push_back(
                Sample{{{"kind", std::string(OutboundKindName(k))},
                        {"state", std::string(OutboundStateName(s))}},
                       static_cast<double>(b.count[static_cast<int>(k)][static_cast<int>(s)])});
          }
        }
      });
  const Clock* clock = clock_;
  registry->AddCollector(
      "keyvend_outbound_oldest_seconds",
      "Age of the oldest outbound entry (webhook event, buyer mail), by kind and state; 0 when "
      "there is none.",
      "gauge", [shop, clock](std::vector<Sample>* out) {
        const OutboundBacklog b = shop->OutboundCounts();
        const int64_t now_ms = absl::ToUnixMillis(clock->WallNow());
        for (OutboundKind k : {OutboundKind::kWebhook, OutboundKind::kMail}) {
          for (OutboundState s : {OutboundState::kPending, OutboundState::kFailed}) {
            const int64_t oldest = b.oldest_created_ms[static_cast<int>(k)][static_cast<int>(s)];
            const double age = oldest == 0 ? 0.0 : std::max<int64_t>(0, now_ms - oldest) / 1000.0;
            out->push_back(Sample{{{"kind", std::string(OutboundKindName(k))},
                                   {"state", std::string(OutboundStateName(s))}},
                                  age});
          }
        }
      });
  if (webhook_ != nullptr) {
    WebhookSender* w = webhook_;
    registry->AddCollector(
        "keyvend_webhook_breaker_state",
        "The webhook endpoint's circuit breaker: 0 closed, 1 open, 2 half open.", "gauge",
        [w](std::vector<Sample>* out) {
          out->push_back(Sample{{}, static_cast<double>(w->breaker_stats().state)});
        });
    registry->AddCollector(
        "keyvend_webhook_breaker_opened_total",
        "Times the webhook endpoint's circuit breaker opened.", "counter",
        [w](std::vector<Sample>* out) {
          out->push_back(Sample{{}, static_cast<double>(w->breaker_stats().opened_total)});
        });
    registry->AddCollector(
        "keyvend_webhook_breaker_closed_total",
        "Times the webhook endpoint's circuit breaker closed after a probe.", "counter",
        [w](std::vector<Sample>* out) {
          out->push_back(Sample{{}, static_cast<double>(w->breaker_stats().closed_total)});
        });
  }
  // The children exist from the start (a rate over a counter that appears late is wrong).
  for (const char* kind : {"webhook", "mail"}) {
    for (const char* result : {"sent", "retry", "failed", "deferred"}) {
      (void)registry->GetCounter("keyvend_outbound_attempts_total",
                                 "Outbound sends by kind and what became of the entry.",
                                 {{"kind", kind}, {"result", result}});
    }
  }
}

void Dispatcher::Count(OutboundKind kind, const char* result) {
  if (registry_ == nullptr) return;
  registry_
      ->GetCounter("keyvend_outbound_attempts_total",
                   "Outbound sends by kind and what became of the entry.",
                   {{"kind", std::string(OutboundKindName(kind))}, {"result", result}})
      ->Inc();
}

void Dispatcher::Start() {
  stop_ = false;
  if (webhook_ != nullptr) {
    for (int i = 0; i < options_.webhook_threads; ++i) {
      threads_.emplace_back([this] { Loop(OutboundKind::kWebhook); });
    }
  }
  if (mailer_ != nullptr) {
    for (int i = 0; i < options_.mail_threads; ++i) {
      threads_.emplace_back([this] { Loop(OutboundKind::kMail); });
    }
  }
}

void Dispatcher::Stop() {
  stop_ = true;
  if (threads_.empty()) return;  // never started, or stopped: the shop may be gone
  shop_->WakeOutbound();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void Dispatcher::Loop(OutboundKind kind) {
  // Named in top, perf and gdb (and found by name in dispatcher_test).
  pthread_setname_np(pthread_self(), kind == OutboundKind::kWebhook ? "kv-webhook" : "kv-mail");
  // Linux: the nice value and the policy are per thread (the tid names one). Lowering either
  // needs no privilege; a failure only leaves the thread at the process's priority.
  const int tid = static_cast<int>(syscall(SYS_gettid));
  if (options_.worker_nice > 0 &&
      setpriority(PRIO_PROCESS, static_cast<id_t>(tid), std::min(options_.worker_nice, 19)) != 0) {
    KV_LOG(kWarn, "outbound ", OutboundKindName(kind), ": cannot lower the worker's priority");
  }
  if (options_.worker_sched_idle) {
    const sched_param p{};  // priority 0, the only one SCHED_IDLE takes
    if (sched_setscheduler(static_cast<pid_t>(tid), SCHED_IDLE, &p) != 0) {
      KV_LOG(kWarn, "outbound ", OutboundKindName(kind),
             ": cannot put the worker in the idle scheduling policy");
    }
  }
  while (!stop_.load()) {
    auto n = Round(kind, options_.idle_wait);
    if (!n.ok()) {
      KV_LOG(kWarn, "outbound ", OutboundKindName(kind), ": ", n.status().message());
      // A storage error: the entries stay in the log; try again a little later.
      shop_->WakeOutbound();
      absl::SleepFor(absl::Seconds(1));
    }
  }
}

absl::StatusOr<size_t> Dispatcher::RunOnce(OutboundKind kind) {
  return Round(kind, absl::ZeroDuration());
}

namespace {
// The longest a sent entry waits for its round's settle write (a slow endpoint makes a round
// long; its outcomes so far are written once this has passed).
constexpr int64_t kSettleDelayNs = 200'000'000;
}  // namespace

absl::StatusOr<size_t> Dispatcher::Round(OutboundKind kind, absl::Duration wait) {
  if ((kind == OutboundKind::kWebhook && webhook_ == nullptr) ||
      (kind == OutboundKind::kMail && mailer_ == nullptr)) {
    return 0;
  }
  auto jobs = shop_->TakeDueOutbound(kind, options_.batch, wait);
  if (!jobs.ok()) return jobs.status();
  std::vector<OutboundFinishItem> done;
  done.reserve(jobs->size());
  if (kind == OutboundKind::kMail) {
    // Sent together (SendMany): the round's outcomes are all there when it returns.
    HandleMails(*jobs, &done);
    Settle(&done);
    return jobs->size();
  }
  int64_t first_ns = 0;
  for (OutboundJob& job : *jobs) {
    HandleWebhook(job, &done);
    const int64_t now_ns = clock_->MonoNowNs();
    if (first_ns == 0) first_ns = now_ns;
    if (now_ns - first_ns >= kSettleDelayNs) {
      Settle(&done);
      first_ns = 0;
    }
  }
  Settle(&done);
  return jobs->size();
}

void Dispatcher::Settle(std::vector<OutboundFinishItem>* done) {
  if (done->empty()) return;
  absl::Status s = shop_->FinishOutboundMany(*done);
  if (!s.ok()) {
    KV_LOG(kWarn, "outbound: settling ", done->size(), " entries (", done->front().job->event.id,
           " ...): ", s.message());
  }
  done->clear();
}

void Dispatcher::Conclude(const OutboundJob& job, Attempt a, std::string_view detail,
                          std::vector<OutboundFinishItem>* done) {
  const OutboundKind kind = job.event.kind;
  switch (a) {
    case Attempt::kSent:
      done->push_back({&job, OutboundFinish::kSent, 0, ""});
      Count(kind, "sent");
      return;
    case Attempt::kRefused:
      done->push_back({&job, OutboundFinish::kFailed, 0, std::string(detail)});
      Count(kind, "failed");
      KV_LOG(kWarn, OutboundKindName(kind), " ", job.event.id, " refused for good: ", detail);
      return;
    case Attempt::kRetry:
      break;
  }
  const uint32_t max_attempts =
      kind == OutboundKind::kWebhook ? options_.webhook_max_attempts : options_.mail_max_attempts;
  const uint32_t attempts = job.event.attempts + 1;
  const bool give_up = attempts >= max_attempts;
  const int64_t next =
      UnixMs(clock_->WallNow() +
             OutboundBackoff(attempts, options_.backoff_initial, options_.backoff_max, random_));
  done->push_back({&job, give_up ? OutboundFinish::kFailed : OutboundFinish::kRetry, next,
                   std::string(detail)});
  Count(kind, give_up ? "failed" : "retry");
  if (give_up) {
    KV_LOG(kWarn, "outbound ", job.event.id, " failed after ", attempts, " attempts: ", detail);
  }
}

void Dispatcher::HandleWebhook(const OutboundJob& job, std::vector<OutboundFinishItem>* done) {
  WebhookEvent e;
  e.id = job.event.id;
  e.type = "order." + std::string(OrderStatusName(job.event.status));
  e.created_at = FromUnixMs(job.event.created_ms);
  e.order_id = job.order.order_id;
  e.status = std::string(OrderStatusName(job.event.status));
  e.product_id = job.order.product_id;
  e.quantity = job.order.quantity;
  e.amount_cents = job.order.amount_cents;
  e.currency = job.order.currency;
  e.contact = job.order.contact;
  e.payment_id = job.order.payment_id;
  e.order_created_at = job.order.created_at;
  if (job.paid_ms != 0) e.paid_at = FromUnixMs(job.paid_ms);
  if (job.delivered_ms != 0) e.delivered_at = FromUnixMs(job.delivered_ms);
  const WebhookResult r = webhook_->Send(e);
  switch (r.outcome) {
    case WebhookOutcome::kDelivered:
      return Conclude(job, Attempt::kSent, r.detail, done);
    case WebhookOutcome::kRetry:
      return Conclude(job, Attempt::kRetry, r.detail, done);
    case WebhookOutcome::kFailedPermanently:
      return Conclude(job, Attempt::kRefused, r.detail, done);
    case WebhookOutcome::kBreakerOpen:
      done->push_back({&job, OutboundFinish::kDeferred,
                       UnixMs(clock_->WallNow() + std::max(r.retry_after, absl::Milliseconds(200))),
                       "circuit breaker open"});
      Count(OutboundKind::kWebhook, "deferred");
      break;
  }
}

void Dispatcher::HandleMails(std::vector<OutboundJob>& jobs,
                             std::vector<OutboundFinishItem>* done) {
  const MailKind kind = options_.email_keys ? MailKind::kWithKeys : MailKind::kLinkOnly;
  std::vector<Mail> mails(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    OutboundJob& job = jobs[i];
    MailFields f;
    f.order_id = job.order.order_id;
    f.product = job.product_name;
    f.quantity = job.order.quantity;
    f.order_url = absl::StrCat(public_url_, "/order/", job.order.order_id, "#t=", job.token);
    if (options_.email_keys) f.keys = std::move(job.order.keys);
    RenderedMail rendered = templates_->Render(kind, options_.mail_language, f);
    // The keys leave memory with the job's copies (never logged: a result's detail is curl's
    // text); the rendered body goes once sent.
    for (std::string& k : f.keys) std::fill(k.begin(), k.end(), '\0');
    mails[i].to = job.order.contact;
    mails[i].id = job.event.id;
    mails[i].subject = std::move(rendered.subject);
    mails[i].body = std::move(rendered.body);
  }
  const std::vector<MailResult> results = mailer_->SendMany(mails);
  for (Mail& m : mails) std::fill(m.body.begin(), m.body.end(), '\0');
  for (size_t i = 0; i < jobs.size(); ++i) {
    const OutboundJob& job = jobs[i];
    const MailResult& r = results[i];
    const Attempt a = r.outcome == MailOutcome::kSent    ? Attempt::kSent
                      : r.outcome == MailOutcome::kRetry ? Attempt::kRetry
                                                         : Attempt::kRefused;
    Conclude(job, a, r.detail, done);
  }
}

}  // namespace kv::outbound
