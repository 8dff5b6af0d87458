// keyvend-preload: bulk-loads card keys into a stopped shop (SPEC §8). Everything is in the
// tested library src/preload (cli.h has the command line, preload.h the run).
#include "preload/cli.h"

int main(int argc, char** argv) { return kv::preload::Main(argc, argv); }
