#!/usr/bin/env python3
"""A loopback EPay (彩虹易支付 / "epay" SDK v1, MD5) server for keyvend's tests.

Python 3 standard library only. It speaks the protocol as the epay SDK documents it:

  GET|POST /submit.php   pid, type (optional: without it the "cashier" lets the buyer
                         choose), out_trade_no, notify_url, return_url, name, money, sign,
                         sign_type=MD5. The sign is checked (lowercase hex MD5 over
                         "k1=v1&k2=v2..." of the non-empty parameters except sign and
                         sign_type, sorted by key, raw values, then the key appended), the pid
                         must be the merchant's and money must be yuan with at most two
                         decimals. Accepted: 200 text/html, the cashier page, and the order is
                         recorded (unpaid). Refused: 400 text/plain naming what is wrong.
  GET /api.php?act=order&pid=..&key=..&out_trade_no=..
                         {"code":1,"msg":..,"trade_no","out_trade_no","api_trade_no","type",
                         "pid","addtime","endtime","name","money","status":0|1,"param","buyer"}
                         or {"code":-1,"msg":..} (a wrong key, an unknown order).

The test's control endpoints (not EPay's):

  POST /_control/pay?out_trade_no=..[&drop_notify=0|1][&money=..][&notify_method=GET|POST]
                     [&trade_status=..][&forge=0|1][&pid=..][&trade_no=..]
        marks the order paid (money: the amount the gateway says was paid, default the
        submitted one) and sends the signed notify to the order's notify_url (GET query or
        POST form), unless drop_notify=1. trade_status/forge/pid/trade_no change only the
        notify sent (forge: signed with a wrong key). Answers JSON
        {"sent":bool,"status":int,"body":str,"trade_no":str,"params":{...}}.
  POST /_control/notify?out_trade_no=..[&notify_method=GET|POST]
        sends the last notify of that order again, unchanged (a replay).
  POST /_control/order  (JSON or form body: out_trade_no, money, notify_url[, type, name])
        records an order as submit.php would have, without a buyer (a notify for an order the
        shop never started, or a money that keyvend would not sign).
  GET  /_control/notifies   [{"out_trade_no","method","params","status","body"}...]: every
                            notify sent (a dropped one is not sent) and keyvend's answer.
  GET  /_control/orders     {out_trade_no: {...}}
  GET  /_control/queries    {"count": n, "last": {...}}: the api.php queries received.

Usage: fake_epay.py --pid 1001 --key KEY [--port 0]. Prints one line,
"fake_epay listening on http://127.0.0.1:PORT", then serves until killed.
"""

import argparse
import hashlib
import hmac
import html
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MONEY_RE = re.compile(r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$")
NOTIFY_TIMEOUT_SECONDS = 15
BODY_BYTES_MAX = 64 * 1024


def link_string(params):
    return "&".join(
        "%s=%s" % (k, params[k])
        for k in sorted(params)
        if params[k] != "" and k not in ("sign", "sign_type"))


def sign(params, key):
    return hashlib.md5((link_string(params) + key).encode("utf-8")).hexdigest()


def parse_pairs(text):
    """Form/query text -> dict; a repeated name is an error (None)."""
    out = {}
    for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True):
        if k in out:
            return None
        out[k] = v
    return out


class State:
    def __init__(self, pid, key):
        self.pid = pid
        self.key = key
        self.lock = threading.Lock()
        self.orders = {}    # out_trade_no -> dict
        self.notifies = []  # what was sent and what keyvend answered
        self.last_notify = {}  # out_trade_no -> params
        self.queries = 0
        self.last_query = {}
        self.seq = 0

    def new_trade_no(self):
        self.seq += 1
        return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "%06d" % self.seq


class Handler(BaseHTTPRequestHandler):
    server_version = "fake_epay/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the test prints what it needs
        pass

    @property
    def st(self):
        return self.server.state

    def send(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, obj, status=200):
        self.send(status, json.dumps(obj, ensure_ascii=False), "application/json")

    def read_params(self):
        """Query params, plus a form body for POST. None on a repeated name."""
        url = urllib.parse.urlsplit(self.path)
        params = parse_pairs(url.query)
        if params is None:
            return url.path, None
        if self.command == "POST":
            n = int(self.headers.get("Content-Length") or 0)
            if n < 0 or n > BODY_BYTES_MAX:
                return url.path, None
            body = self.rfile.read(n).decode("utf-8", "replace")
            ctype = (self.headers.get("Content-Type") or "").lower()
            if body and ctype.startswith("application/json"):
                try:
                    extra = {k: str(v) for k, v in json.loads(body).items()}
                except (ValueError, AttributeError):
                    return url.path, None
            elif body:
                extra = parse_pairs(body)
                if extra is None:
                    return url.path, None
            else:
                extra = {}
            for k, v in extra.items():
                if k in params:
                    return url.path, None
                params[k] = v
        return url.path, params

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        path, params = self.read_params()
        if params is None:
            return self.send(400, "bad parameters")
        handlers = {
            "/submit.php": self.submit,
            "/api.php": self.api,
            "/_control/pay": self.control_pay,
            "/_control/notify": self.control_notify,
            "/_control/order": self.control_order,
            "/_control/notifies": self.control_notifies,
            "/_control/orders": self.control_orders,
            "/_control/queries": self.control_queries,
        }
        h = handlers.get(path)
        if h is None:
            return self.send(404, "not found")
        h(params)

    # --- EPay ---------------------------------------------------------------------------

    def submit(self, p):
        st = self.st
        got = p.get("sign", "")
        if not hmac.compare_digest(got.encode(), sign(p, st.key).encode()):
            return self.send(400, "sign error")
        if p.get("sign_type", "MD5") != "MD5":
            return self.send(400, "sign_type error")
        if p.get("pid") != st.pid:
            return self.send(400, "pid error")
        for f in ("out_trade_no", "notify_url", "name", "money"):
            if not p.get(f):
                return self.send(400, "missing " + f)
        if not MONEY_RE.match(p["money"]) or p["money"] in ("0", "0.0", "0.00"):
            return self.send(400, "money error")
        if not re.match(r"^[0-9A-Za-z_.-]{1,64}$", p["out_trade_no"]):
            return self.send(400, "out_trade_no error")
        with st.lock:
            o = st.orders.get(p["out_trade_no"])
            if o is not None and o["money"] != p["money"]:
                return self.send(400, "out_trade_no used with another money")
            if o is None:
                o = {
                    "out_trade_no": p["out_trade_no"],
                    "trade_no": st.new_trade_no(),
                    "type": p.get("type", ""),
                    "name": p["name"],
                    "money": p["money"],
                    "notify_url": p["notify_url"],
                    "return_url": p.get("return_url", ""),
                    "status": 0,
                    "addtime": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "endtime": "",
                    "submits": 0,
                }
                st.orders[p["out_trade_no"]] = o
            o["submits"] += 1
        page = ("<!doctype html><title>EPay cashier</title><p>Order %s: %s yuan (%s) by %s</p>"
                % (html.escape(o["out_trade_no"]), html.escape(o["money"]),
                   html.escape(o["name"]), html.escape(o["type"] or "cashier")))
        self.send(200, page, "text/html; charset=utf-8")

    def api(self, p):
        st = self.st
        with st.lock:
            st.queries += 1
            st.last_query = {k: v for k, v in p.items() if k != "key"}
        if p.get("act") != "order":
            return self.send_json({"code": -5, "msg": "no act"})
        if p.get("pid") != st.pid or not hmac.compare_digest(
                p.get("key", "").encode(), st.key.encode()):
            return self.send_json({"code": -3, "msg": "KEY校验失败"})
        with st.lock:
            o = st.orders.get(p.get("out_trade_no", ""))
            o = dict(o) if o is not None else None
        if o is None:
            return self.send_json({"code": -1, "msg": "订单号不存在"})
        self.send_json({
            "code": 1, "msg": "查询订单号成功！", "trade_no": o["trade_no"],
            "out_trade_no": o["out_trade_no"], "api_trade_no": "API" + o["trade_no"],
            "type": o["type"] or "alipay", "pid": int(st.pid), "addtime": o["addtime"],
            "endtime": o["endtime"], "name": o["name"], "money": o["money"],
            "status": o["status"], "param": "", "buyer": ""})

    # --- control ------------------------------------------------------------------------

    def control_order(self, p):
        st = self.st
        if not p.get("out_trade_no") or "money" not in p or not p.get("notify_url"):
            return self.send(400, "out_trade_no, money and notify_url are required")
        with st.lock:
            st.orders[p["out_trade_no"]] = {
                "out_trade_no": p["out_trade_no"], "trade_no": st.new_trade_no(),
                "type": p.get("type", "alipay"), "name": p.get("name", "test"),
                "money": p["money"], "notify_url": p["notify_url"], "return_url": "",
                "status": 0, "addtime": time.strftime("%Y-%m-%d %H:%M:%S"), "endtime": "",
                "submits": 0}
        self.send_json({"ok": True})

    def control_pay(self, p):
        st = self.st
        oid = p.get("out_trade_no", "")
        with st.lock:
            o = st.orders.get(oid)
            if o is None:
                return self.send(404, "no such order (was submit.php called?)")
            if "money" in p:
                o["money"] = p["money"]
            if p.get("trade_no"):
                o["trade_no"] = p["trade_no"]
            o["status"] = 1
            o["endtime"] = time.strftime("%Y-%m-%d %H:%M:%S")
            params = {
                "pid": p.get("pid", st.pid), "trade_no": o["trade_no"], "out_trade_no": oid,
                "type": o["type"] or "alipay", "name": o["name"], "money": o["money"],
                "trade_status": p.get("trade_status", "TRADE_SUCCESS"),
            }
            params["sign"] = sign(params, "forged-" + st.key if p.get("forge") == "1" else st.key)
            params["sign_type"] = "MD5"
            st.last_notify[oid] = params
            url = o["notify_url"]
        if p.get("drop_notify") == "1":
            return self.send_json({"sent": False, "trade_no": params["trade_no"],
                                   "params": params})
        status, body = self.deliver(url, params, p.get("notify_method", "GET"), oid)
        self.send_json({"sent": True, "status": status, "body": body,
                        "trade_no": params["trade_no"], "params": params})

    def control_notify(self, p):
        st = self.st
        oid = p.get("out_trade_no", "")
        with st.lock:
            params = st.last_notify.get(oid)
            url = st.orders[oid]["notify_url"] if oid in st.orders else None
        if params is None or url is None:
            return self.send(404, "no notify of that order to send again")
        status, body = self.deliver(url, params, p.get("notify_method", "GET"), oid)
        self.send_json({"sent": True, "status": status, "body": body, "params": params})

    def deliver(self, url, params, method, oid):
        data = urllib.parse.urlencode(params)
        if method == "POST":
            req = urllib.request.Request(url, data=data.encode(), method="POST", headers={
                "Content-Type": "application/x-www-form-urlencoded"})
        else:
            req = urllib.request.Request(url + ("&" if "?" in url else "?") + data)
        try:
            with urllib.request.urlopen(req, timeout=NOTIFY_TIMEOUT_SECONDS) as res:
                status, body = res.status, res.read(65536).decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read(65536).decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as e:
            status, body = -1, "unreachable: %s" % e
        with self.st.lock:
            self.st.notifies.append({"out_trade_no": oid, "method": method, "params": params,
                                     "status": status, "body": body})
        return status, body

    def control_notifies(self, p):
        with self.st.lock:
            self.send_json(list(self.st.notifies))

    def control_orders(self, p):
        with self.st.lock:
            self.send_json(dict(self.st.orders))

    def control_queries(self, p):
        with self.st.lock:
            self.send_json({"count": self.st.queries, "last": self.st.last_query})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pid", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args.pid, args.key)
    print("fake_epay listening on http://127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
