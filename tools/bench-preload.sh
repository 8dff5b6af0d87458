#!/usr/bin/env bash
# Bulk loading, three ways, same keys, same machine, same run:
#   1. keyvend-preload            into a stopped shop that already holds N keys
#   2. the admin import endpoint  (POST /api/v1/admin/products/1/keys, 1M keys a request,
#                                  the endpoint's limit) into a running shop holding N keys
#   3. PostgreSQL COPY            into a table (key text UNIQUE) already holding N rows
# Each loads the same file of N new keys; the rate is N / wall-clock seconds, end to end
# (process start, parse, dedupe against what is stored, encryption, durable commit). The
# shops are settled first (a server runs until RocksDB's compaction debt is 0), so no load
# pays for the setup's compactions. Afterwards `keyvend check` runs on the preloaded shop.
# The running shop has every limit off (data/bench.conf, via tools/lib.sh) and a body cap
# that fits 1M keys a request. (This script used to turn off the rate limits only; its one
# client sending sequential admin requests meets no other limit, so that changes nothing.)
#
#   tools/bench-preload.sh [build-dir] [N]        N defaults to 1000000 (quick); the
#                                                 ARCHITECTURE.md numbers use 10000000
# Needs root for apt-get (PostgreSQL is installed when missing) and runs PostgreSQL as
# user nobody in a throwaway cluster under a temp dir, removed at the end. Every step has
# a time limit (STEP_TIMEOUT seconds, default 1800).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
n=${2:-1000000}
step_timeout=${STEP_TIMEOUT:-1800}
chunk=1000000  # keys per admin request (limits::kImportKeysMax)

kv_init "$build" keyvend keyvend-preload
if ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then
  apt-get update -q > /dev/null && apt-get install -y -q postgresql > /dev/null
fi
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

tmp=$KV_TMP
chmod 755 "$tmp"  # PostgreSQL runs as nobody and reads the key files
kv_on_exit() {  # the shop is lib.sh's to stop
  if [ -f "$tmp/pg/data/postmaster.pid" ]; then
    runuser -u nobody -- "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate stop > /dev/null 2>&1 || true
  fi
}
T() { timeout "$step_timeout" "$@"; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

# Card-key-like codes in no particular order (a bijection of the index, so all distinct):
# base.txt is what every store already holds, new.txt what each one loads.
echo "generating 2 x $n keys..."
T python3 - "$tmp" "$n" <<'PY'
import sys
tmp, n = sys.argv[1], int(sys.argv[2])
M, K = (1 << 64) - 1, 0x9E3779B97F4A7C15
def gen(path, start):
    with open(path, "w") as f:
        for b in range(start, start + n, 100000):
            f.write("".join("%016X-%04d\n" % ((i * K) & M, i % 10000)
                            for i in range(b, min(b + 100000, start + n))))
gen(tmp + "/base.txt", 0)
gen(tmp + "/new.txt", n)
PY
chmod 644 "$tmp/base.txt" "$tmp/new.txt"
mkdir "$tmp/chunks"
split -l "$chunk" -d -a 4 "$tmp/new.txt" "$tmp/chunks/new-"

start_server() {  # DATA-DIR: the shop, limits off; sets url
  kv_serve server off "$1" --import-body-bytes-max 1073741824
  url=$(kv_url server)
}
stop_server() { kv_stop server; }
settle() {  # waits until RocksDB reports no compaction debt for 3 s in a row
  local zero=0
  for _ in $(seq 1 "$step_timeout"); do
    debt=$(kv_metric "$url" keyvend_rocksdb_pending_compaction_bytes)
    if [ "${debt%.*}" = "0" ]; then zero=$((zero + 1)); else zero=0; fi
    [ "$zero" -ge 3 ] && return
    sleep 1
  done
}

# --- setup: one shop holding N keys in product 1, settled, then copied for the endpoint.
echo "setting up a shop holding $n keys..."
"$KV_KEYVEND" demo-seed --data-dir "$tmp/shop" --catalogue data/demo/catalogue.tsv > /dev/null
T "$KV_BUILD/src/keyvend-preload" --data-dir "$tmp/shop" --product 1 "$tmp/base.txt" | tail -1
start_server "$tmp/shop"
settle
stop_server
cp -a "$tmp/shop" "$tmp/shop2"
cp -a "$tmp/shop.master-key" "$tmp/shop2.master-key"

# --- 1. keyvend-preload
echo "1. keyvend-preload..."
sync
t0=$(now)
T "$KV_BUILD/src/keyvend-preload" --data-dir "$tmp/shop" --product 1 "$tmp/new.txt" > "$tmp/preload.out"
t1=$(now)
preload_s=$(elapsed "$t0" "$t1")
tail -1 "$tmp/preload.out"
grep -q "loaded $n keys" "$tmp/preload.out" || { echo "preload did not load $n keys" >&2; exit 1; }

# --- 2. the admin import endpoint
echo "2. admin import endpoint ($(ls "$tmp/chunks" | wc -l) requests)..."
start_server "$tmp/shop2"
sync
imported=0
t0=$(now)
for f in "$tmp"/chunks/new-*; do
  r=$(T curl -sf -X POST "$url/api/v1/admin/products/1/keys" "${KV_AUTH[@]}" \
        -H 'Content-Type: text/plain' --data-binary @"$f")
  imported=$((imported + $(echo "$r" | sed -n 's/.*"imported":\([0-9]*\).*/\1/p')))
done
t1=$(now)
admin_s=$(elapsed "$t0" "$t1")
stop_server
[ "$imported" = "$n" ] || { echo "the endpoint imported $imported of $n keys" >&2; exit 1; }

# --- 3. PostgreSQL COPY into a table with a unique index (a throwaway cluster as nobody)
echo "3. PostgreSQL COPY ($($pgbin/postgres --version))..."
mkdir -p "$tmp/pg"
chown nobody "$tmp/pg"
pg() { runuser -u nobody -- "$@"; }
pg "$pgbin/initdb" -D "$tmp/pg/data" -U nobody --auth=trust > "$tmp/pg/initdb.log"
# Durable commits like keyvend's (fsync, synchronous_commit stay on); room for the bulk load.
pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w \
  -o "-k $tmp/pg -c listen_addresses='' -c shared_buffers=1GB -c max_wal_size=8GB" start > /dev/null
psql=(runuser -u nobody -- timeout "$step_timeout" "$pgbin/psql" -h "$tmp/pg" -U nobody
      -d postgres -v ON_ERROR_STOP=1 -q)
"${psql[@]}" -c "CREATE TABLE card_keys (key text NOT NULL UNIQUE)"
"${psql[@]}" -c "COPY card_keys (key) FROM '$tmp/base.txt'"
"${psql[@]}" -c "VACUUM ANALYZE card_keys" -c "CHECKPOINT"
sync
t0=$(now)
"${psql[@]}" -c "COPY card_keys (key) FROM '$tmp/new.txt'"
t1=$(now)
pg_s=$(elapsed "$t0" "$t1")
rows=$("${psql[@]}" -At -c "SELECT count(*) FROM card_keys")
[ "$rows" = "$((2 * n))" ] || { echo "PostgreSQL holds $rows rows" >&2; exit 1; }
pg "$pgbin/pg_ctl" -D "$tmp/pg/data" -m fast stop > /dev/null

# --- keyvend check on the preloaded shop (the numbers above count only if it passes)
echo "keyvend check on the preloaded shop..."
T "$KV_KEYVEND" check --data-dir "$tmp/shop" | tail -1

python3 - "$n" "$preload_s" "$admin_s" "$pg_s" "$(cat /proc/loadavg)" <<'PY'
import sys
n = int(sys.argv[1])
rows = [("keyvend-preload", float(sys.argv[2])),
        ("admin import endpoint", float(sys.argv[3])),
        ("PostgreSQL COPY, unique index", float(sys.argv[4]))]
print(f"\n{n:,} new keys into a store already holding {n:,} (2 cores, {sys.argv[5].split()[0]} load avg at the end)")
print(f"{'':32s} {'seconds':>9s} {'keys/s':>11s} {'preload faster':>15s}")
for name, s in rows:
    print(f"{name:32s} {s:9.2f} {n / s:11,.0f} {s / rows[0][1]:14.2f}x")
PY
