"""The merchant console (/admin) in headless Chromium against the real keyvend (issue 12).

    python3 tests/browser/admin_test.py <keyvend binary> <screenshot dir>

The admin path: sign in (a wrong token first), create a product, import keys by uploading
files and read the line-numbered report (and its download), see the stock move on the
product page and the dashboard, pay an order through the sandbox and refund it, cancel an
unpaid one, export the orders as CSV, see the refund-due payment and the backorder (replay),
take a backup and see it listed, edit the product, retire a key batch, deactivate it.
Products named `<script>alert(1)</script>` and `"><img src=x onerror=alert(1)>` show as text on every page,
no dialog opens, and no page logs a SEVERE console entry (CSP violations and JS errors).
Every page is shot at 1280x800 and 390x844. No timing assertions: every wait is a bounded poll.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kit  # noqa: E402
from kit import Shop, driver, wait_for, wait_until, shot  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.join(HERE, "..", "..", "src", "web", "assets")
XSS_NAMES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
KEYVEND_BIN = None


def table(lang):
    with open(os.path.join(ASSETS, "i18n", "admin.%s.json" % lang), encoding="utf-8") as f:
        return json.load(f)


EN = table("en")
ZH = table("zh-CN")
# A language-table key shown as text ("nav.orders") means a string went missing.
KEY_SHOWN = re.compile(r"(?<![\w.])(?:%s)(?![\w.])" % "|".join(re.escape(k) for k in EN))


def By():
    from selenium.webdriver.common.by import By as _By
    return _By


class AdminConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="kv-admin-test-")
        cls.backup_dir = os.path.join(cls.tmp, "backups")
        cls.downloads = os.path.join(cls.tmp, "downloads")
        os.makedirs(cls.downloads)
        cls.shop = Shop(KEYVEND_BIN, flags=["--backup-dir", cls.backup_dir]).__enter__()
        s = cls.shop
        # Two products whose names are markup, one with keys and an order, so that their
        # names reach the dashboard, the product pages, the order list and an order page.
        cls.xss_ids = [s.product(n, 300, "EUR", description=n) for n in XSS_NAMES]
        s.import_keys(cls.xss_ids[0], ["XSS-KEY-%d" % i for i in range(5)])
        cls.xss_order = cls.order(cls.xss_ids[0], contact=XSS_NAMES[1])
        cls.pay(cls.xss_order)
        cls.pay(cls.xss_order)  # a second payment: recorded for a refund (refund_due)
        # A paid order waiting for keys (a backorder in the delivery log).
        cls.bo_pid = s.product("Backorder card", 1200, "EUR", stock_mode="on_payment",
                               allow_backorder=True)
        cls.bo_order = cls.order(cls.bo_pid)
        cls.pay(cls.bo_order)

    @classmethod
    def tearDownClass(cls):
        cls.shop.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def order(cls, pid, contact="buyer@example.com", quantity=1):
        status, _, j = cls.shop.api("POST", "/api/v1/orders",
                                    {"product_id": pid, "quantity": quantity, "contact": contact})
        assert status == 201, (status, j)
        return j["order_id"]

    @classmethod
    def pay(cls, order_id):
        status, _, body = cls.shop.api("POST", "/sandbox/pay/" + order_id, raw=b"")
        assert status == 200, (status, body)

    def admin_order(self, order_id):
        status, _, j = self.shop.api("GET", "/api/v1/admin/orders/" + order_id, admin=True)
        self.assertEqual(status, 200, j)
        return j

    # --- browser helpers -----------------------------------------------------------------

    def browser(self, width, height, lang="en"):
        d = driver(width, height, lang)
        self.addCleanup(d.quit)
        # Downloads (the import report, the CSV export) land in a directory we can read.
        d.execute_cdp_cmd("Page.setDownloadBehavior",
                          {"behavior": "allow", "downloadPath": self.downloads})
        return d

    def sign_in(self, d, token=None):
        d.get(self.shop.url + "/admin")
        field = wait_for(d, "#token")
        field.send_keys(token or self.shop.admin_token)
        d.find_element(By().CSS_SELECTOR, "#signin button[type=submit]").click()

    def clean(self, d, allow=()):
        """No dialog open, no SEVERE console entry, no text that looks like a missing string."""
        self.assertFalse(kit.alert_open(d), "a dialog is open on " + d.current_url)
        kit.assert_no_console_errors(d, allow=allow)
        text = d.find_element(By().TAG_NAME, "body").text
        missing = KEY_SHOWN.search(text)
        self.assertIsNone(missing, "a key instead of its string on %s: %r" % (
            d.current_url, missing and missing.group(0)))

    def nav(self, d, route):
        d.find_element(By().CSS_SELECTOR, '#nav a[data-route="%s"]' % route).click()
        wait_for(d, '#nav a[data-route="%s"][aria-current="page"]' % route)

    def accept_confirm(self, d):
        alert = wait_until(lambda: self._alert(d), what="the confirm dialog")
        alert.accept()

    @staticmethod
    def _alert(d):
        try:
            a = d.switch_to.alert
            a.text  # raises when none is open
            return a
        except Exception:
            return None

    def downloaded(self, suffix):
        """The text of the download whose name ends in `suffix`, once it is written:
        Chromium may create the file before it has written it (a CI run read it empty once),
        so the text must be non-empty and the same in two reads 0.2 s apart."""
        def read(path):
            with open(path, encoding="utf-8") as f:
                return f.read()

        def find():
            for n in os.listdir(self.downloads):
                if n.endswith(suffix):
                    path = os.path.join(self.downloads, n)
                    text = read(path)
                    time.sleep(0.2)
                    if text and read(path) == text:
                        return text
            return None
        return wait_until(find, what="a non-empty download ending in " + suffix)

    def assert_xss_as_text(self, d):
        """Markup in names stays text: the literal names are on the page, and neither an
        <img> nor a script of theirs made it into the DOM."""
        for name in XSS_NAMES:
            wait_for(d, "main", text=name)
        self.assertEqual(d.execute_script("return document.querySelectorAll('img').length"), 0)
        scripts = d.execute_script(
            "return [...document.scripts].map(s => s.getAttribute('src'))")
        self.assertEqual(sorted(scripts), ["/assets/admin.js", "/assets/vendor/chart.min.js"])
        self.clean(d)

    # --- the tests -----------------------------------------------------------------------

    def test_wrong_token_is_refused(self):
        d = self.browser(1280, 800)
        d.get(self.shop.url + "/admin")
        wait_for(d, "#token")
        shot(d, "admin-signin-1280")
        self.sign_in(d, "not-the-admin-token-" + "x" * 20)
        wait_for(d, "#signin-error", text=EN["signin.rejected"])
        self.assertEqual(d.find_elements(By().CSS_SELECTOR, "#nav")[0].is_displayed(), False)
        shot(d, "admin-signin-error-1280")
        # The refused request is the one SEVERE entry Chromium logs (a 401 from the API).
        self.clean(d, allow=("401",))

    def test_admin_path(self):
        d = self.browser(1280, 800)
        s = self.shop
        self.sign_in(d)
        # What needs the merchant: the second payment to refund, the backorder waiting.
        wait_for(d, "#tile-refundDue", text="1")
        wait_for(d, "#tile-backordered", text="1")
        self.clean(d)

        # Create a product through the form; the console opens its page.
        self.nav(d, "products")
        wait_for(d, "#products-table")
        wait_for(d, "#create-product summary").click()
        form = wait_for(d, "#product-new")
        form.find_element(By().NAME, "name").send_keys("Browser card")
        form.find_element(By().NAME, "price_cents").send_keys("700")
        cur = form.find_element(By().NAME, "currency")
        cur.clear()
        cur.send_keys("EUR")
        shot(d, "admin-products-new-1280")
        form.find_element(By().CSS_SELECTOR, "button[type=submit]").click()
        wait_for(d, "#product-title", text="Browser card")
        pid = d.current_url.rstrip("/").split("/")[-1]
        status, _, listed = s.api("GET", "/api/v1/admin/products", admin=True)
        created = [p for p in listed["products"] if p["id"] == pid]
        self.assertEqual([(p["name"], p["price_cents"], p["currency"]) for p in created],
                         [("Browser card", 700, "EUR")])
        wait_for(d, "#counts dd", text="0")

        # Import two files: a text file with an empty line and a repeated key, and a CSV.
        txt = os.path.join(self.tmp, "keys.txt")
        with open(txt, "w") as f:
            f.write("BRW-1\nBRW-2\n\nBRW-3\nBRW-2\n")
        csv = os.path.join(self.tmp, "more.csv")
        with open(csv, "w") as f:
            f.write("key,note\nBRW-4,a\nBRW-5,b\n")
        d.find_element(By().CSS_SELECTOR, "#import-files").send_keys(txt + "\n" + csv)
        d.find_element(By().CSS_SELECTOR, "#import-go").click()
        reports = wait_until(lambda: len(d.find_elements(By().CSS_SELECTOR, ".report")) == 2
                             and d.find_elements(By().CSS_SELECTOR, ".report"),
                             what="two import reports")
        first = reports[0].text
        self.assertIn(EN["import.summary"].format(imported=3, duplicates=1, rejected=1, served=0),
                      first)
        # The rejected line by its number and reason.
        self.assertIn("3", reports[0].find_element(By().CSS_SELECTOR, "td.num").text)
        self.assertIn(EN["reject.empty"], first)
        self.assertIn(EN["import.summary"].format(imported=2, duplicates=0, rejected=0, served=0),
                      reports[1].text)
        self.assertEqual(len(d.find_elements(By().CSS_SELECTOR, "#import-results progress")), 2)
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", reports[0])
        shot(d, "admin-product-import-1280")
        # The report's download.
        reports[0].find_element(By().CSS_SELECTOR, "button").click()
        report = self.downloaded("keys.txt.report.txt")
        self.assertIn(EN["import.lineReason"].format(line=3, reason=EN["reject.empty"]), report)
        self.assertIn("%s: 3" % EN["import.imported"], report)
        # The stock moved: on the product page, through the API and on the dashboard.
        wait_until(lambda: d.find_element(By().CSS_SELECTOR, "#counts dd").text == "5",
                   what="5 sellable keys on the product page")
        wait_for(d, "#batches-table tbody tr")
        self.assertEqual(len(d.find_elements(By().CSS_SELECTOR, "#batches-table tbody tr")), 2)
        self.clean(d)

        self.nav(d, "dashboard")
        row = '#stock-table tr[data-id="%s"]' % pid
        wait_until(lambda: self.cell(d, row, 1) == "5", what="stock 5 on the dashboard")

        # An order paid through the sandbox: the dashboard's stock and sales move.
        paid = self.order(pid, contact="refund-me@example.com")
        self.pay(paid)
        self.assertEqual(self.admin_order(paid)["status"], "delivered")
        wait_until(lambda: self.cell(d, row, 1) == "4" and self.cell(d, row, 4) == "1",
                   what="stock 4, delivered 1 on the dashboard")
        shot(d, "admin-dashboard-1280")
        self.clean(d)

        # Orders: find the paid order by its id, open it, refund it.
        self.nav(d, "orders")
        wait_for(d, "#orders-table")
        shot(d, "admin-orders-1280")
        q = d.find_element(By().CSS_SELECTOR, "#order-q")
        q.send_keys(paid)
        d.find_element(By().CSS_SELECTOR, "#order-search button[type=submit]").click()
        wait_until(lambda: len(d.find_elements(By().CSS_SELECTOR, "#orders-table tbody tr")) == 1,
                   what="one search result")
        shot(d, "admin-orders-search-1280")
        wait_for(d, '#orders-table a[href="/admin/orders/%s"]' % paid).click()
        wait_for(d, "#order-title", text=paid)
        wait_for(d, "main", text="refund-me@example.com")
        d.find_element(By().CSS_SELECTOR, "#show-keys").click()
        wait_for(d, "#order-keys li", text="BRW-")
        shot(d, "admin-order-1280")
        d.find_element(By().CSS_SELECTOR, "#order-refund").click()
        self.accept_confirm(d)
        wait_for(d, "#flash", text=EN["status.refunded"])
        self.assertEqual(self.admin_order(paid)["status"], "refunded")
        self.assertEqual(d.find_elements(By().CSS_SELECTOR, "#order-refund"), [])

        # An unpaid order is cancelled from its page (search by contact this time).
        unpaid = self.order(pid, contact="cancel-me@example.com")
        self.nav(d, "orders")
        q = wait_for(d, "#order-q")
        q.clear()
        q.send_keys("cancel-me")
        d.find_element(By().CSS_SELECTOR, "#order-search button[type=submit]").click()
        wait_for(d, '#orders-table a[href="/admin/orders/%s"]' % unpaid).click()
        # "Check payment now" asks the gateways of its attempts (it has none: nothing to
        # ask) and changes nothing they did not say.
        wait_for(d, "#order-check-payment").click()
        wait_for(d, "#flash", text=EN["order.checked"].split("{")[0].strip())
        self.assertEqual(self.admin_order(unpaid)["status"], "pending_payment")
        shot(d, "admin-order-pending-1280")
        wait_for(d, "#order-cancel").click()
        self.accept_confirm(d)
        wait_for(d, "#flash", text=EN["status.cancelled"])
        self.assertEqual(self.admin_order(unpaid)["status"], "cancelled")
        self.clean(d)

        # CSV export: the download holds the header and both orders.
        self.nav(d, "orders")
        wait_for(d, "#export-csv").click()
        csv_text = self.downloaded(".csv")
        self.assertTrue(csv_text.startswith("order_id,status,product_id"), csv_text[:80])
        self.assertIn("%s,refunded,%s" % (paid, pid), csv_text)
        self.assertIn("%s,cancelled,%s" % (unpaid, pid), csv_text)
        wait_for(d, "#flash", text=EN["orders.exported"].split("(")[0].strip())

        # Payments needing a refund: the second payment of an order.
        self.nav(d, "payments")
        wait_for(d, '#payments-table a[href="/admin/orders/%s"]' % self.xss_order)
        wait_for(d, "#payments-table", text=EN["flag.second_payment"])
        shot(d, "admin-payments-1280")
        # The delivery log: the backorder waits; an import serves it.
        self.nav(d, "deliveries")
        wait_for(d, '#deliveries-table a[href="/admin/orders/%s"]' % self.bo_order)
        wait_for(d, "#deliveries-table", text=EN["del.backordered"])
        shot(d, "admin-deliveries-1280")
        s.import_keys(self.bo_pid, ["BO-1"])
        self.assertEqual(self.admin_order(self.bo_order)["status"], "delivered")
        self.nav(d, "orders")
        self.nav(d, "deliveries")
        wait_for(d, "#deliveries", text=EN["del.none"])
        self.clean(d)

        # Backups: take one now; it is listed in the page and by the API.
        self.nav(d, "backups")
        wait_for(d, "#backup-summary dl")
        wait_for(d, "#backups", text=EN["backup.none"])
        wait_for(d, "#backup-now").click()
        wait_for(d, "#backups-table tbody tr", timeout=60)
        status, _, b = s.api("GET", "/api/v1/admin/backups", admin=True)
        self.assertEqual(status, 200)
        self.assertEqual(len(b["backups"]), 1)
        wait_for(d, "#backups-table td", text=b["backups"][0]["id"])
        shot(d, "admin-backups-1280")
        self.clean(d)

        # Edit the product, retire its CSV batch (2 unsold keys), deactivate it.
        d.get(s.url + "/admin/products/" + pid)
        price = wait_for(d, "#product-edit input[name=price_cents]")
        price.clear()
        price.send_keys("800")
        d.find_element(By().CSS_SELECTOR, "#product-edit button[type=submit]").click()
        wait_for(d, "#flash", text=EN["products.saved"].format(name="Browser card"))
        wait_until(lambda: self.product(pid)["price_cents"] == 800, what="the new price")
        retire = wait_for(d, "#batches-table tbody tr:nth-child(2) button")
        retire.click()
        self.accept_confirm(d)
        wait_for(d, "#flash", text=EN["keys.retiredDone"].format(n=2, batch=2))
        wait_for(d, "#batches-table tbody tr:nth-child(2)", text=EN["keys.batchRetired"])
        self.assertEqual(self.product(pid)["counts"]["retired"], 2)
        self.nav(d, "products")
        wait_for(d, '#products-table tr[data-id="%s"] button' % pid,
                 text=EN["products.deactivate"]).click()
        self.accept_confirm(d)
        wait_for(d, '#products-table tr[data-id="%s"] button' % pid, text=EN["products.activate"])
        self.assertFalse(self.product(pid)["active"])
        self.clean(d)

        # Sign out: back to the sign-in form, and the token is gone from the tab.
        d.find_element(By().CSS_SELECTOR, "#signout").click()
        wait_for(d, "#token")
        self.assertIsNone(d.execute_script("return sessionStorage.getItem('kv.admin.token')"))

    def product(self, pid):
        status, _, j = self.shop.api("GET", "/api/v1/admin/products", admin=True)
        self.assertEqual(status, 200, j)
        return next(p for p in j["products"] if p["id"] == pid)

    @staticmethod
    def cell(d, row_css, i):
        rows = d.find_elements(By().CSS_SELECTOR, row_css)
        if not rows:
            return None
        try:
            return rows[0].find_elements(By().TAG_NAME, "td")[i].text
        except Exception:  # re-rendered meanwhile
            return None

    def test_markup_names_are_text_on_every_page(self):
        for width, height in ((1280, 800), (390, 844)):
            with self.subTest(size=width):
                d = self.browser(width, height)
                self.sign_in(d)
                wait_for(d, '#stock-table tr[data-id="%s"]' % self.xss_ids[1])
                self.assert_xss_as_text(d)
                shot(d, "admin-xss-dashboard-%d" % width)
                self.nav(d, "products")
                wait_for(d, '#products-table tr[data-id="%s"]' % self.xss_ids[1])
                self.assert_xss_as_text(d)
                shot(d, "admin-products-%d" % width)
                for pid in self.xss_ids:
                    d.get(self.shop.url + "/admin/products/" + pid)
                    title = wait_for(d, "#product-title")
                    self.assertIn(title.text, XSS_NAMES)
                    wait_for(d, "#counts dd")
                    self.assertFalse(kit.alert_open(d))
                    self.clean(d)
                shot(d, "admin-product-%d" % width)
                self.nav(d, "orders")
                wait_for(d, '#orders-table tr[data-id="%s"]' % self.xss_order)
                wait_for(d, "main", text=XSS_NAMES[0])  # the product's name
                wait_for(d, "main", text=XSS_NAMES[1])  # the order's contact
                self.assertFalse(kit.alert_open(d))
                self.clean(d)
                d.get(self.shop.url + "/admin/orders/" + self.xss_order)
                wait_for(d, "#order-title", text=self.xss_order)
                self.assert_xss_as_text(d)
                shot(d, "admin-order-xss-%d" % width)

    def test_every_page_on_a_phone(self):
        d = self.browser(390, 844)
        d.get(self.shop.url + "/admin")
        wait_for(d, "#token")
        shot(d, "admin-signin-390")
        self.sign_in(d)
        wait_for(d, "#stock-table")
        shot(d, "admin-dashboard-390")
        for route, ready in (("orders", "#orders-table"), ("payments", "#payments p, #payments table"),
                             ("deliveries", "#deliveries"), ("backups", "#backup-summary dl")):
            self.nav(d, route)
            wait_for(d, ready)
            shot(d, "admin-%s-390" % route)
            self.clean(d)
        d.get(self.shop.url + "/admin/orders/" + self.xss_order)
        wait_for(d, "#order-title")
        shot(d, "admin-order-390")
        d.get(self.shop.url + "/admin/products/" + self.xss_ids[0])
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                         wait_for(d, "#batches-table"))
        shot(d, "admin-product-batches-390")
        self.clean(d)
        # No page is wider than the phone.
        self.assertLessEqual(d.execute_script("return document.documentElement.scrollWidth"), 390)

    def test_chinese(self):
        """zh-CN from Accept-Language, every string from its table; the switcher overrides."""
        self.assertEqual(sorted(EN), sorted(ZH), "the language tables have different keys")
        d = self.browser(1280, 800, "zh-CN")
        self.sign_in(d)
        wait_for(d, '#nav a[data-route="orders"]', text=ZH["nav.orders"])
        wait_for(d, "#stock-table")
        self.clean(d)
        shot(d, "admin-dashboard-zh-1280")
        self.nav(d, "orders")
        wait_for(d, "#orders-table")
        shot(d, "admin-orders-zh-1280")
        from selenium.webdriver.support.ui import Select
        Select(d.find_element(By().CSS_SELECTOR, "#lang")).select_by_value("en")
        wait_for(d, '#nav a[data-route="orders"]', text=EN["nav.orders"])
        self.assertEqual(d.execute_script("return localStorage.getItem('kv.lang')"), "en")
        self.clean(d)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: admin_test.py <keyvend binary> [screenshot dir]")
    KEYVEND_BIN = os.path.abspath(sys.argv[1])
    if len(sys.argv) > 2:
        kit.SHOTS_DIR = os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]], verbosity=2)
