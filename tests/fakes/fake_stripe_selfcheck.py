#!/usr/bin/env python3
"""Self-check of fake_stripe.py, standalone: starts it with a webhook receiver of our own
(which verifies Stripe-Signature independently), then drives the API and control endpoints.
Exit 0 when everything holds. Usage: fake_stripe_selfcheck.py [path/to/fake_stripe.py]"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SK = "sk_test_selfcheck"
WHSEC = "whsec_selfcheck"
received = []  # (verified, event)


def verify(header, body, secret, tolerance=300):
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    ts = [v for k, v in parts if k == "t"]
    v1s = [v for k, v in parts if k == "v1"]
    if len(ts) != 1 or not v1s or abs(time.time() - int(ts[0])) > tolerance:
        return False
    want = hmac.new(secret.encode(), ts[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, v) for v in v1s)


class Receiver(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = verify(self.headers.get("Stripe-Signature", ""), body, WHSEC)
        received.append((ok, json.loads(body)))
        out = b'{"received":true}' if ok else b'{"received":false}'
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def call(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def main():
    fake = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                                "fake_stripe.py")
    rx = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=rx.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{rx.server_address[1]}/api/v1/payments/stripe/notify"
    p = subprocess.Popen([sys.executable, fake, "--secret-key", SK, "--webhook-secret", WHSEC,
                          "--webhook-url", hook], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
        check(line[0] == "PORT", "the fake prints its port")
        base = f"http://127.0.0.1:{line[1]}"
        auth = {"Authorization": f"Bearer {SK}",
                "Content-Type": "application/x-www-form-urlencoded"}
        order = "0123456789abcdef0123456789abcdef"
        form = urllib.parse.urlencode({
            "mode": "payment", "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "1234",
            "line_items[0][price_data][product_data][name]": "Game key",
            "line_items[0][quantity]": "1", "success_url": "http://127.0.0.1:1/order/x",
            "cancel_url": "http://127.0.0.1:1/order/x", "client_reference_id": order,
            "metadata[order_id]": order, "expires_at": str(int(time.time()) + 3600)}).encode()

        s, _ = call("POST", base + "/v1/checkout/sessions", form,
                    {**auth, "Authorization": "Bearer sk_wrong"})
        check(s == 401, "a wrong secret key is 401")
        s, body = call("POST", base + "/v1/checkout/sessions", form,
                       {**auth, "Idempotency-Key": "k1"})
        sess = json.loads(body)
        check(s == 200 and sess["id"].startswith("cs_test_") and sess["url"].startswith(base),
              "create answers {id, url}")
        check(sess["amount_total"] == 1234 and sess["currency"] == "usd" and
              sess["metadata"] == {"order_id": order} and sess["payment_status"] == "unpaid",
              "the session holds amount, currency, metadata")
        s, body = call("POST", base + "/v1/checkout/sessions", form,
                       {**auth, "Idempotency-Key": "k1"})
        check(s == 200 and json.loads(body)["id"] == sess["id"],
              "the same Idempotency-Key and body: the same session")
        s, body = call("POST", base + "/v1/checkout/sessions", form + b"&x=1",
                       {**auth, "Idempotency-Key": "k1"})
        check(s == 400 and json.loads(body)["error"]["type"] == "idempotency_error",
              "the same Idempotency-Key with other parameters: 400 idempotency_error")
        short = form.replace(str(int(time.time()) + 3600).encode(),
                             str(int(time.time()) + 60).encode())
        s, _ = call("POST", base + "/v1/checkout/sessions", short, auth)
        check(s == 400, "expires_at under 30 minutes is refused as Stripe does")

        s, body = call("GET", base + "/v1/checkout/sessions/" + sess["id"], None, auth)
        check(s == 200 and json.loads(body)["payment_status"] == "unpaid", "retrieve: unpaid")
        s, _ = call("GET", base + "/v1/checkout/sessions/cs_test_nope", None, auth)
        check(s == 404, "retrieve of an unknown session: 404")
        s, _ = call("GET", base + "/v1/checkout/sessions/" + sess["id"])
        check(s == 401, "retrieve without the key: 401")
        s, page = call("GET", sess["url"])
        check(s == 200 and "1234 USD" in page, "the hosted checkout page shows the amount")

        s, body = call("POST", base + f"/_control/pay?session={sess['id']}&drop_notify=1")
        check(s == 200 and not json.loads(body)["sent"] and not received,
              "drop_notify=1: paid, no webhook")
        s, body = call("GET", base + "/v1/checkout/sessions/" + sess["id"], None, auth)
        check(json.loads(body)["payment_status"] == "paid", "retrieve after pay: paid")

        s, body = call("POST", base + f"/_control/send?session={sess['id']}")
        rec = json.loads(body)
        check(rec["status"] == 200 and received[-1][0], "a (re)sent event verifies")
        ev = received[-1][1]
        check(ev["type"] == "checkout.session.completed" and
              ev["data"]["object"]["id"] == sess["id"] and
              ev["data"]["object"]["payment_status"] == "paid", "the event is the paid session")
        s, body = call("POST", base + f"/_control/send?session={sess['id']}&secret=whsec_forged")
        check(json.loads(body)["status"] == 400 and not received[-1][0],
              "a forged event does not verify")
        s, body = call("POST", base + f"/_control/send?session={sess['id']}&t_offset=-400")
        check(json.loads(body)["status"] == 400 and not received[-1][0],
              "a stale event does not verify")

        s, body = call("POST", base + "/v1/checkout/sessions",
                       form.replace(b"1234", b"500"), auth)
        s2 = json.loads(body)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(urllib.request.Request(s2["url"], data=b"", method="POST"), timeout=10)
            check(False, "the Pay button redirects")
        except urllib.error.HTTPError as e:
            check(e.code == 303 and e.headers["Location"] == "http://127.0.0.1:1/order/x",
                  "the Pay button pays and redirects to success_url")
        check(received[-1][0] and received[-1][1]["data"]["object"]["id"] == s2["id"],
              "... and sends the signed webhook")
        s, body = call("POST", base + "/v1/checkout/sessions",
                       form.replace(b"1234", b"700"), auth)
        s3 = json.loads(body)
        s, body = call("POST", base + f"/_control/pay?session={s3['id']}&amount=1&currency=eur")
        check(received[-1][1]["data"]["object"]["amount_total"] == 1 and
              received[-1][1]["data"]["object"]["currency"] == "eur",
              "pay with another amount and currency")
        s, body = call("GET", base + "/_control/log")
        log = json.loads(body)
        check(len(log["deliveries"]) == 6 and len(log["api_calls"]) >= 9,
              "the log holds every delivery and API call")
        s, body = call("POST", base + "/_control/webhook?url=http://127.0.0.1:1/x")
        s, body = call("POST", base + f"/_control/send?session={sess['id']}")
        check(json.loads(body)["status"] is None, "an unreachable webhook URL is recorded")
    finally:
        p.terminate()
        p.wait(10)
    print("fake_stripe self-check: all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
