#!/usr/bin/env bash
# What a flash sale looks like on the admin console's dashboard (issue 12's closing note):
# keyvend (data/bench.conf, every limit off) with one product of KEYS keys; flood_bench
# offers RATE orders/s on a fixed schedule over 64 connections for SECS s and pays every
# accepted order with a signed notify (so keys are sold and delivered); meanwhile headless
# Chromium keeps /admin open, signed in, and screenshots the dashboard every 30 s and once
# after the sale (OUT-DIR/sale-dashboard-*.png, paths printed). Ends with the server's
# SIGTERM and `keyvend check`.
#   tools/sale-dashboard.sh [build (build)] [rate (1000)] [secs (90)] [out-dir (build/screenshots)]
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
build=${1:-build}
rate=${2:-1000}
secs=${3:-90}
out=${4:-$build/screenshots}
mkdir -p "$out"
kv_init "$build" keyvend flood_bench
kv_serve shop off "$KV_TMP/data"
shop=$(kv_url shop)
keys=$((rate * secs * 11 / 10))
pid=$(kv_product "$shop" '{"name":"Flash sale card","price_cents":990,"currency":"CNY","max_per_order":1}')
kv_keys "$KV_TMP/keys.txt" "$keys" SALE
kv_import "$shop" "$pid" "$KV_TMP/keys.txt" > /dev/null
echo "sale: $rate orders/s offered for $secs s, every order paid; $keys keys; $shop/admin"
"$KV_BENCH/flood_bench" --mode throughput --url "$shop" --product "$pid" --connections 64 \
  --seconds "$secs" --offered-rate "$rate" --notify-every 1 \
  --payment-secret "$KEYVEND_PAYMENT_SECRET" > "$KV_TMP/flood.txt" 2>&1 &
flood=$!
/usr/bin/python3 - "$shop" "$KEYVEND_ADMIN_TOKEN" "$secs" "$out" << 'PY'
import os, sys, time
sys.path.insert(0, "tests/browser")
import kit
from selenium.webdriver.common.by import By
url, token, secs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
kit.SHOTS_DIR = out
d = kit.driver(1280, 800, "en")
try:
    d.get(url + "/admin")
    kit.wait_for(d, "#token").send_keys(token)
    d.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()
    t0 = time.monotonic()
    for at in list(range(30, secs + 1, 30)) + [secs + 20]:
        time.sleep(max(0, t0 + at - time.monotonic()))
        kit.shot(d, "sale-dashboard-%03ds" % at)
    kit.assert_no_console_errors(d)
finally:
    d.quit()
PY
wait "$flood" || true  # not a bare wait: the server is this shell's child too
grep -E "^RESULT" "$KV_TMP/flood.txt" | tr ' ' '\n' | grep -E "accepted_per_s|p99_accepted|status_|notif" | tr '\n' ' '
echo
kv_stop shop
echo "after SIGTERM: keyvend check: $(kv_check "$KV_TMP/data")"
