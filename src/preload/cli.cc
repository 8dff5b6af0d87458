#include "preload/cli.h"

#include <unistd.h>

#include "absl/strings/numbers.h"
#include "base/cli_flags.h"
#include "storage/data_dir.h"

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

const CliGrammar kGrammar = {{{"--data-dir"},
                              {"--product"},
                              {"--master-key-file"},
                              {"--format"},
                              {"--column"},
                              {"--threads"},
                              {"--dry-run", /*takes_value=*/false},
                              {"--no-progress", false}},
                             /*positional=*/true};

bool ParseThreads(const std::string& v, int* out) {
  int n = 0;
  if (!absl::SimpleAtoi(v, &n) || n < 1 || n > 256) return false;
  *out = n;
  return true;
}

}  // namespace

std::string Usage() { return kUsage; }

absl::StatusOr<CliArgs> ParseArgs(const std::vector<std::string>& args, const GetEnvFn& getenv) {
  absl::StatusOr<CliFlags> f = CliFlags::Parse(args, kGrammar);
  if (!f.ok()) return f.status();
  CliArgs a;
  if (f->help()) {
    a.help = true;
    return a;
  }
  a.opts.dry_run = f->Has("--dry-run");
  a.progress = !f->Has("--no-progress");
  a.opts.files = f->positional();
  if (f->Has("--product") &&
      (!absl::SimpleAtoi(f->Get("--product"), &a.opts.product_id) || a.opts.product_id == 0)) {
    return absl::InvalidArgumentError("--product needs a product id (a positive integer)");
  }
  if (f->Has("--format")) {
    const std::string format = f->Get("--format");
    if (format == "txt") {
      a.opts.input.format = KeyFormat::kText;
    } else if (format == "csv") {
      a.opts.input.format = KeyFormat::kCsv;
    } else {
      return absl::InvalidArgumentError("--format must be txt or csv");
    }
  }
  if (f->Has("--column")) {
    a.opts.input.csv_column = f->Get("--column");
    if (a.opts.input.csv_column.empty()) {
      return absl::InvalidArgumentError("--column needs a column name");
    }
  }
  if (f->Has("--threads") && !ParseThreads(f->Get("--threads"), &a.opts.threads)) {
    return absl::InvalidArgumentError("--threads must be 1..256");
  }
  a.opts.data_dir =
      storage::StripTrailingSlashes(f->GetOrEnv("--data-dir", "KEYVEND_DATA_DIR", getenv));
  if (a.opts.data_dir.empty()) {
    return absl::InvalidArgumentError("--data-dir is required (or KEYVEND_DATA_DIR)");
  }
  a.opts.master_key_file = f->GetOrEnv("--master-key-file", "KEYVEND_MASTER_KEY_FILE", getenv);
  if (a.opts.master_key_file.empty()) {
    a.opts.master_key_file = storage::DefaultMasterKeyFile(a.opts.data_dir);
  }
  if (!f->Has("--product")) return absl::InvalidArgumentError("--product is required");
  if (a.opts.files.empty()) return absl::InvalidArgumentError("no input FILE given");
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
  return Run({argv + 1, argv + argc}, ProcessEnv(), stdout, stderr, STDERR_FILENO,
             ::isatty(STDERR_FILENO) == 1);
}

}  // namespace kv::preload
