#!/usr/bin/env python3
"""Checks that tests/fakes/fake_epay.py speaks the EPay protocol: starts it, plays a merchant
(signing submit.php requests with code written here, not the fake's) and a notify receiver
(verifying the fake's notifies), and checks every answer. Exit 0 when all hold."""

import hashlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PID, KEY = "1001", "K3y"
ORDER = "0123456789abcdef0123456789abcdef"
FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def md5_sign(params, key=KEY):
    s = "&".join(k + "=" + params[k] for k in sorted(params)
                 if params[k] and k not in ("sign", "sign_type"))
    return hashlib.md5((s + key).encode()).hexdigest()


class Receiver(BaseHTTPRequestHandler):
    """keyvend's side of the notify: verifies the sign, answers success or fail."""
    got = []

    def log_message(self, *a):
        pass

    def handle_one(self):
        url = urllib.parse.urlsplit(self.path)
        p = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if self.command == "POST":
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            p.update(urllib.parse.parse_qsl(body, keep_blank_values=True))
        good = p.get("sign") == md5_sign(p) and p.get("pid") == PID
        Receiver.got.append((self.command, p, good))
        data = b"success" if good else b"fail"
        self.send_response(200 if good else 400)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = handle_one
    do_POST = handle_one


def http(method, url, data=None):
    req = urllib.request.Request(url, data=data.encode() if data is not None else None,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    recv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=recv.serve_forever, daemon=True).start()
    notify_url = "http://127.0.0.1:%d/api/v1/payments/epay/notify" % recv.server_address[1]

    fake = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_epay.py"), "--pid", PID,
                             "--key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        line = fake.stdout.readline()
        check(line.startswith("fake_epay listening on http://127.0.0.1:"), "listening line")
        base = line.split(" on ", 1)[1].strip()

        # The exact URL keyvend's adapter builds (src/pay/epay_test.cc's known answer), by
        # pay.example.com: the fake accepts keyvend's signature.
        known = ("money=12.34&name=Steam%20100%E5%85%83%20%E5%8D%A1%20%26%20more&notify_url="
                 "https%3A%2F%2Fshop.example%2Fapi%2Fv1%2Fpayments%2Fepay%2Fnotify&out_trade_no="
                 "0123456789abcdef0123456789abcdef&pid=1001&return_url=https%3A%2F%2Fshop.exampl"
                 "e%2Forder%2F0123456789abcdef0123456789abcdef&type=alipay&sign="
                 "5b6cc4b201fa938839e79feb92d3674d&sign_type=MD5")
        st, body = http("GET", base + "/submit.php?" + known)
        check(st == 200 and "12.34" in body, "submit.php accepts keyvend's known-answer URL")
        # Re-submit that order with our own notify_url (another money would be refused).
        st, _ = http("GET", base + "/submit.php?" + known.replace("money=12.34", "money=1.00"))
        check(st == 400, "the same out_trade_no with another money is refused")

        def submit(**over):
            p = {"pid": PID, "type": "alipay", "out_trade_no": "ord2", "notify_url": notify_url,
                 "return_url": "http://127.0.0.1/order/ord2", "name": "卡 & key", "money": "1.10"}
            p.update(over)
            p["sign"] = md5_sign(p)
            p["sign_type"] = "MD5"
            return http("GET", base + "/submit.php?" + urllib.parse.urlencode(p))

        check(submit()[0] == 200, "submit.php accepts a signed request")
        p = {"pid": PID, "out_trade_no": "ord3", "notify_url": notify_url, "name": "n",
             "money": "1.00"}
        p["sign"] = md5_sign(p, "wrong")
        check(http("GET", base + "/submit.php?" + urllib.parse.urlencode(p))[0] == 400,
              "submit.php refuses a wrong sign")
        check(submit(pid="1002", out_trade_no="ord4")[0] == 400, "submit.php refuses another pid")
        for m in ("1,00", "-1", "1e3", "0"):
            check(submit(money=m, out_trade_no="ord5")[0] == 400, "submit.php refuses money " + m)
        check(submit(type="", out_trade_no="ord6")[0] == 200, "submit.php without type (cashier)")
        # POST form to submit.php works too.
        p = {"pid": PID, "out_trade_no": "ord7", "notify_url": notify_url, "name": "n",
             "money": "0.01"}
        p["sign"] = md5_sign(p)
        check(http("POST", base + "/submit.php", urllib.parse.urlencode(p))[0] == 200,
              "submit.php by POST form")

        def query(oid, key=KEY):
            q = urllib.parse.urlencode({"act": "order", "pid": PID, "key": key,
                                        "out_trade_no": oid})
            return json.loads(http("GET", base + "/api.php?" + q)[1])

        q = query("ord2")
        check(q["code"] == 1 and q["status"] == 0 and q["money"] == "1.10" and
              q["out_trade_no"] == "ord2", "api.php: submitted, not paid")
        check(query("ord2", "wrong")["code"] != 1, "api.php refuses a wrong key")
        check(query("nope")["code"] == -1, "api.php: unknown order")

        # Pay with a GET notify.
        st, body = http("POST", base + "/_control/pay?out_trade_no=ord2")
        r = json.loads(body)
        check(r["sent"] and r["status"] == 200 and r["body"] == "success", "pay: GET notify sent")
        m, got, good = Receiver.got[-1]
        check(m == "GET" and good and got["trade_status"] == "TRADE_SUCCESS" and
              got["money"] == "1.10" and got["out_trade_no"] == "ord2" and
              got["name"] == "卡 & key" and got["sign_type"] == "MD5", "the notify is signed")
        q = query("ord2")
        check(q["status"] == 1 and q["trade_no"] == got["trade_no"], "api.php: paid")
        # Replay.
        n = len(Receiver.got)
        r = json.loads(http("POST", base + "/_control/notify?out_trade_no=ord2")[1])
        check(len(Receiver.got) == n + 1 and Receiver.got[-1][1] == got and r["body"] == "success",
              "replay sends the same notify")
        # POST form notify, with a changed money.
        r = json.loads(http("POST", base + "/_control/pay?out_trade_no=ord6&notify_method=POST"
                            "&money=" + urllib.parse.quote("1,00"))[1])
        m, got, good = Receiver.got[-1]
        check(m == "POST" and good and got["money"] == "1,00" and r["body"] == "success",
              "POST form notify with money 1,00")
        check(query("ord6")["money"] == "1,00", "api.php tells the same money")
        # Forged, other pid, other state.
        r = json.loads(http("POST", base + "/_control/pay?out_trade_no=ord7&forge=1")[1])
        check(not Receiver.got[-1][2] and r["status"] == 400 and r["body"] == "fail",
              "forge=1 sends a wrongly signed notify")
        r = json.loads(http("POST", base + "/_control/pay?out_trade_no=ord7&pid=1002")[1])
        check(Receiver.got[-1][1]["pid"] == "1002" and r["body"] == "fail", "pid override")
        r = json.loads(http("POST", base + "/_control/pay?out_trade_no=ord7"
                            "&trade_status=TRADE_CLOSED")[1])
        check(Receiver.got[-1][1]["trade_status"] == "TRADE_CLOSED" and Receiver.got[-1][2],
              "trade_status override, still signed")
        # Dropped notify: nothing sent, api.php says paid.
        http("POST", base + "/_control/order", urllib.parse.urlencode(
            {"out_trade_no": "ord8", "money": "99999.99", "notify_url": notify_url}))
        n = len(Receiver.got)
        r = json.loads(http("POST", base + "/_control/pay?out_trade_no=ord8&drop_notify=1")[1])
        check(not r["sent"] and len(Receiver.got) == n, "drop_notify=1 sends nothing")
        q = query("ord8")
        check(q["status"] == 1 and q["money"] == "99999.99", "api.php: the dropped one is paid")
        # The log of notifies and answers.
        log = json.loads(http("GET", base + "/_control/notifies")[1])
        check(len(log) == 6 and log[0]["body"] == "success" and log[-1]["body"] == "success" and
              log[2]["method"] == "POST", "the notify log")
        qs = json.loads(http("GET", base + "/_control/queries")[1])
        check(qs["count"] >= 6 and "key" not in qs["last"], "the query log (without the key)")
        check(http("POST", base + "/_control/pay?out_trade_no=none")[0] == 404,
              "pay of an unknown order: 404")
    finally:
        fake.kill()
        fake.wait()
        recv.shutdown()
    print("fake_epay self-check: %s" % ("OK" if not FAILURES else "%d FAILED" % len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
