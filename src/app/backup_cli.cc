#include "app/backup_cli.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "app/backup_online.h"
#include "backup/backup.h"
#include "base/cli_flags.h"
#include "base/coding.h"
#include "base/json_string.h"
#include "base/time_format.h"
#include "shop/check.h"
#include "storage/data_dir.h"
#include "storage/key_cipher.h"
#include "storage/master_key.h"

namespace kv {
namespace {

constexpr char kHelp[] =
    "usage: keyvend-backup <command> [options]\n"
    "\n"
    "Backups of a keyvend shop with RocksDB's BackupEngine: incremental (table files are\n"
    "shared between backups), every file checksummed (crc32c).\n"
    "\n"
    "commands:\n"
    "  create  --data-dir DIR --backup-dir B    back up a STOPPED shop's data dir\n"
    "  create  --url http://HOST:PORT            back up a RUNNING shop online while it sells\n"
    "                                            (its admin API; the token comes from\n"
    "                                            KEYVEND_ADMIN_TOKEN, the backup dir from the\n"
    "                                            shop's backup_dir option)\n"
    "  list    --backup-dir B [--id N] [--json]  id, time, size, keys and orders of each backup\n"
    "  verify  --backup-dir B [--id N]           read every file back and check its checksum;\n"
    "                                            names the file that fails\n"
    "  restore --backup-dir B [--id N] --to DIR  the latest backup (or N) into DIR, which must\n"
    "                                            not exist or be empty (copied beside it into\n"
    "                                            DIR.restoring-*, then renamed: never half\n"
    "                                            there); then opens it with the master key and\n"
    "                                            runs `keyvend check` on it\n"
    "  purge   --backup-dir B --keep N           delete all but the newest N backups (N >= 1)\n"
    "\n"
    "options:\n"
    "  --data-dir DIR          the shop's data dir (env KEYVEND_DATA_DIR)\n"
    "  --backup-dir B          the backup dir (env KEYVEND_BACKUP_DIR)\n"
    "  --master-key-file FILE  the shop's master key (env KEYVEND_MASTER_KEY_FILE).\n"
    "                          create --data-dir: default DIR.master-key (required: the\n"
    "                          data dir is opened with it). restore: default DIR.master-key\n"
    "                          of --to (required: a wrong key is refused before anything is\n"
    "                          written). verify, list, create --url: optional; when given,\n"
    "                          each backup is checked to belong to this key.\n"
    "  --id N                  one backup (default: all for list/verify, latest for restore)\n"
    "  --json                  list: one JSON object instead of a table\n"
    "  --skip-check            restore: do not run `keyvend check` on the restored dir\n"
    "  --timeout-seconds S     create --url: how long to wait for the answer (default 3600)\n"
    "  --help                  this text\n"
    "\n"
    "Core dumps are off (the process holds the master key and the admin token);\n"
    "KEYVEND_ALLOW_CORE_DUMPS=1 turns them on for debugging.\n"
    "\n"
    "exit codes:\n"
    "  0  done (verify: every file of every backup checked matches its checksum)\n"
    "  1  failed: an error, a corrupt backup (verify names the file), a wrong master key,\n"
    "     a busy backup dir (another create/purge), a refusal by the shop\n"
    "  2  usage error (nothing was done)\n"
    "\n"
    "examples:\n"
    "  KEYVEND_ADMIN_TOKEN=... keyvend-backup create --url http://127.0.0.1:8080\n"
    "  keyvend-backup create --data-dir ./keyvend-data --backup-dir /srv/keyvend-backups\n"
    "  keyvend-backup list --backup-dir /srv/keyvend-backups\n"
    "  keyvend-backup verify --backup-dir /srv/keyvend-backups --master-key-file "
    "./keyvend-data.master-key\n"
    "  keyvend-backup restore --backup-dir /srv/keyvend-backups --to ./restored \\\n"
    "      --master-key-file ./keyvend-data.master-key\n"
    "  keyvend-backup purge --backup-dir /srv/keyvend-backups --keep 7\n"
    "\n"
    "The master key is NOT in any backup (a backup alone cannot reveal a card key). Keep a\n"
    "copy of the key file (default <data-dir>.master-key, 64 hex characters, mode 0600)\n"
    "somewhere else than the backups, e.g. in a password manager or a sealed offline copy:\n"
    "without it a backup cannot be restored; with it and a backup, anyone can read every key.\n";

// --- arguments ------------------------------------------------------------------------------

// Every flag of every command; each command takes its own (kCommandOptions).
const CliGrammar kGrammar = {{{"--data-dir"},
                              {"--backup-dir"},
                              {"--url"},
                              {"--master-key-file"},
                              {"--id"},
                              {"--to"},
                              {"--keep"},
                              {"--timeout-seconds"},
                              {"--json", /*takes_value=*/false},
                              {"--skip-check", false}},
                             /*positional=*/false,
                             /*repeat_ok=*/false,
                             /*empty_ok=*/false};

// Which options each command takes (besides --master-key-file, which all take).
const std::map<std::string, std::set<std::string>> kCommandOptions = {
    {"create", {"--data-dir", "--backup-dir", "--url", "--timeout-seconds"}},
    {"list", {"--backup-dir", "--id", "--json"}},
    {"verify", {"--backup-dir", "--id"}},
    {"restore", {"--backup-dir", "--id", "--to", "--skip-check"}},
    {"purge", {"--backup-dir", "--keep"}},
};

class Cli {
 public:
  Cli(const EnvLookup& env, std::FILE* out, std::FILE* err) : env_(env), out_(out), err_(err) {}

  int Run(const std::vector<std::string>& words);

 private:
  template <typename... T>
  void Out(const T&... parts) {
    const std::string s = absl::StrCat(parts...);
    std::fwrite(s.data(), 1, s.size(), out_);
    std::fflush(out_);
  }
  template <typename... T>
  int Fail(const T&... parts) {
    const std::string s = absl::StrCat("keyvend-backup ", command_, command_.empty() ? "" : " ",
                                       "failed: ", parts..., "\n");
    std::fwrite(s.data(), 1, s.size(), err_);
    return kExitFailed;
  }
  template <typename... T>
  int Usage(const T&... parts) {
    const std::string s = absl::StrCat("keyvend-backup: ", parts...,
                                       "\n(keyvend-backup --help shows every command)\n");
    std::fwrite(s.data(), 1, s.size(), err_);
    return kExitUsage;
  }
  int FailStatus(const absl::Status& s) { return Fail(std::string(s.message())); }

  std::string Env(const std::string& name) const { return env_(name).value_or(""); }
  // A value from its flag, else its environment variable, else "".
  std::string FlagOrEnv(const std::string& flag, const std::string& var) const {
    return flags_.GetOrEnv(flag, var, env_);
  }
  std::string KeyFile() const { return FlagOrEnv("--master-key-file", "KEYVEND_MASTER_KEY_FILE"); }
  // Parses --id; false after printing a usage error.
  bool ParseId(std::optional<backup::BackupId>* id, int* rc);
  // The flags list and verify share: --backup-dir (required), --id, and the key-check value
  // of --master-key-file when one is named. -1 when all is well, else the exit code.
  int ReadDirIdAndKey(const char* cmd, std::string* dir, std::optional<backup::BackupId>* id,
                      std::optional<std::string>* kcv);
  // The key-check value of the key in `path`, or an error naming the file.
  absl::StatusOr<std::string> KeyCheckOf(const std::string& path) const;

  int Create();
  int CreateOffline(const std::string& data_dir, const std::string& backup_dir);
  int CreateOnline(const std::string& url);
  int List();
  int Verify();
  int Restore();
  int Purge();

  const EnvLookup& env_;
  std::FILE* out_;
  std::FILE* err_;
  std::string command_;
  CliFlags flags_;
};

std::string Bytes(uint64_t n) {
  if (n < 1024) return absl::StrCat(n, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

std::string Rfc3339(int64_t unix_ms) { return FormatRfc3339(FromUnixMs(unix_ms)); }

// True when another process holds RocksDB's lock on the data dir (a running shop, or a
// tool): RocksDB locks DIR/LOCK with fcntl, which F_GETLK reports without taking anything.
bool DataDirInUse(const std::string& data_dir) {
  const std::string path = data_dir + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const bool in_use = ::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  ::close(fd);
  return in_use;
}

int Cli::Run(const std::vector<std::string>& words) {
  if (words.empty()) return Usage("a command is required");
  if (words[0] == "--help" || words[0] == "-h" || words[0] == "help") {
    std::fputs(kHelp, out_);
    return kExitOk;
  }
  command_ = words[0];
  auto cmd = kCommandOptions.find(command_);
  if (cmd == kCommandOptions.end()) return Usage("unknown command \"", words[0], "\"");
  absl::StatusOr<CliFlags> flags = CliFlags::Parse({words.begin() + 1, words.end()}, kGrammar);
  if (!flags.ok()) return Usage(flags.status().message());
  if (flags->help()) {
    std::fputs(kHelp, out_);
    return kExitOk;
  }
  for (const std::string& name : flags->given()) {
    if (name != "--master-key-file" && cmd->second.count(name) == 0) {
      return Usage(command_, " does not take ", name);
    }
  }
  flags_ = *std::move(flags);
  if (command_ == "create") return Create();
  if (command_ == "list") return List();
  if (command_ == "verify") return Verify();
  if (command_ == "restore") return Restore();
  return Purge();
}

bool Cli::ParseId(std::optional<backup::BackupId>* id, int* rc) {
  if (!flags_.Has("--id")) return true;
  const std::string v = flags_.Get("--id");
  backup::BackupId n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n == 0) {
    *rc = Usage("--id must be a backup id (a positive integer), not \"", v, "\"");
    return false;
  }
  *id = n;
  return true;
}

absl::StatusOr<std::string> Cli::KeyCheckOf(const std::string& path) const {
  auto key = LoadMasterKeyFile(path);
  if (!key.ok()) return key.status();
  return KeyCipher::Derive(*key).KeyCheckValue();
}

// --- create ---------------------------------------------------------------------------------

int Cli::Create() {
  if (flags_.Has("--url")) {
    if (flags_.Has("--data-dir") || flags_.Has("--backup-dir")) {
      return Usage(
          "create --url backs up a running shop into the backup_dir of its own "
          "configuration: drop --data-dir/--backup-dir");
    }
    return CreateOnline(flags_.Get("--url"));
  }
  if (flags_.Has("--timeout-seconds")) return Usage("--timeout-seconds goes with --url");
  const std::string data_dir = FlagOrEnv("--data-dir", "KEYVEND_DATA_DIR");
  const std::string backup_dir = FlagOrEnv("--backup-dir", "KEYVEND_BACKUP_DIR");
  if (data_dir.empty() || backup_dir.empty()) {
    return Usage(
        "create needs --data-dir DIR --backup-dir B (a stopped shop) or --url "
        "http://HOST:PORT (a running shop)");
  }
  return CreateOffline(data_dir, backup_dir);
}

int Cli::CreateOffline(const std::string& data_dir_in, const std::string& backup_dir) {
  const std::string data_dir = storage::StripTrailingSlashes(data_dir_in);
  if (DataDirInUse(data_dir)) {
    return Fail("data dir ", data_dir,
                " is in use (a running shop?): back a running shop up online with "
                "`keyvend-backup create --url http://HOST:PORT`, or stop it first");
  }
  std::string key_file = KeyFile();
  if (key_file.empty()) key_file = storage::DefaultMasterKeyFile(data_dir);
  absl::Status apart =
      backup::CheckDirsApart(key_file, "master key file", backup_dir, "backup dir");
  if (!apart.ok()) {
    return Fail("master key file ", key_file, " must not be inside backup dir ", backup_dir,
                ": a backup must never carry its own key");
  }
  auto opened = storage::OpenExistingDataDir(data_dir, key_file);
  if (!opened.ok()) return FailStatus(opened.status());
  const auto start = std::chrono::steady_clock::now();
  backup::CreateOptions co;
  co.source = "offline";
  auto b = backup::Create(*opened->db, backup_dir, co);
  if (!b.ok()) return FailStatus(b.status());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const backup::BackupMetadata& m = *b->metadata;
  Out("keyvend-backup: backup ", b->id, " of ", data_dir, " created in ", backup_dir, ": ",
      b->files, " files, ", Bytes(b->size_bytes), "; ", m.products, " products, ", m.keys,
      " keys (", m.keys_in_pool, " in the pool), ", m.orders, " orders; ",
      absl::StrFormat("%.2f", secs), " s\n");
  return kExitOk;
}

int Cli::CreateOnline(const std::string& url_in) {
  std::string url;
  if (!ParseShopUrl(url_in, &url)) {
    return Usage("--url must be http://HOST:PORT (or https://), not \"", url_in, "\"");
  }
  int64_t timeout = 3600;
  if (flags_.Has("--timeout-seconds")) {
    const std::string v = flags_.Get("--timeout-seconds");
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), timeout);
    if (ec != std::errc() || p != v.data() + v.size() || timeout < 1 || timeout > 86400) {
      return Usage("--timeout-seconds must be 1..86400");
    }
  }
  const std::string token = Env("KEYVEND_ADMIN_TOKEN");
  if (token.empty()) {
    return Usage("create --url needs the shop's admin token in KEYVEND_ADMIN_TOKEN");
  }
  std::optional<std::string> kcv;
  if (const std::string key_file = KeyFile(); !key_file.empty()) {
    auto k = KeyCheckOf(key_file);
    if (!k.ok()) return FailStatus(k.status());
    kcv = *k;
  }
  auto r = RequestOnlineBackup(url, token, timeout);
  if (!r.ok()) return FailStatus(r.status());
  if (r->status != 201) {
    return Fail("the shop answered HTTP ", r->status, " ", r->error_code, ": ", r->error_message);
  }
  Out("keyvend-backup: backup ", r->id, " of ", url, " created in ", r->backup_dir,
      " (the shop's backup_dir): ", r->files, " files, ", Bytes(r->size_bytes), "; ", r->products,
      " products, ", r->keys, " keys (", r->keys_in_pool, " in the pool), ", r->orders, " orders; ",
      absl::StrFormat("%.2f", static_cast<double>(r->duration_ms) / 1e3), " s\n");
  if (kcv.has_value() && HexEncode(*kcv) != r->key_check_hex) {
    return Fail("backup ", r->id, " was created, but master key file ", KeyFile(),
                " is NOT this shop's key: keep the shop's real key file with the backups' "
                "restore instructions");
  }
  return kExitOk;
}

// --- list, verify -----------------------------------------------------------------------------

int Cli::ReadDirIdAndKey(const char* cmd, std::string* dir, std::optional<backup::BackupId>* id,
                         std::optional<std::string>* kcv) {
  *dir = FlagOrEnv("--backup-dir", "KEYVEND_BACKUP_DIR");
  if (dir->empty()) return Usage(cmd, " needs --backup-dir B");
  int rc = 0;
  if (!ParseId(id, &rc)) return rc;
  if (const std::string key_file = KeyFile(); !key_file.empty()) {
    auto k = KeyCheckOf(key_file);
    if (!k.ok()) return FailStatus(k.status());
    *kcv = *k;
  }
  return -1;
}

int Cli::List() {
  std::string dir;
  std::optional<backup::BackupId> id;
  std::optional<std::string> kcv;
  if (const int rc = ReadDirIdAndKey("list", &dir, &id, &kcv); rc >= 0) return rc;
  auto list = backup::List(dir);
  if (!list.ok()) return FailStatus(list.status());
  std::vector<backup::BackupInfo> shown;
  for (const backup::BackupInfo& b : list->backups) {
    if (!id.has_value() || b.id == *id) shown.push_back(b);
  }
  if (id.has_value() && shown.empty()) return Fail("no backup ", *id, " in ", dir);

  if (flags_.Has("--json")) {
    std::string j = absl::StrCat("{\"backup_dir\":", JsonString(dir), ",\"backups\":[");
    for (const backup::BackupInfo& b : shown) {
      if (&b != &shown.front()) j += ",";
      absl::StrAppend(&j, "{\"id\":\"", b.id, "\",\"finished_at\":\"",
                      Rfc3339(b.finished_unix_seconds * 1000), "\",\"size_bytes\":", b.size_bytes,
                      ",\"files\":", b.files);
      if (b.metadata.has_value()) {
        const backup::BackupMetadata& m = *b.metadata;
        absl::StrAppend(
            &j, ",\"keyvend\":true,\"created_at\":\"", Rfc3339(m.created_unix_ms),
            "\",\"source\":", JsonString(m.source), ",\"schema_version\":", m.schema_version,
            ",\"key_check\":\"", HexEncode(m.key_check), "\",\"products\":", m.products,
            ",\"keys\":", m.keys, ",\"keys_in_pool\":", m.keys_in_pool, ",\"orders\":", m.orders);
        if (kcv.has_value()) {
          absl::StrAppend(&j, ",\"master_key_matches\":", m.key_check == *kcv ? "true" : "false");
        }
      } else {
        absl::StrAppend(&j, ",\"keyvend\":false,\"metadata_error\":", JsonString(b.metadata_error));
      }
      j += "}";
    }
    absl::StrAppend(&j, "],\"unreadable\":[",
                    absl::StrJoin(list->unreadable, ",",
                                  [](std::string* o, backup::BackupId u) {
                                    absl::StrAppend(o, "\"", u, "\"");
                                  }),
                    "],\"bytes_on_disk\":", list->bytes_on_disk, "}\n");
    Out(j);
    return kExitOk;
  }

  std::string t = absl::StrFormat("%-6s %-20s %-8s %10s %6s %8s %10s %10s %10s  %s\n", "ID",
                                  "CREATED (UTC)", "SOURCE", "SIZE", "FILES", "PRODUCTS", "KEYS",
                                  "IN POOL", "ORDERS", "KEY CHECK");
  for (const backup::BackupInfo& b : shown) {
    if (!b.metadata.has_value()) {
      absl::StrAppend(&t, absl::StrFormat("%-6u %-20s %-8s %10s %6u  not a keyvend backup: %s\n",
                                          b.id, Rfc3339(b.finished_unix_seconds * 1000), "?",
                                          Bytes(b.size_bytes), b.files, b.metadata_error));
      continue;
    }
    const backup::BackupMetadata& m = *b.metadata;
    std::string key = HexEncode(m.key_check).substr(0, 8);
    if (kcv.has_value()) key += m.key_check == *kcv ? " (this key)" : " (ANOTHER key)";
    absl::StrAppend(
        &t, absl::StrFormat("%-6u %-20s %-8s %10s %6u %8u %10u %10u %10u  %s\n", b.id,
                            Rfc3339(m.created_unix_ms), m.source, Bytes(b.size_bytes), b.files,
                            m.products, m.keys, m.keys_in_pool, m.orders, key));
  }
  Out(t);
  for (backup::BackupId u : list->unreadable) {
    Out("backup ", u, ": its description (meta/", u, ") cannot be read; verify reports it\n");
  }
  Out(list->backups.size(), " backup", list->backups.size() == 1 ? "" : "s", " in ", dir, ", ",
      Bytes(list->bytes_on_disk), " on disk (files shared between backups counted once)\n");
  return kExitOk;
}

int Cli::Verify() {
  std::string dir;
  std::optional<backup::BackupId> id;
  std::optional<std::string> kcv;
  if (const int rc = ReadDirIdAndKey("verify", &dir, &id, &kcv); rc >= 0) return rc;
  auto report = backup::Verify(dir, id, kcv.has_value() ? &*kcv : nullptr);
  if (!report.ok()) return FailStatus(report.status());
  std::map<backup::BackupId, std::string> lines;
  for (backup::BackupId v : report->verified) lines[v] = "OK";
  for (const backup::VerifyProblem& p : report->problems) {
    std::string& line = lines[p.id];
    if (!line.empty()) line += "; ";
    absl::StrAppend(&line, "CORRUPT", p.file.empty() ? "" : " ", p.file, ": ", p.what, " (",
                    p.detail, ")");
  }
  for (const auto& [bid, line] : lines) Out("backup ", bid, ": ", line, "\n");
  if (lines.empty()) {
    Out("keyvend-backup verify: no backups in ", dir, "\n");
    return kExitOk;
  }
  if (report->ok()) {
    Out("keyvend-backup verify: OK — ", report->verified.size(), " backup",
        report->verified.size() == 1 ? "" : "s", ", every file's checksum matches",
        kcv.has_value() ? ", all made with this master key" : "", "\n");
    return kExitOk;
  }
  std::set<backup::BackupId> bad;
  for (const backup::VerifyProblem& p : report->problems) bad.insert(p.id);
  return Fail(bad.size(), " of ", lines.size(), " backups have problems (listed above)");
}

// --- restore, purge ---------------------------------------------------------------------------

int Cli::Restore() {
  const std::string dir = FlagOrEnv("--backup-dir", "KEYVEND_BACKUP_DIR");
  const std::string to = storage::StripTrailingSlashes(flags_.Get("--to"));
  if (dir.empty() || to.empty()) return Usage("restore needs --backup-dir B and --to DIR");
  std::optional<backup::BackupId> id;
  int rc = 0;
  if (!ParseId(&id, &rc)) return rc;
  std::string key_file = KeyFile();
  if (key_file.empty()) key_file = storage::DefaultMasterKeyFile(to);
  absl::Status outside = CheckKeyFileOutsideDir(key_file, to);
  if (!outside.ok()) return FailStatus(outside);
  auto kcv = KeyCheckOf(key_file);
  if (!kcv.ok()) {
    return Fail(kcv.status().message(),
                "; restore needs the shop's master key file (it is not in the backup): "
                "--master-key-file FILE");
  }
  auto b = backup::Restore(dir, id, to, *kcv);
  if (!b.ok()) return FailStatus(b.status());
  const backup::BackupMetadata& m = *b->metadata;
  Out("keyvend-backup: restored backup ", b->id, " (created ", Rfc3339(m.created_unix_ms), ", ",
      m.orders, " orders, ", m.keys, " keys) to ", to, "\n");

  // Open it as the shop will: schema version and key check, the write-ahead log replayed.
  auto opened = storage::OpenExistingDataDir(to, key_file);
  if (!opened.ok()) return Fail("the restored dir does not open: ", opened.status().message());
  if (!flags_.Has("--skip-check")) {
    auto report = CheckShop(*opened->db, *opened->cipher);
    if (!report.ok()) return Fail("keyvend check could not run: ", report.status().message());
    for (const std::string& v : report->violations) Out("VIOLATION: ", v, "\n");
    Out("keyvend check: ", report->violations.empty() ? "OK" : "FAILED", " — ", report->products,
        " products, ", report->orders, " orders, ", report->payments, " payments, ",
        report->keys_in_pool, " keys in pool, ", report->keys_delivered, " delivered, ",
        report->violations.size(), " violations\n");
    if (!report->violations.empty()) return Fail("the restored shop fails keyvend check");
  }
  Out("start the shop on it: keyvend serve --data-dir ", to, " --master-key-file ", key_file, "\n");
  return kExitOk;
}

int Cli::Purge() {
  const std::string dir = FlagOrEnv("--backup-dir", "KEYVEND_BACKUP_DIR");
  if (dir.empty() || !flags_.Has("--keep")) return Usage("purge needs --backup-dir B --keep N");
  const std::string v = flags_.Get("--keep");
  uint32_t keep = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), keep);
  if (ec != std::errc() || p != v.data() + v.size() || keep == 0) {
    return Usage("--keep must be a number of backups >= 1, not \"", v, "\"");
  }
  auto r = backup::Purge(dir, keep);
  if (!r.ok()) return FailStatus(r.status());
  const auto ids = [](const std::vector<backup::BackupId>& v) {
    return v.empty() ? std::string("none") : absl::StrJoin(v, ", ");
  };
  Out("keyvend-backup: purged ", ids(r->deleted), "; kept ", ids(r->kept), "\n");
  return kExitOk;
}

}  // namespace

int RunBackupCli(const std::vector<std::string>& args, const EnvLookup& env, std::FILE* out,
                 std::FILE* err) {
  Cli cli(env, out, err);
  return cli.Run(args);
}

const char* BackupCliHelp() { return kHelp; }

}  // namespace kv
