#!/usr/bin/env bash
# Issue 11's throughput targets in ONE run, one table:
#  a. Redis 7 (Debian's redis-server, started here on loopback with --appendonly yes
#     --appendfsync always --save '', its dir beside keyvend's data): redis-benchmark EVAL of
#     a Lua script that DECRs the stock (INCR back and return 0 below zero) and RPUSHes an
#     order payload, at -c64 and -c256 (-n sized for ~SECS s from a short calibration run);
#     rate, p50, p99 (its --csv).
#  b. keyvend (NEW build, data/bench.conf: every limit off): durable orders on one hot
#     product over HTTP, wrk at 64 and 256 connections (every answer must be a 201: non-2xx
#     are reported); rate, p50, p99, the rate over Redis's -c64 rate, p99 over Redis's p99 at
#     the same concurrency and at -c64. Targets: rate >= 0.8x, p99 <= 2x.
#     a and b run in ROUNDS interleaved rounds (env ROUNDS, default 3; both servers up
#     throughout, each idle while the other is measured; who goes first alternates per
#     round): this VM's fsync latency drifts by tens of percent within minutes, so one Redis
#     run followed by one keyvend run measures the drift as much as the servers. Each
#     round's ratios are printed; the verdicts are on their medians.
#  c. Sold-out answers (orders for a product with no keys: 409 out_of_stock, counted from
#     the server's keyvend_http_requests_total) and catalogue reads (GET /api/v1/products and
#     GET /api/v1/products/{id}), wrk at 64 connections against the NEW build and, when
#     given, the OLD one (interleaved, both running), ratio new/old. Target: >= 1.5x.
# The load generators share the 2 cores with the servers; the load average is printed at
# the start and the end.
#
#   tools/bench-edge.sh [new-build (build)] [old-build | - (none)] [secs per run (10)]
# The new build's keyvend is built first; the old build dir is used as it is (its
# src/keyvend must exist), e.g. a checkout of main built before the change. About
# 4 minutes with the defaults (importing ROUNDS x SECS x 120,000 keys takes part of it).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
old_build=${2:--}
secs=${3:-10}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 60 ]; then
  echo "secs per run is 1..60 (got $secs)" >&2
  exit 2
fi
old_bin=
if [ "$old_build" != - ]; then
  old_bin=$(cd "$old_build" && pwd)/src/keyvend
  [ -x "$old_bin" ] || { echo "no keyvend binary at $old_bin" >&2; exit 2; }
fi
if ! command -v redis-server > /dev/null || ! command -v redis-benchmark > /dev/null; then
  apt-get update -q && apt-get install -y -q redis-server redis-tools > /dev/null
fi
command -v wrk > /dev/null || { apt-get update -q && apt-get install -y -q wrk > /dev/null; }
ulimit -n "$(ulimit -Hn)"
kv_init "$build" keyvend
new_bin=$KV_KEYVEND

echo "keyvend edge benchmark: $(git rev-parse --short HEAD 2> /dev/null || echo '?'), $(nproc) cores"
echo "  new: $new_bin"
echo "  old: ${old_bin:-(none)}"
echo "  $(redis-server --version | cut -d' ' -f1-3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- a. Redis -----------------------------------------------------------------------------------
redis_dir=$KV_TMP/redis
mkdir -p "$redis_dir"
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$redis_dir" --appendonly yes \
  --appendfsync always --save '' --daemonize no --logfile "$redis_dir/log" &
echo $! > "$redis_dir/pid"  # kv_cleanup kills it by this pid
for _ in $(seq 1 100); do
  redis-cli -p "$redis_port" ping 2> /dev/null | grep -q PONG && break
  sleep 0.05
done
redis-cli -p "$redis_port" SET stock 100000000 > /dev/null
lua="local n = redis.call('DECR', KEYS[1]) if n < 0 then redis.call('INCR', KEYS[1]) return 0 end redis.call('RPUSH', KEYS[2], ARGV[1]) return 1"
payload='{"product_id":"1","quantity":1,"contact":"bench@example.com","order_id":"o-000000001"}'
redis_run() {  # CONNECTIONS N: prints "rps p50_ms p99_ms"
  redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$1" -n "$2" --csv \
    EVAL "$lua" 2 stock orders "$payload" |
    python3 -c '
import sys
row = [l for l in sys.stdin if l.startswith("\"EVAL")][-1].strip()
# The test name holds quotes of its own: the 7 numbers are the last fields.
f = [x.strip("\"") for x in row.rsplit("\",\"", 7)[1:]]
print(f[0], f[3], f[5])  # rps, p50, p99 (avg, min, p50, p95, p99, max)'
}
declare -A rate p50 p99 extra redis_n
for c in 64 256; do
  # -n for about SECS seconds, from a short calibration run at the same concurrency.
  read -r cal_rps _ _ <<< "$(redis_run "$c" 5000)"
  redis_n[$c]=$(python3 -c "print(max(20000, int(float('$cal_rps') * $secs)))")
done
rounds=${ROUNDS:-3}
if ! [[ "$rounds" =~ ^[0-9]+$ ]] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 9 ]; then
  echo "ROUNDS is 1..9 (got $rounds)" >&2
  exit 2
fi

# --- servers ------------------------------------------------------------------------------------
kv_serve new off "$KV_TMP/new/data"
new_url=$(kv_url new)
hot=$(kv_product "$new_url" '{"name":"hot","price_cents":100,"currency":"EUR","max_per_order":1}')
keys=$((rounds * secs * 120000))
python3 - "$KV_TMP/keys" "$keys" <<'PY'
import sys
out, n, chunk = sys.argv[1], int(sys.argv[2]), 500_000  # < kImportKeysMax per import
for c in range(0, n, chunk):
    with open(f"{out}.{c // chunk:03d}", "w") as f:
        f.write("\n".join(f"EDGE-{i:09d}-KEY" for i in range(c, min(n, c + chunk))) + "\n")
PY
imported=0
for f in "$KV_TMP"/keys.*; do
  imported=$((imported + $(kv_import "$new_url" "$hot" "$f")))
  rm -f "$f"
done
declare -A url soldout
url[new]=$new_url
soldout[new]=$(kv_product "$new_url" '{"name":"gone","price_cents":100,"currency":"EUR","max_per_order":1}')
if [ -n "$old_bin" ]; then
  KV_KEYVEND=$old_bin kv_serve old off "$KV_TMP/old/data"
  url[old]=$(kv_url old)
  # The same catalogue: a hot product with keys, a sold-out one.
  kv_product "${url[old]}" '{"name":"hot","price_cents":100,"currency":"EUR","max_per_order":1}' \
    > "$KV_TMP/old-hot"
  python3 -c 'print("\n".join(f"OLD-{i:09d}-KEY" for i in range(1000)))' > "$KV_TMP/old-keys"
  kv_import "${url[old]}" "$(cat "$KV_TMP/old-hot")" "$KV_TMP/old-keys" > /dev/null
  soldout[old]=$(kv_product "${url[old]}" '{"name":"gone","price_cents":100,"currency":"EUR","max_per_order":1}')
fi
for s in "${!url[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${url[$s]}/api/v1/orders" \
    -H 'Content-Type: application/json' \
    -d "{\"product_id\":\"${soldout[$s]}\",\"quantity\":1,\"contact\":\"check@example.com\"}")
  [ "$code" = 409 ] || { echo "$s: an order for the sold-out product answered $code, not 409" >&2; exit 1; }
done

# wrk_run KEY URL CONNECTIONS [LUA]: one wrk run; fills rate/p50/p99/extra[KEY], and
# requests[KEY] (answers counted by wrk) and non2xx[KEY].
declare -A requests non2xx
wrk_run() {
  local key=$1 target=$2 c=$3 script=${4:-} out=$KV_TMP/wrk-$1.txt
  local args=(-t2 -c"$c" -d"${secs}s" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  wrk "${args[@]}" "$target" > "$out" 2>&1
  local line
  line=$(python3 - "$out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", v)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]
rate = re.search(r"Requests/sec:\s+([0-9.]+)", t).group(1)
p50 = ms(re.search(r"\n\s+50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\n\s+99%\s+(\S+)", t).group(1))
n = re.search(r"(\d+) requests in", t).group(1)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errs = sum(int(x) for x in sock.groups()) if sock else 0
print(rate, f"{p50:.2f}", f"{p99:.2f}", n, bad.group(1) if bad else 0, errs)
PY
)
  local sock
  read -r "rate[$key]" "p50[$key]" "p99[$key]" "requests[$key]" "non2xx[$key]" sock <<< "$line"
  extra[$key]="non-2xx ${non2xx[$key]}, socket errors $sock"
}

# --- b. keyvend orders --------------------------------------------------------------------------
kv_order_lua "$KV_TMP/hot.lua" "$hot"
redis_measure() {  # KEY CONNECTIONS
  read -r "rate[$1]" "p50[$1]" "p99[$1]" <<< "$(redis_run "$2" "${redis_n[$2]}")"
  extra[$1]="-n ${redis_n[$2]}"
}
for r in $(seq 1 "$rounds"); do
  for c in 64 256; do
    if [ $((r % 2)) = 1 ]; then
      redis_measure "redis-$c-$r" "$c"
      wrk_run "orders-$c-$r" "$new_url/api/v1/orders" "$c" "$KV_TMP/hot.lua"
    else
      wrk_run "orders-$c-$r" "$new_url/api/v1/orders" "$c" "$KV_TMP/hot.lua"
      redis_measure "redis-$c-$r" "$c"
    fi
  done
done
redis_orders=$(redis-cli -p "$redis_port" LLEN orders)
kill -TERM "$(cat "$redis_dir/pid")"
wait "$(cat "$redis_dir/pid")" 2> /dev/null || true
rm -f "$redis_dir/pid"

# --- c. sold-out and catalogue, new vs old ------------------------------------------------------
metric409() {  # SERVER
  kv_metric "${url[$1]}" 'keyvend_http_requests_total{route="POST /api/v1/orders",code="409"}'
}
servers=(new)
[ -n "$old_bin" ] && servers+=(old)
for s in "${servers[@]}"; do kv_order_lua "$KV_TMP/soldout-$s.lua" "${soldout[$s]}"; done
for what in soldout list detail; do
  for s in "${servers[@]}"; do
    case $what in
      soldout)
        before=$(metric409 "$s")
        wrk_run "$what-$s" "${url[$s]}/api/v1/orders" 64 "$KV_TMP/soldout-$s.lua"
        after=$(metric409 "$s")
        # Every answer a 409 (the server counted at least as many as wrk did).
        extra[$what-$s]="409: $(python3 -c "print(int(float('$after') - float('$before')))") of ${requests[$what-$s]}"
        ;;
      list) wrk_run "$what-$s" "${url[$s]}/api/v1/products" 64 ;;
      detail) wrk_run "$what-$s" "${url[$s]}/api/v1/products/${soldout[$s]}" 64 ;;
    esac
  done
done

kv_stop new
echo "  new: $(kv_check "$KV_TMP/new/data")"
if [ -n "$old_bin" ]; then
  kv_stop old
  echo "  old: $(KV_KEYVEND=$old_bin kv_check "$KV_TMP/old/data")"
fi

# --- the table ----------------------------------------------------------------------------------
for k in "${!rate[@]}"; do
  echo "$k|${rate[$k]}|${p50[$k]}|${p99[$k]}|${extra[$k]:-}"
done > "$KV_TMP/rows"
python3 - "$KV_TMP/rows" "$secs" "$imported" "$redis_orders" "$rounds" <<'PY'
import statistics, sys
rows, secs, imported, redis_orders, rounds = sys.argv[1:6]
rounds = int(rounds)
r = {}
for line in open(rows):
    k, rate, p50, p99, extra = line.rstrip("\n").split("|")
    r[k] = (float(rate), float(p50), float(p99), extra)
def verdict(ok): return "met" if ok else "NOT met"
print()
print(f"== a/b. durable orders on one hot product vs Redis EVAL DECR+RPUSH, appendfsync always "
      f"({rounds} interleaved rounds, {secs} s per run; keyvend: {imported} keys, every limit off) ==")
print(f"{'what':<34} {'round':>5} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  notes")
ratios = {("rate", c): [] for c in ("64", "256")}
ratios.update({("p99", c): [] for c in ("64", "256")})
for i in range(1, rounds + 1):
    for c in ("64", "256"):
        for name, key in (("redis EVAL decr+rpush", f"redis-{c}-{i}"),
                          ("keyvend POST /api/v1/orders (new)", f"orders-{c}-{i}")):
            rate, p50, p99, extra = r[key]
            print(f"{name:<34} {i:>5} {c:>5} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}  {extra}")
        kv_rate, kv_p99 = r[f"orders-{c}-{i}"][0], r[f"orders-{c}-{i}"][2]
        ratios[("rate", c)].append(kv_rate / r[f"redis-64-{i}"][0])
        ratios[("p99", c)].append(kv_p99 / r[f"redis-{c}-{i}"][2])
        print(f"{'':<34} {'':>5} {'':>5}  rate / redis -c64 = {ratios[('rate', c)][-1]:.2f}; "
              f"p99 / redis p99 at -c{c} = {ratios[('p99', c)][-1]:.2f}")
print()
for c in ("64", "256"):
    rr, pp = ratios[("rate", c)], ratios[("p99", c)]
    mr, mp = statistics.median(rr), statistics.median(pp)
    print(f"keyvend at {c:>3} connections: rate / redis -c64 per round "
          f"{' '.join(f'{x:.2f}' for x in rr)}, median {mr:.2f} (>= 0.8: {verdict(mr >= 0.8)}); "
          f"p99 / redis p99 at -c{c} per round {' '.join(f'{x:.2f}' for x in pp)}, median {mp:.2f} "
          f"(<= 2: {verdict(mp <= 2)})")
print(f"  (redis appended {redis_orders} orders in all)")
print()
print("== c. sold-out answers and catalogue reads, 64 connections, new vs old ==")
print(f"{'what':<34} {'build':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  notes")
names = {"soldout": "POST /api/v1/orders (409 sold out)", "list": "GET /api/v1/products",
         "detail": "GET /api/v1/products/{id}"}
for what in ("soldout", "list", "detail"):
    for s in ("new", "old"):
        if f"{what}-{s}" not in r: continue
        rate, p50, p99, extra = r[f"{what}-{s}"]
        print(f"{names[what]:<34} {s:>5} {rate:>10.0f} {p50:>8.2f} {p99:>8.2f}  {extra}")
    if f"{what}-old" in r:
        ratio = r[f"{what}-new"][0] / r[f"{what}-old"][0]
        print(f"{'':<34} {'':>5}  new / old = {ratio:.2f} (>= 1.5: {verdict(ratio >= 1.5)})")
PY
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
