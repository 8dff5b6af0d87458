#!/usr/bin/env bash
# Installs what is missing, builds and runs the whole test suite (the README's second
# command; .ci/run calls exactly this). First the format gate (tools/format-check.sh), then
# the sanitizer builds (ASan+UBSan over the tests labelled unit, built with clang and its
# thread-safety analysis as errors; TSan over the tests labelled concurrency — each job
# builds the target tests_<label>, so a new test joins by its label), then the fuzz targets
# for 30 s each (tools/fuzz.sh), then the thread-safety check of every TU the clang builds
# did not compile (tools/thread-safety.sh); the last line is ctest's summary of the main
# build. KEYVEND_SANITIZERS=0 skips the sanitizer builds, KEYVEND_FUZZ_SECONDS=0 the fuzzing.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
./tools/format-check.sh
jobs=2
# ccache (CMakeLists.txt uses it when present): paths relative to the checkout, so a clone
# in another directory reuses the objects of an earlier build.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

if [ "${KEYVEND_SANITIZERS:-1}" != "0" ]; then
  # clang, so that the thread-safety analysis comes with this build for free.
  cmake -S . -B build-asan -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DKEYVEND_SANITIZE=address -DKEYVEND_THREAD_SAFETY=ON > /dev/null
  cmake --build build-asan -j"$jobs" --target tests_unit
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j"$jobs" -L unit)
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEYVEND_SANITIZE=thread > /dev/null
  cmake --build build-tsan -j"$jobs" --target tests_concurrency
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/../tools/tsan-suppressions.txt" ctest --output-on-failure -j1 -L concurrency)
fi

if [ "${KEYVEND_FUZZ_SECONDS:-30}" != "0" ]; then
  ./tools/fuzz.sh
fi
checked=()
for d in build-asan build-fuzz; do
  [ -f "$d/compile_commands.json" ] && checked+=("$d")
done
./tools/thread-safety.sh "${checked[@]}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j"$jobs"
cd build
set +e
ctest --output-on-failure -j"$jobs" 2>&1 | tee ctest.log
rc=${PIPESTATUS[0]}
# ctest prints label timings after its summary; repeat the summary as the last line.
grep -E "tests passed|tests failed" ctest.log | tail -1
exit "$rc"
