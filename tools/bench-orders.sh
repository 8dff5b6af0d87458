#!/usr/bin/env bash
# Order-creation benchmark: the domain (Shop::CreateOrder, synced) against raw RocksDB
# WriteBatch{Put, Merge} sync=true and a raw batch of the same shape, in one process,
# interleaved, at 1, 8 and 64 threads. Prints medians and the ratios.
#   tools/bench-orders.sh [build-dir] [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${2:-3}
cmake --build "$build" -j2 --target order_bench > /dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$build/bench/order_bench" --benchmark_repetitions="$reps" --benchmark_format=json \
  --benchmark_report_aggregates_only=false > "$out"
python3 - "$out" <<'PY'
import json, statistics, sys, re
runs = json.load(open(sys.argv[1]))["benchmarks"]
rates = {}
for r in runs:
    if r.get("run_type") != "iteration":
        continue
    m = re.match(r"(\w+)/iterations:\d+/real_time/threads:(\d+)", r["name"])
    rates.setdefault((m.group(1), int(m.group(2))), []).append(r["items_per_second"])
print(f"{'threads':>7} {'raw Put+Merge/s':>16} {'raw same-shape/s':>17} {'domain/s':>10} {'domain/raw':>11} {'domain/shape':>13}")
for t in (1, 8, 64):
    raw = statistics.median(rates[("raw_writebatch_sync", t)])
    shp = statistics.median(rates[("raw_order_shaped_sync", t)])
    dom = statistics.median(rates[("domain_create_order", t)])
    print(f"{t:>7} {raw:>16.0f} {shp:>17.0f} {dom:>10.0f} {dom/raw:>11.2f} {dom/shp:>13.2f}")
PY
