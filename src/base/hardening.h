// Keeping the process's secrets out of core dumps and other users' reach (issue 9 item 5).
//
// Every keyvend main (keyvend, keyvend-preload, keyvend-backup) calls HardenProcess() first,
// before it reads a secret, a master key or a card key:
//   - umask 077: every file and directory the process creates (RocksDB's files, backups,
//     logs) is private to its user, whatever the umask it was started with;
//   - RLIMIT_CORE soft limit 0: no core file, and systemd-coredump (which gets the limit as
//     %c) stores nothing;
//   - PR_SET_DUMPABLE 0: no core even where the limit is not consulted, /proc/PID/environ,
//     /proc/PID/mem and ptrace closed to other processes of the same user (the kernel makes
//     /proc/PID/* owned by root).
// A core of the shop holds the encryption subkeys, delivered keys, the admin token and the
// payment secret; with the data dir or a backup it decrypts every key (SPEC §2.6).
//
// For debugging, AllowCoreDumps() undoes the core part: `keyvend serve` calls it when its
// allow_core_dumps option is true, the offline commands when KEYVEND_ALLOW_CORE_DUMPS is
// (ApplyAllowCoreDumpsEnv). The hard core limit is left as it was (not set to 0) so that
// the soft limit the operator chose (`ulimit -c`) can be put back: raising a hard limit
// needs CAP_SYS_RESOURCE. Only code already running in the process could raise the soft
// limit again, and such code can read the memory directly.
//
// None of these functions is thread-safe: call them from main before any thread starts.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kv {

// The variable that lets the offline commands (keyvend check and demo-seed, keyvend-preload,
// keyvend-backup) dump core; `keyvend serve` reads the same name as its allow_core_dumps
// option (config table: file < environment < flag).
inline constexpr char kAllowCoreDumpsEnv[] = "KEYVEND_ALLOW_CORE_DUMPS";

// umask(077), RLIMIT_CORE soft limit 0 (the limit found is remembered for AllowCoreDumps),
// PR_SET_DUMPABLE 0. Returns OK, or Internal naming the call that failed (none fails on
// Linux with these arguments; a main refuses to run rather than run unprotected). Calling
// it again is harmless and keeps the first remembered limit.
[[nodiscard]] absl::Status HardenProcess();

// Undoes the core-dump part of HardenProcess (the umask stays 077): the RLIMIT_CORE soft
// limit goes back to the one HardenProcess found (capped at the hard limit; unchanged if
// HardenProcess was never called) and the process is dumpable again. Returns OK or
// Internal naming the call that failed.
[[nodiscard]] absl::Status AllowCoreDumps();

// The offline commands' switch. `value` is KEYVEND_ALLOW_CORE_DUMPS's value (nullptr =
// unset): unset or false|0|no does nothing; true|1|yes calls AllowCoreDumps; any other
// value is InvalidArgument ("invalid value ... for KEYVEND_ALLOW_CORE_DUMPS: expected one
// of true|false|1|0|yes|no"), the words a config bool takes.
[[nodiscard]] absl::Status ApplyAllowCoreDumpsEnv(const char* value);

// What MakeDirPrivate changed.
struct PrivateDirChange {
  unsigned dir_mode_before = 0;  // permission bits of `dir` itself before the call
  size_t entries_changed = 0;    // `dir`, subdirectories and files whose mode was narrowed
};

// Makes `dir` and everything under it private to its owner: the group and other permission
// bits are removed from `dir` (followed if it is a symlink), every subdirectory and every
// regular file under it; symlinks inside are not followed and other file types are left
// alone. For a data dir or backup dir written before umask 077 (0755 dirs, 0644 files).
// Outcomes: OK with what changed (entries_changed 0 when it was already private);
// NotFound when `dir` does not exist; FailedPrecondition naming `dir` or the entry whose
// mode cannot be changed (e.g. owned by another user) and what to run; other errno-mapped
// errors from walking the tree. On an error, entries already changed stay changed (each
// change only removes access). Thread-compatible; the answer is only as current as the
// file system it looked at.
absl::StatusOr<PrivateDirChange> MakeDirPrivate(const std::string& dir);

}  // namespace kv
