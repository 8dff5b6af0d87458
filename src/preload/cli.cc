#include "preload/cli.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kv::preload {
namespace {

constexpr char kUsage[] =
    "usage: keyvend-preload --data-dir DIR --product ID [options] FILE...\n"
    "\n"
    "Bulk-loads card keys from .txt files (one key a line) and .csv files (a header row and\n"
    "a key column; quoted fields allowed) into product ID of a STOPPED shop's data dir.\n"
    "Every key is trimmed and checked like the admin import endpoint does (same parser);\n"
    "blank, overlong (> 256 bytes) and non-printable lines, keys repeated in the input and\n"
    "keys the shop already has (in any product) are reported by file and line and skipped.\n"
    "Waiting backorders of the product are served first; the other new keys are stored as\n"
    "ONE batch with the stock counters, in one crash-safe step: after a crash or kill either\n"
    "all of them are in or none, and a rerun loads what is missing.\n"
    "For a running shop, send the same files to POST /api/v1/admin/products/ID/keys.\n"
    "\n"
    "options:\n"
    "  --data-dir DIR          the shop's data dir (env KEYVEND_DATA_DIR); required\n"
    "  --product ID            the product to stock; required; must exist\n"
    "  --master-key-file FILE  key-encryption master key (env KEYVEND_MASTER_KEY_FILE;\n"
    "                          default DIR.master-key, beside the data dir)\n"
    "  --dry-run               parse, deduplicate and report, write nothing\n"
    "  --format txt|csv        format of every FILE (default: by name, .txt or .csv)\n"
    "  --column NAME           CSV: header name of the key column (default: key)\n"
    "  --threads N             worker threads (default: one per core)\n"
    "  --no-progress           no progress bar (it is drawn only when stderr is a terminal)\n"
    "  -h, --help              this text\n"
    "\n"
    "output: one line per input line not loaded, \"FILE:LINE: REASON\" (empty, too_long,\n"
    "non_printable, bad_csv_row, duplicate_in_input, already_stored), then a summary line,\n"
    "on stdout; errors on stderr. No card key is ever printed.\n"
    "\n"
    "Core dumps are off (the process holds the master key and the keys);\n"
    "KEYVEND_ALLOW_CORE_DUMPS=1 turns them on for debugging.\n"
    "\n"
    "examples:\n"
    "  keyvend-preload --data-dir /var/lib/keyvend --product 3 codes.txt\n"
    "  keyvend-preload --data-dir ./keyvend-data --product 3 --dry-run jan.txt feb.csv\n"
    "  KEYVEND_MASTER_KEY_FILE=/etc/keyvend/master.key \\\n"
    "    keyvend-preload --data-dir /var/lib/keyvend --product 7 --column code export.csv \\\n"
    "    > preload-report.txt\n"
    "\n"
    "exit codes:\n"
    "  0  loaded: the run completed (the summary says how many keys; 0 if all were duplicates)\n"
    "  1  nothing loaded because of an error (locked data dir = running shop, unknown\n"
    "     product, unreadable file, CSV without the key column, wrong master key, I/O)\n"
    "  2  usage: bad or missing arguments\n";

bool ParseThreads(const std::string& v, int* out) {
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < 1 || n > 256) return false;
  *out = n;
  return true;
}

}  // namespace

std::string Usage() { return kUsage; }

absl::StatusOr<CliArgs> ParseArgs(const std::vector<std::string>& args, const GetEnvFn& getenv) {
  CliArgs a;
  std::optional<std::string> data_dir, key_file;
  bool product_set = false;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      a.opts.files.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      a.help = true;
      return a;
    }
    if (arg == "--dry-run") {
      a.opts.dry_run = true;
      continue;
    }
    if (arg == "--no-progress") {
      a.progress = false;
      continue;
    }
    std::string name = arg, value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (name == "--data-dir" || name == "--product" || name == "--master-key-file" ||
               name == "--format" || name == "--column" || name == "--threads") {
      if (i + 1 == args.size()) return absl::InvalidArgumentError(name + " needs a value");
      value = args[++i];
    } else {
      return absl::InvalidArgumentError("unknown option '" + arg + "'");
    }
    if (name == "--data-dir") {
      data_dir = value;
    } else if (name == "--product") {
      if (!absl::SimpleAtoi(value, &a.opts.product_id) || a.opts.product_id == 0) {
        return absl::InvalidArgumentError("--product needs a product id (a positive integer)");
      }
      product_set = true;
    } else if (name == "--master-key-file") {
      key_file = value;
    } else if (name == "--format") {
      if (value == "txt") {
        a.opts.input.format = KeyFormat::kText;
      } else if (value == "csv") {
        a.opts.input.format = KeyFormat::kCsv;
      } else {
        return absl::InvalidArgumentError("--format must be txt or csv");
      }
    } else if (name == "--column") {
      if (value.empty()) return absl::InvalidArgumentError("--column needs a column name");
      a.opts.input.csv_column = value;
    } else if (name == "--threads") {
      if (!ParseThreads(value, &a.opts.threads)) {
        return absl::InvalidArgumentError("--threads must be 1..256");
      }
    } else {
      return absl::InvalidArgumentError("unknown option '" + name + "'");
    }
  }
  if (!data_dir.has_value() || data_dir->empty()) data_dir = getenv("KEYVEND_DATA_DIR");
  if (!data_dir.has_value() || data_dir->empty()) {
    return absl::InvalidArgumentError("--data-dir is required (or KEYVEND_DATA_DIR)");
  }
  while (data_dir->size() > 1 && data_dir->back() == '/') data_dir->pop_back();
  if (!key_file.has_value() || key_file->empty()) key_file = getenv("KEYVEND_MASTER_KEY_FILE");
  if (!key_file.has_value() || key_file->empty()) key_file = *data_dir + ".master-key";
  if (!product_set) return absl::InvalidArgumentError("--product is required");
  if (a.opts.files.empty()) return absl::InvalidArgumentError("no input FILE given");
  a.opts.data_dir = *data_dir;
  a.opts.master_key_file = *key_file;
  return a;
}

int Run(const std::vector<std::string>& args, const GetEnvFn& getenv, FILE* out, FILE* err,
        int progress_fd, bool progress_fd_is_tty) {
  auto parsed = ParseArgs(args, getenv);
  if (!parsed.ok()) {
    std::fprintf(err,
                 "keyvend-preload: %s\nusage: keyvend-preload --data-dir DIR --product ID "
                 "[options] FILE...  (--help for more)\n",
                 std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  if (parsed->help) {
    std::fputs(kUsage, out);
    return kExitLoaded;
  }
  Progress progress(progress_fd, parsed->progress && progress_fd_is_tty);
  auto res = RunPreload(parsed->opts, &progress);
  progress.Finish();
  if (!res.ok()) {
    std::fprintf(err, "keyvend-preload: error: %s\n", std::string(res.status().message()).c_str());
    return kExitError;
  }
  for (const ReportLine& r : res->report) {
    const std::string line = FormatReportLine(res->files, r);
    std::fputs(line.c_str(), out);
    std::fputc('\n', out);
  }
  std::fprintf(out, "%s\n", FormatSummary(res->counts).c_str());
  std::fflush(out);
  return kExitLoaded;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto getenv = [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  return Run(args, getenv, stdout, stderr, STDERR_FILENO, ::isatty(STDERR_FILENO) == 1);
}

}  // namespace kv::preload
