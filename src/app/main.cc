// keyvend: the shop's binary. Subcommands:
//   keyvend serve [options]      the shop (HTTP)
//   keyvend check --data-dir DIR [--master-key-file FILE]
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <thread>
#include <cstring>
#include <string>
#include <vector>

#include "base/random.h"
#include "config/config.h"
#include "http/server.h"
#include "shop/check.h"
#include "shop/shop.h"
#include "storage/data_dir.h"

namespace {

constexpr char kUsage[] =
    "usage: keyvend serve [options]          (keyvend serve --help lists them)\n"
    "       keyvend check --data-dir DIR [--master-key-file FILE]\n"
    "\n"
    "  serve   run the shop: HTTP API on --listen (default 127.0.0.1:8080)\n"
    "  check   verify SPEC §2's invariants on a STOPPED shop's data dir (read only)\n"
    "\n"
    "  --data-dir DIR          data directory (env KEYVEND_DATA_DIR; default ./keyvend-data)\n"
    "  --master-key-file FILE  key-encryption master key (env KEYVEND_MASTER_KEY_FILE;\n"
    "                          default DIR.master-key, beside the data dir)\n"
    "\n"
    "exit codes (check): 0 all invariants hold, 1 violations (each named), 2 could not run\n";

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

int RunCheck(const std::vector<std::string>& args) {
  std::string data_dir = Env("KEYVEND_DATA_DIR");
  std::string key_file = Env("KEYVEND_MASTER_KEY_FILE");
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    if (a == "--data-dir") {
      if (!value(&data_dir)) return (std::fputs(kUsage, stderr), 2);
    } else if (a == "--master-key-file") {
      if (!value(&key_file)) return (std::fputs(kUsage, stderr), 2);
    } else if (a.rfind("--data-dir=", 0) == 0) {
      data_dir = a.substr(11);
    } else if (a.rfind("--master-key-file=", 0) == 0) {
      key_file = a.substr(18);
    } else {
      std::fprintf(stderr, "keyvend check: unknown argument '%s'\n\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (data_dir.empty()) data_dir = "./keyvend-data";
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  if (key_file.empty()) key_file = data_dir + ".master-key";

  kv::storage::DataDirOptions opts;
  opts.data_dir = data_dir;
  opts.master_key_file = key_file;
  opts.create_if_missing = false;
  auto opened = kv::storage::OpenDataDir(opts, kv::SecureRandom::Get());
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

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

int RunServe(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::printf("usage: keyvend serve [options]\n\n%s\nsecrets (environment only):\n"
                  "  KEYVEND_ADMIN_TOKEN     bearer token of the admin API\n"
                  "  KEYVEND_PAYMENT_SECRET  HMAC secret of payment notifications\n",
                  kv::ConfigHelp().c_str());
      return 0;
    }
  }
  auto cfg = kv::LoadConfig(args, GetEnv);
  if (!cfg.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(cfg.status().message()).c_str());
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
  auto shop = kv::Shop::Open(so);
  if (!shop.ok()) {
    std::fprintf(stderr, "keyvend: cannot open the shop: %s\n",
                 std::string(shop.status().message()).c_str());
    return 1;
  }
  kv::http::ServerOptions ho;
  ho.config = *cfg;
  ho.shop = shop->get();
  ho.clock = kv::RealClock::Get();
  ho.random = kv::SecureRandom::Get();
  ho.admin_token = GetEnv("KEYVEND_ADMIN_TOKEN").value_or("");
  ho.payment_secret = GetEnv("KEYVEND_PAYMENT_SECRET").value_or("");
  if (ho.admin_token.empty()) {
    std::fprintf(stderr, "keyvend: warning: KEYVEND_ADMIN_TOKEN is not set; the admin API "
                         "refuses every request\n");
  }
  if (ho.payment_secret.empty()) {
    std::fprintf(stderr, "keyvend: warning: KEYVEND_PAYMENT_SECRET is not set; every payment "
                         "notification is refused\n");
  }
  auto server = kv::http::Server::Bind(std::move(ho));
  if (!server.ok()) {
    std::fprintf(stderr, "keyvend: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  kv::http::Server* srv = server->get();
  std::thread signals([srv, sigs] {
    int sig = 0;
    sigwait(&sigs, &sig);
    std::fprintf(stderr, "keyvend: signal %d: draining\n", sig);
    srv->Stop();
  });
  signals.detach();
  std::printf("keyvend listening on %s\n", srv->url().c_str());
  std::fflush(stdout);
  const bool ok = srv->Run();
  server->reset();  // finishes in-flight requests
  shop->reset();    // stops the workers, flushes and closes the database
  std::fprintf(stderr, "keyvend: stopped\n");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "check") return RunCheck({args.begin() + 1, args.end()});
  if (args[0] == "serve") return RunServe({args.begin() + 1, args.end()});
  std::fprintf(stderr, "keyvend: unknown command '%s'\n\n%s", args[0].c_str(), kUsage);
  return 2;
}
