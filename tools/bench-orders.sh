#!/usr/bin/env bash
# Order-creation benchmark: the domain (Shop::CreateOrder, synced through the group
# committer) against raw RocksDB WriteBatch{Put, Merge} sync=true and a raw batch of the
# same shape (both rocksdb::DB::Write on the caller's thread: RocksDB's own group commit),
# and that same batch through the committer (Db::Write), in one process, interleaved, at 1,
# 8 and 64 threads. Prints medians, the ratios and the committer's batches per group; then
# the same-shape pair again with RocksDB's enable_write_thread_adaptive_yield=false.
#   tools/bench-orders.sh [build-dir] [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${2:-3}
cmake --build "$build" -j2 --target order_bench > /dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Repetitions in random order: on a shared machine a burst of someone else's I/O (fsync
# latency is most of an order) then lands on any benchmark, not on one's consecutive runs.
"$build/bench/order_bench" --benchmark_repetitions="$reps" --benchmark_format=json \
  --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=false > "$out"
python3 - "$out" <<'PY'
import json, statistics, sys, re
runs = json.load(open(sys.argv[1]))["benchmarks"]
rates, per_group = {}, {}
for r in runs:
    if r.get("run_type") != "iteration":
        continue
    m = re.match(r"(\w+)/iterations:\d+/real_time/threads:(\d+)", r["name"])
    key = (m.group(1), int(m.group(2)))
    rates.setdefault(key, []).append(r["items_per_second"])
    if "batches_per_group" in r:
        per_group.setdefault(key, []).append(r["batches_per_group"])
med = lambda k: statistics.median(rates[k])
grp = lambda k: statistics.median(per_group[k]) if k in per_group else float("nan")
print(f"{'threads':>7} {'raw Put+Merge/s':>16} {'raw shape/s':>12} {'committer shape/s':>18}"
      f" {'committer/raw':>14} {'domain/s':>9} {'domain/raw shape':>17} {'batches/group':>14}")
for t in (1, 8, 64):
    raw = med(("raw_writebatch_sync", t))
    shp = med(("raw_order_shaped_sync", t))
    com = med(("raw_order_shaped_committer", t))
    dom = med(("domain_create_order", t))
    print(f"{t:>7} {raw:>16.0f} {shp:>12.0f} {com:>18.0f} {com/shp:>14.2f} {dom:>9.0f}"
          f" {dom/shp:>17.2f} {grp(('domain_create_order', t)):>14.1f}")
print()
print("enable_write_thread_adaptive_yield=false (same shape):")
print(f"{'threads':>7} {'raw shape/s':>12} {'vs yield on':>12} {'committer shape/s':>18}"
      f" {'vs yield on':>12}")
for t in (1, 8, 64):
    shp = med(("raw_order_shaped_sync", t))
    com = med(("raw_order_shaped_committer", t))
    shp_n = med(("raw_order_shaped_sync_noyield", t))
    com_n = med(("raw_order_shaped_committer_noyield", t))
    print(f"{t:>7} {shp_n:>12.0f} {shp_n/shp:>12.2f} {com_n:>18.0f} {com_n/com:>12.2f}")
PY
