#!/usr/bin/env python3
"""Page weight and time to interactive of the storefront and the admin console (issue 12).

    /usr/bin/python3 tools/bench-pages.py [build-dir (build)] [loads per page (5)]

Starts the real binary (tests/browser/kit.py: port 0, sandbox, a temp data dir) with a
demo product, then loads each page in headless Chromium `loads` times with a cold cache
(a new browser each time) and reports, from the browser's own Navigation and Resource
Timing: bytes on the wire (transferSize: gzip'ed where the server compressed), bytes
decoded, requests, and the median of domInteractive, DOMContentLoaded end and load end
(ms from navigation start, loopback). The JSON GETs a page makes count in its weight.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "browser"))
import kit  # noqa: E402

PAGES = [("catalogue", "/"), ("product", "/p/{pid}"), ("lookup", "/lookup"),
         ("order", "/order/{oid}#t={token}"), ("admin sign-in", "/admin")]

MEASURE = """
const nav = performance.getEntriesByType('navigation')[0];
const res = performance.getEntriesByType('resource');
let wire = nav.transferSize, decoded = nav.decodedBodySize;
for (const r of res) { wire += r.transferSize; decoded += r.decodedBodySize; }
return {wire, decoded, requests: 1 + res.length,
        interactive: nav.domInteractive, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
        files: res.map(r => [r.name.replace(location.origin, ''), r.transferSize, r.decodedBodySize])};
"""


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    loads = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with kit.Shop(os.path.join(build, "src", "keyvend")) as shop:
        pid = shop.product("Gift card 50", 5000, max_per_order=5)
        shop.import_keys(pid, ["BENCH-PAGE-%04d" % i for i in range(20)])
        status, _, o = shop.api("POST", "/api/v1/orders",
                                {"product_id": pid, "quantity": 1, "contact": "b@example.com"})
        assert status == 201, (status, o)
        order = o.get("order", o)
        print("%-14s %9s %9s %5s %9s %9s %9s" % ("page", "wire B", "decoded B", "reqs",
                                                 "interact", "DCL ms", "load ms"))
        for name, path in PAGES:
            url = shop.url + path.format(pid=pid, oid=order["order_id"], token=order["token"])
            runs = []
            for _ in range(loads):
                d = kit.driver(1280, 800, "en")
                try:
                    d.get(url)
                    kit.wait_until(lambda: d.execute_script(
                        "return document.readyState === 'complete' && "
                        "performance.getEntriesByType('navigation')[0].loadEventEnd > 0"),
                        what="load of " + url)
                    runs.append(d.execute_script(MEASURE))
                finally:
                    d.quit()
            med = lambda k: statistics.median(r[k] for r in runs)
            print("%-14s %9d %9d %5d %9.1f %9.1f %9.1f" % (
                name, med("wire"), med("decoded"), med("requests"), med("interactive"),
                med("dcl"), med("load")))
            for f in runs[-1]["files"]:
                print("    %-40s wire %7d  decoded %7d" % (f[0][:40], f[1], f[2]))


if __name__ == "__main__":
    main()
