#!/usr/bin/env bash
# Issue 5's closing benchmark: how long an online backup of a shop with a few million keys
# takes, and how much order throughput dips while it runs — measured in one run of one
# server, against the throughput of the same load just before and just after the backup.
#
#   tools/bench-backup.sh [build-dir] [keys (default 3000000)]
#
# 1. `keyvend serve` (limits off: data/bench.conf, as in bench-flood's throughput part) with
#    a backup_dir; one
#    reserve-mode product; KEYS card keys imported through the admin endpoint in batches of
#    500,000; then it waits (<= 60 s) for RocksDB's compaction debt to drain.
# 2. flood_bench creates orders over CONNECTIONS keep-alive connections (closed loop) for the
#    whole measurement; the server's own counter of 201 answers to POST /api/v1/orders is read
#    at every window's edges, so the rates cover exactly each window.
# 3. ROUNDS rounds, each: WINDOW_SECONDS of load alone ("before"), then `keyvend-backup create
#    --url` (the window is the backup's whole run), then WINDOW_SECONDS alone ("after").
#    Round 1 copies everything (the first backup); later rounds are incremental.
#    dip ratio = orders/s during the backup / mean of before and after (target >= 0.90).
# 4. The server is stopped (SIGTERM), `keyvend check` runs on its data dir and
#    `keyvend-backup verify` on the backups.
#
# Environment: CONNECTIONS (64), WINDOW_SECONDS (8, 2..60), ROUNDS (2, 1..5),
# BACKUP_RATE_MB (unset: the server's default backup_rate_limit_mb; 0 = unlimited). About
# 3 minutes with the defaults on 2 cores; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
keys=${2:-3000000}
conns=${CONNECTIONS:-64}
window=${WINDOW_SECONDS:-8}
rounds=${ROUNDS:-2}
rate_args=()
[ -n "${BACKUP_RATE_MB:-}" ] && rate_args=(--backup-rate-limit-mb "$BACKUP_RATE_MB")
if ! [[ "$keys" =~ ^[0-9]+$ ]] || [ "$keys" -lt 1000 ] || [ "$keys" -gt 20000000 ]; then
  echo "keys: 1000..20000000 (got $keys)" >&2
  exit 2
fi
if ! [[ "$window" =~ ^[0-9]+$ ]] || [ "$window" -lt 2 ] || [ "$window" -gt 60 ]; then
  echo "WINDOW_SECONDS: 2..60 (got $window)" >&2
  exit 2
fi
if ! [[ "$rounds" =~ ^[1-5]$ ]]; then
  echo "ROUNDS: 1..5 (got $rounds)" >&2
  exit 2
fi
started=$(date +%s)
kv_init "$build" keyvend keyvend-backup flood_bench
tool=$KV_BUILD/src/keyvend-backup
bench=$KV_BENCH/flood_bench
tmp=$KV_TMP
load_pid=""
kv_on_exit() {  # the load generator, if it still runs (the server is lib.sh's)
  if [ -n "$load_pid" ]; then
    kill -KILL "$load_pid" 2> /dev/null || true
    wait "$load_pid" 2> /dev/null || true
  fi
}

kv_serve shop off "$tmp/data" --backup-dir "$tmp/backups" "${rate_args[@]}"
url=$(kv_url shop)

metric() { kv_metric "$url" "$1"; }  # NAME-WITH-LABELS: its value (0 when absent)
orders() { metric 'keyvend_http_requests_total{route="POST /api/v1/orders",code="201"}'; }
on_disk() {  # bytes in the backup dir, files shared between backups counted once
  if [ -d "$tmp/backups" ]; then
    "$tool" list --backup-dir "$tmp/backups" --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_on_disk"])'
  else
    echo 0
  fi
}
now() { date +%s.%N; }

echo "keyvend backup benchmark: $(git rev-parse --short HEAD 2> /dev/null || echo '?')," \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. the shop's data -------------------------------------------------------------------------
pid=$(kv_product "$url" '{"name":"bench","price_cents":100,"currency":"EUR","max_per_order":1}')
t0=$(now)
batch=500000
for ((start = 0; start < keys; start += batch)); do
  n=$(( keys - start < batch ? keys - start : batch ))
  python3 -c "import sys; s=$start; print('\n'.join(f'BACKUP-BENCH-{i:09d}-KEY' for i in range(s, s+$n)))" \
    > "$tmp/keys.txt"
  got=$(kv_import "$url" "$pid" "$tmp/keys.txt")
  if [ "$got" != "$n" ]; then
    echo "import of keys $start.. gave $got of $n" >&2
    exit 1
  fi
done
rm -f "$tmp/keys.txt"
t1=$(now)
python3 -c "print(f'   {$keys:,} keys imported through the admin endpoint in {$t1-$t0:.1f} s ({$keys/($t1-$t0):,.0f} keys/s)')"
for _ in $(seq 1 120); do
  [ "$(metric keyvend_rocksdb_pending_compaction_bytes)" = 0 ] && break
  sleep 0.5
done
echo "   data dir $(du -sh "$tmp/data" | cut -f1), compaction debt" \
  "$(metric keyvend_rocksdb_pending_compaction_bytes) bytes"

# --- 2. load, windows and backups ---------------------------------------------------------------
"$bench" --mode throughput --url "$url" --product "$pid" --connections "$conns" \
  --seconds 3600 > "$tmp/load.out" 2>&1 &
load_pid=$!
sleep 3  # warm-up: connections open, caches warm
echo
echo "== order throughput ($conns connections, closed loop) around each online backup =="
echo "   backup_rate_limit_mb: ${BACKUP_RATE_MB:-the server default}; 'copied' = bytes the"
echo "   backup added to the backup dir (what it wrote; shared table files are not copied again)"
printf "   %-5s %-11s %8s %10s %10s %10s %10s %7s\n" round backup secs copied \
  before/s during/s after/s ratio
results=()
for r in $(seq 1 "$rounds"); do
  disk0=$(on_disk)
  c0=$(orders); s0=$(now)
  sleep "$window"
  c1=$(orders); s1=$(now)
  "$tool" create --url "$url" > "$tmp/backup-$r.out" 2>&1 || {
    echo "backup $r failed:" >&2
    cat "$tmp/backup-$r.out" >&2
    exit 1
  }
  c2=$(orders); s2=$(now)
  sleep "$window"
  c3=$(orders); s3=$(now)
  disk1=$(on_disk)
  copied=$(awk -v a="$disk0" -v b="$disk1" 'BEGIN {printf "%.1fMiB", (b - a) / 1048576}')
  kind=incremental
  [ "$r" = 1 ] && kind=full
  line=$(python3 - "$c0" "$c1" "$c2" "$c3" "$s0" "$s1" "$s2" "$s3" <<'PY'
import sys
c0, c1, c2, c3, s0, s1, s2, s3 = map(float, sys.argv[1:])
before, during, after = (c1 - c0) / (s1 - s0), (c2 - c1) / (s2 - s1), (c3 - c2) / (s3 - s2)
base = (before + after) / 2
print(f"{s2 - s1:.2f} {before:.0f} {during:.0f} {after:.0f} {during / base if base else 0:.3f}")
PY
)
  set -- $line
  printf "   %-5s %-11s %8s %10s %10s %10s %10s %7s\n" "$r" "$kind" "$1" "$copied" "$2" "$3" \
    "$4" "$5"
  results+=("$r $kind $line")
done
kill -TERM "$load_pid" 2> /dev/null || true
wait "$load_pid" 2> /dev/null || true
load_pid=""
python3 - "${results[@]}" <<'PY'
import sys
for row in sys.argv[1:]:
    r, kind, secs, before, during, after, ratio = row.split()
    note = " (a window under 2 s: noisy)" if float(secs) < 2 else ""
    verdict = "met" if float(ratio) >= 0.90 else "NOT met"
    print(f"   round {r} ({kind}): backup took {secs} s; orders/s during it / around it = "
          f"{ratio} (target >= 0.90: {verdict}){note}")
PY

# --- 3. afterwards --------------------------------------------------------------------------------
kv_stop shop
echo
echo "   $(kv_check "$tmp/data")"
"$tool" list --backup-dir "$tmp/backups" | sed 's/^/   /'
echo "   $("$tool" verify --backup-dir "$tmp/backups" --master-key-file "$tmp/data.master-key" 2>&1 | tail -1)"
echo "   (run took $(( $(date +%s) - started )) s)"
