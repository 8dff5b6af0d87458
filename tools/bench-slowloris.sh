#!/usr/bin/env bash
# Issue 11's slow-drip target against `keyvend serve` with the SHIPPED DEFAULTS (only
# --payment-sandbox, so that orders can be created, and a product with keys): CONNS
# slow-drip connections (bench/slowdrip, 20 per loopback address 127.0.x.y, under the
# per-client caps of 64 connections and 64 waiting ones), each sending "POST
# /api/v1/orders HTTP/1.1\r\n" and then one header byte every 500 ms, re-opened 100 ms after
# the server cuts it. After a 3 s warm-up, for SECS: a buyer creates an order every 100 ms on
# a fresh connection (a new contact each, rotating over its own addresses 127.0.250.x so that
# none passes the shipped per-client order limits) and a probe GETs /healthz every 10 ms on
# a fresh connection (127.0.251.1). Prints the buyer's success share and latency, the
# probe's, how they failed, how many drips were open on average, the server's threads and
# memory mid-run, and the verdicts against the targets: buyer >= 99 % with p99 < 50 ms,
# /healthz p99 < 10 ms.
#
#   tools/bench-slowloris.sh [build (build)] [conns (5000)] [secs (30)]
# `build` gives the server (its keyvend is built first); the load generator is this
# checkout's slowdrip_bench, built in $KV_TOOL_BUILD (default: build), so that one program
# measures every server. Environment: SLOWDRIP_ARGS, more slowdrip_bench flags (e.g.
# "--keep-alive yes"); SERVER_ARGS, more `keyvend serve` flags (e.g. "--max-connections 256",
# the default before issue 11). About SECS + 15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
conns=${2:-5000}
secs=${3:-30}
read -r -a gen_extra <<< "${SLOWDRIP_ARGS:-}"
read -r -a server_extra <<< "${SERVER_ARGS:-}"
if ! [[ "$conns" =~ ^[0-9]+$ ]] || [ "$conns" -lt 1 ] || [ "$conns" -gt 15000 ]; then
  echo "conns is 1..15000 (got $conns)" >&2
  exit 2
fi
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 300 ]; then
  echo "secs is 1..300 (got $secs)" >&2
  exit 2
fi
tool_build=${KV_TOOL_BUILD:-build}
cmake --build "$tool_build" -j2 --target slowdrip_bench > /dev/null
gen=$(cd "$tool_build" && pwd)/bench/slowdrip_bench
ulimit -n "$(ulimit -Hn)"
kv_init "$build" keyvend

echo "keyvend slow-drip benchmark: $(git rev-parse --short HEAD 2> /dev/null || echo '?')," \
  "$(nproc) cores, server $KV_KEYVEND"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg); descriptors: $(ulimit -n)"
kv_start shop "$KV_KEYVEND" serve --listen 127.0.0.1:0 --payment-sandbox \
  --data-dir "$KV_TMP/shop/data" "${server_extra[@]}"
url=$(kv_url shop)
pid=$(kv_product "$url" '{"name":"promo","price_cents":100,"currency":"EUR","max_per_order":1}')
python3 -c "print('\n'.join(f'DRIP-{i:08d}-KEY' for i in range($secs * 10 + 1000)))" \
  > "$KV_TMP/keys.txt"
kv_import "$url" "$pid" "$KV_TMP/keys.txt" > /dev/null
echo "  server: shipped defaults + --payment-sandbox${server_extra[*]:+ ${server_extra[*]}}; product $pid with $((secs * 10 + 1000)) keys"
echo

"$gen" --url "$url" --product "$pid" --connections "$conns" --seconds "$secs" \
  --server-pid "$(cat "$KV_TMP/shop/pid")" "${gen_extra[@]}" > "$KV_TMP/out.txt" 2>&1 || true
cat "$KV_TMP/out.txt"
grep -q '^RESULT ' "$KV_TMP/out.txt" || exit 1
echo
python3 - "$KV_TMP/out.txt" <<'PY'
import sys
line = [l for l in open(sys.argv[1]) if l.startswith("RESULT ")][-1]
r = dict(kv.split("=", 1) for kv in line.split()[1:])
f = lambda k: float(r[k])
def verdict(ok): return "met" if ok else "NOT met"
print("against the issue's targets:")
print(f"- drips open on average {f('drips_open_avg'):.0f} of {r['connections']} "
      f"(min {r['drips_open_min']}, max {r['drips_open_max']})")
print(f"- buyer: {f('buyer_ok_pct'):.2f} % of {r['buyer_orders']} orders 201 "
      f"({verdict(f('buyer_ok_pct') >= 99)}: >= 99 %), p99 {f('buyer_p99_ms'):.2f} ms "
      f"({verdict(f('buyer_ok') > 0 and f('buyer_p99_ms') < 50)}: < 50 ms); "
      f"failures {r['buyer_failures']}")
probe_ok = f('probe_ok') > 0 and f('probe_p99_ms') < 10
print(f"- /healthz: p99 {f('probe_p99_ms'):.2f} ms ({verdict(probe_ok)}: < 10 ms), "
      f"{int(f('probe_count') - f('probe_ok'))} of {r['probe_count']} failed ({r['probe_failures']})")
PY
kv_stop shop
echo "  after SIGTERM: exit 0; $(kv_check "$KV_TMP/shop/data")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
