#!/usr/bin/env bash
# Durable orders over HTTP, build A against build B, interleaved in ONE run: the measure
# behind an order-path speed claim (the machine is noisy: absolute rates drift, the ratio of
# neighbouring runs holds). Each round starts both shops fresh (data/bench.conf: every limit
# off), imports the keys, then runs wrk at CONNS connections against A, then B (alternating
# which goes first), SECS seconds each; prints each run and the median of B/A over rounds,
# for the rate and for the server's CPU per request (user + system µs, from /proc).
#   tools/bench-orders-ab.sh A-BUILD B-BUILD [rounds (3)] [secs (8)] [conns (64)]
# Each BUILD is a build dir whose src/keyvend exists (B is usually the change, A the base:
# e.g. a worktree of main built before it). About (rounds x 2 x (secs + 15)) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
a_build=${1:?A build dir}
b_build=${2:?B build dir}
rounds=${3:-3}
secs=${4:-8}
conns=${5:-64}
for v in "$rounds" "$secs" "$conns"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || { echo "rounds, secs, conns: positive integers" >&2; exit 2; }
done
[ "$rounds" -le 20 ] && [ "$secs" -le 60 ] && [ "$conns" -le 4096 ] ||
  { echo "at most 20 rounds, 60 s, 4096 connections" >&2; exit 2; }
declare -A bin
for side in a b; do
  dir=$([ "$side" = a ] && echo "$a_build" || echo "$b_build")
  bin[$side]=$(cd "$dir" && pwd)/src/keyvend
  [ -x "${bin[$side]}" ] || { echo "no keyvend binary at ${bin[$side]}" >&2; exit 2; }
done
command -v wrk > /dev/null || { apt-get update -q && apt-get install -y -q wrk > /dev/null; }
ulimit -n "$(ulimit -Hn)"
kv_init "$a_build"
kv_keys "$KV_TMP/keys.txt" $(((secs + 2) * 40000)) AB
echo "orders A/B: A=${bin[a]} B=${bin[b]}; $rounds rounds x $secs s at $conns connections;" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-5s %10s %8s %8s %10s\n' round build req/s p50 p99 cpu-us/req
ratios=()
cpu_ratios=()
# The server's CPU seconds so far (user + system, /proc): PID.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }
run() {  # SIDE ROUND: sets RATE (not in a subshell: the server is this shell's child)
  local side=$1 round=$2 url pid
  KV_KEYVEND=${bin[$side]}
  rm -rf "$KV_TMP/data-$side"
  kv_serve "shop-$side-$round" off "$KV_TMP/data-$side" > /dev/null
  url=$(kv_url "shop-$side-$round")
  pid=$(kv_product "$url" '{"name":"hot","price_cents":100,"currency":"EUR","max_per_order":1}')
  kv_import "$url" "$pid" "$KV_TMP/keys.txt" > /dev/null
  kv_order_lua "$KV_TMP/order.lua" "$pid" ab@example.com
  local spid c0 c1
  spid=$(cat "$KV_TMP/shop-$side-$round/pid")
  c0=$(cpu_of "$spid")
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$KV_TMP/order.lua" "$url/api/v1/orders" \
    > "$KV_TMP/wrk-$side.txt"
  c1=$(cpu_of "$spid")
  kv_stop "shop-$side-$round" > /dev/null
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$KV_TMP/wrk-$side.txt")
  p50=$(awk '$1=="50%" {print $2}' "$KV_TMP/wrk-$side.txt")
  p99=$(awk '$1=="99%" {print $2}' "$KV_TMP/wrk-$side.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$KV_TMP/wrk-$side.txt")
  local n
  n=$(awk '/requests in/ {print $1}' "$KV_TMP/wrk-$side.txt")
  CPU=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / max($n, 1):.1f}')")
  printf '%-6s %-5s %10s %8s %8s %10s %s\n' "$round" "$side" "$rps" "$p50" "$p99" "$CPU" \
    "${non2xx:+non-2xx $non2xx}"
  RATE=$rps
}
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    run a "$r"; ra=$RATE; ca=$CPU; run b "$r"; rb=$RATE; cb=$CPU
  else
    run b "$r"; rb=$RATE; cb=$CPU; run a "$r"; ra=$RATE; ca=$CPU
  fi
  ratios+=("$(python3 -c "print(f'{$rb / $ra:.3f}')")")
  cpu_ratios+=("$(python3 -c "print(f'{$cb / max($ca, 0.1):.3f}')")")
done
median() { printf '%s\n' "$@" | sort -n |
  awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }
echo "B/A per round: ${ratios[*]}; median $(median "${ratios[@]}");" \
  "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
# The server's CPU per answered request (the window's user + system seconds over wrk's count):
# steadier than the rate on a shared box, where the rate moves with everyone else's load.
echo "B/A server CPU per request, per round: ${cpu_ratios[*]}; median $(median "${cpu_ratios[@]}")"
