#!/usr/bin/env bash
# Order creation on one hot product over HTTP (keyvend serve, synced, real domain) beside
# bench/http_baseline — cpp-httplib's own server (its accept loop, a thread per connection)
# with a do-nothing handler, NOT keyvend's connection layer — measured in the same run with
# wrk at 64 and 256 connections on loopback. Both read data/bench.conf (every limit off:
# one load generator on one address measures throughput, not the limiter). Prints rate,
# p50, p99 and the ratio.   tools/bench-http.sh [build-dir] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
secs=${2:-10}
command -v wrk > /dev/null || { apt-get update -q && apt-get install -y -q wrk > /dev/null; }
kv_init "$build" keyvend http_baseline

kv_serve shop off "$KV_TMP/data"
kv_start base "$KV_BENCH/http_baseline" --config "$KV_BENCH_CONF" "${KV_SERVE_FLAGS[@]}"
shop=$(kv_url shop)
base=$(kv_url base)

pid=$(kv_product "$shop" '{"name":"hot","price_cents":100,"currency":"EUR","max_per_order":1}')
kv_keys "$KV_TMP/keys.txt" 900000 BENCH
kv_import "$shop" "$pid" "$KV_TMP/keys.txt" > /dev/null
kv_order_lua "$KV_TMP/order.lua" "$pid"

run() {  # name url connections
  local out=$KV_TMP/$1-$3.txt
  wrk -t2 -c"$3" -d"${secs}s" --latency -s "$KV_TMP/order.lua" "$2/api/v1/orders" > "$out"
  local rate p50 p99
  rate=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out")
  p99=$(awk '$1=="99%" {print $2}' "$out")
  # Every answer must be a 201: a refused order would not be a fair comparison.
  local bad
  bad=$(awk '/Non-2xx/ {print $NF}' "$out")
  echo "$1 $3 $rate $p50 $p99 ${bad:-0}"
}
printf "%-10s %5s %10s %9s %9s %8s\n" server conns req/s p50 p99 non-2xx
results=()
for c in 64 256; do
  for s in baseline keyvend; do
    url=$base; [ "$s" = keyvend ] && url=$shop
    line=$(run "$s" "$url" "$c")
    results+=("$line")
    set -- $line
    printf "%-10s %5s %10s %9s %9s %8s\n" "$1" "$2" "$3" "$4" "$5" "$6"
  done
done
python3 - "${results[@]}" <<'PY'
import sys
rows = [l.split() for l in sys.argv[1:]]
rate = {(r[0], r[1]): float(r[2]) for r in rows}
for c in ("64", "256"):
    print(f"connections {c}: keyvend / do-nothing baseline = {rate[('keyvend', c)] / rate[('baseline', c)]:.2f}")
PY
kv_stop shop
kv_check "$KV_TMP/data"
