// keyvend-preload: bulk-loads card keys into a stopped shop (SPEC §8). Everything is in the
// tested library src/preload (cli.h has the command line, preload.h the run).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/hardening.h"
#include "preload/cli.h"

int main(int argc, char** argv) {
  // First, before any key or the master key is read (base/hardening.h).
  absl::Status s = kv::HardenProcess();
  if (s.ok()) s = kv::ApplyAllowCoreDumpsEnv(std::getenv(kv::kAllowCoreDumpsEnv));
  if (!s.ok()) {
    std::fprintf(stderr, "keyvend-preload: %s\n", std::string(s.message()).c_str());
    return kv::preload::kExitUsage;
  }
  return kv::preload::Main(argc, argv);
}
