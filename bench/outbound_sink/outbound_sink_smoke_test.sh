#!/usr/bin/env bash
# Smoke test of bench/outbound_sink (ctest label tool): starts it, posts signed webhook events
# with curl (two on one keep-alive connection, one badly signed, one whose id header differs
# from the body's), sends two mails with curl's SMTP client, sends an oversized request
# head, and checks its counts. Usage: outbound_sink_smoke_test.sh SINK_BINARY
set -euo pipefail
sink=$1
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

secret=smoke-secret-0123456789
"$sink" --secret "$secret" > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^SMTP_PORT ' "$tmp/out" && break
  sleep 0.05
done
http=$(sed -n 's/^PORT \([0-9]*\)$/\1/p' "$tmp/out")
smtp=$(sed -n 's/^SMTP_PORT \([0-9]*\)$/\1/p' "$tmp/out")
[ -n "$http" ] && [ -n "$smtp" ] || fail "the sink did not print its ports: $(cat "$tmp/err")"

sign() {  # BODY [SECRET] -> the Keyvend-Signature value for now
  local t
  t=$(date +%s)
  printf 't=%s,v1=%s' "$t" \
    "$(printf '%s.%s' "$t" "$1" | openssl dgst -sha256 -hmac "${2:-$secret}" -r | cut -d' ' -f1)"
}
body='{"id":"evt_smoke_delivered","type":"order.delivered","data":{}}'
url="http://127.0.0.1:$http/hook"
# The same event twice in one curl run: one connection, two 200s, one distinct id.
codes=$(curl -s --max-time 10 -o /dev/null -o /dev/null -w '%{http_code}\n' -H "Content-Type: application/json" \
  -H "Keyvend-Event-Id: evt_smoke_delivered" -H "Keyvend-Signature: $(sign "$body")" \
  --data-binary "$body" "$url" "$url" | tr '\n' ' ')
[ "$codes" = "200 200 " ] || fail "signed posts answered '$codes'"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Keyvend-Event-Id: evt_smoke_delivered" \
  -H "Keyvend-Signature: $(sign "$body" wrong-secret)" --data-binary "$body" "$url")
[ "$code" = 401 ] || fail "a post signed with another secret answered $code"
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Keyvend-Event-Id: evt_other" \
  -H "Keyvend-Signature: $(sign "$body")" --data-binary "$body" "$url")
[ "$code" = 401 ] || fail "a post whose id header is not the body's answered $code"

# An oversized head closes that connection; the sink goes on.
head -c 70000 /dev/zero | tr '\0' a > "$tmp/big"
{ printf 'GET /x HTTP/1.1\r\nX: '; cat "$tmp/big"; } |
  timeout 10 bash -c "cat > /dev/tcp/127.0.0.1/$http" 2> /dev/null || true

printf 'Subject: smoke\r\n\r\nhello\r\n.\r\nnot the end\r\n' > "$tmp/mail"
for i in 1 2; do
  curl -s --max-time 10 "smtp://127.0.0.1:$smtp" --mail-from shop@example.com \
    --mail-rcpt "buyer$i@example.com" -T "$tmp/mail" || fail "mail $i was not accepted"
done

summary=$(curl -sf --max-time 10 "http://127.0.0.1:$http/control/summary") ||
  fail "no summary after the oversized head"
echo "summary: $summary"
python3 - "$summary" << 'PY'
import json, sys
s = json.loads(sys.argv[1])
want = {"accepted": 1, "posts": 2, "invalid": 2, "refused": 0, "mails": 2,
        "smtp_connections": 2, "smtp_errors": 0}
bad = {k: (s[k], v) for k, v in want.items() if s[k] != v}
# 1 keep-alive connection for the two posts, 2 for the bad ones, 1 oversized, 1 summary.
if s["http_connections"] != 5:
    bad["http_connections"] = (s["http_connections"], 5)
if s["first_at"] is None or s["mail_first_at"] is None:
    bad["times"] = (s["first_at"], s["mail_first_at"])
if bad:
    sys.exit("FAIL: (got, want) " + repr(bad))
PY
echo "1 passed, 0 failed"
