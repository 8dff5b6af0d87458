#!/usr/bin/env bash
# The format gate: every C++ file git tracks is as .clang-format says (Debian's clang-format
# 14, --dry-run -Werror). tools/test.sh runs it first. With --fix it formats them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cc' '*.h')
else  # an export without .git
  mapfile -t files < <(find src tests fuzz bench -name '*.cc' -o -name '*.h' 2>/dev/null | sort)
fi
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run -Werror "${files[@]}"; then
  echo "format-check: the files above are not formatted; run tools/format-check.sh --fix" >&2
  exit 1
fi
echo "format-check: ${#files[@]} files formatted"
