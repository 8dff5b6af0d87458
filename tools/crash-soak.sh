#!/usr/bin/env bash
# The crash soak (issue 15): N rounds of mixed sale load on the real keyvend, each ended by a
# kill -9 or (with the test build's keyvend_fault_server) a simulated power loss at a random
# moment, then `keyvend check` and an outside ledger (tests/crash_soak_test.cc says what it
# checks). CI runs the short default through ctest (label soak); by hand:
#   tools/crash-soak.sh 200            # 200 rounds, a random seed (printed)
#   tools/crash-soak.sh 50 1234        # 50 rounds, seed 1234 (reproduces the dice, not the
#                                      # exact moments: those depend on the machine)
#   tools/crash-soak.sh 200 "" build2  # another build dir
# The output (per round and the totals) is also kept in BUILD/crash-soak-<date>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
seed=${2:-}
build=${3:-build}
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] && [ "$rounds" -le 100000 ] ||
  { echo "rounds: 1..100000" >&2; exit 2; }
[ -z "$seed" ] || [[ "$seed" =~ ^[0-9]+$ ]] || { echo "seed: a non-negative integer" >&2; exit 2; }
export CCACHE_BASEDIR="$PWD"
[ -f "$build/CMakeCache.txt" ] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
targets=(keyvend crash_soak_test)
# grep reads the whole list (with -q it stops early and, under pipefail, the SIGPIPE of
# `cmake --build --target help` hid the target).
cmake --build "$build" --target help | grep -w keyvend_fault_server > /dev/null &&
  targets+=(keyvend_fault_server)
cmake --build "$build" -j2 --target "${targets[@]}" > /dev/null
log="$build/crash-soak-$(date -u +%Y%m%dT%H%M%SZ).log"
echo "crash soak: $rounds rounds, log $log"
env KEYVEND_SOAK_ROUNDS="$rounds" ${seed:+KEYVEND_SOAK_SEED="$seed"} \
  "$build/tests/crash_soak_test" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
