#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, loads the demo catalogue
# into ./keyvend-data (first run only) and starts the shop on 127.0.0.1:8080 with the
# sandbox gateway (ops listener on 127.0.0.1:8081). Demo secrets (admin token, payment secret) are generated once into a
# 0600 file OUTSIDE the data dir; only its path is printed. Extra arguments go to
# `keyvend serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j2 --target keyvend

data_dir=${KEYVEND_DATA_DIR:-./keyvend-data}
secrets=${KEYVEND_SECRETS_FILE:-${data_dir%/}.secrets}
if [ ! -f "$secrets" ]; then
  (umask 077
   {
     echo "# keyvend demo secrets (generated $(date -u +%FT%TZ)); keep this file private."
     # 24 random bytes = 48 hex characters (keyvend serve wants at least 32).
     echo "export KEYVEND_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
     echo "export KEYVEND_PAYMENT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
   } > "$secrets")
fi
chmod 600 "$secrets"
# shellcheck disable=SC1090
. "$secrets"
echo "demo secrets (admin token, payment secret): $secrets"
./build/src/keyvend demo-seed --data-dir "$data_dir" --catalogue data/demo/catalogue.tsv
# The ops listener (notify, /healthz, /readyz, /metrics) on 8081 stays reachable when buyer
# traffic fills every cap of 8080; the access log goes beside the data dir.
exec ./build/src/keyvend serve --data-dir "$data_dir" --listen 127.0.0.1:8080 \
  --ops-listen 127.0.0.1:8081 --access-log "${data_dir%/}.access.log" --payment-sandbox "$@"
