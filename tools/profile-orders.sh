#!/usr/bin/env bash
# Where an order's CPU goes: `perf record -g` of keyvend serve (data/bench.conf, every limit
# off) while wrk creates durable orders on one hot product over 64 connections, then the
# profile by binary (kernel / cpp-httplib / libc / RocksDB / keyvend) and the top symbols
# with their callers' share — the text behind the closing note's flame-graph-level account.
#   tools/profile-orders.sh [build] [seconds]      (needs perf: Debian's linux-perf)
# PERF_KEEP=FILE keeps the perf.data (for `perf report -i FILE` by caller, thread or symbol).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
secs=${2:-8}
command -v wrk > /dev/null || { apt-get update -q && apt-get install -y -q wrk > /dev/null; }
command -v perf > /dev/null || { apt-get update -q && apt-get install -y -q linux-perf > /dev/null; }
kv_init "$build" keyvend
kv_serve shop off "$KV_TMP/data"
shop=$(kv_url shop)
pid=$(kv_product "$shop" '{"name":"hot","price_cents":100,"currency":"EUR","max_per_order":1}')
kv_keys "$KV_TMP/keys.txt" 400000 PROF
kv_import "$shop" "$pid" "$KV_TMP/keys.txt" > /dev/null
kv_order_lua "$KV_TMP/order.lua" "$pid" prof@example.com
server_pid=$(cat "$KV_TMP/shop/pid")
wrk -t2 -c64 -d"$((secs + 4))s" --latency -s "$KV_TMP/order.lua" "$shop/api/v1/orders" \
  > "$KV_TMP/wrk.txt" &
wrk_pid=$!
sleep 2
perf record -F 499 -g -p "$server_pid" -o "$KV_TMP/perf.data" -- sleep "$secs" \
  > /dev/null 2>&1
wait "$wrk_pid"  # not a bare wait: the server is this shell's child too
echo "orders: $(awk '/Requests\/sec/ {print $2}' "$KV_TMP/wrk.txt")/s over 64 connections" \
  "(p50 $(awk '$1=="50%" {print $2}' "$KV_TMP/wrk.txt"), p99 $(awk '$1=="99%" {print $2}' "$KV_TMP/wrk.txt"));" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== CPU by binary =="
perf report -i "$KV_TMP/perf.data" --stdio --no-children --sort dso 2> /dev/null |
  grep -E '^ +[0-9]' | head -12
echo "== CPU by thread =="
perf report -i "$KV_TMP/perf.data" --stdio --no-children --sort comm 2> /dev/null |
  grep -E '^ +[0-9]' | head -12
echo "== top symbols (self) =="
perf report -i "$KV_TMP/perf.data" --stdio --no-children --sort dso,sym -g none \
  --percent-limit 0.8 2> /dev/null | grep -E '^ +[0-9]' | head -40
[ -z "${PERF_KEEP:-}" ] || cp "$KV_TMP/perf.data" "$PERF_KEEP"
kv_stop shop
