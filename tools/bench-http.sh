#!/usr/bin/env bash
# Order creation on one hot product over HTTP (keyvend serve, synced, real domain) beside
# bench/http_baseline — cpp-httplib's own server (its accept loop, a thread per connection)
# with a do-nothing handler, NOT keyvend's connection layer — measured in the same run with
# wrk at 64 and 256 connections on loopback. Prints rate, p50, p99 and the ratio.
#   tools/bench-http.sh [build-dir] [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
secs=${2:-10}
command -v wrk > /dev/null || { apt-get update -q && apt-get install -y -q wrk > /dev/null; }
cmake --build "$build" -j2 --target keyvend http_baseline > /dev/null
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$tmp"' EXIT
common=(--listen 127.0.0.1:0 --max-connections 300 --keep-alive-max-count 1000000
        --keep-alive-timeout-seconds 60)
# One load generator on one address: the benchmark measures throughput, not the limiter.
for cls in order read notify admin page; do
  common+=(--rate-limit-$cls-per-second=0 --rate-limit-$cls-per-client-per-second=0)
done
common+=(--pending-orders-per-contact-max=0 --pending-orders-per-client-max=0)
common+=(--max-connections-per-client=0)
for cls in order read admin page; do common+=(--inflight-$cls-max=0); done

wait_url() {  # file -> prints the URL once the server printed its listening line
  for _ in $(seq 1 200); do
    if grep -q "listening on" "$1" 2> /dev/null; then
      sed -n 's/.*listening on //p' "$1" | head -1
      return
    fi
    sleep 0.05
  done
  echo "server did not start" >&2
  exit 1
}

export KEYVEND_ADMIN_TOKEN=bench-admin-0123456789abcdef0123456789 KEYVEND_PAYMENT_SECRET=bench-secret
"$build/src/keyvend" serve "${common[@]}" --data-dir "$tmp/data" --payment-sandbox \
  --hold-seconds 3600 > "$tmp/shop.log" 2>&1 &
shop=$(wait_url "$tmp/shop.log")
"$build/bench/http_baseline" "${common[@]}" > "$tmp/base.log" 2>&1 &
base=$(wait_url "$tmp/base.log")

curl -sf -X POST "$shop/api/v1/admin/products" -H "Authorization: Bearer $KEYVEND_ADMIN_TOKEN" \
  -d '{"name":"hot","price_cents":100,"currency":"EUR","max_per_order":1}' > /dev/null
python3 -c 'print("\n".join(f"BENCH-{i:08d}-KEY" for i in range(900000)))' > "$tmp/keys.txt"
curl -sf -X POST "$shop/api/v1/admin/products/1/keys" -H "Authorization: Bearer $KEYVEND_ADMIN_TOKEN" \
  -H 'Content-Type: text/plain' --data-binary @"$tmp/keys.txt" > /dev/null
cat > "$tmp/order.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"product_id":"1","quantity":1,"contact":"bench@example.com"}'
LUA

run() {  # name url connections
  wrk -t2 -c"$3" -d"${secs}s" --latency -s "$tmp/order.lua" "$2/api/v1/orders" > "$tmp/$1-$3.txt"
  local rate p50 p99
  rate=$(awk '/Requests\/sec/ {print $2}' "$tmp/$1-$3.txt")
  p50=$(awk '$1=="50%" {print $2}' "$tmp/$1-$3.txt")
  p99=$(awk '$1=="99%" {print $2}' "$tmp/$1-$3.txt")
  # Every answer must be a 201: a refused order would not be a fair comparison.
  local bad
  bad=$(awk '/Non-2xx/ {print $NF}' "$tmp/$1-$3.txt")
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
kill -TERM %1 2> /dev/null || true
wait %1 2> /dev/null || true
"$build/src/keyvend" check --data-dir "$tmp/data" | tail -1
