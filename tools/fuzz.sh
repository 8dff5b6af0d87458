#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan+UBSan, KEYVEND_FUZZ=ON) in build-fuzz and
# runs each for a fixed time; fails on any crash, leak, timeout, out-of-memory or sanitizer
# report. tools/test.sh (CI) calls it with the default 30 s per target; by hand:
#   tools/fuzz.sh                      # every target, 30 s each
#   tools/fuzz.sh -t 600 json_fuzz     # one target for ten minutes
#   KEYVEND_FUZZ_SECONDS=120 tools/fuzz.sh
# Each target starts from its seed corpus (fuzz/corpus/<target>, read only) plus what earlier
# runs found (build-fuzz/corpus/<target>, where new inputs go) and uses fuzz/dict/<target>.dict.
# Inputs in fuzz/regressions/<target>/ (saved crashes, once fixed) are replayed first. A
# crashing input lands in build-fuzz/artifacts/; reproduce it with
#   build-fuzz/fuzz/<target> build-fuzz/artifacts/<target>-crash-...
# The last lines are one per target: runs, exec/s, corpus size, result.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${KEYVEND_FUZZ_SECONDS:-30}"
if [ "${1:-}" = "-t" ]; then
  seconds="$2"
  shift 2
fi
all_targets=(json_fuzz key_import_fuzz signature_fuzz config_fuzz http_server_fuzz)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

build=build-fuzz
export CCACHE_BASEDIR="$PWD"
# -O1 and line tables: the usual fuzzing build (fast enough to run, quick to compile);
# assertions stay on (no NDEBUG).
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DKEYVEND_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  > /dev/null
cmake --build "$build" -j"${KEYVEND_JOBS:-2}" --target "${targets[@]}"

mkdir -p "$build/artifacts" "$build/logs"
# The server target's temp data dir (removed at its exit) goes on tmpfs when there is one:
# every order, payment and import is a synced RocksDB write, and an fsync per input on a
# real disk would cut its exec/s twentyfold.
tmp="$PWD/$build/tmp"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp=$(mktemp -d /dev/shm/keyvend-fuzz.XXXXXX); fi
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
export TMPDIR="$tmp"
# Every UBSan finding is fatal (the build also sets -fno-sanitize-recover); leaks are
# reported by libFuzzer's own check after each input and at exit.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$build/fuzz/$t"
  log="$build/logs/$t.log"
  # 1. Saved regressions: each input once (exit code non-zero on any report).
  if compgen -G "fuzz/regressions/$t/*" > /dev/null; then
    if ! "$bin" -runs=1 fuzz/regressions/"$t"/* > "$build/logs/$t.regressions.log" 2>&1; then
      echo "fuzz: $t FAILS on a saved regression input:" >&2
      tail -40 "$build/logs/$t.regressions.log" >&2
      failed+=("$t")
      summary+=("$(printf '%-18s regression input fails (see %s)' "$t" "$build/logs/$t.regressions.log")")
      continue
    fi
  fi
  # 2. Fuzz for the fixed time.
  mkdir -p "$build/corpus/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  rc=0
  "$bin" "$build/corpus/$t" "fuzz/corpus/$t" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -malloc_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" > "$log" 2>&1 || rc=$?
  runs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' | tail -1)
  eps=$(grep -E '^stat::average_exec_per_sec:' "$log" | awk '{print $2}' | tail -1)
  corpus=$(ls "$build/corpus/$t" | wc -l)
  result=ok
  # libFuzzer exits non-zero on a crash, leak, timeout or OOM; a sanitizer report that
  # somehow did not end the process still fails the run.
  if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|FUZZ_CHECK failed' "$log"; then
    result="FAILED (exit $rc)"
    failed+=("$t")
    echo "fuzz: $t FAILED; the end of $log:" >&2
    tail -60 "$log" >&2
    ls -1 "$build/artifacts/$t-"* 2>/dev/null | sed 's/^/fuzz: input saved: /' >&2 || true
  fi
  summary+=("$(printf '%-18s %10s runs  %7s exec/s  corpus %5s  %s' "$t" "${runs:-?}" "${eps:-?}" "$corpus" "$result")")
done

echo "fuzz: ${seconds} s per target"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
