#include "app/serve.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "app/fd_budget.h"
#include "base/cli_flags.h"
#include "base/clock.h"
#include "base/hardening.h"
#include "base/log.h"
#include "base/random.h"
#include "base/secret.h"
#include "config/config.h"
#include "http/server.h"
#include "limits/limits.h"
#include "net/http_client.h"
#include "outbound/dispatcher.h"
#include "outbound/mail_message.h"
#include "pay/registry.h"
#include "shop/shop.h"

namespace kv {

int RunServe(const std::vector<std::string>& args, const ServeHooks& hooks) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: keyvend serve [options]\n\n%s\nsecrets (environment only):\n"
          "  KEYVEND_ADMIN_TOKEN     bearer token of the admin API, at least 32 "
          "characters\n"
          "  KEYVEND_PAYMENT_SECRET  HMAC secret of payment notifications\n"
          "  KEYVEND_EPAY_KEY        the EPay merchant key (payment_gateways = epay)\n"
          "  KEYVEND_STRIPE_SECRET_KEY, KEYVEND_STRIPE_WEBHOOK_SECRET\n"
          "                          Stripe's API key and webhook signing secret "
          "(payment_gateways = stripe)\n"
          "  KEYVEND_WEBHOOK_SECRET  HMAC secret signing the merchant webhook (webhook_url)\n"
          "  KEYVEND_SMTP_PASSWORD   SMTP login password (smtp_url, smtp_user)\n",
          ConfigHelp().c_str());
      return 0;
    }
  }
  auto cfg = LoadConfig(args, ProcessEnv());
  if (!cfg.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(cfg->log_level, &level);  // validated by LoadConfig
  SetLogLevel(level);
  // main() hardened the process before anything was read; only the config can relax it.
  if (cfg->allow_core_dumps) {
    if (absl::Status s = AllowCoreDumps(); !s.ok()) {
      KV_LOG(kError, "allow_core_dumps: ", std::string(s.message()));
      return 1;
    }
    KV_LOG(kWarn,
           "allow_core_dumps is on: a core dump of this process holds the key "
           "encryption subkeys, delivered keys and the secrets; keep it private");
  }
  // The secrets leave the environment at once (base/secret.h): a child process, a later
  // getenv and /proc/PID/environ no longer see them.
  std::string admin_token = TakeSecretFromEnv("KEYVEND_ADMIN_TOKEN").value_or("");
  std::string payment_secret = TakeSecretFromEnv("KEYVEND_PAYMENT_SECRET").value_or("");
  pay::GatewaySecrets gateway_secrets;
  gateway_secrets.epay_key = TakeSecretFromEnv("KEYVEND_EPAY_KEY").value_or("");
  gateway_secrets.stripe_secret_key = TakeSecretFromEnv("KEYVEND_STRIPE_SECRET_KEY").value_or("");
  gateway_secrets.stripe_webhook_secret =
      TakeSecretFromEnv("KEYVEND_STRIPE_WEBHOOK_SECRET").value_or("");
  std::string webhook_secret = TakeSecretFromEnv("KEYVEND_WEBHOOK_SECRET").value_or("");
  std::string smtp_password = TakeSecretFromEnv("KEYVEND_SMTP_PASSWORD").value_or("");
  if (!admin_token.empty() && admin_token.size() < limits::kAdminTokenBytesMin) {
    // Never the token itself, nor its length.
    std::fprintf(stderr,
                 "keyvend: KEYVEND_ADMIN_TOKEN is too short: the admin token must be at least "
                 "%zu characters (e.g. `openssl rand -hex 32`), or unset to turn the admin "
                 "API off\n",
                 limits::kAdminTokenBytesMin);
    return 2;
  }
  // Every connection, waiting socket and open RocksDB file is a descriptor: raise the soft
  // limit to the hard one and refuse to start, before binding, when the configured caps do
  // not fit (app/fd_budget.h).
  const int64_t io_loops = cfg->io_threads > 0
                               ? cfg->io_threads
                               : std::max<int64_t>(1, std::thread::hardware_concurrency());
  const FdBudget fd_budget = ComputeFdBudget(*cfg, io_loops);
  if (absl::Status s = RaiseAndCheckFdLimit(fd_budget); !s.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  // SIGTERM/SIGINT are taken by a waiting thread (sigwait), never by a handler in an
  // arbitrary thread: block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Order ids, key nonces, sandbox payment ids and retry jitter come from OpenSSL's CSPRNG in
  // 4 KiB blocks (base/random.h): one RAND_bytes call — with its DRBG lock and the getpid()
  // system call of its fork check — per ~400 orders instead of one per order (issue 11).
  // `keyvend serve` never forks. Never destroyed: the detached signal thread may outlive
  // this frame.
  static BufferedSecureRandom* const random = new BufferedSecureRandom();
  ShopOptions so;
  so.random = random;
  so.data_dir = cfg->data_dir;
  so.master_key_file = cfg->master_key_file;
  so.hold_seconds = cfg->hold_seconds;
  so.hold_grace_seconds = cfg->hold_grace_seconds;
  so.block_cache_bytes = static_cast<size_t>(cfg->block_cache_mb) << 20;
  so.min_free_disk_bytes = static_cast<uint64_t>(cfg->min_free_disk_mb) << 20;
  so.pending_orders_per_contact_max = static_cast<uint32_t>(cfg->pending_orders_per_contact_max);
  so.pending_orders_per_client_max = static_cast<uint32_t>(cfg->pending_orders_per_client_max);
  so.lookup_lockout.failures_max = static_cast<uint32_t>(cfg->lookup_failures_max);
  so.lookup_lockout.window_seconds = cfg->lookup_failure_window_seconds;
  so.lookup_lockout.lockout_seconds = cfg->lookup_lockout_seconds;
  so.lookup_lockout.lockout_seconds_max = cfg->lookup_lockout_seconds_max;
  so.lookup_lockout.keys_max = static_cast<size_t>(cfg->lookup_lockout_keys_max);
  // Backups (src/backup): the admin API's and the scheduler's.
  so.backup_dir = cfg->backup_dir;
  so.backup_interval_seconds = cfg->backup_interval_seconds;
  so.backup_keep = static_cast<uint32_t>(cfg->backup_keep);
  so.backup_rate_limit_bytes_per_second = static_cast<uint64_t>(cfg->backup_rate_limit_mb) << 20;
  // The payment gateways (issue 13), before the shop opens: a missing setting or secret
  // fails the start naming it.
  net::CurlClientOptions curl;
  curl.ca_file = cfg->gateway_ca_file;
  std::unique_ptr<net::HttpClient> gateway_http = net::MakeCurlHttpClient(curl);
  auto gateways = pay::MakeGateways(*cfg, gateway_secrets, gateway_http.get(), RealClock::Get(),
                                    SecureRandom::Get());
  gateway_secrets = {};  // the adapters hold their copies
  if (!gateways.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(gateways.status().message()).c_str());
    return 2;
  }
  // Outbound work (issue 14): the merchant webhook and the buyer mail, before the shop
  // opens: a missing setting or secret fails the start naming it.
  if (!cfg->webhook_url.empty() && webhook_secret.empty()) {
    std::fprintf(stderr,
                 "keyvend: webhook_url is set but KEYVEND_WEBHOOK_SECRET is not: the webhook "
                 "must be signed (set the secret, or unset webhook_url)\n");
    return 2;
  }
  if (!cfg->smtp_url.empty() && cfg->mail_from.empty()) {
    std::fprintf(stderr,
                 "keyvend: smtp_url is set but mail_from is not: buyer mails need a "
                 "sender address\n");
    return 2;
  }
  if (cfg->smtp_url.empty() && (!cfg->mail_from.empty() || !smtp_password.empty())) {
    KV_LOG(kWarn, "mail_from or KEYVEND_SMTP_PASSWORD is set but smtp_url is not: no mail");
  }
  std::unique_ptr<net::HttpClient> webhook_http;
  std::unique_ptr<outbound::WebhookSender> webhook;
  if (!cfg->webhook_url.empty()) {
    webhook_http = net::MakeCurlHttpClient(net::CurlClientOptions{});
    outbound::WebhookOptions wo;
    wo.url = cfg->webhook_url;
    wo.secret = std::move(webhook_secret);
    wo.connect_timeout = absl::Milliseconds(cfg->webhook_connect_timeout_ms);
    wo.total_timeout =
        absl::Milliseconds(std::max(cfg->webhook_timeout_ms, cfg->webhook_connect_timeout_ms));
    wo.breaker.failures_to_open = static_cast<int>(cfg->webhook_breaker_failures);
    wo.breaker.cooldown = absl::Seconds(cfg->webhook_breaker_cooldown_seconds);
    auto w = outbound::WebhookSender::Create(wo, webhook_http.get(), RealClock::Get());
    std::fill(wo.secret.begin(), wo.secret.end(), '\0');  // the sender holds its copy
    if (!w.ok()) {
      std::fprintf(stderr, "keyvend: webhook_url: %s\n", std::string(w.status().message()).c_str());
      return 2;
    }
    webhook = std::move(*w);
  }
  std::unique_ptr<outbound::Mailer> mailer;
  std::unique_ptr<outbound::MailTemplates> mail_templates;
  if (!cfg->smtp_url.empty()) {
    outbound::MailerOptions mo;
    mo.smtp_url = cfg->smtp_url;
    mo.user = cfg->smtp_user;
    mo.password = std::move(smtp_password);
    mo.mail_from = cfg->mail_from;
    mo.parallel_sessions = static_cast<uint32_t>(cfg->mail_parallel_sessions);
    auto ml = outbound::Mailer::Create(mo, RealClock::Get());
    std::fill(mo.password.begin(), mo.password.end(), '\0');  // the mailer holds its copy
    if (!ml.ok()) {
      std::fprintf(stderr, "keyvend: smtp_url / mail_from: %s\n",
                   std::string(ml.status().message()).c_str());
      return 2;
    }
    mailer = std::move(*ml);
    auto t = outbound::MailTemplates::Load(cfg->mail_templates_dir);
    if (!t.ok()) {
      std::fprintf(stderr, "keyvend: mail_templates_dir: %s\n",
                   std::string(t.status().message()).c_str());
      return 2;
    }
    mail_templates = std::make_unique<outbound::MailTemplates>(std::move(*t));
    so.mail_contact = [](std::string_view c) { return outbound::IsValidMailbox(c); };
  }
  so.webhook_events = webhook != nullptr;
  so.env = hooks.env;  // nullptr in production: RocksDB's own
  auto shop = Shop::Open(so);
  if (!shop.ok()) {
    KV_LOG(kError, "cannot open the shop: ", std::string(shop.status().message()));
    return 1;
  }
  outbound::DispatcherOptions dopts;
  dopts.webhook_max_attempts = static_cast<uint32_t>(cfg->webhook_max_attempts);
  dopts.mail_max_attempts = static_cast<uint32_t>(cfg->mail_max_attempts);
  dopts.backoff_max = absl::Seconds(cfg->outbound_backoff_max_seconds);
  dopts.email_keys = cfg->email_keys;
  dopts.mail_language = cfg->mail_language;
  dopts.worker_nice = static_cast<int>(cfg->outbound_nice);
  dopts.worker_sched_idle = cfg->outbound_sched_idle;
  // Replays what waits in the log from the start (entries are due at once after a restart
  // unless they were backing off); the server starts the threads once it is bound.
  auto dispatcher =
      std::make_unique<outbound::Dispatcher>(shop->get(), webhook.get(), mailer.get(),
                                             mail_templates.get(), RealClock::Get(), random, dopts);
  http::ServerOptions ho;
  ho.gateways = gateways->get();
  ho.outbound = dispatcher.get();
  ho.config = *cfg;
  ho.shop = shop->get();
  ho.clock = RealClock::Get();
  ho.random = random;
  ho.admin_token = std::move(admin_token);  // moved: one copy of each secret in memory
  ho.payment_secret = std::move(payment_secret);
  if (ho.admin_token.empty()) {
    KV_LOG(kWarn, "KEYVEND_ADMIN_TOKEN is not set; the admin API refuses every request");
  }
  if (ho.payment_secret.empty()) {
    KV_LOG(kWarn, "KEYVEND_PAYMENT_SECRET is not set; every payment notification is refused");
  }
  auto server = http::Server::Bind(std::move(ho));
  if (!server.ok()) {
    KV_LOG(kError, std::string(server.status().message()));
    return 1;
  }
  http::Server* srv = server->get();
  Shop* shop_ptr = shop->get();
  std::thread signals([srv, shop_ptr, sigs] {
    int sig = 0;
    sigwait(&sigs, &sig);
    KV_LOG(kInfo, "signal ", sig, ": draining (a second signal exits at once)");
    // A running backup is stopped rather than waited for (its request answers 503).
    shop_ptr->StopBackups();
    srv->RequestStop();  // Run() below returns when the drain is over
    sigwait(&sigs, &sig);
    // Every 2xx already answered was a synced commit, so leaving now loses nothing that
    // was acknowledged; requests still in flight get no answer.
    KV_LOG(kWarn, "second signal ", sig, ": exiting now");
    _exit(1);
  });
  signals.detach();
  std::printf("keyvend listening on %s\n", srv->url().c_str());
  if (!srv->ops_url().empty()) std::printf("keyvend ops listening on %s\n", srv->ops_url().c_str());
  std::fflush(stdout);
  const bool ok = srv->Run();
  server->reset();  // finishes in-flight requests; stops the reconciler and the outbound workers
  dispatcher.reset();
  shop->reset();  // stops the workers, flushes and closes the database
  KV_LOG(kInfo, "stopped");
  return ok ? 0 : 1;
}

}  // namespace kv
