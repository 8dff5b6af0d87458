// Secrets in memory and on disk (issue 9 item 5; review findings 4, 9a and 9d), against
// the real binaries:
//  - `keyvend serve` and the offline commands (`keyvend demo-seed` and `check`,
//    keyvend-preload, keyvend-backup), started with a nonzero core limit, run with the
//    core limit at 0 and not dumpable; allow_core_dumps / KEYVEND_ALLOW_CORE_DUMPS puts
//    back the limit they were started with and makes them dumpable again;
//  - serve takes its secrets out of its environment (/proc/PID/environ);
//  - started with umask 022, they leave the data dir, the backup dir and every file in them
//    private (0700 / 0600), and make an older shop's 0755/0644 dirs private on open;
//  - an admin token shorter than 32 characters stops serve at start, without printing it.
//
// "Not dumpable" seen from outside: the kernel gives a non-dumpable process's /proc/PID/*
// to root and refuses its /proc/PID/environ to other processes of the same user without
// CAP_SYS_PTRACE. Neither shows for a process that runs as root, so when this test runs as
// root it runs the binaries as another user (uid 65534, through setpriv) and reads as that
// user from a forked child; otherwise everything runs as the test's own user.
//
// A command that exits at once is kept alive for the test by handing it a stdout pipe the
// test has filled: its first write to stdout (in main, so after the hardening) blocks until
// the test drains the pipe.
#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"

#ifndef PRELOAD_BIN
#error "PRELOAD_BIN must name the keyvend-preload binary"
#endif
#ifndef KEYVEND_BACKUP_BIN
#error "KEYVEND_BACKUP_BIN must name the keyvend-backup binary"
#endif

namespace kv::httptest {
namespace {

namespace fs = std::filesystem;

constexpr char kAdminToken[] = "adm-secrets-3c1f9e7a5b2d4f6081a9c3e5";
constexpr char kPaymentSecret[] = "pay-secrets-7d2e4a6c8b0f1e3d";
// The soft core limit every binary is started with (at most the hard limit): an operator's
// `ulimit -c`, which only keyvend itself can have turned into 0.
constexpr rlim_t kOperatorCoreLimit = 7 << 20;
// The user the binaries run as when the test runs as root.
constexpr uid_t kOtherUid = 65534;
constexpr char kSetpriv[] = "/usr/bin/setpriv";

bool RunningAsRoot() { return ::geteuid() == 0; }

// The uid the binaries run as.
uid_t BinaryUid() { return RunningAsRoot() ? kOtherUid : ::geteuid(); }

std::vector<std::string> Launcher() {
  if (!RunningAsRoot()) return {};
  return {kSetpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
}

// A dir the binaries' user owns (the test's temp dirs are root's when it runs as root).
void GiveToBinaryUser(const std::string& dir) {
  if (RunningAsRoot()) {
    ASSERT_EQ(::chown(dir.c_str(), kOtherUid, kOtherUid), 0) << dir;
  }
}

std::string ProcPath(pid_t pid, const char* entry) {
  return "/proc/" + std::to_string(pid) + "/" + entry;
}

// The soft "Max core file size" of /proc/PID/limits, as written there ("0", "unlimited",
// bytes); "?" when it cannot be read.
std::string CoreSoftLimit(pid_t pid) {
  std::istringstream in(ReadFile(ProcPath(pid, "limits")));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max core file size", 0) != 0) continue;
    std::istringstream fields(line.substr(std::strlen("Max core file size")));
    std::string soft;
    fields >> soft;
    return soft;
  }
  return "?";
}

// The owner of /proc/PID/environ: root while the process is not dumpable, else its uid.
int64_t ProcOwner(pid_t pid) {
  struct stat st;
  if (::stat(ProcPath(pid, "environ").c_str(), &st) != 0) return -1;
  return st.st_uid;
}

// Whether a process of the binaries' user, without CAP_SYS_PTRACE, may open the process's
// /proc/PID/environ (the kernel's ptrace access check, which refuses a non-dumpable one).
bool SameUserMayReadEnviron(pid_t pid) {
  const std::string path = ProcPath(pid, "environ");
  if (!RunningAsRoot()) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
  }
  const pid_t child = ::fork();
  if (child == 0) {
    // Leaving root drops every capability.
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kOtherUid, kOtherUid, kOtherUid) != 0 ||
        ::setresuid(kOtherUid, kOtherUid, kOtherUid) != 0) {
      _exit(2);
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    _exit(fd >= 0 ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 2) << "could not become uid 65534";
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// What the process looks like from outside: its core limit and whether it is dumpable.
void ExpectHardened(pid_t pid, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(CoreSoftLimit(pid), "0") << "the soft core limit";
  EXPECT_EQ(ProcOwner(pid), 0) << "a dumpable process owns its /proc/PID";
  EXPECT_FALSE(SameUserMayReadEnviron(pid));
}

void ExpectCoreDumpsAllowed(pid_t pid, rlim_t started_with, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(CoreSoftLimit(pid), std::to_string(started_with)) << "the soft core limit";
  EXPECT_EQ(ProcOwner(pid), static_cast<int64_t>(BinaryUid()));
  EXPECT_TRUE(SameUserMayReadEnviron(pid));
}

// The permission bits of `path` in octal ("0600"), or "missing".
std::string ModeOf(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return "missing";
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return buf;
}

// Every dir under `root` (itself included) is 0700 and every file 0600; returns the number
// of files seen.
size_t ExpectPrivateTree(const std::string& root) {
  SCOPED_TRACE(root);
  EXPECT_EQ(ModeOf(root), "0700");
  size_t files = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string path = it->path().string();
    if (it->is_symlink()) continue;
    if (it->is_directory()) {
      EXPECT_EQ(ModeOf(path), "0700") << path;
    } else {
      ++files;
      EXPECT_EQ(ModeOf(path), "0600") << path;
    }
  }
  EXPECT_FALSE(ec) << ec.message();
  return files;
}

// What an older keyvend left: dirs 0755, files 0644.
void OpenUp(const std::string& root) {
  ASSERT_EQ(::chmod(root.c_str(), 0755), 0);
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(root)) {
    if (e.is_symlink()) continue;
    ASSERT_EQ(::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644), 0) << e.path();
  }
}

// A command run with its stdout on a pipe the test filled first: it blocks on its first
// write to stdout (keeping its pid) until Finish() drains the pipe.
class BlockedOnStdout {
 public:
  BlockedOnStdout(const std::vector<std::string>& command, const std::vector<std::string>& env,
                  const std::string& stderr_path) {
    std::vector<std::string> args = Launcher();
    args.insert(args.end(), command.begin(), command.end());
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    read_fd_ = fds[0];
    // Fill it (non-blocking for that only: the flag is shared with the child's stdout).
    const int flags = ::fcntl(fds[1], F_GETFL);
    ::fcntl(fds[1], F_SETFL, flags | O_NONBLOCK);
    const std::string chunk(4096, '.');
    while (::write(fds[1], chunk.data(), chunk.size()) > 0) {
    }
    ::fcntl(fds[1], F_SETFL, flags);
    ChildOptions options;
    options.env = env;
    options.out = Output::Fd(fds[1]);
    options.err = Output::AppendTo(stderr_path);
    std::string error;
    EXPECT_TRUE(child_.Start(args, options, &error)) << error;
    ::close(fds[1]);
  }
  ~BlockedOnStdout() {
    child_.Kill9();
    if (read_fd_ >= 0) ::close(read_fd_);
  }

  pid_t pid() const { return child_.pid(); }

  // Waits until the command runs its own main: its main thread is blocked in write(2)
  // (ld.so and the launcher write nothing), or its /proc/PID/syscall is closed to us, which
  // only the hardening does. False at the deadline.
  bool AwaitInMain() {
    return PollUntil(
        [&] {
          const int fd = ::open(ProcPath(child_.pid(), "syscall").c_str(), O_RDONLY | O_CLOEXEC);
          if (fd < 0) return errno == EACCES || errno == EPERM;
          char buf[64] = {0};
          const ssize_t n = ::read(fd, buf, sizeof buf - 1);
          ::close(fd);
          return n > 0 && std::strtol(buf, nullptr, 10) == SYS_write && buf[0] != 'r';
        },
        milliseconds(60000), milliseconds(10));
  }

  // Drains the pipe and waits for the exit; returns the exit code (-1: no normal exit).
  int Finish() {
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(read_fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
    }
    const int status = child_.Wait(milliseconds(60000));
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  Child child_;
  int read_fd_ = -1;
};

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Every binary inherits these: a permissive umask and a nonzero core limit, so that
    // private files and a zero limit can only come from keyvend itself.
    old_umask_ = ::umask(022);
    ASSERT_EQ(::getrlimit(RLIMIT_CORE, &old_core_), 0);
    rlimit core = old_core_;
    core.rlim_cur = core.rlim_max == RLIM_INFINITY ? kOperatorCoreLimit
                                                   : std::min(kOperatorCoreLimit, core.rlim_max);
    started_core_ = core.rlim_cur;
    ASSERT_EQ(::setrlimit(RLIMIT_CORE, &core), 0);
    if (RunningAsRoot()) {
      ASSERT_EQ(::access(kSetpriv, X_OK), 0) << kSetpriv << " (util-linux) is needed as root";
    }
  }
  void TearDown() override {
    ::umask(old_umask_);
    ::setrlimit(RLIMIT_CORE, &old_core_);
  }

  static std::vector<std::string> SecretsEnv() {
    return {std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
            std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret};
  }

  mode_t old_umask_ = 022;
  rlimit old_core_{};
  rlim_t started_core_ = 0;
};

// Review finding 4: a core of the shop held the subkeys, delivered keys and both secrets.
TEST_F(SecretsTest, ServeRunsWithCoreLimitZeroNotDumpableAndItsSecretsOutOfItsEnvironment) {
  ServerProcess server(SecretsEnv());
  GiveToBinaryUser(server.root());
  server.set_launcher(Launcher());
  std::string error;
  ASSERT_TRUE(server.Start({}, &error)) << error;
  ExpectHardened(server.pid(), "keyvend serve");
  if (RunningAsRoot()) {
    // Root may still read it (CAP_SYS_PTRACE): the secrets are no longer there.
    const std::string environ_text = ReadFile(ProcPath(server.pid(), "environ"));
    EXPECT_NE(environ_text.find("PATH="), std::string::npos) << "environ not read";
    EXPECT_EQ(environ_text.find(kAdminToken), std::string::npos);
    EXPECT_EQ(environ_text.find(kPaymentSecret), std::string::npos);
  }
  // And it still has them.
  Api api(server.port(), kAdminToken);
  EXPECT_EQ(api.AdminGet("/api/v1/admin/stats").status, 200);
  EXPECT_TRUE(ExitedZero(server.Terminate()));
}

TEST_F(SecretsTest, AllowCoreDumpsPutsBackTheCoreLimitServeWasStartedWith) {
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> ways = {
      {{"--allow-core-dumps"}, {}},
      {{}, {"KEYVEND_ALLOW_CORE_DUMPS=1"}},
  };
  for (const auto& [flags, env] : ways) {
    std::vector<std::string> all_env = SecretsEnv();
    all_env.insert(all_env.end(), env.begin(), env.end());
    ServerProcess server(all_env);
    GiveToBinaryUser(server.root());
    server.set_launcher(Launcher());
    std::string error;
    ASSERT_TRUE(server.Start(flags, &error)) << error;
    ExpectCoreDumpsAllowed(server.pid(), started_core_,
                           flags.empty() ? "KEYVEND_ALLOW_CORE_DUMPS=1" : "--allow-core-dumps");
    EXPECT_TRUE(ExitedZero(server.Terminate()));
    EXPECT_NE(server.AllOutput().find(" warn keyvend: allow_core_dumps is on"), std::string::npos)
        << server.AllOutput();
  }
}

// Review finding 9d: the data dir was 0755 and its files 0644.
TEST_F(SecretsTest, DataDirBackupDirAndEveryFileInThemArePrivate) {
  ServerProcess server(SecretsEnv());
  const std::string backups = server.root() + "/backups";
  const std::string access_log = server.root() + "/access.log";
  std::string error;
  ASSERT_TRUE(server.Start({"--backup-dir", backups, "--access-log", access_log}, &error)) << error;
  {
    // A session that writes every kind of record: product, keys, order, payment, backup.
    Api api(server.port(), kAdminToken);
    Reply p = api.AdminPost("/api/v1/admin/products",
                            R"({"name":"Private","price_cents":700,"currency":"EUR"})");
    ASSERT_EQ(p.status, 201) << p;
    const std::string pid = p.json()["id"].str();
    ASSERT_EQ(api.AdminPost("/api/v1/admin/products/" + pid + "/keys",
                            "PRIV-KEY-0001-AQ\nPRIV-KEY-0002-AQ\n", "text/plain")
                  .status,
              200);
    Reply o = api.Post("/api/v1/orders", "{\"product_id\":" + Quote(pid) +
                                             ",\"quantity\":1,\"contact\":\"p@example.test\"}");
    ASSERT_EQ(o.status, 201) << o;
    const std::string id = o.json()["order_id"].str();
    ASSERT_EQ(SendNotify(api, kPaymentSecret, NotifyBody(id, "pay-private-1", 700, "EUR")).status,
              200);
    Reply g = api.Get("/api/v1/orders/" + id + "?token=" + o.json()["token"].str());
    ASSERT_EQ(g.status, 200) << g;
    ASSERT_EQ(api.AdminPost("/api/v1/admin/backups", "").status, 201);
  }
  ASSERT_TRUE(ExitedZero(server.Terminate()));
  EXPECT_GT(ExpectPrivateTree(server.data_dir()), 3u);
  EXPECT_GT(ExpectPrivateTree(backups), 3u);
  EXPECT_EQ(ModeOf(server.key_file()), "0600");
  EXPECT_EQ(ModeOf(access_log), "0600");

  // An older shop's dirs (0755, files 0644) are made private when opened, and a warning
  // names each with its old mode.
  OpenUp(server.data_dir());
  OpenUp(backups);
  ASSERT_TRUE(server.Start({"--backup-dir", backups}, &error)) << error;
  ASSERT_TRUE(ExitedZero(server.Terminate()));
  ExpectPrivateTree(server.data_dir());
  ExpectPrivateTree(backups);
  const std::string out = server.AllOutput();
  EXPECT_NE(out.find("data dir " + server.data_dir() + " was open to group/others (mode 0755)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("backup dir " + backups + " was open to group/others (mode 0755)"),
            std::string::npos)
      << out;

  // keyvend-backup restores into a private tree too (its umask, not the caller's).
  const std::string restored = server.root() + "/restored";
  RunResult r = RunCommand({KEYVEND_BACKUP_BIN, "restore", "--backup-dir", backups, "--to",
                            restored, "--master-key-file", server.key_file()});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_GT(ExpectPrivateTree(restored), 3u);
}

// Review finding 9a: KEYVEND_ADMIN_TOKEN=x was accepted.
TEST_F(SecretsTest, AnAdminTokenShorterThan32CharactersStopsServeWithoutPrintingIt) {
  kv::testing::TempDir t;
  for (const std::string& token :
       {std::string("x"), std::string("short-admin-token-0123456789abc")}) {
    SCOPED_TRACE(token.size());
    RunResult r =
        RunCommand({KEYVEND_BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.Sub("data"),
                    "--master-key-file", t.Sub("master.key"), "--payment-sandbox"},
                   {.env = {"KEYVEND_ADMIN_TOKEN=" + token,
                            std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret},
                    .timeout = milliseconds(20000)});
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find("KEYVEND_ADMIN_TOKEN is too short: the admin token must be at "
                         "least 32 characters"),
              std::string::npos)
        << r.out;
    if (token.size() > 1) {
      EXPECT_EQ(r.out.find(token), std::string::npos) << r.out;
    }
    EXPECT_EQ(r.out.find(kPaymentSecret), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(t.Sub("data"))) << "refused before anything was created";
  }
  // 32 characters are enough.
  const std::string token32 = "adm-exactly-32-characters-012345";
  ASSERT_EQ(token32.size(), 32u);
  ServerProcess server({"KEYVEND_ADMIN_TOKEN=" + token32});
  std::string error;
  ASSERT_TRUE(server.Start({}, &error)) << error;
  Api api(server.port(), token32);
  EXPECT_EQ(api.AdminGet("/api/v1/admin/stats").status, 200);
  EXPECT_TRUE(ExitedZero(server.Terminate()));
}

// Review finding 4 for the offline commands, which read the master key and card keys too.
TEST_F(SecretsTest, OfflineCommandsRunWithCoreLimitZeroNotDumpableUnlessAllowed) {
  for (const bool allow : {false, true}) {
    SCOPED_TRACE(allow ? "KEYVEND_ALLOW_CORE_DUMPS=yes" : "default");
    kv::testing::TempDir t;
    GiveToBinaryUser(t.path());
    const std::string data = t.Sub("data"), key = t.Sub("master.key"), backups = t.Sub("b");
    std::ofstream(t.Sub("catalogue.tsv")) << "Offline\t300\tEUR\treserve\tfalse\t5\tk.txt\tx\n";
    std::ofstream(t.Sub("k.txt")) << "OFFLINE-KEY-0001-ZQ\nOFFLINE-KEY-0002-ZQ\n";
    std::ofstream(t.Sub("more.txt")) << "OFFLINE-KEY-0003-ZQ\n";
    std::vector<std::string> env;
    if (allow) env.push_back("KEYVEND_ALLOW_CORE_DUMPS=yes");
    const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
        {"keyvend demo-seed",
         {KEYVEND_BIN, "demo-seed", "--data-dir", data, "--master-key-file", key, "--catalogue",
          t.Sub("catalogue.tsv")}},
        {"keyvend-preload",
         {PRELOAD_BIN, "--data-dir", data, "--master-key-file", key, "--product", "1",
          t.Sub("more.txt")}},
        {"keyvend-backup create",
         {KEYVEND_BACKUP_BIN, "create", "--data-dir", data, "--backup-dir", backups,
          "--master-key-file", key}},
        {"keyvend check", {KEYVEND_BIN, "check", "--data-dir", data, "--master-key-file", key}},
    };
    for (const auto& [name, command] : commands) {
      BlockedOnStdout run(command, env, t.Sub("stderr"));
      ASSERT_GT(run.pid(), 0) << name;
      ASSERT_TRUE(run.AwaitInMain()) << name << " never wrote to its stdout";
      if (allow) {
        ExpectCoreDumpsAllowed(run.pid(), started_core_, name);
      } else {
        ExpectHardened(run.pid(), name);
      }
      EXPECT_EQ(run.Finish(), 0) << name << ": " << ReadFile(t.Sub("stderr"));
    }
    // Started with umask 022, they left private files.
    ExpectPrivateTree(data);
    ExpectPrivateTree(backups);
    EXPECT_EQ(ModeOf(key), "0600");
  }
  // A value that is not a bool is a usage error in all three binaries.
  kv::testing::TempDir t;
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{KEYVEND_BIN, "check", "--data-dir", t.Sub("d")},
        std::vector<std::string>{PRELOAD_BIN, "--help"},
        std::vector<std::string>{KEYVEND_BACKUP_BIN, "list", "--backup-dir", t.Sub("b")}}) {
    RunResult r = RunCommand(command, {.env = {"KEYVEND_ALLOW_CORE_DUMPS=maybe"}});
    EXPECT_EQ(r.exit_code, 2) << command[0] << ": " << r.out;
    EXPECT_NE(r.out.find("invalid value \"maybe\" for KEYVEND_ALLOW_CORE_DUMPS: expected "
                         "one of true|false|1|0|yes|no"),
              std::string::npos)
        << r.out;
  }
}

}  // namespace
}  // namespace kv::httptest
