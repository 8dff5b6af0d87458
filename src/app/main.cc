// keyvend: the shop's binary. Subcommands:
//   keyvend serve [options]      the shop (HTTP)
//   keyvend check --data-dir DIR [--master-key-file FILE]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "app/fd_budget.h"
#include "base/cli_flags.h"
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
#include "shop/check.h"
#include "shop/demo_catalogue.h"
#include "shop/shop.h"
#include "storage/data_dir.h"

namespace {

constexpr char kUsage[] =
    "usage: keyvend serve [options]          (keyvend serve --help lists them)\n"
    "       keyvend check --data-dir DIR [--master-key-file FILE]\n"
    "       keyvend demo-seed --data-dir DIR [--master-key-file FILE] --catalogue FILE\n"
    "\n"
    "  serve   run the shop: HTTP API on --listen (default 127.0.0.1:8080)\n"
    "  check   verify SPEC §2's invariants on a STOPPED shop's data dir (read only)\n"
    "  demo-seed  load a demo catalogue (data/demo/catalogue.tsv) into a shop with no\n"
    "          products (creates the data dir and its master key file if new)\n"
    "\n"
    "  --data-dir DIR          data directory (env KEYVEND_DATA_DIR; default ./keyvend-data)\n"
    "  --master-key-file FILE  key-encryption master key (env KEYVEND_MASTER_KEY_FILE;\n"
    "                          default DIR.master-key, beside the data dir)\n"
    "\n"
    "exit codes (check): 0 all invariants hold, 1 violations (each named), 2 could not run\n"
    "\n"
    "Core dumps are off (a core holds the keys' encryption subkeys and the secrets); for\n"
    "debugging, KEYVEND_ALLOW_CORE_DUMPS=1 (serve: also --allow-core-dumps) turns them on.\n";

// The --data-dir / --master-key-file pair every offline subcommand takes, plus its own
// `extra` flags, in the offline tools' grammar (base/cli_flags.h). The data dir: the flag,
// else KEYVEND_DATA_DIR, else the config's default; the key file: the flag, else
// KEYVEND_MASTER_KEY_FILE, else storage::DefaultMasterKeyFile. Returns -1 to go on, else
// the exit code after printing the usage (0 for --help, 2 for a usage error).
int ParseDirArgs(const char* cmd, const std::vector<std::string>& args,
                 const std::vector<kv::FlagSpec>& extra, kv::CliFlags* flags, std::string* data_dir,
                 std::string* key_file) {
  kv::CliGrammar grammar = {{{"--data-dir"}, {"--master-key-file"}}};
  grammar.flags.insert(grammar.flags.end(), extra.begin(), extra.end());
  absl::StatusOr<kv::CliFlags> parsed = kv::CliFlags::Parse(args, grammar);
  if (!parsed.ok()) {
    std::fprintf(stderr, "keyvend %s: %s\n\n%s", cmd,
                 std::string(parsed.status().message()).c_str(), kUsage);
    return 2;
  }
  if (parsed->help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  *flags = *std::move(parsed);
  const kv::EnvLookup env = kv::ProcessEnv();
  *data_dir =
      kv::storage::StripTrailingSlashes(flags->GetOrEnv("--data-dir", "KEYVEND_DATA_DIR", env));
  if (data_dir->empty()) *data_dir = kv::Config().data_dir;
  *key_file = flags->GetOrEnv("--master-key-file", "KEYVEND_MASTER_KEY_FILE", env);
  if (key_file->empty()) *key_file = kv::storage::DefaultMasterKeyFile(*data_dir);
  return -1;
}

// The offline subcommands' core-dump switch (serve has its allow_core_dumps option). False
// after printing the error of a bad KEYVEND_ALLOW_CORE_DUMPS.
bool ApplyCoreDumpEnv(const char* cmd) {
  absl::Status s = kv::ApplyAllowCoreDumpsEnv(std::getenv(kv::kAllowCoreDumpsEnv));
  if (!s.ok()) std::fprintf(stderr, "keyvend %s: %s\n", cmd, std::string(s.message()).c_str());
  return s.ok();
}

int RunDemoSeed(const std::vector<std::string>& args) {
  if (!ApplyCoreDumpEnv("demo-seed")) return 2;
  kv::CliFlags flags;
  std::string data_dir, key_file;
  const int rc = ParseDirArgs("demo-seed", args, {{"--catalogue"}}, &flags, &data_dir, &key_file);
  if (rc >= 0) return rc;
  if (!flags.Has("--catalogue")) {
    std::fprintf(stderr, "keyvend demo-seed: --catalogue FILE is required\n");
    return 2;
  }
  kv::ShopOptions so;
  so.data_dir = data_dir;
  so.master_key_file = key_file;
  so.start_workers = false;
  auto shop = kv::Shop::Open(so);
  if (!shop.ok()) {
    std::fprintf(stderr, "keyvend demo-seed: %s\n", std::string(shop.status().message()).c_str());
    return 1;
  }
  auto n = kv::LoadDemoCatalogue(shop->get(), flags.Get("--catalogue"));
  if (!n.ok()) {
    std::fprintf(stderr, "keyvend demo-seed: %s\n", std::string(n.status().message()).c_str());
    return 1;
  }
  std::printf("keyvend demo-seed: %d products loaded%s\n", *n,
              *n == 0 ? " (the shop already has products; nothing changed)" : "");
  return 0;
}

int RunCheck(const std::vector<std::string>& args) {
  if (!ApplyCoreDumpEnv("check")) return 2;
  kv::CliFlags flags;
  std::string data_dir, key_file;
  const int rc = ParseDirArgs("check", args, {}, &flags, &data_dir, &key_file);
  if (rc >= 0) return rc;
  auto opened =
      kv::storage::OpenExistingDataDir(data_dir, key_file, kv::limits::kBlockCacheBytesDefault);
  if (!opened.ok()) {
    std::fprintf(stderr, "keyvend check: cannot run: %s\n",
                 std::string(opened.status().message()).c_str());
    return 2;
  }
  auto report = kv::CheckShop(*opened->db, *opened->cipher);
  if (!report.ok()) {
    std::fprintf(stderr, "keyvend check: cannot run: %s\n",
                 std::string(report.status().message()).c_str());
    return 2;
  }
  for (const std::string& v : report->violations) std::printf("VIOLATION: %s\n", v.c_str());
  std::printf(
      "keyvend check: %s — %llu products, %llu orders, %llu payments, %llu keys in pool, "
      "%llu delivered, %llu delivery-log entries, %zu violations\n",
      report->violations.empty() ? "OK" : "FAILED",
      static_cast<unsigned long long>(report->products),
      static_cast<unsigned long long>(report->orders),
      static_cast<unsigned long long>(report->payments),
      static_cast<unsigned long long>(report->keys_in_pool),
      static_cast<unsigned long long>(report->keys_delivered),
      static_cast<unsigned long long>(report->log_entries), report->violations.size());
  return report->violations.empty() ? 0 : 1;
}

int RunServe(const std::vector<std::string>& args) {
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
          kv::ConfigHelp().c_str());
      return 0;
    }
  }
  auto cfg = kv::LoadConfig(args, kv::ProcessEnv());
  if (!cfg.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(cfg.status().message()).c_str());
    return 2;
  }
  kv::LogLevel level = kv::LogLevel::kInfo;
  kv::ParseLogLevel(cfg->log_level, &level);  // validated by LoadConfig
  kv::SetLogLevel(level);
  // main() hardened the process before anything was read; only the config can relax it.
  if (cfg->allow_core_dumps) {
    if (absl::Status s = kv::AllowCoreDumps(); !s.ok()) {
      KV_LOG(kError, "allow_core_dumps: ", std::string(s.message()));
      return 1;
    }
    KV_LOG(kWarn,
           "allow_core_dumps is on: a core dump of this process holds the key "
           "encryption subkeys, delivered keys and the secrets; keep it private");
  }
  // The secrets leave the environment at once (base/secret.h): a child process, a later
  // getenv and /proc/PID/environ no longer see them.
  std::string admin_token = kv::TakeSecretFromEnv("KEYVEND_ADMIN_TOKEN").value_or("");
  std::string payment_secret = kv::TakeSecretFromEnv("KEYVEND_PAYMENT_SECRET").value_or("");
  kv::pay::GatewaySecrets gateway_secrets;
  gateway_secrets.epay_key = kv::TakeSecretFromEnv("KEYVEND_EPAY_KEY").value_or("");
  gateway_secrets.stripe_secret_key =
      kv::TakeSecretFromEnv("KEYVEND_STRIPE_SECRET_KEY").value_or("");
  gateway_secrets.stripe_webhook_secret =
      kv::TakeSecretFromEnv("KEYVEND_STRIPE_WEBHOOK_SECRET").value_or("");
  std::string webhook_secret = kv::TakeSecretFromEnv("KEYVEND_WEBHOOK_SECRET").value_or("");
  std::string smtp_password = kv::TakeSecretFromEnv("KEYVEND_SMTP_PASSWORD").value_or("");
  if (!admin_token.empty() && admin_token.size() < kv::limits::kAdminTokenBytesMin) {
    // Never the token itself, nor its length.
    std::fprintf(stderr,
                 "keyvend: KEYVEND_ADMIN_TOKEN is too short: the admin token must be at least "
                 "%zu characters (e.g. `openssl rand -hex 32`), or unset to turn the admin "
                 "API off\n",
                 kv::limits::kAdminTokenBytesMin);
    return 2;
  }
  // Every connection, waiting socket and open RocksDB file is a descriptor: raise the soft
  // limit to the hard one and refuse to start, before binding, when the configured caps do
  // not fit (app/fd_budget.h).
  const int64_t io_loops = cfg->io_threads > 0
                               ? cfg->io_threads
                               : std::max<int64_t>(1, std::thread::hardware_concurrency());
  const kv::FdBudget fd_budget = kv::ComputeFdBudget(*cfg, io_loops);
  if (absl::Status s = kv::RaiseAndCheckFdLimit(fd_budget); !s.ok()) {
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

  kv::ShopOptions so;
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
  kv::net::CurlClientOptions curl;
  curl.ca_file = cfg->gateway_ca_file;
  std::unique_ptr<kv::net::HttpClient> gateway_http = kv::net::MakeCurlHttpClient(curl);
  auto gateways = kv::pay::MakeGateways(*cfg, gateway_secrets, gateway_http.get(),
                                        kv::RealClock::Get(), kv::SecureRandom::Get());
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
  std::unique_ptr<kv::net::HttpClient> webhook_http;
  std::unique_ptr<kv::outbound::WebhookSender> webhook;
  if (!cfg->webhook_url.empty()) {
    webhook_http = kv::net::MakeCurlHttpClient(kv::net::CurlClientOptions{});
    kv::outbound::WebhookOptions wo;
    wo.url = cfg->webhook_url;
    wo.secret = std::move(webhook_secret);
    wo.connect_timeout = absl::Milliseconds(cfg->webhook_connect_timeout_ms);
    wo.total_timeout =
        absl::Milliseconds(std::max(cfg->webhook_timeout_ms, cfg->webhook_connect_timeout_ms));
    wo.breaker.failures_to_open = static_cast<int>(cfg->webhook_breaker_failures);
    wo.breaker.cooldown = absl::Seconds(cfg->webhook_breaker_cooldown_seconds);
    auto w = kv::outbound::WebhookSender::Create(wo, webhook_http.get(), kv::RealClock::Get());
    std::fill(wo.secret.begin(), wo.secret.end(), '\0');  // the sender holds its copy
    if (!w.ok()) {
      std::fprintf(stderr, "keyvend: webhook_url: %s\n", std::string(w.status().message()).c_str());
      return 2;
    }
    webhook = std::move(*w);
  }
  std::unique_ptr<kv::outbound::Mailer> mailer;
  std::unique_ptr<kv::outbound::MailTemplates> mail_templates;
  if (!cfg->smtp_url.empty()) {
    kv::outbound::MailerOptions mo;
    mo.smtp_url = cfg->smtp_url;
    mo.user = cfg->smtp_user;
    mo.password = std::move(smtp_password);
    mo.mail_from = cfg->mail_from;
    auto ml = kv::outbound::Mailer::Create(mo, kv::RealClock::Get());
    std::fill(mo.password.begin(), mo.password.end(), '\0');  // the mailer holds its copy
    if (!ml.ok()) {
      std::fprintf(stderr, "keyvend: smtp_url / mail_from: %s\n",
                   std::string(ml.status().message()).c_str());
      return 2;
    }
    mailer = std::move(*ml);
    auto t = kv::outbound::MailTemplates::Load(cfg->mail_templates_dir);
    if (!t.ok()) {
      std::fprintf(stderr, "keyvend: mail_templates_dir: %s\n",
                   std::string(t.status().message()).c_str());
      return 2;
    }
    mail_templates = std::make_unique<kv::outbound::MailTemplates>(std::move(*t));
    so.mail_contact = [](std::string_view c) { return kv::outbound::IsValidMailbox(c); };
  }
  so.webhook_events = webhook != nullptr;
  auto shop = kv::Shop::Open(so);
  if (!shop.ok()) {
    KV_LOG(kError, "cannot open the shop: ", std::string(shop.status().message()));
    return 1;
  }
  kv::outbound::DispatcherOptions dopts;
  dopts.webhook_max_attempts = static_cast<uint32_t>(cfg->webhook_max_attempts);
  dopts.mail_max_attempts = static_cast<uint32_t>(cfg->mail_max_attempts);
  dopts.backoff_max = absl::Seconds(cfg->outbound_backoff_max_seconds);
  dopts.email_keys = cfg->email_keys;
  dopts.mail_language = cfg->mail_language;
  // Replays what waits in the log from the start (entries are due at once after a restart
  // unless they were backing off); the server starts the threads once it is bound.
  auto dispatcher = std::make_unique<kv::outbound::Dispatcher>(
      shop->get(), webhook.get(), mailer.get(), mail_templates.get(), kv::RealClock::Get(),
      kv::SecureRandom::Get(), dopts);
  kv::http::ServerOptions ho;
  ho.gateways = gateways->get();
  ho.outbound = dispatcher.get();
  ho.config = *cfg;
  ho.shop = shop->get();
  ho.clock = kv::RealClock::Get();
  ho.random = kv::SecureRandom::Get();
  ho.admin_token = std::move(admin_token);  // moved: one copy of each secret in memory
  ho.payment_secret = std::move(payment_secret);
  if (ho.admin_token.empty()) {
    KV_LOG(kWarn, "KEYVEND_ADMIN_TOKEN is not set; the admin API refuses every request");
  }
  if (ho.payment_secret.empty()) {
    KV_LOG(kWarn, "KEYVEND_PAYMENT_SECRET is not set; every payment notification is refused");
  }
  auto server = kv::http::Server::Bind(std::move(ho));
  if (!server.ok()) {
    KV_LOG(kError, std::string(server.status().message()));
    return 1;
  }
  kv::http::Server* srv = server->get();
  kv::Shop* shop_ptr = shop->get();
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

}  // namespace

int main(int argc, char** argv) {
  // First of all, before any secret is read: no core dumps, private files
  // (base/hardening.h). Each subcommand may relax the core part when asked to.
  if (absl::Status s = kv::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "check") return RunCheck({args.begin() + 1, args.end()});
  if (args[0] == "serve") return RunServe({args.begin() + 1, args.end()});
  if (args[0] == "demo-seed") return RunDemoSeed({args.begin() + 1, args.end()});
  std::fprintf(stderr, "keyvend: unknown command '%s'\n\n%s", args[0].c_str(), kUsage);
  return 2;
}
