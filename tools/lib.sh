# shellcheck shell=bash
# What the benchmark scripts (tools/bench-*.sh) share: building, a private temp dir removed
# at exit, a clean environment with the benchmarks' secrets, and servers on port 0 —
# started with named limits, waited for, stopped and checked. Source it from the
# repository root (the scripts `cd` there first):
#
#   . tools/lib.sh
#   kv_init BUILD-DIR [TARGET...]     builds the targets; sets KV_KEYVEND, KV_BENCH, KV_TMP
#   kv_serve NAME LIMITS DATA-DIR [FLAG...]
#                                     `keyvend serve` on 127.0.0.1:0 with the benchmarks'
#                                     settings (KV_SERVE_FLAGS) and LIMITS:
#                                       off      data/bench.conf: every load-protection
#                                                limit off (throughput, not the limiter)
#                                       default  the shipped defaults
#                                     FLAGs come last and win over both.
#   kv_start NAME COMMAND...          any server that prints `keyvend listening on URL`
#   kv_url NAME / kv_ops_url NAME     its public / ops listener ("" when it has none)
#   kv_stop NAME                      SIGTERM, wait <= 30 s, fail unless it exited 0
#   kv_check DATA-DIR                 `keyvend check`'s last line
#   kv_product URL JSON               creates a product, prints its id
#   kv_import URL PRODUCT FILE        imports the keys in FILE, prints how many
#   kv_metric URL NAME{LABELS}        a value from URL/metrics (0 when absent)
#
# Each server lives in $KV_TMP/NAME/ (stdout, stderr, pid, url, ops_url). At exit every
# server still running is killed by its pid, the script's own kv_on_exit (if it defines
# one) runs, and $KV_TMP is removed. Every wait is bounded.

KV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KV_BENCH_CONF=$KV_ROOT/data/bench.conf
KV_START_SECONDS=${KV_START_SECONDS:-60}  # a shop with millions of keys opens in seconds
KV_STOP_SECONDS=30

# Nothing of the caller's KEYVEND_* settings leaks into the servers (the environment would
# win over data/bench.conf); the secrets are the benchmarks' own.
while read -r kv_var; do
  unset "$kv_var"
done < <(compgen -e | grep '^KEYVEND_' || true)
unset kv_var
export KEYVEND_ADMIN_TOKEN=bench-admin-0123456789abcdef0123456789
export KEYVEND_PAYMENT_SECRET=bench-secret
KV_AUTH=(-H "Authorization: Bearer $KEYVEND_ADMIN_TOKEN")

# Settings every benchmark server shares, whatever its limits: port 0 on loopback, the
# sandbox gateway, holds that outlast a run, keep-alive connections that last the run.
KV_SERVE_FLAGS=(--listen 127.0.0.1:0 --payment-sandbox --hold-seconds 3600
                --keep-alive-max-count 1000000 --keep-alive-timeout-seconds 60)

kv_init() {  # BUILD-DIR [TARGET...]
  KV_BUILD=$1
  shift
  if [ "$#" -gt 0 ]; then
    cmake --build "$KV_BUILD" -j2 --target "$@" > /dev/null
  fi
  KV_KEYVEND=$KV_BUILD/src/keyvend
  KV_BENCH=$KV_BUILD/bench
  KV_TMP=$(mktemp -d /tmp/kv-bench.XXXXXX)
  trap kv_cleanup EXIT
}

kv_cleanup() {
  local f p
  for f in "$KV_TMP"/*/pid; do
    [ -e "$f" ] || continue
    p=$(cat "$f")
    kill -KILL "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
  if declare -F kv_on_exit > /dev/null; then kv_on_exit || true; fi
  rm -rf "$KV_TMP"
}

kv_start() {  # NAME COMMAND...
  local name=$1 dir=$KV_TMP/$1 pid url deadline
  shift
  mkdir -p "$dir"
  # Emptied here, not only by the child's redirection (which runs after the fork, maybe
  # after the first look below): no stale URL from an earlier start, no missing file.
  : > "$dir/stdout"
  "$@" > "$dir/stdout" 2> "$dir/stderr" &
  pid=$!
  echo "$pid" > "$dir/pid"
  deadline=$((SECONDS + KV_START_SECONDS))
  while [ "$SECONDS" -le "$deadline" ]; do
    # The public listener's line; the ops listener's is "keyvend ops listening on ...".
    url=$(sed -n 's|^keyvend listening on \(http://[^ ]*\).*|\1|p' "$dir/stdout" | head -1)
    if [ -n "$url" ]; then
      echo "$url" > "$dir/url"
      sed -n 's|^keyvend ops listening on \(http://[^ ]*\).*|\1|p' "$dir/stdout" | head -1 \
        > "$dir/ops_url"
      return 0
    fi
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
  done
  echo "$name did not start (within ${KV_START_SECONDS} s): $*" >&2
  cat "$dir/stderr" >&2
  kill -KILL "$pid" 2> /dev/null || true
  wait "$pid" 2> /dev/null || true
  rm -f "$dir/pid"
  return 1
}

kv_serve() {  # NAME LIMITS DATA-DIR [FLAG...]
  local name=$1 limits=$2 data_dir=$3 limit_flags=()
  shift 3
  case $limits in
    off) limit_flags=(--config "$KV_BENCH_CONF") ;;
    default) ;;
    *)
      echo "kv_serve: limits are off or default (got $limits)" >&2
      return 2
      ;;
  esac
  kv_start "$name" "$KV_KEYVEND" serve "${limit_flags[@]}" "${KV_SERVE_FLAGS[@]}" \
    --data-dir "$data_dir" "$@"
}

kv_url() { cat "$KV_TMP/$1/url"; }
kv_ops_url() { cat "$KV_TMP/$1/ops_url"; }

kv_stop() {  # NAME
  local name=$1 pid rc=0 deadline
  pid=$(cat "$KV_TMP/$name/pid")
  kill -TERM "$pid" 2> /dev/null || true
  deadline=$((SECONDS + KV_STOP_SECONDS))
  while kill -0 "$pid" 2> /dev/null && [ "$SECONDS" -le "$deadline" ]; do
    sleep 0.1
  done
  if kill -0 "$pid" 2> /dev/null; then
    echo "$name: did not exit within ${KV_STOP_SECONDS} s of SIGTERM; killed" >&2
    kill -KILL "$pid" 2> /dev/null || true
  fi
  wait "$pid" 2> /dev/null || rc=$?
  rm -f "$KV_TMP/$name/pid"
  if [ "$rc" != 0 ]; then
    echo "$name: exit status $rc after SIGTERM; its last messages:" >&2
    tail -5 "$KV_TMP/$name/stderr" >&2
    return 1
  fi
}

kv_check() {  # DATA-DIR [keyvend check flags...]
  "$KV_KEYVEND" check --data-dir "$@" 2>&1 | tail -1
}

kv_product() {  # URL JSON
  curl -sf --max-time 10 -X POST "$1/api/v1/admin/products" "${KV_AUTH[@]}" -d "$2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

kv_import() {  # URL PRODUCT FILE
  curl -sf --max-time 600 -X POST "$1/api/v1/admin/products/$2/keys" "${KV_AUTH[@]}" \
    -H 'Content-Type: text/plain' --data-binary @"$3" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["imported"])'
}

kv_order_lua() {  # FILE PRODUCT [CONTACT]: a wrk script that creates one-key orders
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"product_id":"$2","quantity":1,"contact":"${3:-bench@example.com}"}'
LUA
}

kv_keys() {  # FILE N PREFIX: N distinct key lines
  python3 -c "print('\\n'.join(f'$3-{i:09d}-KEY' for i in range($2)))" > "$1"
}

kv_metric() {  # URL NAME{LABELS}
  curl -sf --max-time 5 "$1/metrics" |
    awk -v m="$2" 'index($0, m " ") == 1 {v = $NF} END {print (v == "" ? 0 : v)}'
}
