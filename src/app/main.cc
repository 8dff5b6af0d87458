// keyvend: the shop's binary. Subcommands:
//   keyvend serve [options]      the shop (HTTP; app/serve.h)
//   keyvend check --data-dir DIR [--master-key-file FILE]
//   keyvend demo-seed --data-dir DIR [--master-key-file FILE] --catalogue FILE
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "app/serve.h"
#include "base/cli_flags.h"
#include "base/hardening.h"
#include "config/config.h"
#include "limits/limits.h"
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
  if (args[0] == "serve") return kv::RunServe({args.begin() + 1, args.end()}, kv::ServeHooks{});
  if (args[0] == "demo-seed") return RunDemoSeed({args.begin() + 1, args.end()});
  std::fprintf(stderr, "keyvend: unknown command '%s'\n\n%s", args[0].c_str(), kUsage);
  return 2;
}
