// The `keyvend serve` command (src/app/main.cc): the whole serve path, from the command line
// to the drained exit, as a library (kv_serve) so that the test build's fault server
// (tests/fault_server_main.cc, keyvend_fault_server) runs exactly the same code on a
// fault-injecting file system.
#pragma once

#include <string>
#include <vector>

namespace rocksdb {
class Env;
}

namespace kv {

// What differs between the production binary and a test build's server.
struct ServeHooks {
  // The RocksDB Env (and through it the file system) the shop's database uses (not owned;
  // it must outlive the call). Default: nullptr, RocksDB's own. Tests only.
  rocksdb::Env* env = nullptr;
};

// Runs `keyvend serve` with `args` (the words after "serve"): parses the configuration
// (file < env < flags), takes the secrets out of the environment, opens the shop, serves
// until SIGTERM/SIGINT and drains. Returns the process exit code: 0 after a clean drain,
// 1 when the shop or the server could not start or the drain failed, 2 for a bad option
// or secret (the message is on stderr). --help prints the options and returns 0.
// Blocks SIGTERM and SIGINT in the calling thread (call it before starting other threads,
// which inherit the mask) and ignores SIGPIPE. Call once per process.
int RunServe(const std::vector<std::string>& args, const ServeHooks& hooks);

}  // namespace kv
