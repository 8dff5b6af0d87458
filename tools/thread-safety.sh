#!/usr/bin/env bash
# clang's thread-safety analysis (-Wthread-safety as errors: the ABSL_GUARDED_BY / kv::Mutex
# annotations, src/base/mutex.h) over every translation unit of the tree.
#   tools/thread-safety.sh [CHECKED_BUILD_DIR...]
# A CHECKED_BUILD_DIR is a clang build configured with KEYVEND_THREAD_SAFETY=ON (or
# KEYVEND_FUZZ=ON, which implies it) that has just been built: the compiler already checked
# every TU it compiled, so those are skipped (tools/test.sh passes build-asan and
# build-fuzz). Every other TU of the tree (as listed by a configure-only build-tsa) gets
# `clang++ -fsyntax-only`: parsing and the analysis, no code generation, no link — the
# cheapest check that is still the compiler's real one. Without arguments every TU is
# syntax-checked (a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
tsa=build-tsa
cmake -S . -B "$tsa" -DCMAKE_CXX_COMPILER=clang++ -DKEYVEND_THREAD_SAFETY=ON \
  -DCMAKE_BUILD_TYPE=Debug > /dev/null

# The analysis must be on: a deliberate violation has to fail to compile.
probe="$tsa/thread_safety_probe.cc"
cat > "$probe" <<'EOF'
#include "base/mutex.h"
struct Probe {
  kv::Mutex mu;
  int guarded ABSL_GUARDED_BY(mu) = 0;
  void Unlocked() { guarded = 1; }
};
EOF
if clang++ -std=c++20 -Isrc -fsyntax-only -Wthread-safety -Werror=thread-safety "$probe" 2> /dev/null; then
  echo "thread-safety: the analysis is off (a write without the lock compiled)" >&2
  exit 1
fi

# Only a clang build with the analysis on counts as checked: a gcc build dir given here would
# otherwise make every TU it compiled look checked.
checked=()
for d in "$@"; do
  cache="$d/CMakeCache.txt"
  if [ -f "$cache" ] && grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++' "$cache" &&
    grep -Eq '^KEYVEND_(THREAD_SAFETY|FUZZ):BOOL=ON' "$cache"; then
    checked+=("$d")
  else
    echo "thread-safety: $d is not a clang build with KEYVEND_THREAD_SAFETY=ON; its TUs are checked here" >&2
  fi
done

python3 - "$tsa" "${checked[@]}" <<'EOF'
import concurrent.futures, json, os, shlex, subprocess, sys, time
tsa, checked_dirs = sys.argv[1], sys.argv[2:]
entries = json.load(open(os.path.join(tsa, "compile_commands.json")))
tsa_abs = os.path.abspath(tsa)
# Sources the build generates (src/web's embedded files: byte arrays, no locks) do not exist
# in a configure-only tree; nothing in them is for the analysis.
entries = [e for e in entries if not os.path.abspath(e["file"]).startswith(tsa_abs + os.sep)]

def output_of(e):
    args = shlex.split(e["command"])
    return os.path.normpath(os.path.join(e["directory"], args[args.index("-o") + 1]))

def already_checked(e):
    obj = output_of(e)
    for d in checked_dirs:
        other = os.path.join(os.path.abspath(d), os.path.relpath(obj, tsa_abs))
        if os.path.exists(other) and os.path.getmtime(other) >= os.path.getmtime(e["file"]):
            return True
    return False

def syntax_check(e):
    args, skip = [], False
    for a in shlex.split(e["command"]):
        if skip:
            skip = False
        elif a == "-o":
            skip = True
        elif a != "-c" and a != e["file"]:
            args.append(a)
    args += ["-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety", e["file"]]
    r = subprocess.run(args, cwd=e["directory"], capture_output=True, text=True)
    return e["file"], r.returncode, r.stderr

todo = [e for e in entries if not already_checked(e)]
start = time.time()
failed = 0
warnings = 0
with concurrent.futures.ThreadPoolExecutor(int(os.environ.get("KEYVEND_JOBS", "2"))) as pool:
    for f, rc, err in pool.map(syntax_check, todo):
        warnings += err.count("[-Wthread-safety")
        if rc != 0:
            failed += 1
            sys.stderr.write(err)
print(f"thread-safety: {len(entries) - len(todo)} TUs checked by the clang builds "
      f"({', '.join(checked_dirs) or 'none'}), {len(todo)} by -fsyntax-only in "
      f"{time.time() - start:.0f} s: {failed} failed, {warnings} thread-safety diagnostics")
sys.exit(1 if failed else 0)
EOF
