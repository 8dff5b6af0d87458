"""The browser tests' kit (issue 12): a real `keyvend serve` on port 0 and headless Chromium.

    with Shop(keyvend_bin) as shop:            # temp data dir, sandbox payments
        status, headers, body = shop.api("GET", "/api/v1/products")
        pid = shop.product("Gift card", 500)
        shop.import_keys(pid, ["KEY-1", "KEY-2"])
        d = driver(1280, 800, "en")           # headless Chromium, browser log kept
        d.get(shop.url + "/")
        wait_for(d, ".product", text="Gift card")
        shot(d, "catalogue-1280")              # <shots>/catalogue-1280.png, path printed
        assert_no_console_errors(d)            # CSP violations and JS errors are SEVERE

Everything is bounded: the server's start, each wait (a poll with a deadline) and the stop.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ADMIN_TOKEN = "adm-browser-3c2b1a09f8e7d6c5b4a39281-77"
PAYMENT_SECRET = "pay-browser-secret-0f1e2d3c4b5a6978"
SHOTS_DIR = os.environ.get("KEYVEND_SHOTS_DIR", os.path.join(tempfile.gettempdir(), "keyvend-shots"))


class Shop:
    """`keyvend serve` on 127.0.0.1:0 with the sandbox gateway and a temp data dir."""

    def __init__(self, keyvend_bin, flags=()):
        self.bin = keyvend_bin
        self.flags = list(flags)
        self.dir = None
        self.proc = None
        self.url = None
        self.admin_token = ADMIN_TOKEN

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="kv-browser-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYVEND_")}
        env.update(KEYVEND_ADMIN_TOKEN=ADMIN_TOKEN, KEYVEND_PAYMENT_SECRET=PAYMENT_SECRET)
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--listen", "127.0.0.1:0", "--payment-sandbox",
             "--data-dir", os.path.join(self.dir, "data")] + self.flags,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if not ready:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("keyvend exited: " + seen.decode(errors="replace"))
            seen += line
            m = re.search(rb"keyvend listening on (http://\S+)", line)
            if m:
                self.url = m.group(1).decode()
                return self
        raise RuntimeError("keyvend did not start: " + seen.decode(errors="replace"))

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def api(self, method, path, body=None, admin=False, headers=None, raw=None):
        """(status, headers, JSON or text) of one request; body is JSON-encoded unless raw."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if body is not None and raw is None:
            req.add_header("Content-Type", "application/json")
        if admin:
            req.add_header("Authorization", "Bearer " + self.admin_token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                status, hdrs, text = r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, dict(e.headers), e.read().decode()
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text

    def product(self, name, price_cents=500, currency="EUR", **extra):
        body = dict(name=name, price_cents=price_cents, currency=currency, **extra)
        status, _, j = self.api("POST", "/api/v1/admin/products", body, admin=True)
        assert status == 201, (status, j)
        return j["id"]

    def import_keys(self, product_id, keys):
        status, _, j = self.api("POST", "/api/v1/admin/products/%s/keys" % product_id,
                                admin=True, raw=("\n".join(keys) + "\n").encode(),
                                headers={"Content-Type": "text/plain"})
        assert status in (200, 201), (status, j)
        return j


def driver(width=1280, height=800, lang="en"):
    """Headless Chromium (Debian's chromium + chromium-driver) at width x height, asking for
    `lang` first (Accept-Language and navigator.languages), with its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--disable-extensions", "--window-size=%d,%d" % (width, height),
              "--lang=" + lang, "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"intl.accept_languages": lang})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    # The window's outer size includes no chrome in headless mode; make the viewport exact.
    d.set_window_size(width, height)
    inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner and (inner[0] != width or inner[1] != height):
        d.set_window_size(2 * width - inner[0], 2 * height - inner[1])
    return d


def wait_for(d, css, text=None, timeout=15, visible=True):
    """The first element matching css (and containing text, when given), polled until timeout."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for el in d.find_elements(By.CSS_SELECTOR, css):
            try:
                if visible and not el.is_displayed():
                    continue
                if text is None or text in el.text:
                    return el
                last = el.text
            except Exception:  # stale: the page re-rendered meanwhile
                pass
        time.sleep(0.1)
    raise AssertionError("no %r%s within %ss (last text: %r) on %s" %
                         (css, "" if text is None else " with %r" % text, timeout, last,
                          d.current_url))


def wait_until(fn, timeout=15, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def shot(d, name):
    """Writes <shots>/<name>.png and prints its path (listed in the test output)."""
    os.makedirs(SHOTS_DIR, exist_ok=True)
    path = os.path.join(SHOTS_DIR, name + ".png")
    d.save_screenshot(path)
    print("screenshot:", path, flush=True)
    return path


def console_errors(d):
    """SEVERE entries of the browser log since the last call (CSP violations, JS errors)."""
    return [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]


def assert_no_console_errors(d, allow=()):
    bad = [e for e in console_errors(d)
           if not any(a in e.get("message", "") for a in allow)]
    assert not bad, "console errors: %r" % bad


def alert_open(d):
    """Whether a JavaScript dialog (alert/confirm/prompt) is open."""
    try:
        d.switch_to.alert.text
        return True
    except Exception:
        return False
