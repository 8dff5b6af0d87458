#!/usr/bin/env bash
# Issue 4's closing benchmark, against the real `keyvend serve` on loopback:
#  1. order throughput with the load protection off vs on (on = every limit enabled with
#     values far above what the machine does, so each request pays for the checks and none
#     is refused), interleaved in 3 rounds, medians and the on/off ratio (target >= 0.95);
#  2. a flood on one server with the order rate limited to R/s (default 500), twice: (a) 256
#     closed-loop connections (far more than 10x R), (b) exactly 10x R paced over the 256
#     connections; each with a /healthz prober every 10 ms and signed payment notifies for
#     every 20th accepted order. Targets: accepted orders hold R with p99 < 20 ms, the excess
#     gets 429/503, /healthz p99 and max < 50 ms, every notify 200.
# Probes and notifies go to the flood server's ops listener (--ops-listen 127.0.0.1:0).
# Servers: limits "off" is data/bench.conf (tools/lib.sh); "on" is that file with every limit
# set back on far above the load by flags; the flood server has the shipped defaults plus
# the flags printed with its results (so notify keeps its default rate limits).
#
#   tools/bench-flood.sh [build-dir] [seconds per flood run (default 12, at most 20)]
# About 70 s with the defaults. On loopback the load generator shares the cores with
# the server (on 2 cores it takes about one of them in the closed-loop flood).
# Environment: THROUGHPUT_SECONDS (5), THROUGHPUT_CONNECTIONS (64), THROUGHPUT_ROUNDS (3),
# FLOOD_RATE (500), FLOOD_CONNECTIONS (256), FLOOD_SERVER_ARGS (extra `keyvend serve` flags
# for the flood server).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
flood_secs=${2:-12}
tput_secs=${THROUGHPUT_SECONDS:-5}
tput_conns=${THROUGHPUT_CONNECTIONS:-64}
rounds=${THROUGHPUT_ROUNDS:-3}
rate=${FLOOD_RATE:-500}
flood_conns=${FLOOD_CONNECTIONS:-256}
read -r -a flood_extra <<< "${FLOOD_SERVER_ARGS:-}"
for v in "$flood_secs" "$tput_secs"; do
  if ! [[ "$v" =~ ^[0-9]+$ ]] || [ "$v" -lt 1 ] || [ "$v" -gt 20 ]; then
    echo "run lengths are 1..20 seconds (got $v)" >&2
    exit 2
  fi
done
if ! [[ "$rounds" =~ ^[1-9]$ ]]; then
  echo "THROUGHPUT_ROUNDS is 1..9 (got $rounds)" >&2
  exit 2
fi
kv_init "$build" keyvend flood_bench
bench=$KV_BENCH/flood_bench

stop_server() {  # NAME: kv_stop, then `keyvend check` on its data dir
  kv_stop "$1"
  echo "   $1: $(kv_check "$KV_TMP/$1/data")"
}

# new_product URL KEYS: a product that never runs out (on_payment: an order holds nothing;
# allow_backorder: a payment that finds no key is backordered, not refused) with KEYS keys
# so that the sampled payments deliver. Prints its id.
new_product() {
  local url=$1 keys=$2 id
  id=$(kv_product "$url" \
    '{"name":"flood","price_cents":100,"currency":"EUR","stock_mode":"on_payment","allow_backorder":true,"max_per_order":1}')
  if [ "$keys" -gt 0 ]; then
    python3 -c "import sys; print('\n'.join(f'FLOOD-{i:08d}-KEY' for i in range($keys)))" \
      > "$KV_TMP/keys.txt"
    kv_import "$url" "$id" "$KV_TMP/keys.txt" > /dev/null
  fi
  echo "$id"
}

field() {  # FILE KEY: the value of KEY=... on the file's RESULT line
  sed -n "s/^RESULT .*[ ]$2=\([^ ]*\).*/\1/p" "$1" | tail -1
}

echo "keyvend flood benchmark: $(git rev-parse --short HEAD 2> /dev/null || echo '?')," \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- 1. throughput: limits off vs on ---------------------------------------------------------
# "on": every limit data/bench.conf turns off, back on far above the load.
on=(--max-connections-per-client 10000
    --waiting-connections-max 100000 --waiting-connections-per-client 10000
    --pending-orders-per-contact-max 1000000 --pending-orders-per-client-max 1000000)
for cls in order read notify admin page; do
  on+=(--rate-limit-$cls-per-second 1000000 --rate-limit-$cls-burst 10000000
       --rate-limit-$cls-per-client-per-second 1000000
       --rate-limit-$cls-per-client-burst 10000000)
done
for cls in order read admin page; do
  on+=(--inflight-$cls-max 100000)
done
kv_serve off off "$KV_TMP/off/data"
kv_serve on off "$KV_TMP/on/data" "${on[@]}"
declare -A url pid_of
for s in off on; do
  url[$s]=$(kv_url "$s")
  pid_of[$s]=$(new_product "${url[$s]}" 0)
done

run_throughput() {  # SERVER OUT-FILE SECONDS
  "$bench" --mode throughput --url "${url[$1]}" --product "${pid_of[$1]}" \
    --connections "$tput_conns" --seconds "$3" > "$2" 2>&1 || true
}
echo
echo "== 1. order throughput, load protection off vs on =="
echo "   $tput_conns connections, closed loop, ${tput_secs} s per run, $rounds rounds (odd rounds off"
echo "   then on, even rounds on then off) after a 1 s warm-up of each server; 'on' = every rate"
echo "   limit, in-flight cap, per-client and waiting-connection cap and pending-order cap enabled"
echo "   far above the load (a server that does not enforce one yet runs it as off)"
run_throughput off "$KV_TMP/warm-off" 1
run_throughput on "$KV_TMP/warm-on" 1
printf "   %-6s %-4s %10s %9s %9s %9s\n" round mode orders/s p50_ms p99_ms refused
for r in $(seq 1 "$rounds"); do
  order="off on"
  [ $((r % 2)) = 0 ] && order="on off"
  for s in $order; do
    f="$KV_TMP/tput-$r-$s"
    run_throughput "$s" "$f" "$tput_secs"
    if ! grep -q '^RESULT ' "$f"; then
      echo "flood_bench failed:" >&2
      cat "$f" >&2
      exit 1
    fi
    refused=$(( $(field "$f" status_429) + $(field "$f" status_503) + $(field "$f" status_other) ))
    printf "   %-6s %-4s %10s %9s %9s %9s\n" "$r" "$s" "$(field "$f" accepted_per_s)" \
      "$(field "$f" p50_accepted_ms)" "$(field "$f" p99_accepted_ms)" "$refused"
  done
done
python3 - "$KV_TMP" "$rounds" <<'PY'
import re, statistics, sys
tmp, rounds = sys.argv[1], range(1, int(sys.argv[2]) + 1)
def rate(r, s):
    line = [l for l in open(f"{tmp}/tput-{r}-{s}") if l.startswith("RESULT ")][-1]
    return float(re.search(r" accepted_per_s=([0-9.]+)", line).group(1))
off = statistics.median(rate(r, "off") for r in rounds)
on = statistics.median(rate(r, "on") for r in rounds)
ratio = on / off if off else 0.0
print(f"   median orders/s: off {off:.0f}, on {on:.0f}; on/off = {ratio:.3f} "
      f"(target >= 0.95: {'met' if ratio >= 0.95 else 'NOT met'})")
pairs = [rate(r, "on") / rate(r, "off") for r in rounds]
print(f"   per-round on/off: {', '.join(f'{p:.3f}' for p in pairs)} (median "
      f"{statistics.median(pairs):.3f}); the spread between rounds is the noise floor")
PY
stop_server off
stop_server on

# --- 2. flood ---------------------------------------------------------------------------------
echo
echo "== 2. flood: order rate limited to $rate/s, $flood_conns connections, ${flood_secs} s per run =="
flood=(--max-connections 512 --max-connections-per-client 0
       --rate-limit-order-per-second "$rate" --rate-limit-order-burst "$rate"
       --rate-limit-order-per-client-per-second 0
       --pending-orders-per-contact-max 0 --pending-orders-per-client-max 0
       --inflight-order-max 64)
# Per-client limits are off because every buyer here is 127.0.0.1; the pending-order caps are
# off because the buyers never pay (only sampled orders are paid). Notify keeps its default
# limits (2000/s global); the in-flight order cap keeps its default (64).
kv_serve flood default "$KV_TMP/flood/data" "${flood[@]}" --ops-listen 127.0.0.1:0 \
  "${flood_extra[@]}"
flood_url=$(kv_url flood)
ops_url=$(kv_ops_url flood)
if [ -z "$ops_url" ]; then
  echo "the flood server printed no ops listener" >&2
  exit 1
fi
echo "   ops listener: $ops_url (healthz prober and notifies use it; buyers use $flood_url)"
keys=$(( (rate * flood_secs + rate) / 20 * 2 * 2 + 1000 ))  # two runs, with margin
flood_pid=$(new_product "$flood_url" "$keys")
echo "   product $flood_pid: on_payment, backorder allowed, $keys keys (for the sampled payments)"
echo "   server flags: ${flood[*]} ${flood_extra[*]}"

# run_flood NAME LOAD-ARGS...: one flood run and its verdicts against the issue's targets.
run_flood() {
  local name=$1
  shift
  "$bench" --mode flood --url "$flood_url" --ops-url "$ops_url" --product "$flood_pid" \
    --connections "$flood_conns" --seconds "$flood_secs" --configured-rate "$rate" \
    --notify-every 20 --probe-interval-ms 10 "$@" > "$KV_TMP/$name.out" 2>&1 || true
  sed 's/^/   /' "$KV_TMP/$name.out"
  grep -q '^RESULT ' "$KV_TMP/$name.out" || exit 1
  echo
  python3 - "$KV_TMP/$name.out" "$rate" <<'PY'
import sys
line = [l for l in open(sys.argv[1]) if l.startswith("RESULT ")][-1]
r = dict(kv.split("=", 1) for kv in line.split()[1:])
R = float(sys.argv[2])
f = lambda k: float(r[k])
def verdict(ok): return "met" if ok else "NOT met"
print("   against the issue's targets:")
print(f"   - offered {f('offered_per_s'):.0f}/s = {f('offered_per_s') / R:.1f}x the configured "
      f"{R:.0f}/s ({verdict(f('offered_per_s') >= 10 * R * 0.98)}: >= 10x)")
steady = (f"median {r['accepted_steady_median']}, min {r['accepted_steady_min']}, "
          f"max {r['accepted_steady_max']}" if r['accepted_steady_seconds'] != '0' else "n/a")
print(f"   - accepted {f('accepted_per_s'):.1f}/s over the run (the {R:.0f}-order burst "
      f"included); per whole second after the first: {steady} (configured {R:.0f})")
print(f"   - accepted p99 {f('p99_accepted_ms'):.2f} ms, max {f('max_accepted_ms'):.2f} ms "
      f"(p99 < 20 ms: {verdict(f('p99_accepted_ms') < 20)})")
excess = int(r['status_429']) + int(r['status_503'])
print(f"   - excess: 429 {r['status_429']}, 503 {r['status_503']}, other {r['status_other']}; "
      f"transport: {r['conn_errors']} connect errors, {r['closed_mid_request']} closed "
      f"mid-request ({verdict(excess > 0 and int(r['status_other']) == 0)}: the excess is "
      f"answered 429/503 only)")
print(f"   - /healthz: {r['healthz_probes']} probes, {r['healthz_failures']} failed, "
      f"p99 {f('healthz_p99_ms'):.2f} ms, max {f('healthz_max_ms'):.2f} ms "
      f"(< 50 ms: p99 {verdict(f('healthz_p99_ms') < 50)}, "
      f"max {verdict(f('healthz_max_ms') < 50 and r['healthz_failures'] == '0')})")
ok = (r['notify_sent'] == r['notify_ok'] and int(r['notify_unsent']) == 0
      and int(r['notify_sent']) > 0)
print(f"   - notify: sent {r['notify_sent']}, 200 {r['notify_ok']}, other {r['notify_other']}, "
      f"failed {r['notify_failed']}, unsent {r['notify_unsent']}, p99 "
      f"{f('notify_p99_ms'):.2f} ms (every one 200: {verdict(ok)})")
PY
}

echo
echo "-- 2a. closed loop: each of the $flood_conns connections sends its next order as soon as"
echo "   the previous one is answered (offers as much as the server can answer) --"
echo
run_flood flood-closed
sleep 1  # the order bucket refills (a fresh burst for the next run)
echo
echo "-- 2b. paced: exactly 10x the configured rate ($((10 * rate))/s) on a fixed schedule over"
echo "   the $flood_conns connections (the issue's literal flood) --"
echo
run_flood flood-paced --offered-rate $((10 * rate))
stop_server flood
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
