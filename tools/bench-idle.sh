#!/usr/bin/env bash
# Issue 11's idle-connection target: CONNS keep-alive connections (bench/slowdrip in idle
# mode, 50 per loopback address 127.0.x.y), each sends GET /healthz, reads the 200 and stays
# idle, against `keyvend serve` with the shipped defaults except --keep-alive-timeout-seconds
# 600 and the caps raised for it (--max-connections CONNS + 1000, per-client caps off for
# wrk). The server's VmRSS (/proc/PID/status) before and with all of them open: extra MiB
# and bytes per connection (target: <= 200 MiB for 10,000), its thread count; then every one
# still open and answering a second GET /healthz. Then wrk at 4,096 connections on GET
# /healthz for 10 s: socket errors and non-2xx (target: none).
#
#   tools/bench-idle.sh [build (build)] [conns (10000)]
# `build` gives the server (its keyvend is built first); the load generator is this
# checkout's slowdrip_bench, built in $KV_TOOL_BUILD (default: build). About 40 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
conns=${2:-10000}
wrk_conns=${WRK_CONNECTIONS:-4096}
if ! [[ "$conns" =~ ^[0-9]+$ ]] || [ "$conns" -lt 1 ] || [ "$conns" -gt 100000 ]; then
  echo "conns is 1..100000 (got $conns)" >&2
  exit 2
fi
command -v wrk > /dev/null || { apt-get update -q && apt-get install -y -q wrk > /dev/null; }
tool_build=${KV_TOOL_BUILD:-build}
cmake --build "$tool_build" -j2 --target slowdrip_bench > /dev/null
gen=$(cd "$tool_build" && pwd)/bench/slowdrip_bench
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((conns + 500)) ]; then
  echo "the descriptor limit ($(ulimit -n)) is below conns + 500; raise the hard limit" >&2
  exit 2
fi
kv_init "$build" keyvend

echo "keyvend idle-connection benchmark: $(git rev-parse --short HEAD 2> /dev/null || echo '?')," \
  "$(nproc) cores, server $KV_KEYVEND"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg); descriptors: $(ulimit -n)"
flags=(--keep-alive-timeout-seconds 600 --max-connections $((conns + 1000))
       --max-connections-per-client 0 --waiting-connections-per-client 0)
kv_start shop "$KV_KEYVEND" serve --listen 127.0.0.1:0 --payment-sandbox \
  --data-dir "$KV_TMP/shop/data" "${flags[@]}"
url=$(kv_url shop)
server_pid=$(cat "$KV_TMP/shop/pid")
echo "  server: shipped defaults + --payment-sandbox ${flags[*]}"
echo
sleep 1  # the server's start-up allocations settle before the "before" VmRSS
"$gen" --mode idle --url "$url" --connections "$conns" --server-pid "$server_pid" \
  > "$KV_TMP/idle.txt" 2>&1 || true
cat "$KV_TMP/idle.txt"
grep -q '^RESULT ' "$KV_TMP/idle.txt" || exit 1
echo
sleep 2  # the idle connections' closes reach the server
wrk -t2 -c"$wrk_conns" -d10s --latency "$url/healthz" > "$KV_TMP/wrk.txt" 2>&1 || true
echo "wrk -t2 -c$wrk_conns -d10s GET /healthz:"
sed -n '/Latency Distribution/,$p' "$KV_TMP/wrk.txt" | sed 's/^/  /'
echo
python3 - "$KV_TMP/idle.txt" "$KV_TMP/wrk.txt" "$wrk_conns" <<'PY'
import re, sys
line = [l for l in open(sys.argv[1]) if l.startswith("RESULT ")][-1]
r = dict(kv.split("=", 1) for kv in line.split()[1:])
w = open(sys.argv[2]).read()
def verdict(ok): return "met" if ok else "NOT met"
n = int(r["connections"])
print("against the issue's targets:")
held = int(r["open_at_rss"])
print(f"- {r['ready']} of {n} connections ready, {held} open when VmRSS was read; extra "
      f"{float(r['extra_mib']):.1f} MiB = {r['bytes_per_conn']} bytes per connection "
      f"({verdict(held == n and float(r['extra_mib']) <= 200 * n / 10000)}: <= 200 MiB per "
      f"10,000); server threads {r['threads_before']} -> {r['threads_after']}")
print(f"- after the hold: {r['open_after_hold']} open, {r['closed_by_server']} closed by the "
      f"server; second GET /healthz answered 200 on {r['resend_ok']} "
      f"({verdict(int(r['resend_ok']) == n)}: all {n})")
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", w)
errs = sum(int(x) for x in sock.groups()) if sock else 0
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", w)
non2xx = int(bad.group(1)) if bad else 0
reqs = re.search(r"(\d+) requests in", w)
rate = re.search(r"Requests/sec:\s+([0-9.]+)", w)
ok = reqs is not None and errs == 0 and non2xx == 0
print(f"- wrk at {sys.argv[3]} connections: {reqs.group(1) if reqs else '?'} requests "
      f"({rate.group(1) if rate else '?'}/s), socket errors {errs}, non-2xx {non2xx} "
      f"({verdict(ok)}: no errors)")
PY
kv_stop shop
echo "  after SIGTERM: exit 0; $(kv_check "$KV_TMP/shop/data")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
