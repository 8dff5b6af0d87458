// preload_crash_child: RunPreload with a stop point, for preload_crash_test to prove that a
// kill at that point leaves none or all of the batch.
//
//   preload_crash_child DATA_DIR KEY_FILE PRODUCT FILE POINT [DELAY_US]
//
// POINT is where the process kills itself with SIGKILL (no cleanup, no destructors):
//   ssts       every SST file written and synced, IngestExternalFiles not yet called
//   ingesting  a thread kills the process DELAY_US microseconds after IngestExternalFiles
//              was entered (the call may be anywhere inside, or already done)
//   ingested   IngestExternalFiles returned OK; the temp dir is still there
// Exit codes: 0 the run finished before the kill, 1 it failed, 2 usage.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "preload/preload.h"

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: preload_crash_child DATA_DIR KEY_FILE PRODUCT FILE POINT [DELAY_US]\n");
    return 2;
  }
  const std::string point = argv[5];
  const long delay_us = argc > 6 ? std::strtol(argv[6], nullptr, 10) : 0;
  kv::preload::PreloadOptions o;
  o.data_dir = argv[1];
  o.master_key_file = argv[2];
  o.product_id = std::strtoull(argv[3], nullptr, 10);
  o.files = {argv[4]};
  o.threads = 2;
  o.ingest_hook = [&](kv::preload::IngestPoint p) {
    using P = kv::preload::IngestPoint;
    if ((p == P::kSstsWritten && point == "ssts") || (p == P::kIngested && point == "ingested")) {
      ::raise(SIGKILL);
    }
    if (p == P::kIngesting && point == "ingesting") {
      std::thread([delay_us] {
        std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
        ::raise(SIGKILL);
      }).detach();
    }
  };
  auto r = kv::preload::RunPreload(o, nullptr);
  if (!r.ok()) {
    std::fprintf(stderr, "preload_crash_child: %s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  return 0;
}
