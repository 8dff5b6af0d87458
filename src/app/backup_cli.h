// keyvend-backup: the command line over src/backup (SPEC §8). backup_main.cc is its whole
// main; tests run it in-process.
//
//   keyvend-backup create  --data-dir DIR --backup-dir B   a STOPPED shop's data dir
//   keyvend-backup create  --url http://HOST:PORT           a RUNNING shop, online, through
//                                                           POST /api/v1/admin/backups
//   keyvend-backup list    --backup-dir B [--id N] [--json]
//   keyvend-backup verify  --backup-dir B [--id N]
//   keyvend-backup restore --backup-dir B [--id N] --to DIR
//   keyvend-backup purge   --backup-dir B --keep N
//
// Exit codes (kExit*): 0 done; 1 failed (an error, a corrupt backup, a wrong master key,
// a busy backup dir, a refusal by the shop); 2 usage error (nothing was done).
// Nothing it prints ever holds a card key: it never decrypts one except inside `keyvend
// check` after a restore, whose report names sequence numbers only.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "base/cli_flags.h"

namespace kv {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Runs one command. `args` are the words after the program name, parsed in the offline
// tools' grammar (base/cli_flags.h); `env` is the environment as the CLI sees it
// (KEYVEND_DATA_DIR, KEYVEND_BACKUP_DIR, KEYVEND_MASTER_KEY_FILE, KEYVEND_ADMIN_TOKEN).
// Results go to `out`, errors and usage to `err`. Returns the exit code. Not thread-safe
// with itself only in that two runs on one backup dir exclude each other
// (backup/dir_lock.h: the second gets exit 1).
int RunBackupCli(const std::vector<std::string>& args, const EnvLookup& env, std::FILE* out,
                 std::FILE* err);

// The --help text (usage, commands, options, exit codes, examples, the master key).
const char* BackupCliHelp();

}  // namespace kv
