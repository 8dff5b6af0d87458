#!/usr/bin/env python3
"""A merchant's webhook receiver on loopback, for keyvend's black-box tests (issue 14).

Usage: webhook_receiver.py --secret SECRET
Prints "PORT <n>" on stdout once listening on 127.0.0.1.

POST /hook: verifies Keyvend-Signature ("t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>")
with Python's own hmac, independently of keyvend's code, and that Keyvend-Event-Id equals the
body's "id". A bad signature or id: 401 (recorded with valid=false). While failing is on:
500 (recorded as refused). Otherwise 200 and the event is recorded.
GET  /control/events: {"events": [{"id","type","valid","status","body"}...], "refused": n}
GET  /control/summary: {"accepted": {id: times}, "invalid": n, "refused": n, "types": {type: n},
     "first_at", "last_at": unix seconds (float) of the first and last accepted event, or null}
     (no bodies: cheap enough to poll while thousands of events arrive)
POST /control/fail?on=1|0: answer every event with 500 from now on, or stop.
This is how a merchant verifies and dedupes: recompute the HMAC over "<t>.<raw body>",
compare in constant time, check t is recent, then keep each "id" once.
"""

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class State:
    def __init__(self, secret):
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.events = []
        self.refused = 0
        self.accepted = {}
        self.invalid = 0
        self.types = {}
        self.first_at = None
        self.last_at = None
        self.fail = False


def verify(secret, header, body):
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, v1 = parts.get("t"), parts.get("v1")
    if not t or not v1 or not t.isdigit():
        return False
    want = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, v1)


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # The head and the body are two writes: without TCP_NODELAY the body of an answer on
        # a kept-alive connection waits for the client's delayed ACK (~40 ms on Linux).
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def answer(self, code, payload=b""):
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            path = urlparse(self.path).path
            with state.lock:
                if path == "/control/events":
                    payload = json.dumps({"events": state.events, "refused": state.refused})
                elif path == "/control/summary":
                    payload = json.dumps({"accepted": state.accepted, "invalid": state.invalid,
                                          "refused": state.refused, "types": state.types,
                                          "first_at": state.first_at,
                                          "last_at": state.last_at})
                else:
                    payload = None
            if payload is None:
                return self.answer(404)
            self.answer(200, payload.encode())

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            url = urlparse(self.path)
            if url.path == "/control/fail":
                with state.lock:
                    state.fail = parse_qs(url.query).get("on", ["1"])[0] == "1"
                return self.answer(200, b"{}")
            if url.path != "/hook":
                return self.answer(404)
            valid = verify(state.secret, self.headers.get("Keyvend-Signature", ""), body)
            try:
                doc = json.loads(body)
                valid = valid and doc.get("id") == self.headers.get("Keyvend-Event-Id")
            except ValueError:
                doc, valid = {}, False
            with state.lock:
                if valid and state.fail:
                    state.refused += 1
                    code = 500
                else:
                    code = 200 if valid else 401
                    state.events.append({"id": doc.get("id"), "type": doc.get("type"),
                                         "valid": valid, "status": code,
                                         "body": body.decode("utf-8", "replace")})
                    if valid:
                        eid = str(doc.get("id"))
                        state.accepted[eid] = state.accepted.get(eid, 0) + 1
                        kind = str(doc.get("type"))
                        state.types[kind] = state.types.get(kind, 0) + 1
                        state.last_at = time.time()
                        if state.first_at is None:
                            state.first_at = state.last_at
                    else:
                        state.invalid += 1
            self.answer(code, b"{}")

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    args = ap.parse_args()
    state = State(args.secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
