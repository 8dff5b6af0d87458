"""The buyer's storefront in headless Chromium against the real `keyvend serve` (issue 12).

    python3 tests/browser/buyer_test.py <keyvend binary> <screenshot dir>

The whole buyer path in English and Chinese at 1280x800 and 390x844 (catalogue -> product
-> order -> sandbox payment -> order page with the keys, copied and downloaded -> lookup),
a sold-out product, a 429 that shows its wait and retries by itself, product names that
are HTML, and the two language tables. Every page is screenshotted at both sizes (paths
printed). Waits are bounded polls; nothing asserts on time.
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
from kit import Shop, alert_open, assert_no_console_errors, driver, shot, wait_for, wait_until  # noqa: E402

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "web", "assets")
KEYVEND = None  # set from argv in main
LANGS = ("en", "zh-CN")
SIZES = ((1280, 800), (390, 844))
XSS_NAMES = ('<script>alert(1)</script>', '"><img src=x onerror=alert(1)>')


def table(lang):
    with open(os.path.join(ASSETS, "i18n", "shop.%s.json" % lang), encoding="utf-8") as f:
        return json.load(f)


def before(text):
    """The part of a table string before its first {placeholder}: what a test can match."""
    return text.split("{")[0].strip()


def money(d, lang, cents, currency):
    """The price as the page must show it: the browser's own Intl for that language."""
    return d.execute_script(
        "const f = new Intl.NumberFormat(arguments[0], {style: 'currency', currency: arguments[2]});"
        "return f.format(arguments[1] / Math.pow(10, f.resolvedOptions().maximumFractionDigits));",
        lang, cents, currency)


def card(d, name):
    """The catalogue card whose product name is exactly `name`."""
    for el in d.find_elements("css selector", ".card"):
        if el.find_element("css selector", ".card-name").text == name:
            return el
    return None


def safely(fn):
    """fn for wait_until, with an element gone stale (the page re-rendered) read as False."""
    from selenium.common.exceptions import WebDriverException

    def run():
        try:
            return fn()
        except WebDriverException:
            return False
    return run


def grant_clipboard(d, url):
    d.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})


def read_clipboard(d):
    return d.execute_async_script(
        "const done = arguments[0];"
        "navigator.clipboard.readText().then(done, (e) => done('clipboard error: ' + e));")


class TablesTest(unittest.TestCase):
    def test_both_languages_have_the_same_keys_and_every_key_the_code_uses(self):
        en, zh = table("en"), table("zh-CN")
        self.assertEqual(sorted(en), sorted(zh))
        for k in en:
            self.assertTrue(en[k].strip() and zh[k].strip(), k)
            # The same placeholders on both sides.
            self.assertEqual(sorted(re.findall(r"\{\w+\}", en[k])),
                             sorted(re.findall(r"\{\w+\}", zh[k])), k)
        with open(os.path.join(ASSETS, "shop.js"), encoding="utf-8") as f:
            js = f.read()
        used = set(re.findall(r"'((?:[a-z_]+)\.[a-z_.]*[a-z_])'", js))
        used -= {"kv.lang", "kv.orders", "kv.pay"}  # localStorage names, not strings
        self.assertTrue(used)
        self.assertEqual(sorted(used - set(en)), [])
        # Every order status and every API error code has its words.
        for s in ("pending_payment", "paid", "delivered", "backordered", "refund_due",
                  "refunded", "cancelled", "expired"):
            self.assertIn("status." + s, en)
            self.assertIn("explain." + s, en)
        for code in ("bad_request", "invalid_quantity", "product_not_found", "order_not_found",
                     "out_of_stock", "product_inactive", "quantity_limit", "rate_limited",
                     "pending_limit", "overloaded", "not_ready", "storage_unavailable"):
            self.assertIn("err." + code, en)


class BuyerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.shop = Shop(KEYVEND).__enter__()
        cls.addClassCleanup(cls.shop.__exit__, None, None, None)  # also when setUp fails
        s = cls.shop
        cls.gift = s.product("Gift card", 500, "EUR", max_per_order=5,
                             description="A 5 euro gift card, delivered at once.")
        s.import_keys(cls.gift, ["GIFT-%04d-AAAA-BBBB" % i for i in range(40)])
        cls.sold_out = s.product("Sold-out skin", 990, "USD")
        cls.xss = []
        for i, name in enumerate(XSS_NAMES):
            pid = s.product(name, 100, "USD", description="<b>bold?</b><img src=x onerror=alert(2)>")
            s.import_keys(pid, ["XSS-%d-%04d" % (i, k) for k in range(10)])
            cls.xss.append(pid)
        cls.downloads = tempfile.mkdtemp(prefix="kv-downloads-")
        cls.addClassCleanup(shutil.rmtree, cls.downloads, True)

    def open(self, width, height, lang, cleanup=True):
        d = driver(width, height, lang)
        if cleanup:
            self.addCleanup(d.quit)
        grant_clipboard(d, self.shop.url)
        d.execute_cdp_cmd("Browser.setDownloadBehavior",
                          {"behavior": "allow", "downloadPath": self.downloads})
        return d

    def order_via_api(self, product_id, contact, password=None):
        body = {"product_id": product_id, "quantity": 1, "contact": contact}
        if password:
            body["query_password"] = password
        status, _, j = self.shop.api("POST", "/api/v1/orders", body)
        self.assertEqual(status, 201, j)
        return j

    # --- the whole path, per language and size ---

    def buyer_path(self, lang, width, height):
        T = table(lang)
        tag = "buyer-%s-%d" % (lang, width)
        contact = "buyer-%s-%d@example.com" % (lang, width)
        password = "pw-%s-%d" % (lang, width)
        d = self.open(width, height, lang)
        url = self.shop.url

        # Catalogue: the server's language pick, prices in that language, stock, sold out.
        d.get(url + "/")
        wait_for(d, ".card-name", text="Gift card")
        self.assertEqual(d.execute_script("return document.documentElement.lang"), lang)
        wait_for(d, "#nav-lookup", text=T["nav.lookup"])
        gift = card(d, "Gift card")
        self.assertIn(money(d, lang, 500, "EUR"), gift.text)
        self.assertRegex(gift.find_element("css selector", ".stock").text, r"\d")
        out = card(d, "Sold-out skin")
        self.assertIn(T["stock.sold_out"], out.text)
        self.assertEqual(out.find_elements("css selector", "a.btn"), [])  # not orderable
        shot(d, tag + "-1-catalogue")

        # Product page and checkout.
        gift.find_element("css selector", "a.btn").click()
        wait_for(d, "#order", text=T["prod.submit"])
        self.assertTrue(d.current_url.endswith("/p/" + self.gift), d.current_url)
        shot(d, tag + "-2-product")
        d.find_element("id", "order").click()  # empty contact: the form says what is missing
        wait_for(d, "#err-contact", text=T["form.err.contact"])
        d.find_element("css selector", ".stepper button:last-child").click()  # quantity 2
        d.find_element("id", "f-contact").send_keys(contact)
        d.find_element("id", "f-password").send_keys(password)
        wait_for(d, "#total", text=money(d, lang, 1000, "EUR"))
        shot(d, tag + "-3-checkout")
        d.find_element("id", "order").click()

        # The sandbox gateway's page (pay_url), then pay there.
        wait_until(lambda: "/sandbox/pay/" in d.current_url, what="the pay page")
        order_id = d.current_url.rstrip("/").rsplit("/", 1)[1]
        tokens = d.execute_script("return JSON.parse(localStorage.getItem('kv.orders'))")
        self.assertIn(order_id, tokens)
        wait_for(d, "#pay")
        shot(d, tag + "-4-sandbox")

        # The order page before payment: pending, with a way to pay.
        d.get(url + "/order/" + order_id)
        wait_for(d, ".badge", text=T["status.pending_payment"])
        wait_for(d, "#explain", text=T["explain.pending_payment"])
        # The token from local storage is written back into the address (bookmarkable).
        self.assertIn("#t=", d.current_url)
        shot(d, tag + "-5-order-pending")
        d.find_element("id", "pay").click()
        wait_until(lambda: "/sandbox/pay/" in d.current_url, what="the pay page again")
        wait_for(d, "button#pay").click()
        wait_for(d, "#back").click()

        # Back on the order page: delivered, two keys, copy and download.
        wait_until(lambda: "/order/" + order_id in d.current_url, what="the order page")
        wait_for(d, ".badge", text=T["status.delivered"])
        keys = [el.text for el in wait_until(
            lambda: d.find_elements("css selector", "#keys .key"), what="the keys")]
        self.assertEqual(len(keys), 2)
        self.assertTrue(all(k.startswith("GIFT-") for k in keys), keys)
        self.assertIn(money(d, lang, 1000, "EUR"), d.find_element("css selector", ".facts").text)
        copy = d.find_elements("css selector", "#keys button")[1]
        copy.click()
        wait_until(lambda: copy.text == T["order.copied"], what="the copy button's feedback")
        self.assertEqual(read_clipboard(d), keys[1])
        shot(d, tag + "-6-order-delivered")
        d.find_element("id", "download").click()
        path = os.path.join(self.downloads, "keys-%s.txt" % order_id)
        wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, what=path)
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read().split(), keys)

        # Lookup with contact + query password finds the order and links to it.
        d.find_element("id", "nav-lookup").click()
        wait_for(d, "#find", text=T["lookup.submit"])
        shot(d, tag + "-7-lookup")
        d.find_element("id", "l-contact").send_keys(contact)
        d.find_element("id", "l-password").send_keys("not-" + password)
        d.find_element("id", "find").click()  # a wrong password finds nothing, and says so
        wait_for(d, ".notice", text=before(T["lookup.none"]))
        d.find_element("id", "l-password").clear()
        d.find_element("id", "l-password").send_keys(password)
        d.find_element("id", "find").click()
        wait_for(d, "#found a", text="Gift card")  # the product's name arrives on its own
        link = wait_for(d, "#found a", text=order_id)
        self.assertIn(T["status.delivered"], link.text)
        shot(d, tag + "-8-lookup-found")
        link.click()
        wait_for(d, "#keys .key", text=keys[0])

        # A sold-out product's page: said so, and no order form.
        d.get(url + "/p/" + self.sold_out)
        wait_for(d, "#sold-out", text=T["prod.sold_out_note"])
        self.assertEqual(d.find_elements("id", "order"), [])
        shot(d, tag + "-9-sold-out")
        assert_no_console_errors(d)
        self.assertFalse(alert_open(d))

    def test_buyer_path_en_1280(self):
        self.buyer_path("en", 1280, 800)

    def test_buyer_path_en_390(self):
        self.buyer_path("en", 390, 844)

    def test_buyer_path_zh_1280(self):
        self.buyer_path("zh-CN", 1280, 800)

    def test_buyer_path_zh_390(self):
        self.buyer_path("zh-CN", 390, 844)

    # --- the order page by itself ---

    def test_order_page_updates_by_itself_until_delivered(self):
        o = self.order_via_api(self.gift, "self-update@example.com")
        T = table("en")
        d = self.open(1280, 800, "en")
        d.get("%s/order/%s#t=%s" % (self.shop.url, o["order_id"], o["token"]))
        wait_for(d, ".badge", text=T["status.pending_payment"])
        d.execute_script("window.kvMarker = 'still the same page';")
        status, _, _ = self.shop.api("POST", "/sandbox/pay/" + o["order_id"], raw=b"")
        self.assertEqual(status, 200)
        wait_for(d, "#keys .key", text="GIFT-")
        wait_for(d, ".badge", text=T["status.delivered"])
        self.assertEqual(d.execute_script("return window.kvMarker"), "still the same page")
        assert_no_console_errors(d)

    def test_order_link_without_token_explains_itself(self):
        o = self.order_via_api(self.gift, "no-token@example.com")
        for lang in LANGS:
            for (w, h) in SIZES:
                d = self.open(w, h, lang, cleanup=False)
                try:
                    d.get("%s/order/%s" % (self.shop.url, o["order_id"]))  # no storage: no token
                    wait_for(d, ".notice", text=before(table(lang)["order.no_token"]))
                    shot(d, "buyer-%s-%d-order-no-token" % (lang, w))
                    assert_no_console_errors(d)
                finally:
                    d.quit()

    def test_catalogue_stock_is_live(self):
        T = table("en")
        pid = self.shop.product("Restocked soon", 250, "EUR")
        d = self.open(390, 844, "en")
        d.get(self.shop.url + "/")
        wait_until(safely(lambda: card(d, "Restocked soon")), what="the new product's card")
        self.assertIn(T["stock.sold_out"], card(d, "Restocked soon").text)
        self.shop.import_keys(pid, ["RESTOCK-1", "RESTOCK-2", "RESTOCK-3"])
        # No reload: the catalogue re-reads the stock by itself (every ~10 s).
        restocked = safely(lambda: T["stock.low"].replace("{n}", "3") in card(d, "Restocked soon").text
                           and card(d, "Restocked soon").find_elements("css selector", "a.btn"))
        wait_until(restocked, timeout=30, what="the restocked card to become orderable")
        assert_no_console_errors(d)

    def test_unknown_product_says_so(self):
        for lang in LANGS:
            d = self.open(1280, 800, lang, cleanup=False)
            try:
                d.get(self.shop.url + "/p/987654321")
                wait_for(d, ".notice", text=table(lang)["err.product_not_found"])
                assert_no_console_errors(d, allow=("status of 404",))  # the API's answer
            finally:
                d.quit()

    def test_language_switch_overrides_and_sticks(self):
        en, zh = table("en"), table("zh-CN")
        d = self.open(1280, 800, "en")
        d.get(self.shop.url + "/p/" + self.gift)
        wait_for(d, "#order", text=en["prod.submit"])
        d.find_element("id", "f-contact").send_keys("typed@example.com")
        d.find_element("id", "lang-zh").click()
        wait_for(d, "#order", text=zh["prod.submit"])  # re-rendered in place, no reload
        self.assertEqual(d.find_element("id", "f-contact").get_attribute("value"), "typed@example.com")
        self.assertEqual(d.execute_script("return document.documentElement.lang"), "zh-CN")
        self.assertEqual(d.execute_script("return localStorage.getItem('kv.lang')"), '"zh-CN"')
        d.refresh()  # the override wins over Accept-Language: en
        wait_for(d, "#order", text=zh["prod.submit"])
        d.find_element("id", "lang-en").click()
        wait_for(d, "#order", text=en["prod.submit"])
        assert_no_console_errors(d)

    # --- hostile product names ---

    def test_html_in_names_is_text(self):
        url = self.shop.url
        for i, name in enumerate(XSS_NAMES):
            pid = self.xss[i]
            o = self.order_via_api(pid, "xss%d@example.com" % i, "xss-password-%d" % i)
            self.shop.api("POST", "/sandbox/pay/" + o["order_id"], raw=b"")
            for lang, (w, h) in zip(LANGS, SIZES):  # en at 1280x800, zh-CN at 390x844
                if True:
                    tag = "buyer-%s-%d-xss%d" % (lang, w, i)
                    d = self.open(w, h, lang, cleanup=False)
                    try:
                        d.get(url + "/")
                        wait_until(safely(lambda: card(d, name)), what="the card of " + name)
                        self.assertIn("<b>bold?</b>", card(d, name).text)
                        if i == 0 and w == 1280:
                            shot(d, "buyer-%s-%d-xss-catalogue" % (lang, w))
                        d.get(url + "/p/" + pid)
                        wait_for(d, "h1.prod-name", text=name)
                        self.assertEqual(d.find_element("css selector", "h1.prod-name").text, name)
                        self.assertTrue(d.title.startswith(name), d.title)
                        shot(d, tag + "-product")
                        d.get("%s/order/%s#t=%s" % (url, o["order_id"], o["token"]))
                        wait_for(d, ".facts dd", text=name)
                        d.get(url + "/lookup")
                        wait_for(d, "#l-contact").send_keys("xss%d@example.com" % i)
                        d.find_element("id", "l-password").send_keys("xss-password-%d" % i)
                        d.find_element("id", "find").click()
                        wait_for(d, "#found .order-name", text=name)
                        self.assertFalse(alert_open(d), "a dialog opened")
                        self.assertEqual(d.execute_script(
                            "return document.querySelectorAll('img, script:not([src])').length"), 0)
                        assert_no_console_errors(d)
                    finally:
                        d.quit()


class BusyShopTest(unittest.TestCase):
    """A shop whose order bucket holds one request per second per client."""

    @classmethod
    def setUpClass(cls):
        cls.shop = Shop(KEYVEND, flags=["--rate-limit-order-per-client-per-second", "1",
                                        "--rate-limit-order-per-client-burst", "1"]).__enter__()
        cls.addClassCleanup(cls.shop.__exit__, None, None, None)
        cls.gift = cls.shop.product("Flash-sale card", 500, "EUR")
        cls.shop.import_keys(cls.gift, ["FLASH-%04d" % i for i in range(100)])

    def drain(self):
        """Orders from this client until one is refused 429: the bucket is empty now."""
        for i in range(20):
            status, headers, j = self.shop.api("POST", "/api/v1/orders", {
                "product_id": self.gift, "quantity": 1, "contact": "drain-%d@example.com" % time.time_ns()})
            if status == 429:
                self.assertGreaterEqual(int(headers.get("Retry-After", "0")), 1)
                return
            self.assertEqual(status, 201, j)
        self.fail("no 429 from a bucket of one request per second")

    def test_429_shows_its_wait_and_retries_once_it_is_over(self):
        for lang, (w, h) in (("en", (1280, 800)), ("zh-CN", (390, 844))):
            T = table(lang)
            d = driver(w, h, lang)
            self.addCleanup(d.quit)
            url = self.shop.url
            seen = False
            for attempt in range(5):  # the click must land while the bucket is empty
                d.get(url + "/p/" + self.gift)
                wait_for(d, "#order", text=T["prod.submit"])
                d.find_element("id", "f-contact").send_keys("flash-%s-%d@example.com" % (lang, attempt))
                self.drain()
                d.find_element("id", "order").click()
                try:
                    wait_for(d, "#wait", text=before(T["wait.retry"]), timeout=3)
                except AssertionError:
                    continue  # the bucket refilled before the click: try again
                seen = True
                self.assertIsNotNone(d.find_element("id", "order").get_attribute("disabled"))
                self.assertRegex(d.find_element("id", "wait").text, r"\d")
                shot(d, "buyer-%s-%d-429-wait" % (lang, w))
                break
            self.assertTrue(seen, "the page never showed a 429's wait")
            # Once the wait is over the page tries again by itself and reaches the gateway.
            wait_until(lambda: "/sandbox/pay/" in d.current_url, timeout=30,
                       what="the retry after Retry-After")
            assert_no_console_errors(d, allow=("status of 429",))


def main():
    global KEYVEND
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if len(args) < 1:
        sys.exit("usage: buyer_test.py <keyvend binary> [screenshot dir] [unittest args]")
    KEYVEND = os.path.abspath(args[0])
    if len(args) > 1:
        kit.SHOTS_DIR = os.path.abspath(args[1])
    unittest.main(argv=[sys.argv[0]] + [a for a in sys.argv[1:] if a.startswith("-")] + args[2:],
                  verbosity=2)


if __name__ == "__main__":
    main()
