// keyvend_fault_server: the test build's `keyvend serve` on a fault file system (issue 15).
//
//   keyvend_fault_server serve [keyvend serve's options]
//
// runs exactly the serve path of the production binary (kv::RunServe, src/app/serve.h)
// with the shop's database on a FaultFs (tests/kit/fault_fs.h), and adds two ways to die:
//  - SIGUSR2: a power loss now. Every byte not yet synced is dropped (the last writes torn
//    at random: DropOptions::tear), the directory entries not yet fsync'd are undone, one
//    line goes to stderr, `power loss: N files cut, M bytes dropped, K creates undone`, and
//    the process ends by SIGKILL.
//  - a named crash point (src/base/crash_point.h): KEYVEND_CRASH_AT=<point>[:<n>] dies at
//    the nth pass of the point; KEYVEND_CRASH_MODE=kill (default: SIGKILL at once) or power
//    (the power loss above, then SIGKILL). An unknown point or mode is refused at start
//    (exit 2) with the list of the known points.
// KEYVEND_FAULT_SEED seeds the tear (default: the pid).
//
//   keyvend_fault_server restore [keyvend-backup restore's options]
//
// runs exactly `keyvend-backup restore` (kv::RunBackupCli, src/app/backup_cli.h) with the
// crash point armed from KEYVEND_CRASH_AT (the restore.* points). Kill mode only: the
// restore writes through RocksDB's default Env (the BackupEngine's copy) and plain POSIX
// calls (its staging dir, fsyncs and rename), not through a FaultFs, so there is no power
// cut to simulate and KEYVEND_CRASH_MODE=power is refused (exit 2).
//
// Built only with the tests; the production `keyvend` and `keyvend-backup` never arm a
// crash point (tests/crash_point_test.cc checks).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "app/backup_cli.h"
#include "app/serve.h"
#include "base/crash_point.h"
#include "base/hardening.h"
#include "kit/fault_fs.h"

namespace {

std::shared_ptr<kv::testing::FaultFs>* g_fs = nullptr;  // leaked: threads use it until death
uint64_t g_seed = 0;

// The power loss: no write lands after PowerOff returns, and every later one blocks for
// good (no request is answered with the write's failure, as none could be without power);
// the drop runs with the database still open (the process never closes it), then the
// process dies.
[[noreturn]] void CutPower() {
  kv::testing::FaultFs& fs = **g_fs;
  fs.PowerOff(/*hang=*/true);
  kv::testing::DropOptions o;
  o.tear = true;
  o.seed = g_seed;
  o.files_open = true;
  auto r = fs.DropUnsynced(o);
  const std::string line =
      r.ok()
          ? absl::StrCat("power loss: ", r->files_truncated, " files cut, ", r->bytes_dropped,
                         " bytes dropped, ", r->creates_undone, " creates undone, ",
                         r->renames_undone, " renames undone\n")
          : absl::StrCat("power loss: the drop failed: ", std::string(r.status().message()), "\n");
  [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);
}

}  // namespace

int main(int argc, char** argv) {
  if (absl::Status s = kv::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "keyvend_fault_server: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || (args[0] != "serve" && args[0] != "restore")) {
    std::fprintf(stderr,
                 "usage: keyvend_fault_server serve [keyvend serve's options]\n"
                 "       keyvend_fault_server restore [keyvend-backup restore's options]\n");
    return 2;
  }
  if (args[0] == "restore") {
    // No power-cut hook: Arm refuses KEYVEND_CRASH_MODE=power.
    if (absl::Status s = kv::crash::ArmFromEnv(); !s.ok()) {
      std::fprintf(stderr, "keyvend_fault_server: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    return kv::RunBackupCli(args, kv::ProcessEnv(), stdout, stderr);
  }
  const char* seed = std::getenv("KEYVEND_FAULT_SEED");
  g_seed = seed != nullptr && *seed != '\0' ? std::strtoull(seed, nullptr, 10)
                                            : static_cast<uint64_t>(::getpid());
  g_fs = new std::shared_ptr<kv::testing::FaultFs>(std::make_shared<kv::testing::FaultFs>());
  std::unique_ptr<rocksdb::Env> env = kv::testing::FaultFs::NewEnv(*g_fs);
  kv::crash::SetPowerCutHook([] { CutPower(); });
  if (absl::Status s = kv::crash::ArmFromEnv(); !s.ok()) {
    std::fprintf(stderr, "keyvend_fault_server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (!kv::crash::Armed().empty()) {
    std::fprintf(stderr, "keyvend_fault_server: crash point %s armed\n",
                 std::string(kv::crash::Armed()).c_str());
  }
  // SIGUSR2 is taken by its own thread; blocked before any other thread starts.
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
  std::thread([usr2] {
    int sig = 0;
    while (sigwait(&usr2, &sig) != 0) {
    }
    CutPower();
  }).detach();
  kv::ServeHooks hooks;
  hooks.env = env.get();
  const int rc = kv::RunServe({args.begin() + 1, args.end()}, hooks);
  // The shop is closed: nothing uses the Env any more. (g_fs stays: the SIGUSR2 thread.)
  env.reset();
  return rc;
}
