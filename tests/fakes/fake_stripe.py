#!/usr/bin/env python3
"""A loopback fake of the parts of Stripe's API keyvend uses (Python 3 standard library only).

Speaks the protocol as Stripe documents it (API reference, "Checkout Sessions": create and
retrieve; "Webhooks": Stripe-Signature `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`):

  POST /v1/checkout/sessions          form-encoded, `Authorization: Bearer <secret key>`;
                                      Idempotency-Key honoured (same key + same body: the same
                                      answer; same key + another body: 400 idempotency_error);
                                      answers the session object {id, object, url, ...}
  GET  /v1/checkout/sessions/{id}     the session (404 resource_missing when unknown)
  GET  /c/pay/{id}                    the hosted "checkout page": amount and a Pay button
  POST /c/pay/{id}                    the button: pays (and sends the webhook), 303 success_url

Control endpoints for tests (not Stripe's):

  POST /_control/pay?session=ID&drop_notify=0|1[&amount=N][&currency=xxx]
      marks the session paid (amount/currency: what was actually paid, when the test wants
      a mismatch), then sends the signed checkout.session.completed event to the webhook URL
      unless drop_notify=1. Answers {"session", "event_id", "sent", "status", "body"}.
  POST /_control/send?session=ID[&type=T][&t_offset=S][&secret=X][&event_id=E][&sig=RAW]
      (re)sends an event for the session as it is now: a replay (same event id, new
      timestamp), a stale or future one (t_offset seconds), a forged one (another secret),
      or one with a raw Stripe-Signature header. Same answer shape.
  POST /_control/webhook?url=URL     sets (or changes) the webhook URL
  GET  /_control/log                 {"deliveries": [...], "api_calls": [...]}: every event
                                      sent and what keyvend answered; every API request
  GET  /_control/health              "ok"

Usage: fake_stripe.py --secret-key sk_test_x --webhook-secret whsec_x
           [--webhook-url URL] [--port 0] [--port-file PATH]
The port is printed on stdout as "PORT <n>" (and written to --port-file) once listening.
"""

import argparse
import hashlib
import hmac
import html
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY_MAX = 64 * 1024


class State:
    def __init__(self, secret_key, webhook_secret, webhook_url):
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.port = 0
        self.lock = threading.Lock()
        self.sessions = {}  # id -> session dict
        self.idempotency = {}  # key -> (body, status, answer)
        self.deliveries = []
        self.api_calls = []


def sign(secret, t, body):
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def stripe_error(status, type_, code, message):
    return status, {"error": {"type": type_, "code": code, "message": message}}


def create_session(state, form):
    def one(name):
        v = form.get(name)
        return v[0] if v else None

    for required in ("mode", "line_items[0][price_data][currency]",
                     "line_items[0][price_data][unit_amount]",
                     "line_items[0][price_data][product_data][name]",
                     "line_items[0][quantity]", "success_url"):
        if one(required) is None:
            return stripe_error(400, "invalid_request_error", "parameter_missing",
                                f"Missing required param: {required}.")
    if one("mode") != "payment":
        return stripe_error(400, "invalid_request_error", "parameter_invalid", "mode")
    try:
        unit_amount = int(one("line_items[0][price_data][unit_amount]"))
        quantity = int(one("line_items[0][quantity]"))
    except ValueError:
        return stripe_error(400, "invalid_request_error", "parameter_invalid_integer",
                            "Invalid integer")
    if unit_amount < 1 or unit_amount > 99999999 or quantity < 1:
        return stripe_error(400, "invalid_request_error", "amount_too_large", "amount")
    currency = one("line_items[0][price_data][currency]")
    if len(currency) != 3 or not currency.islower():
        return stripe_error(400, "invalid_request_error", "parameter_invalid", "currency")
    now = int(time.time())
    expires_at = one("expires_at")
    if expires_at is not None:
        try:
            expires_at = int(expires_at)
        except ValueError:
            return stripe_error(400, "invalid_request_error", "parameter_invalid_integer",
                                "expires_at")
        # Stripe: between 30 minutes and 24 hours after creation.
        if expires_at < now + 30 * 60 or expires_at > now + 24 * 3600:
            return stripe_error(400, "invalid_request_error", "parameter_invalid",
                                "expires_at must be 30 minutes to 24 hours from now")
    else:
        expires_at = now + 24 * 3600
    sid = "cs_test_" + secrets.token_hex(16)
    metadata = {}
    for k, v in form.items():
        if k.startswith("metadata[") and k.endswith("]"):
            metadata[k[len("metadata["):-1]] = v[0]
    session = {
        "id": sid,
        "object": "checkout.session",
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_total": unit_amount * quantity,
        "amount_subtotal": unit_amount * quantity,
        "currency": currency,
        "client_reference_id": one("client_reference_id"),
        "metadata": metadata,
        "success_url": one("success_url"),
        "cancel_url": one("cancel_url"),
        "expires_at": expires_at,
        "created": now,
        "livemode": False,
        "payment_intent": None,
        "product_name": one("line_items[0][price_data][product_data][name]"),
        "url": f"http://127.0.0.1:{state.port}/c/pay/{sid}",
    }
    state.sessions[sid] = session
    return 200, public(session)


def public(session):
    return {k: v for k, v in session.items() if k != "product_name"}


def deliver(state, session, event_type="checkout.session.completed", t_offset=0,
            secret=None, event_id=None, raw_sig=None):
    """Sends one event; returns the delivery record (also appended to the log)."""
    if event_id is None:
        event_id = "evt_" + secrets.token_hex(12)
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": public(session)},
    }
    body = json.dumps(event, separators=(",", ":")).encode()
    t = int(time.time()) + t_offset
    sig = raw_sig if raw_sig is not None else sign(secret or state.webhook_secret, t, body)
    record = {"event_id": event_id, "type": event_type, "session": session["id"],
              "signature": sig, "sent": False, "status": None, "body": None}
    url = state.webhook_url
    if not url:
        record["body"] = "no webhook url configured"
    else:
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sig,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
        record["sent"] = True
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                record["status"] = r.status
                record["body"] = r.read(BODY_MAX).decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            record["status"] = e.code
            record["body"] = e.read(BODY_MAX).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            record["body"] = f"delivery failed: {e}"
    with state.lock:
        state.deliveries.append(record)
    return record


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-stripe"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read /_control/log instead
        pass

    @property
    def state(self):
        return self.server.state

    def reply(self, status, obj, content_type="application/json", headers=None):
        body = obj if isinstance(obj, bytes) else (
            obj.encode() if isinstance(obj, str) else json.dumps(obj).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_MAX:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def authorized(self):
        ok = self.headers.get("Authorization") == f"Bearer {self.state.secret_key}"
        if not ok:
            self.reply(*stripe_error(401, "invalid_request_error", None,
                                     "Invalid API Key provided"))
        return ok

    def record_call(self, **extra):
        with self.state.lock:
            self.state.api_calls.append({
                "method": self.command, "path": self.path,
                "idempotency_key": self.headers.get("Idempotency-Key"),
                "stripe_version": self.headers.get("Stripe-Version"),
                "authorized": self.headers.get("Authorization") ==
                f"Bearer {self.state.secret_key}", **extra})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        st = self.state
        if url.path.startswith("/v1/checkout/sessions/"):
            self.record_call()
            if not self.authorized():
                return
            sid = url.path[len("/v1/checkout/sessions/"):]
            with st.lock:
                s = st.sessions.get(sid)
                s = dict(s) if s else None
            if s is None:
                return self.reply(*stripe_error(404, "invalid_request_error", "resource_missing",
                                                f"No such checkout.session: '{sid}'"))
            return self.reply(200, public(s))
        if url.path.startswith("/c/pay/"):
            sid = url.path[len("/c/pay/"):]
            with st.lock:
                s = st.sessions.get(sid)
                s = dict(s) if s else None
            if s is None:
                return self.reply(404, "no such session", "text/plain")
            page = (f"<!doctype html><title>fake Stripe Checkout</title>"
                    f"<h1>{html.escape(s['product_name'] or '')}</h1>"
                    f"<p id=amount>{s['amount_total']} {html.escape(s['currency'].upper())}</p>"
                    f"<p id=status>{html.escape(s['payment_status'])}</p>"
                    f"<form method=post><button id=pay>Pay</button></form>")
            return self.reply(200, page, "text/html; charset=utf-8")
        if url.path == "/_control/log":
            with st.lock:
                return self.reply(200, {"deliveries": st.deliveries, "api_calls": st.api_calls})
        if url.path == "/_control/health":
            return self.reply(200, "ok", "text/plain")
        return self.reply(404, "not found", "text/plain")

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        st = self.state
        try:
            raw = self.read_body()
        except ValueError:
            return self.reply(413, "too large", "text/plain")
        if url.path == "/v1/checkout/sessions":
            self.record_call()
            if not self.authorized():
                return
            if not (self.headers.get("Content-Type") or "").startswith(
                    "application/x-www-form-urlencoded"):
                return self.reply(*stripe_error(400, "invalid_request_error", None,
                                                "form encoding expected"))
            form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
            key = self.headers.get("Idempotency-Key")
            with st.lock:
                if key and key in st.idempotency:
                    body, status, answer = st.idempotency[key]
                    if body != raw:
                        return self.reply(*stripe_error(
                            400, "idempotency_error", None,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with."))
                    return self.reply(status, answer, headers={"Idempotent-Replayed": "true"})
                status, answer = create_session(st, form)
                if key:
                    st.idempotency[key] = (raw, status, answer)
            return self.reply(status, answer)
        if url.path.startswith("/c/pay/"):
            sid = url.path[len("/c/pay/"):]
            rec = self.pay(sid, drop=False)
            if rec is None:
                return self.reply(404, "no such session", "text/plain")
            with st.lock:
                target = st.sessions[sid]["success_url"] or "/"
            return self.reply(303, "paid", "text/plain", {"Location": target})
        if url.path == "/_control/pay":
            try:
                amount = int(q["amount"]) if "amount" in q else None
            except ValueError:
                return self.reply(400, {"error": "amount"})
            rec = self.pay(q.get("session", ""), drop=q.get("drop_notify") == "1",
                           amount=amount, currency=q.get("currency"))
            if rec is None:
                return self.reply(404, {"error": "no such session"})
            return self.reply(200, rec)
        if url.path == "/_control/send":
            with st.lock:
                s = st.sessions.get(q.get("session", ""))
                s = dict(s) if s else None
            if s is None:
                return self.reply(404, {"error": "no such session"})
            try:
                t_offset = int(q.get("t_offset", "0"))
            except ValueError:
                return self.reply(400, {"error": "t_offset"})
            rec = deliver(st, s, q.get("type", "checkout.session.completed"), t_offset,
                          q.get("secret"), q.get("event_id"), q.get("sig"))
            return self.reply(200, rec)
        if url.path == "/_control/webhook":
            st.webhook_url = q.get("url", "")
            return self.reply(200, {"webhook_url": st.webhook_url})
        return self.reply(404, "not found", "text/plain")

    def pay(self, sid, drop, amount=None, currency=None):
        st = self.state
        with st.lock:
            s = st.sessions.get(sid)
            if s is None:
                return None
            s["status"] = "complete"
            s["payment_status"] = "paid"
            s["payment_intent"] = "pi_" + secrets.token_hex(12)
            if amount is not None:
                s["amount_total"] = amount
            if currency is not None:
                s["currency"] = currency
            snapshot = dict(s)
        if drop:
            rec = {"event_id": None, "type": "checkout.session.completed", "session": sid,
                   "signature": None, "sent": False, "status": None, "body": "dropped"}
            with st.lock:
                st.deliveries.append(rec)
            return rec
        return deliver(st, snapshot)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--webhook-secret", required=True)
    ap.add_argument("--webhook-url", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", default="")
    a = ap.parse_args()
    state = State(a.secret_key, a.webhook_secret, a.webhook_url)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.state = state
    state.port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{state.port}\n")
        os.rename(tmp, a.port_file)
    print(f"PORT {state.port}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
