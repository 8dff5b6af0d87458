#!/usr/bin/env bash
# Issue 14's closing benchmark: what the merchant webhook and the buyer mail cost the order
# path, and how fast the outbound workers drain a backlog. One build, one run, loopback only.
#
#   tools/bench-outbound.sh [build-dir (build)] [rounds (3)] [secs (8)] [conns (32)] [backlog-secs (4)]
#
# 1. A/B rounds, OFF and ON alternating (which goes first alternates per round). Each run:
#    a fresh `keyvend serve` (limits off: data/bench.conf), one product, keys imported, then
#    flood_bench in throughput mode for SECS seconds over CONNS keep-alive connections,
#    paying EVERY accepted order (--notify-every 1: signed notifies, one at a time on one
#    connection, as far as they get in the window). OFF: no webhook_url, no smtp_url. ON:
#    webhook_url and smtp_url at the local fakes, accepting (they run during the OFF runs
#    too, idle), so every paid order queues one webhook event and one mail that the workers
#    send while the load runs. The fakes (FAKES=native, the default): bench/outbound_sink, one
#    epoll process that checks each event's HMAC and counts mails (cheap: the window measures
#    the shop); FAKES=python: tests/fakes/webhook_receiver.py and tests/fakes/smtp_sink.py (the
#    tests' fakes: a thread per connection, every mail parsed by Python's email package —
#    they took ~11 of 16 CPU-seconds per 8 s window on 2 cores).
#    Reported per run: orders/s (201s to POST /api/v1/orders), payments/s (notifies
#    answered 200) and the p99 of the accepted orders' latency (flood_bench's); per round the
#    ratios ON/OFF; at the end their medians (target for orders/s: >= 0.95).
# 2. Events/s the workers sustain: a shop with webhook_url and smtp_url at dead loopback ports
#    (and webhook_max_attempts / mail_max_attempts 1000, backoff and breaker cooldown 1 s)
#    takes BACKLOG-SECS seconds of paid orders, so their events and mails wait in the log; it
#    is stopped (SIGTERM) and restarted on the same data dir with the receiver and the sink
#    up. webhook events/s = N / (last - first arrival at the receiver); mails/s = N / (last
#    - first mail at the sink); and the time from the restart's listening line
#    until keyvend_outbound_events{state="pending"} is 0 for both kinds.
# Per run also the CPU seconds the shop and the fakes used during flood_bench's window
# (utime + stime from /proc), and the machine's idle CPU seconds in it (box-idle: idle +
# iowait of all cores from /proc/stat; near 0 means the window was CPU-bound, whoever used
# it — other processes on a shared box included; OFF leaving CPU idle means OFF was not
# CPU-bound, and then a high ON/OFF ratio flatters ON). On 2 cores the local fakes compete
# with the shop, which a merchant's real endpoint would not. FAKES_NICE=N runs the fakes at
# nice N (default 0), so that they take only what the shop leaves. OUTBOUND_NICE=N starts the
# ON shops with --outbound-nice N (the workers' nice value; unset: the shop's default, 19), so
# that one build compares the workers at the order path's priority (0) with below it.
# ON_FLAGS="--mail-parallel-sessions 1" (say) adds serve flags to the ON shops.
# ON_KINDS=webhook (or mail): the ON shops get only that side effect (default both), to see
# what each costs; the backlog part (2.) still uses both.
# PERF_ON=FILE: `perf record -g` of the first ON shop during its window (secs >= 4; Debian's
# linux-perf), for `perf report -i FILE --sort comm,dso,sym`.
# About rounds x 2 x (secs + 10) + backlog-secs + 60 seconds; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
rounds=${2:-3}
secs=${3:-8}
conns=${4:-32}
backlog_secs=${5:-4}
fakes_nice=${FAKES_NICE:-0}
fakes_kind=${FAKES:-native}
outbound_nice=${OUTBOUND_NICE:-}
perf_on=${PERF_ON:-}
on_kinds=${ON_KINDS:-both}
case $on_kinds in both | webhook | mail) ;; *) echo "ON_KINDS: both, webhook or mail" >&2; exit 2 ;; esac
if [ -n "$perf_on" ]; then
  command -v perf > /dev/null || { echo "PERF_ON needs perf (Debian's linux-perf)" >&2; exit 2; }
  [ ! -e "$perf_on" ] || { echo "PERF_ON: $perf_on exists" >&2; exit 2; }
  [ "${3:-8}" -ge 4 ] || { echo "PERF_ON needs secs >= 4" >&2; exit 2; }
fi
[ -z "$outbound_nice" ] || { [[ "$outbound_nice" =~ ^[0-9]+$ ]] && [ "$outbound_nice" -le 19 ]; } ||
  { echo "OUTBOUND_NICE: 0..19" >&2; exit 2; }
[ "$fakes_kind" = native ] || [ "$fakes_kind" = python ] || { echo "FAKES: native or python" >&2; exit 2; }
[[ "$fakes_nice" =~ ^[0-9]+$ ]] && [ "$fakes_nice" -le 19 ] || { echo "FAKES_NICE: 0..19" >&2; exit 2; }
for v in "$rounds" "$secs" "$conns" "$backlog_secs"; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || {
    echo "rounds, secs, conns, backlog-secs: positive integers" >&2
    exit 2
  }
done
[ "$rounds" -le 10 ] && [ "$secs" -le 60 ] && [ "$conns" -le 1024 ] && [ "$backlog_secs" -le 30 ] ||
  { echo "at most 10 rounds, 60 s, 1024 connections, 30 backlog seconds" >&2; exit 2; }
py=/usr/bin/python3  # Debian's, with its python3-aiosmtpd (not whatever python3 is first on PATH)
if [ "$fakes_kind" = python ]; then
  "$py" -c 'import aiosmtpd' 2> /dev/null ||
    { echo "needs Debian's python3-aiosmtpd (tools/install-deps.sh)" >&2; exit 2; }
fi
ulimit -n "$(ulimit -Hn)"
kv_init "$build" keyvend flood_bench outbound_sink
bench=$KV_BENCH/flood_bench
export KEYVEND_WEBHOOK_SECRET=bench-webhook-secret-0123456789
fakes=$KV_ROOT/tests/fakes
fake_pids=()
kv_on_exit() {  # the fakes (the servers are lib.sh's)
  local p
  for p in "${fake_pids[@]}"; do
    kill -KILL "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
}

# Starts a fake that prints "PORT n"; sets FAKE_PORT. NAME COMMAND...
start_fake() {
  local name=$1 deadline
  shift
  : > "$KV_TMP/$name.out"
  nice -n "$fakes_nice" "$@" > "$KV_TMP/$name.out" 2> "$KV_TMP/$name.err" &
  fake_pids+=($!)
  deadline=$((SECONDS + 20))
  FAKE_PORT=""
  while [ -z "$FAKE_PORT" ] && [ "$SECONDS" -le "$deadline" ]; do
    FAKE_PORT=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$KV_TMP/$name.out")
    [ -n "$FAKE_PORT" ] || sleep 0.05
  done
  [ -n "$FAKE_PORT" ] || { echo "$name did not start" >&2; cat "$KV_TMP/$name.err" >&2; exit 1; }
}
dead_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# The machine's idle CPU seconds so far (idle + iowait of every core, /proc/stat).
idle_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" {printf "%.1f\n", ($5 + $6) / hz}' /proc/stat
}
# CPU seconds (user + system) of the processes PIDS so far.
cpu_seconds() {
  local p t=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  python3 -c "print(f'{$t / $(getconf CLK_TCK):.1f}')"
}
# The receiver's summary field FIELD (accepted: the number of distinct ids).
receiver() {  # PORT FIELD
  curl -sf --max-time 10 "http://127.0.0.1:$1/control/summary" | python3 -c '
import json, sys
s = json.load(sys.stdin)
f = sys.argv[1]
v = s.get(f)
print(len(v) if isinstance(v, dict) else v)' "$2"
}
# Starts the receiver and the sink (SUFFIX names their files); sets hook_port, smtp_port and
# MAIL_DIR (python: where the sink writes; native: unused).
start_fakes() {  # SUFFIX
  MAIL_DIR=$KV_TMP/mails$1
  if [ "$fakes_kind" = native ]; then
    start_fake "sink$1" "$KV_BENCH/outbound_sink" --secret "$KEYVEND_WEBHOOK_SECRET"
    hook_port=$FAKE_PORT
    smtp_port=$(sed -n 's/^SMTP_PORT \([0-9]*\)$/\1/p' "$KV_TMP/sink$1.out")
    [ -n "$smtp_port" ] || { echo "outbound_sink printed no SMTP_PORT" >&2; exit 1; }
  else
    start_fake "receiver$1" "$py" "$fakes/webhook_receiver.py" --secret "$KEYVEND_WEBHOOK_SECRET"
    hook_port=$FAKE_PORT
    rm -rf "$MAIL_DIR" && mkdir -p "$MAIL_DIR"
    start_fake "sink$1" "$py" "$fakes/smtp_sink.py" --dir "$MAIL_DIR"
    smtp_port=$FAKE_PORT
  fi
}
# Mails the sink accepted so far.
mail_count() {
  if [ "$fakes_kind" = native ]; then
    receiver "$hook_port" mails
  else
    find "$MAIL_DIR" -name '*.json' | wc -l
  fi
}

start_fakes ""
on_flags=()
[ "$on_kinds" = mail ] || on_flags+=(--webhook-url "http://127.0.0.1:$hook_port/hook")
[ "$on_kinds" = webhook ] || on_flags+=(--smtp-url "smtp://127.0.0.1:$smtp_port" --mail-from shop@example.com)
[ -z "$outbound_nice" ] || on_flags+=(--outbound-nice "$outbound_nice")
# ON_FLAGS="--flag value ...": more flags for the ON shops (one build, one knob A/B'd).
read -r -a extra_on <<< "${ON_FLAGS:-}"
on_flags+=("${extra_on[@]}")
# Keys: far more than the fastest order rate over the window (a quiet box sold 66,000 in
# under 8 s, later 275,000 at 34k orders/s: a run that sells out measures the stock, not the
# rate). Checked after each run.
KEYS_PER_RUN=$(((secs + 3) * 45000))
kv_keys "$KV_TMP/keys.txt" $KEYS_PER_RUN OB

# One run; sets ORDERS and PAYMENTS (per second). SIDE ROUND
run() {
  local side=$1 round=$2 name="shop-$1-$2" url pid flags=()
  [ "$side" = on ] && flags=("${on_flags[@]}")
  rm -rf "$KV_TMP/data-$side"
  kv_serve "$name" off "$KV_TMP/data-$side" "${flags[@]}" > /dev/null
  url=$(kv_url "$name")
  pid=$(kv_product "$url" '{"name":"ob","price_cents":100,"currency":"EUR","max_per_order":1}')
  kv_import "$url" "$pid" "$KV_TMP/keys.txt" > /dev/null
  local shop_pid c0 f0 c1 f1 i0 i1
  shop_pid=$(cat "$KV_TMP/$name/pid")
  c0=$(cpu_seconds "$shop_pid")
  f0=$(cpu_seconds "${fake_pids[@]}")
  i0=$(idle_seconds)
  local perf_pid=""
  if [ "$side" = on ] && [ -n "$perf_on" ] && [ ! -e "$perf_on" ]; then
    # The first ON window, after a second of warm-up, until a second before its end.
    (sleep 1 && exec perf record -F 499 -g -p "$shop_pid" -o "$perf_on" -- sleep "$((secs - 2))") \
      > /dev/null 2>&1 &
    perf_pid=$!
  fi
  "$bench" --url "$url" --product "$pid" --mode throughput --connections "$conns" \
    --seconds "$secs" --notify-every 1 > "$KV_TMP/flood-$side.txt" 2>&1
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  c1=$(cpu_seconds "$shop_pid")
  f1=$(cpu_seconds "${fake_pids[@]}")
  i1=$(idle_seconds)
  local result
  result=$(grep '^RESULT ' "$KV_TMP/flood-$side.txt")
  ORDERS=$(sed 's/.* accepted_per_s=\([0-9.]*\).*/\1/' <<< "$result")
  P99=$(sed 's/.* p99_accepted_ms=\([0-9.]*\).*/\1/' <<< "$result")
  local ok elapsed
  ok=$(sed 's/.* notify_ok=\([0-9]*\).*/\1/' <<< "$result")
  elapsed=$(sed 's/.* seconds=\([0-9.]*\).*/\1/' <<< "$result")
  PAYMENTS=$(python3 -c "print(f'{$ok / $elapsed:.1f}')")
  if python3 -c "import sys; sys.exit(0 if $ORDERS * $elapsed >= 0.98 * $KEYS_PER_RUN else 1)"; then
    echo "warning: round $round $side sold out its $KEYS_PER_RUN keys: its orders/s is a floor" >&2
  fi
  local backlog=""
  if [ "$side" = on ]; then
    backlog="webhook pending $(kv_metric "$url" 'keyvend_outbound_events{kind="webhook",state="pending"}'),"
    backlog+=" mail pending $(kv_metric "$url" 'keyvend_outbound_events{kind="mail",state="pending"}')"
  fi
  kv_stop "$name" > /dev/null
  printf '%-6s %-4s %10s %10s %8s %9s %9s %9s  %s\n' "$round" "$side" "$ORDERS" "$PAYMENTS" "$P99" \
    "$(python3 -c "print(f'{$c1 - $c0:.1f}')")" "$(python3 -c "print(f'{$f1 - $f0:.1f}')")" \
    "$(python3 -c "print(f'{$i1 - $i0:.1f}')")" "$backlog"
}

echo "outbound A/B: $rounds rounds x $secs s at $conns connections, every order paid; $fakes_kind fakes at nice $fakes_nice;" \
  "workers at nice ${outbound_nice:-19 (default)};" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-4s %10s %10s %8s %9s %9s %9s\n' round side orders/s payments/s p99-ms shop-cpu fakes-cpu box-idle
o_ratios=()
p_ratios=()
l_ratios=()
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    run off "$r"; oo=$ORDERS; po=$PAYMENTS; lo=$P99; run on "$r"; on=$ORDERS; pn=$PAYMENTS; ln=$P99
  else
    run on "$r"; on=$ORDERS; pn=$PAYMENTS; ln=$P99; run off "$r"; oo=$ORDERS; po=$PAYMENTS; lo=$P99
  fi
  l_ratios+=("$(python3 -c "print(f'{$ln / max($lo, 0.01):.3f}')")")
  o_ratios+=("$(python3 -c "print(f'{$on / $oo:.3f}')")")
  p_ratios+=("$(python3 -c "print(f'{$pn / $po:.3f}')")")
done
median() { printf '%s\n' "$@" | sort -n |
  awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }
echo "ON/OFF orders/s per round: ${o_ratios[*]}; median $(median "${o_ratios[@]}")"
echo "ON/OFF payments/s per round: ${p_ratios[*]}; median $(median "${p_ratios[@]}")"
echo "ON/OFF order p99 per round: ${l_ratios[*]}; median $(median "${l_ratios[@]}")"
echo "receiver: $(receiver "$hook_port" accepted) events accepted; sink: $(mail_count) mails"
if [ "$fakes_kind" = native ]; then
  echo "connections: $(receiver "$hook_port" http_connections) http (events and polls)," \
    "$(receiver "$hook_port" smtp_connections) smtp"
fi

# --- 2. the workers' drain rate --------------------------------------------------------------
dead=$(dead_port)
rm -rf "$KV_TMP/data-drain"
kv_serve fill off "$KV_TMP/data-drain" --webhook-url "http://127.0.0.1:$dead/hook" \
  --smtp-url "smtp://127.0.0.1:$dead" --mail-from shop@example.com \
  --webhook-max-attempts 1000 --mail-max-attempts 1000 --outbound-backoff-max-seconds 1 \
  --webhook-breaker-cooldown-seconds 1 > /dev/null
url=$(kv_url fill)
pid=$(kv_product "$url" '{"name":"drain","price_cents":100,"currency":"EUR","max_per_order":1}')
kv_import "$url" "$pid" "$KV_TMP/keys.txt" > /dev/null
# A few connections: the notifier pays as fast as it can, the orders need not outrun it.
"$bench" --url "$url" --product "$pid" --mode throughput --connections 4 \
  --seconds "$backlog_secs" --notify-every 1 > "$KV_TMP/flood-fill.txt" 2>&1
hooks=$(kv_metric "$url" 'keyvend_outbound_events{kind="webhook",state="pending"}')
mails=$(kv_metric "$url" 'keyvend_outbound_events{kind="mail",state="pending"}')
kv_stop fill
# The fakes start empty for this part.
kill -KILL "${fake_pids[@]}" 2> /dev/null || true
wait "${fake_pids[@]}" 2> /dev/null || true
fake_pids=()
start_fakes 2
t0=$(date +%s.%N)
kv_serve drain off "$KV_TMP/data-drain" --webhook-url "http://127.0.0.1:$hook_port/hook" \
  --smtp-url "smtp://127.0.0.1:$smtp_port" --mail-from shop@example.com > /dev/null
t1=$(date +%s.%N)
url=$(kv_url drain)
deadline=$((SECONDS + 300))
while [ "$SECONDS" -le "$deadline" ]; do
  left=$(($(kv_metric "$url" 'keyvend_outbound_events{kind="webhook",state="pending"}') +
    $(kv_metric "$url" 'keyvend_outbound_events{kind="mail",state="pending"}')))
  [ "$left" = 0 ] && break
  sleep 0.1
done
t2=$(date +%s.%N)
[ "$left" = 0 ] || echo "the backlog did not drain within 300 s ($left left)" >&2
got_hooks=$(receiver "$hook_port" accepted)
first=$(receiver "$hook_port" first_at)
last=$(receiver "$hook_port" last_at)
mail_times=""
if [ "$fakes_kind" = native ]; then
  mail_times="$(receiver "$hook_port" mails) $(receiver "$hook_port" mail_first_at) $(receiver "$hook_port" mail_last_at)"
  echo "drain connections: $(receiver "$hook_port" http_connections) http (events and polls)," \
    "$(receiver "$hook_port" smtp_connections) smtp"
fi
kv_stop drain
python3 - "$hooks" "$mails" "$got_hooks" "$first" "$last" "$MAIL_DIR" "$t0" "$t1" "$t2" "$mail_times" <<'PY'
import os, sys
hooks, mails, got, first, last, mdir, t0, t1, t2, native = sys.argv[1:]
hooks, mails, got = int(float(hooks)), int(float(mails)), int(got)
if native:  # the native sink's count and first/last times (only those two are needed)
    n, a, b = native.split()
    times = [float(a)] + [float(b)] * (int(n) - 1) if int(n) > 1 else []
else:
    times = sorted(os.stat(os.path.join(mdir, f)).st_mtime for f in os.listdir(mdir)
                   if f.endswith(".json"))
print(f"backlog: {hooks} webhook events, {mails} mails waiting after the fill; after the restart "
      f"(open {float(t1) - float(t0):.2f} s) the receiver got {got} events, the sink {len(times)} mails")
if got > 1 and first != "None":
    print(f"webhook: {got / (float(last) - float(first)):.0f} events/s (first to last arrival, "
          f"{float(last) - float(first):.2f} s)")
if len(times) > 1:
    print(f"mail: {len(times) / (times[-1] - times[0]):.0f} mails/s (first to last mail, "
          f"{times[-1] - times[0]:.2f} s)")
print(f"log empty {float(t2) - float(t1):.2f} s after the listening line")
PY
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
