// keyvend storefront: catalogue, product + checkout, order page, lookup.
// Plain browser JavaScript, no build step. The CSP forbids inline code and styles, so the
// DOM is built with h() and every value from the API goes in as text (textContent), never
// as HTML. Every visible string comes from the language table (t()).
'use strict';

(function () {
  const LANGS = ['en', 'zh-CN'];
  const STOCK_POLL_MS = 10000;       // catalogue and product page
  const ORDER_POLL_MS = 2500;        // order page while payment or delivery is under way
  const ORDER_SLOW_POLL_MS = 15000;  // backordered, refund_due, expired: can still change
  const FINAL = ['delivered', 'refunded', 'cancelled'];
  const LOW_STOCK = 5;
  const CONTACT_BYTES_MAX = 254;
  const PASSWORD_CHARS_MIN = 6;
  const PASSWORD_BYTES_MAX = 128;
  const REMEMBER_MAX = 50;  // orders whose tokens this browser keeps

  const app = document.getElementById('app');
  const tables = {};
  let lang = 'en';
  let T = {};
  let view = null;  // the current page: {draw(), stop()}

  // ---- small helpers ----

  function has(key) {
    return Object.prototype.hasOwnProperty.call(T, key);
  }
  function t(key, vars) {
    let s = has(key) ? T[key] : key;
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  }

  // h('a', {href: '/', class: 'x', onclick: fn}, 'text', node, [more], null)
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    add(el, kids);
    return el;
  }
  function add(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) add(el, k);
      else el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }
  function mount(...nodes) {
    app.replaceChildren(...nodes.filter(Boolean));
  }

  function store(name, fallback) {
    try {
      const v = JSON.parse(localStorage.getItem(name));
      return v === null ? fallback : v;
    } catch (e) {
      return fallback;
    }
  }
  function save(name, value) {
    try {
      localStorage.setItem(name, JSON.stringify(value));
    } catch (e) { /* private mode or full: the page still works from its link */ }
  }
  // Keeps an order's token (and its gateway page) in this browser: the newest
  // REMEMBER_MAX orders, so that the storage does not grow without end.
  function remember(orderId, token, payUrl) {
    const keep = (name, value) => {
      const all = store(name, {});
      delete all[orderId];  // re-inserted last: the newest
      all[orderId] = value;
      const ids = Object.keys(all);
      for (const old of ids.slice(0, Math.max(0, ids.length - REMEMBER_MAX))) delete all[old];
      save(name, all);
    };
    keep('kv.orders', token);
    if (payUrl) keep('kv.pay', payUrl);
  }

  function money(cents, currency) {
    try {
      const f = new Intl.NumberFormat(lang, {style: 'currency', currency: currency});
      const digits = f.resolvedOptions().maximumFractionDigits;
      return f.format(cents / Math.pow(10, digits));
    } catch (e) {
      return cents + ' ' + currency;  // an unknown currency code: minor units as they are
    }
  }
  function when(rfc3339) {
    const d = new Date(rfc3339);
    if (isNaN(d)) return String(rfc3339);
    return new Intl.DateTimeFormat(lang, {dateStyle: 'medium', timeStyle: 'short'}).format(d);
  }
  function byteLength(s) {
    return new TextEncoder().encode(s).length;
  }
  // A gateway's page address from the API, used only when it is plain http(s).
  function safePayUrl(u) {
    try {
      const url = new URL(u, location.href);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch (e) {
      return null;
    }
  }
  function waitText(seconds) {
    return seconds >= 120 ? t('wait.minutes', {n: Math.ceil(seconds / 60)})
                          : t('wait.seconds', {n: seconds});
  }

  // ---- the API ----

  // Resolves to the JSON body of a 2xx; rejects with {status, code, retryAfter} (code is
  // the API's error code, 'network' when the shop could not be reached).
  async function api(method, path, body) {
    const init = {method: method, headers: {Accept: 'application/json'}, cache: 'no-store'};
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw {status: 0, code: 'network', retryAfter: 0};
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) { /* not JSON: judged by the status below */ }
    if (res.ok && data) return data;
    const code = data && data.error && typeof data.error.code === 'string'
                     ? data.error.code : 'http_' + res.status;
    return Promise.reject({status: res.status, code: code, retryAfter: retryAfter(res)});
  }
  function retryAfter(res) {
    if (res.status !== 429 && res.status !== 503) return 0;
    const v = res.headers.get('Retry-After') || '';
    let s = /^\d+$/.test(v.trim()) ? parseInt(v, 10)
                                   : Math.ceil((Date.parse(v) - Date.now()) / 1000);  // a date
    if (!(s >= 1)) s = 1;
    return Math.min(s, 86400);
  }
  // Worth retrying by itself after Retry-After: the shop is busy, not saying no.
  function busy(e) {
    return e.code === 'rate_limited' || e.status === 503;
  }
  // Up to a second more, so that buyers told the same Retry-After do not all come back at once.
  function jitter() {
    return Math.random() < 0.5 ? 0 : 1;
  }
  function errText(e) {
    return has('err.' + e.code) ? t('err.' + e.code) : t('err.generic', {code: e.code});
  }

  // Runs fn now and then again after the delay it returns (ms) or `every`; no overlap,
  // paused while the page is hidden and run at once when it shows again. fn returning
  // false stops the poller.
  function poller(fn, every) {
    let timer = null, running = false, stopped = false;
    async function tick() {
      timer = null;
      if (stopped || running || document.hidden) return;
      running = true;
      let next;
      try {
        next = await fn();
      } finally {
        running = false;
      }
      if (stopped || next === false) return;
      timer = setTimeout(tick, typeof next === 'number' ? next : every);
    }
    function onVisible() {
      if (!document.hidden && timer === null) tick();
    }
    document.addEventListener('visibilitychange', onVisible);
    return {
      start: tick,
      stop() {
        stopped = true;
        clearTimeout(timer);
        document.removeEventListener('visibilitychange', onVisible);
      },
    };
  }

  // A visible "try again in N s" in node() (looked up each second: a redraw may replace
  // it) that counts down, then calls done(). Returns a function that cancels it.
  function countdown(node, seconds, key, done) {
    let left = seconds;
    const show = () => {
      const n = node();
      if (!n) return;
      n.textContent = left > 0 ? t(key, {wait: waitText(left)}) : '';
      n.classList.toggle('hidden', left <= 0);
    };
    show();
    const id = setInterval(() => {
      left -= 1;
      show();
      if (left > 0) return;
      clearInterval(id);
      done();
    }, 1000);
    return () => clearInterval(id);
  }

  // ---- language ----

  async function loadTable(l) {
    if (!tables[l]) {
      const res = await fetch('/assets/i18n/shop.' + l + '.json');
      if (!res.ok) throw new Error('language table ' + l);
      tables[l] = await res.json();
    }
    return tables[l];
  }
  async function setLang(l) {
    try {
      T = await loadTable(l);
      lang = l;
    } catch (e) {
      if (l === 'en') throw e;
      T = await loadTable('en');
      lang = 'en';
    }
    document.documentElement.lang = lang;
    document.title = t('app.title');
    document.getElementById('brand').textContent = t('brand');
    document.getElementById('nav-shop').textContent = t('nav.shop');
    document.getElementById('nav-lookup').textContent = t('nav.lookup');
    document.getElementById('langs').setAttribute('aria-label', t('lang.label'));
    for (const b of document.querySelectorAll('#langs button')) {
      b.textContent = t(b.dataset.lang === 'en' ? 'lang.en' : 'lang.zh');
      b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
    }
  }
  function pickLang() {
    const saved = store('kv.lang', null);
    if (LANGS.includes(saved)) return saved;
    const page = document.documentElement.lang;
    if (LANGS.includes(page)) return page;
    return page.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
  }

  // ---- shared bits of pages ----

  function loading() {
    return h('p', {class: 'muted'}, t('loading'));
  }
  function problem(e, extra) {
    return h('div', {class: 'notice bad', role: 'alert'}, h('p', null, errText(e)), extra);
  }
  function stockLine(p) {
    if (p.stock > 0) {
      return h('span', {class: p.stock <= LOW_STOCK ? 'stock low' : 'stock'},
               t(p.stock <= LOW_STOCK ? 'stock.low' : 'stock.in', {n: p.stock}));
    }
    if (p.allow_backorder) return h('span', {class: 'stock low'}, t('stock.backorder'));
    return h('span', {class: 'stock out'}, t('stock.sold_out'));
  }
  function orderable(p) {
    return p.active !== false && (p.stock > 0 || p.allow_backorder);
  }
  function statusBadge(status) {
    const known = has('status.' + status);
    return h('span', {class: 'badge s-' + (known ? status : 'unknown')},
             known ? t('status.' + status) : t('status.unknown', {status: status}));
  }

  // ---- pages ----

  function cataloguePage() {
    let products = null, error = null, seen = '';
    const poll = poller(async () => {
      try {
        const r = await api('GET', '/api/v1/products');
        products = Array.isArray(r.products) ? r.products : [];
        error = null;
      } catch (e) {
        error = e;
        if (busy(e)) return e.retryAfter * 1000;
      }
      const now = JSON.stringify([products, error && !products && error.code]);
      if (now !== seen) {  // redraw only what changed (keeps focus and scroll)
        seen = now;
        draw();
      }
    }, STOCK_POLL_MS);

    function card(p) {
      const href = '/p/' + encodeURIComponent(p.id);
      const can = orderable(p);
      return h('article', {class: can ? 'card' : 'card soldout'},
               h('h2', {class: 'card-name'}, h('a', {href: href}, p.name)),
               p.description ? h('p', {class: 'card-desc'}, p.description) : null,
               h('div', {class: 'card-foot'},
                 h('div', null, h('div', {class: 'price'}, money(p.price_cents, p.currency)),
                   stockLine(p)),
                 can ? h('a', {class: 'btn', href: href}, t('cat.buy'))
                     : h('span', {class: 'btn disabled', 'aria-disabled': 'true'},
                         t('stock.sold_out'))));
    }
    function draw() {
      document.title = t('app.title');
      if (!products) return mount(error ? problem(error) : loading());
      mount(h('h1', null, t('cat.title')),
            products.length === 0 ? h('p', {class: 'muted'}, t('cat.empty'))
                                  : h('div', {class: 'grid'}, products.map(card)));
    }
    draw();
    poll.start();
    return {draw: draw, stop: poll.stop};
  }

  function productPage(id) {
    let product = null, error = null, inFlight = false, stopWait = null, placed = false;
    let note = null;  // the checkout's message: {cls, key} or {cls, err}
    const form = {quantity: '1', contact: '', password: ''};
    const invalid = {};  // field -> [table key, vars]
    let refs = {};

    async function load() {
      let p;
      try {
        p = await api('GET', '/api/v1/products/' + encodeURIComponent(id));
      } catch (e) {
        if (busy(e) || e.code === 'network') {
          if (!product) {
            error = e;
            draw();
          }
          return Math.max(e.retryAfter * 1000, STOCK_POLL_MS);
        }
        product = null;  // gone or off sale
        error = e;
        draw();
        return false;
      }
      const flip = !product || orderable(p) !== orderable(product);
      product = p;
      error = null;
      if (flip) draw(); else refresh();
    }
    const poll = poller(() => (inFlight ? undefined : load()), STOCK_POLL_MS);

    function maxQty() {
      const m = Math.max(1, product.max_per_order || 1);
      return product.stock > 0 && !product.allow_backorder ? Math.min(m, product.stock) : m;
    }
    function qty() {
      const n = Number(form.quantity);
      return Number.isInteger(n) ? n : NaN;
    }
    function validate() {
      for (const k of Object.keys(invalid)) delete invalid[k];
      const n = qty();
      if (!(n >= 1 && n <= maxQty())) invalid.quantity = ['form.err.quantity', {max: maxQty()}];
      const c = form.contact.trim();
      if (!c) invalid.contact = ['form.err.contact'];
      else if (byteLength(c) > CONTACT_BYTES_MAX || /[\u0000-\u001f\u007f]/.test(c)) {
        invalid.contact = ['form.err.contact_bad'];
      }
      const pw = form.password;
      if (pw && ([...pw].length < PASSWORD_CHARS_MIN || byteLength(pw) > PASSWORD_BYTES_MAX)) {
        invalid.password = ['form.err.password', {min: PASSWORD_CHARS_MIN}];
      }
      return Object.keys(invalid).length === 0;
    }
    // Updates what polling and typing change, without rebuilding the form (focus stays).
    function refresh() {
      if (!refs.submit) return;
      refs.stock.replaceChildren(stockLine(product));
      refs.price.textContent = money(product.price_cents, product.currency);
      refs.quantityInput.max = String(maxQty());
      refs.qtyHint.textContent = t('prod.quantity_hint', {max: maxQty()});
      const n = qty();
      refs.total.textContent =
          n >= 1 && n <= maxQty() ? money(product.price_cents * n, product.currency) : '—';
      const off = inFlight || placed || stopWait !== null;
      refs.submit.disabled = off;
      refs.submit.textContent =
          t(inFlight ? 'prod.submitting' : placed ? 'prod.placed' : 'prod.submit');
      refs.minus.disabled = off || !(n > 1);
      refs.plus.disabled = off || !(n < maxQty());
      for (const k of ['quantity', 'contact', 'password']) {
        refs[k + 'Err'].textContent = invalid[k] ? t(invalid[k][0], invalid[k][1]) : '';
        refs[k + 'Input'].setAttribute('aria-invalid', String(Boolean(invalid[k])));
      }
      refs.note.className = note ? 'notice ' + note.cls : 'notice hidden';
      refs.note.textContent = !note ? '' : note.err ? errText(note.err) : t(note.key);
    }
    function field(name, label, input, hint, control) {
      refs[name + 'Input'] = input;
      refs[name + 'Err'] = h('p', {class: 'field-err', id: 'err-' + name});
      input.id = 'f-' + name;
      input.setAttribute('aria-describedby', 'err-' + name);
      input.addEventListener('input', () => {
        form[name] = input.value;
        if (invalid[name]) validate();
        refresh();
      });
      return h('div', {class: 'field'}, h('label', {for: 'f-' + name}, label), control || input,
               hint, refs[name + 'Err']);
    }
    function step(d) {
      const n = qty();
      form.quantity = String(Math.min(maxQty(), Math.max(1, (n || 1) + d)));
      refs.quantityInput.value = form.quantity;
      validate();
      refresh();
    }
    async function submit(ev) {
      if (ev) ev.preventDefault();
      if (inFlight || placed || stopWait) return;
      if (!validate()) {
        refresh();
        refs[['quantity', 'contact', 'password'].find((k) => invalid[k]) + 'Input'].focus();
        return;
      }
      inFlight = true;
      note = {cls: '', key: 'prod.submitting'};
      refresh();
      const body = {product_id: String(product.id), quantity: qty(), contact: form.contact.trim()};
      if (form.password) body.query_password = form.password;
      try {
        const r = await api('POST', '/api/v1/orders', body);
        const o = r.order || r;
        remember(o.order_id, o.token, o.pay_url);
        placed = true;
        note = {cls: 'good', key: 'prod.redirecting'};
        location.assign(safePayUrl(o.pay_url) || '/order/' + encodeURIComponent(o.order_id) +
                                                       '#t=' + encodeURIComponent(o.token));
      } catch (e) {
        note = busy(e) ? null : {cls: 'bad', err: e};
        if (busy(e)) {  // a flash sale: wait as told, then try once more by itself
          stopWait = countdown(() => refs.wait, e.retryAfter + jitter(), 'wait.retry', () => {
            stopWait = null;
            submit();
          });
        } else if (e.code === 'out_of_stock' || e.code === 'product_inactive') {
          load();
        }
      } finally {
        inFlight = false;
        refresh();
      }
    }
    function back() {
      return h('p', {class: 'crumbs'}, h('a', {href: '/'}, t('prod.back')));
    }
    function draw() {
      refs = {};
      if (!product) {
        document.title = t('app.title');
        return mount(back(), error ? problem(error) : loading());
      }
      document.title = product.name + ' · ' + t('app.title');
      refs.price = h('span', {class: 'price big'});
      refs.stock = h('span', {id: 'stock'});
      const about = h('section', {class: 'panel'},
                      h('h1', {class: 'prod-name'}, product.name),
                      product.description && h('p', {class: 'prod-desc'}, product.description),
                      h('div', {class: 'prod-meta'}, refs.price, refs.stock));
      if (!orderable(product)) {
        refs.price.textContent = money(product.price_cents, product.currency);
        refs.stock.append(stockLine(product));
        const note = h('div', {class: 'notice bad', id: 'sold-out'}, t('prod.sold_out_note'));
        return mount(back(), h('div', {class: 'cols'}, about, note));
      }
      const qtyInput = h('input', {type: 'number', inputmode: 'numeric', min: 1, step: 1,
                                   value: form.quantity, required: true});
      const stepper = (d, key, sign) => h('button', {type: 'button', class: 'btn ghost step',
                                                     'aria-label': t(key), onclick: () => step(d)},
                                          sign);
      refs.minus = stepper(-1, 'prod.less', '−');
      refs.plus = stepper(1, 'prod.more', '+');
      refs.qtyHint = h('p', {class: 'hint'});
      const contact = h('input', {type: 'text', autocomplete: 'email', maxlength: CONTACT_BYTES_MAX,
                                  value: form.contact, placeholder: t('prod.contact_placeholder')});
      const pw = h('input', {type: 'password', autocomplete: 'new-password', value: form.password});
      refs.total = h('strong', {id: 'total'});
      refs.submit = h('button', {type: 'submit', class: 'btn primary wide', id: 'order'});
      refs.note = h('p', {role: 'status', id: 'order-note'});
      refs.wait = h('p', {class: 'notice warn hidden', id: 'wait', role: 'status'});
      const checkout = h(
          'form', {class: 'panel', novalidate: true, onsubmit: submit},
          h('h2', null, t('prod.checkout')),
          field('quantity', t('prod.quantity'), qtyInput, refs.qtyHint,
                h('div', {class: 'stepper'}, refs.minus, qtyInput, refs.plus)),
          field('contact', t('prod.contact'), contact,
                h('p', {class: 'hint'}, t('prod.contact_hint'))),
          field('password', t('prod.password'), pw,
                h('p', {class: 'hint'}, t('prod.password_hint', {min: PASSWORD_CHARS_MIN}))),
          h('div', {class: 'total'}, h('span', null, t('prod.total')), refs.total),
          refs.submit, refs.note, refs.wait);
      mount(back(), h('div', {class: 'cols'}, about, checkout));
      refresh();
    }
    draw();
    poll.start();
    return {
      draw: draw,
      stop() {
        poll.stop();
        if (stopWait) stopWait();
      },
    };
  }

  function orderPage(id) {
    const m = /(?:^|&)t=([^&]*)/.exec(location.hash.slice(1));
    let token = m ? decodeURIComponent(m[1]) : store('kv.orders', {})[id];
    if (m && token) remember(id, token);
    // A gateway sends the buyer back without the fragment: put the token back into the
    // address (it stays in the browser), so that a bookmark of this page opens the order.
    if (!m && token) history.replaceState(null, '', '#t=' + encodeURIComponent(token));
    let order = null, error = null, productName = null, seen = '';
    // The shop's payment gateways (GET /api/v1/gateways), fetched once: null until asked.
    let gateways = null;

    const poll = poller(async () => {
      if (!token) return false;
      try {
        const o = await api('GET', '/api/v1/orders/' + encodeURIComponent(id) +
                                   '?token=' + encodeURIComponent(token));
        order = o;
        error = null;
        if (gateways === null && o.status === 'pending_payment') {
          gateways = [];
          api('GET', '/api/v1/gateways').then((g) => {
            gateways = Array.isArray(g.gateways) ? g.gateways : [];
            draw();
          }, () => {});
        }
        if (productName === null) {
          productName = '';
          api('GET', '/api/v1/products/' + encodeURIComponent(o.product_id)).then((p) => {
            productName = p.name;
            draw();
          }, () => {});
        }
      } catch (e) {
        error = e;
        if (busy(e) || e.code === 'network') {
          redraw();
          return Math.max(e.retryAfter * 1000, ORDER_POLL_MS);
        }
        redraw();
        return false;
      }
      redraw();
      if (FINAL.includes(order.status)) return false;
      return order.status === 'pending_payment' || order.status === 'paid' ? ORDER_POLL_MS
                                                                            : ORDER_SLOW_POLL_MS;
    }, ORDER_POLL_MS);

    function redraw() {
      const now = JSON.stringify([order, error && error.code]);
      if (now !== seen) {
        seen = now;
        draw();
      }
    }
    function row(label, value, cls) {
      return [h('dt', null, label), h('dd', cls ? {class: cls} : null, value)];
    }
    function keysBlock(keys) {
      const list = h('ol', {class: 'keys', id: 'keys'}, keys.map((k) => {
        const code = h('code', {class: 'key'}, k);
        const b = h('button', {type: 'button', class: 'btn ghost copy'}, t('order.copy'));
        b.addEventListener('click', () => copy(k, code, b, 'order.copy'));
        return h('li', null, code, b);
      }));
      const all = h('button', {type: 'button', class: 'btn ghost', id: 'copy-all'},
                    t('order.copy_all'));
      all.addEventListener('click', () => copy(keys.join('\n'), list, all, 'order.copy_all'));
      const dl = h('button', {type: 'button', class: 'btn primary', id: 'download'},
                   t('order.download'));
      dl.addEventListener('click', () => download(keys));
      return h('section', {class: 'panel'}, h('h2', null, t('order.keys')), list,
               h('div', {class: 'actions'}, all, dl));
    }
    function download(keys) {
      const blob = new Blob([keys.join('\r\n') + '\r\n'], {type: 'text/plain;charset=utf-8'});
      const url = URL.createObjectURL(blob);
      const a = h('a', {href: url, download: 'keys-' + id + '.txt', class: 'hidden'});
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    }
    // A button per gateway (and per method of one) that takes the order's currency; each
    // goes through the shop's /pay/{order}/{gateway}, which records the attempt first.
    function payChoices(o) {
      const out = [];
      for (const g of gateways || []) {
        if (typeof g.name !== 'string' || !/^[a-z0-9_]+$/.test(g.name)) continue;
        const cur = typeof g.currencies === 'string' ? g.currencies.split(',') : [];
        if (!cur.includes('*') && !cur.includes(o.currency)) continue;
        const base = '/pay/' + encodeURIComponent(id) + '/' + g.name;
        const name = has('gateway.' + g.name) ? t('gateway.' + g.name) : g.name;
        const methods = Array.isArray(g.methods) ? g.methods : [];
        if (!methods.length) out.push({href: base, label: t('order.pay_with', {name: name})});
        for (const m of methods) {
          if (typeof m !== 'string' || !/^[a-z0-9_]+$/.test(m)) continue;
          out.push({href: base + '?method=' + m,
                    label: t('order.pay_with', {name: has('method.' + m) ? t('method.' + m) : m})});
        }
      }
      return out;
    }
    function payButtons(payUrl, choices) {
      // The way chosen at the order (kept in this browser) first; the others after it.
      const here = (u) => new URL(u, location.href).href;
      const others = choices.filter((c) => !payUrl || here(c.href) !== payUrl);
      const primary = payUrl || (others.length ? here(others.shift().href) : null);
      if (!primary) return null;
      const first = choices.find((c) => here(c.href) === primary);
      return h('div', {class: 'pay-choices', id: 'pay-choices'},
               h('a', {class: 'btn primary', id: 'pay', href: primary},
                 first ? first.label : t('order.pay_now')),
               others.length ? h('p', {class: 'muted small'}, t('order.pay_other')) : null,
               others.length ? h('div', {class: 'actions'}, others.map((c) =>
                 h('a', {class: 'btn', href: c.href, 'data-pay': c.href}, c.label))) : null);
    }
    function statusPanel(o) {
      const st = o.status;
      const pending = st === 'pending_payment';
      const payUrl = pending ? safePayUrl(store('kv.pay', {})[id]) : null;
      const pay = pending ? payButtons(payUrl, payChoices(o)) : null;
      const explain = has('explain.' + st) ? t('explain.' + st) : null;
      return h('section', {class: 'panel'},
               h('div', {class: 'status-line'}, statusBadge(st),
                 FINAL.includes(st) ? null : h('span', {class: 'muted small'}, t('order.live'))),
               explain && h('p', {class: 'explain', id: 'explain'}, explain),
               pending && h('p', {class: 'muted'},
                            t('order.pay_before', {time: when(o.expires_at)})),
               pay,
               pending && !pay && h('p', {class: 'muted'}, t('order.pay_elsewhere')),
               error && h('p', {class: 'notice bad'}, errText(error)));
    }
    function factsPanel(o) {
      return h('section', {class: 'panel'},
               h('dl', {class: 'facts'},
                 row(t('order.id'), o.order_id, 'mono'),
                 productName ? row(t('order.product'), productName) : null,
                 row(t('order.quantity'), String(o.quantity)),
                 row(t('order.amount'), money(o.amount_cents, o.currency)),
                 row(t('order.created'), when(o.created_at))),
               h('p', {class: 'hint'}, t('order.keep_link')));
    }
    function draw() {
      document.title = t('order.title') + ' · ' + t('app.title');
      const headline = h('h1', null, t('order.title'));
      const toLookup = () => h('a', {href: '/lookup', class: 'btn'}, t('nav.lookup'));
      if (!token) {
        return mount(headline, h('div', {class: 'notice bad'}, h('p', null, t('order.no_token')),
                                 toLookup()));
      }
      if (!order) {
        if (!error) return mount(headline, loading());
        return mount(headline, problem(error, error.code === 'order_not_found' && toLookup()));
      }
      const keys = Array.isArray(order.keys) ? order.keys : [];
      mount(h('div', {class: 'narrow'}, headline, statusPanel(order),
              keys.length ? keysBlock(keys) : null, factsPanel(order)));
    }
    draw();
    poll.start();
    return {draw: draw, stop: poll.stop};
  }

  // Copies text; when the clipboard is not available, selects `node` so the buyer can copy.
  async function copy(text, node, button, labelKey) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (e) { /* refused: fall back to a selection */ }
    if (!ok) {
      const range = document.createRange();
      range.selectNodeContents(node);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try {
        ok = document.execCommand('copy');
      } catch (e) { /* the selection stays for a manual copy */ }
    }
    button.textContent = t(ok ? 'order.copied' : 'order.copy_manual');
    button.classList.toggle('done', ok);
    setTimeout(() => {
      button.textContent = t(labelKey);
      button.classList.remove('done');
    }, 2500);
  }

  function lookupPage() {
    const form = {contact: '', password: ''};
    let result = null, error = null, busyNow = false, stopWait = null, names = null;
    let refs = {};

    async function submit(ev) {
      ev.preventDefault();
      if (busyNow || stopWait) return;
      const c = form.contact.trim();
      if (!c || !form.password) {
        error = {code: 'lookup_incomplete'};
        return draw();
      }
      busyNow = true;
      error = null;
      refs.submit.disabled = true;
      refs.submit.textContent = t('lookup.searching');
      try {
        const r = await api('POST', '/api/v1/orders/lookup',
                            {contact: c, query_password: form.password});
        result = Array.isArray(r.orders) ? r.orders : [];
        for (const o of result) if (o.token) remember(o.order_id, o.token);
        if (result.length && names === null) {
          names = {};
          api('GET', '/api/v1/products').then((p) => {
            for (const x of p.products || []) names[x.id] = x.name;
            draw();
          }, () => {});
        }
      } catch (e) {
        result = null;
        error = e;
        // A busy shop or a locked contact: wait as told. The buyer presses again (an
        // automatic retry of a wrong password would only lengthen a lockout).
        if (e.status === 429 || e.status === 503) {
          error = null;  // the countdown says it
          busyNow = false;
          stopWait = () => {};
          draw();
          stopWait = countdown(() => refs.wait, e.retryAfter, 'wait.manual', () => {
            stopWait = null;
            refs.submit.disabled = false;
          });
          return;
        }
      } finally {
        busyNow = false;
      }
      draw();
    }
    function orderItem(o) {
      const href = '/order/' + encodeURIComponent(o.order_id) +
                   (o.token ? '#t=' + encodeURIComponent(o.token) : '');
      const name = (names && names[o.product_id]) || t('lookup.product', {id: o.product_id});
      return h('li', null,
               h('a', {href: href, class: 'order-link'},
                 h('span', {class: 'order-top'}, h('span', {class: 'order-name'}, name),
                   statusBadge(o.status)),
                 h('span', {class: 'order-sub'}, h('span', {class: 'mono'}, o.order_id),
                   h('span', null,
                     money(o.amount_cents, o.currency) + ' · ' + when(o.created_at)))));
    }
    function results() {
      if (error) {
        return h('div', {class: 'notice bad', role: 'alert'},
                 error.code === 'lookup_incomplete' ? t('lookup.incomplete') : errText(error));
      }
      if (!result) return null;
      if (!result.length) return h('p', {class: 'notice', role: 'status'}, t('lookup.none'));
      return h('section', {class: 'panel'}, h('h2', null, t('lookup.found', {n: result.length})),
               h('ul', {class: 'orders', id: 'found'}, result.map(orderItem)));
    }
    // The orders this browser has opened (ids only; their tokens are in kv.orders).
    function onThisDevice() {
      const mine = Object.keys(store('kv.orders', {})).slice(-20).reverse();
      if (!mine.length) return null;
      return h('section', {class: 'panel'}, h('h2', null, t('lookup.device')),
               h('ul', {class: 'plain'}, mine.map((oid) => h('li', null,
                 h('a', {href: '/order/' + encodeURIComponent(oid), class: 'mono'}, oid)))));
    }
    function input(name, attrs, label) {
      const el = h('input', Object.assign({id: 'l-' + name, value: form[name]}, attrs));
      el.addEventListener('input', () => { form[name] = el.value; });
      return h('div', {class: 'field'}, h('label', {for: 'l-' + name}, label), el);
    }
    function draw() {
      document.title = t('lookup.title') + ' · ' + t('app.title');
      refs = {};
      refs.submit = h('button', {type: 'submit', class: 'btn primary wide', id: 'find',
                                 disabled: busyNow || stopWait !== null},
                      t(busyNow ? 'lookup.searching' : 'lookup.submit'));
      refs.wait = h('p', {class: 'notice warn hidden', id: 'wait', role: 'status'});
      const contact = {type: 'text', autocomplete: 'email', maxlength: CONTACT_BYTES_MAX};
      const password = {type: 'password', autocomplete: 'current-password'};
      mount(h('h1', null, t('lookup.title')),
            h('div', {class: 'cols form-first'},
              h('form', {class: 'panel', novalidate: true, onsubmit: submit},
                h('p', {class: 'muted'}, t('lookup.intro')),
                input('contact', contact, t('lookup.contact')),
                input('password', password, t('lookup.password')),
                refs.submit, refs.wait),
              h('div', {class: 'stack'}, results(), onThisDevice())));
    }
    draw();
    return {draw: draw, stop() { if (stopWait) stopWait(); }};
  }

  function notFoundPage() {
    function draw() {
      document.title = t('notfound.title') + ' · ' + t('app.title');
      mount(h('h1', null, t('notfound.title')),
            h('p', null, h('a', {href: '/', class: 'btn'}, t('notfound.back'))));
    }
    draw();
    return {draw: draw, stop() {}};
  }

  // ---- routing ----

  function route() {
    if (view) view.stop();
    window.scrollTo(0, 0);
    const p = location.pathname;
    let m;
    if (p === '/' || p === '') view = cataloguePage();
    else if ((m = /^\/p\/([^/]+)\/?$/.exec(p))) view = productPage(decodeURIComponent(m[1]));
    else if ((m = /^\/order\/([^/]+)\/?$/.exec(p))) view = orderPage(decodeURIComponent(m[1]));
    else if (p === '/lookup' || p === '/lookup/') view = lookupPage();
    else view = notFoundPage();
    for (const a of document.querySelectorAll('.nav a')) {
      const href = a.getAttribute('href');
      if (href === '/' ? p === '/' : p.startsWith(href)) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }
  // Same-page links move without a reload (the language table and timers carry over);
  // every link is a real href, so a new tab or a reload lands on the same page.
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[href]');
    if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey ||
        ev.altKey || a.target || a.hasAttribute('download')) {
      return;
    }
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !/^\/(p\/|order\/|lookup|$)/.test(url.pathname)) return;
    ev.preventDefault();
    if (url.href !== location.href) history.pushState(null, '', url.href);
    route();
  });
  window.addEventListener('popstate', route);
  // Back from the gateway into a page kept in memory: start it afresh (its checkout is done).
  window.addEventListener('pageshow', (ev) => { if (ev.persisted) route(); });
  window.addEventListener('hashchange', route);
  document.getElementById('langs').addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-lang]');
    if (!b || b.dataset.lang === lang) return;
    save('kv.lang', b.dataset.lang);
    await setLang(b.dataset.lang);
    if (view) view.draw();
  });

  setLang(pickLang()).then(route, () => {
    app.textContent = 'keyvend: the language table could not be loaded.';
  });
})();
