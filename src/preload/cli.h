// The keyvend-preload command line: arguments, help, output and exit codes, over
// RunPreload (preload.h). src/app/preload_main.cc is `return kv::preload::Main(argc, argv);`.
//
//   keyvend-preload --data-dir DIR --product ID [--dry-run] [options] FILE...
//
// Exit codes (part of the interface; scripts rely on them):
//   0  the run completed: the summary says how many keys were loaded (0 when every key was a
//      duplicate or rejected)
//   1  an error stopped the run and nothing of the batch was loaded (message on stderr)
//   2  usage: bad or missing arguments (message and usage on stderr)
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/cli_flags.h"
#include "preload/preload.h"

namespace kv::preload {

inline constexpr int kExitLoaded = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

struct CliArgs {
  PreloadOptions opts;
  bool help = false;     // --help / -h: print Usage() to stdout, exit 0
  bool progress = true;  // false with --no-progress
};

// Looks up an environment variable (injected so tests do not touch the real environment).
using GetEnvFn = EnvLookup;

// Parses the arguments after the program name, in the offline tools' grammar
// (base/cli_flags.h): "--name value" or "--name=value"; "--" ends the options.
// Environment: KEYVEND_DATA_DIR (when --data-dir is absent or empty) and
// KEYVEND_MASTER_KEY_FILE (likewise; default storage::DefaultMasterKeyFile(data dir), as
// for `keyvend check`). InvalidArgument with a one-line message on a usage error.
absl::StatusOr<CliArgs> ParseArgs(const std::vector<std::string>& args, const GetEnvFn& getenv);

// The --help text: synopsis, options with defaults, examples, exit codes.
std::string Usage();

// Runs the command: report and summary to `out`, errors to `err`, the progress bar on
// `progress_fd` when `progress_fd_is_tty`. Returns the exit code. Never prints a key.
int Run(const std::vector<std::string>& args, const GetEnvFn& getenv, FILE* out, FILE* err,
        int progress_fd, bool progress_fd_is_tty);

// main(): Run with the process's arguments, environment, stdout, stderr and isatty(2).
int Main(int argc, char** argv);

}  // namespace kv::preload
