// keyvend-backup: backups of a keyvend shop (SPEC §8). The whole tool is RunBackupCli
// (app/backup_cli.h), tested in-process by backup_cli_test.
#include <cstdio>
#include <cstdlib>

#include "app/backup_cli.h"
#include "base/hardening.h"

int main(int argc, char** argv) {
  // First, before the master key or the admin token is read (base/hardening.h).
  absl::Status s = kv::HardenProcess();
  if (s.ok()) s = kv::ApplyAllowCoreDumpsEnv(std::getenv(kv::kAllowCoreDumpsEnv));
  if (!s.ok()) {
    std::fprintf(stderr, "keyvend-backup: %s\n", std::string(s.message()).c_str());
    return kv::kExitUsage;
  }
  return kv::RunBackupCli({argv + 1, argv + argc}, kv::ProcessEnv(), stdout, stderr);
}
