// keyvend-backup: backups of a keyvend shop (SPEC §8). The whole tool is RunBackupCli
// (app/backup_cli.h), tested in-process by backup_cli_test.
#include <cstdlib>

#include "app/backup_cli.h"

int main(int argc, char** argv) {
  const auto env = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v == nullptr ? std::nullopt : std::optional<std::string>(v);
  };
  return kv::RunBackupCli({argv + 1, argv + argc}, env, stdout, stderr);
}
