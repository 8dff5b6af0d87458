// keyvend merchant console (/admin): plain DOM, no framework, no build step.
// Two rules hold everywhere below: every value from the API reaches the page as text
// (h() appends text nodes, never HTML), and every word the merchant reads comes from the
// language table (t()). The Content-Security-Policy forbids inline script and style, so
// there are no on*= or style= attributes either: listeners are added from here.
'use strict';

(() => {
  const API = '/api/v1/admin';
  const TOKEN_KEY = 'kv.admin.token'; // sessionStorage: this tab only, gone when it closes
  const LANG_KEY = 'kv.lang'; // localStorage: the language override, shared with the shop
  const LANGS = ['en', 'zh-CN'];
  const REFRESH_MS = 5000; // dashboard refresh, and the period of the per-minute samples
  const HISTORY_MAX = 720; // samples kept for the per-minute chart (an hour at 5 s)
  const LOW_STOCK = 10; // fewer sellable keys than this marks a product "low"
  const PAGE_SIZE = 50; // orders per page
  const SCAN_PAGE_SIZE = 500; // a contact search reads pages of this size ...
  const SCAN_PAGES_MAX = 20; // ... and at most this many (the API has no contact index)
  const ORDER_ID = /^[0-9a-f]{32}$/i;
  const STATUSES = ['pending_payment', 'paid', 'delivered', 'expired', 'cancelled',
    'backordered', 'refund_due', 'refunded'];
  const STATUS_COLORS = ['#9a6700', '#1f6feb', '#1a7f37', '#8c959f', '#57606a', '#bf8700',
    '#cf222e', '#8250df'];
  const CAN = { // which order actions the state machine allows (SPEC §3)
    cancel: ['pending_payment'],
    refund: ['paid', 'backordered', 'refund_due', 'delivered'],
    'check-payment': ['pending_payment', 'expired'], // asks the gateways now (issue 13)
  };

  // ---- small helpers -------------------------------------------------------------------

  const $ = (sel) => document.querySelector(sel);
  const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'multiple',
    'required']);

  // h('a', {href: '/x', class: 'c', onclick: fn}, 'text', child, [more]) — children that are
  // not nodes become text nodes; null, undefined and false are skipped.
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    el.append(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false)
      .map((k) => (k instanceof Node ? k : String(k))));
    return el;
  }

  // Replaces el's children; null, undefined and false children are skipped.
  const fill = (el, ...kids) => el.replaceChildren(
    ...kids.filter((k) => k !== null && k !== undefined && k !== false));

  function store(kind, key, value) {
    try {
      const s = kind === 'session' ? sessionStorage : localStorage;
      if (value === undefined) return s.getItem(key);
      if (value === null) s.removeItem(key);
      else s.setItem(key, value);
    } catch (e) { /* storage off: the console still works for this page */ }
    return null;
  }

  // ---- language ------------------------------------------------------------------------

  const tables = {};
  let lang = LANGS.includes(store('local', LANG_KEY)) ? store('local', LANG_KEY)
    : (LANGS.includes(document.documentElement.lang) ? document.documentElement.lang : 'en');

  async function loadLang(l) {
    if (!tables[l]) {
      const res = await fetch(`/assets/i18n/admin.${l}.json`);
      if (!res.ok) throw new Error(`admin.${l}.json: ${res.status}`);
      tables[l] = await res.json();
    }
    lang = l;
    document.documentElement.lang = l;
  }

  // t('orders.page', {n: 2}) → the table's string with {n} filled in (the key if missing).
  function t(key, params) {
    const s = (tables[lang] || {})[key] ?? key;
    return params ? s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m)) : s;
  }
  const has = (key) => key in (tables[lang] || {});

  const statusText = (s) => (has(`status.${s}`) ? t(`status.${s}`) : s);
  const badge = (s) => h('span', { class: `badge${STATUSES.includes(s) ? ` s-${s}` : ''}`,
    text: statusText(s) });

  function money(cents, currency) {
    try {
      const f = new Intl.NumberFormat(lang, { style: 'currency', currency });
      return f.format(cents / 10 ** f.resolvedOptions().maximumFractionDigits);
    } catch (e) {
      return `${cents} ${currency}`;
    }
  }
  const num = (n) => (typeof n === 'number' ? n.toLocaleString(lang) : '—');
  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(lang);
  }
  function bytes(n) {
    if (n < 1024) return t('unit.bytes', { n: num(n) });
    if (n < 1024 * 1024) return t('unit.kib', { n: (n / 1024).toFixed(1) });
    return t('unit.mib', { n: (n / 1024 / 1024).toFixed(1) });
  }

  function duration(seconds) {
    if (seconds < 60) return t('unit.s', { n: num(seconds) });
    if (seconds < 3600) return t('unit.min', { n: num(Math.floor(seconds / 60)) });
    return t('unit.h', { h: num(Math.floor(seconds / 3600)), m: Math.floor(seconds / 60) % 60 });
  }

  // ---- the API -------------------------------------------------------------------------

  let token = store('session', TOKEN_KEY);

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message || code || String(status));
      this.status = status;
      this.code = code;
      this.detail = message;
      this.retryAfter = retryAfter;
    }
  }

  // Answers the parsed JSON of a 2xx; throws ApiError otherwise. A 401 signs out first.
  async function api(method, path, body) {
    const init = { method, headers: { Authorization: `Bearer ${token}` } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, 'network');
    }
    return answer(res.status, await res.text(), res.headers.get('Retry-After'));
  }

  function answer(status, text, retryAfter) {
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) { /* not JSON: described by the status */ }
    if (status === 401) {
      signOut(t('signin.rejected'));
      throw new ApiError(401, 'unauthorized');
    }
    if (status < 200 || status > 299) {
      const err = (data && data.error) || {};
      throw new ApiError(status, err.code, err.message, retryAfter);
    }
    return data;
  }

  function errorText(e) {
    if (!(e instanceof ApiError)) return t('error.generic', { status: '', message: String(e) });
    if (e.code === 'network') return t('error.network');
    let s = has(`error.${e.code}`) ? t(`error.${e.code}`)
      : t('error.generic', { status: e.status, message: '' });
    if (e.detail) s += ` — ${e.detail}`;
    if (e.retryAfter) s += ` ${t('error.retryAfter', { s: e.retryAfter })}`;
    return s;
  }

  // The product list, shared by the pages that show product names (refetched when stale).
  let products = null;
  let productsAt = 0;
  async function loadProducts(force) {
    if (force || !products || Date.now() - productsAt > REFRESH_MS) {
      products = (await api('GET', '/products')).products;
      productsAt = Date.now();
    }
    return products;
  }
  const productName = (id) => {
    const p = (products || []).find((x) => x.id === id);
    return p ? p.name : `#${id}`;
  };

  function download(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: name, class: 'hidden' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // ---- page frame: flash line, confirm, routing ----------------------------------------

  let flashTimer = 0;
  function flash(text, kind) {
    const el = $('#flash');
    el.textContent = text;
    el.className = `flash ${kind || 'ok'}`;
    el.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 15000 : 8000);
  }
  const fail = (e) => { if (e.status !== 401) flash(errorText(e), 'error'); };

  // Runs an action with its button disabled while the request is in flight.
  async function busy(button, fn) {
    button.disabled = true;
    try {
      await fn();
    } catch (e) {
      fail(e);
    } finally {
      button.disabled = false;
    }
  }

  const ROUTES = [
    [/^\/admin\/?$/, 'dashboard'],
    [/^\/admin\/products\/?$/, 'products'],
    [/^\/admin\/products\/(\d+)$/, 'product'],
    [/^\/admin\/orders\/?$/, 'orders'],
    [/^\/admin\/orders\/([0-9a-fA-F]+)$/, 'order'],
    [/^\/admin\/payments\/?$/, 'payments'],
    [/^\/admin\/deliveries\/?$/, 'deliveries'],
    [/^\/admin\/backups\/?$/, 'backups'],
  ];
  const NAV_OF = { product: 'products', order: 'orders' };

  let seq = 0; // bumps on every render: async work of a page that is gone drops its result
  let teardown = null; // the current page's cleanup (timers, charts)
  let signInMessage = '';

  function go(path) {
    if (path !== location.pathname) history.pushState(null, '', path);
    render();
  }

  function applyStatic() {
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    $('#lang').value = lang;
    $('#lang').setAttribute('aria-label', t('lang.label'));
    $('#nav').setAttribute('aria-label', t('nav.label'));
  }

  function render() {
    if (teardown) teardown();
    teardown = null;
    seq += 1;
    applyStatic();
    const main = $('#main');
    $('#nav').hidden = !token;
    $('#signout').hidden = !token;
    if (!token) {
      document.title = t('app.title');
      fill(main, signInPage(signInMessage));
      $('#token').focus();
      return;
    }
    let name = 'dashboard';
    let arg = null;
    for (const [re, n] of ROUTES) {
      const m = re.exec(location.pathname);
      if (m) {
        name = n;
        arg = m[1] || null;
        break;
      }
    }
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.route === (NAV_OF[name] || name)) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `${t(`nav.${NAV_OF[name] || name}`)} · ${t('app.title')}`;
    fill(main, PAGES[name](arg, liveCheck()));
  }

  function liveCheck() {
    const mine = seq;
    return () => mine === seq;
  }

  function signOut(message) {
    token = null;
    store('session', TOKEN_KEY, null);
    products = null;
    signInMessage = message || '';
    render();
  }

  // A page's frame: a title row (with optional tools) and its body.
  const pageHead = (title, tools) => [h('div', { class: 'page-head' }, h('h1', { text: title }),
    tools)];
  const page = (title, tools, ...body) => h('section', { class: 'page' },
    ...pageHead(title, tools), ...body);
  const card = (title, ...body) => h('div', { class: 'card' },
    title ? h('h2', { text: title }) : null, ...body);
  const loading = () => h('p', { class: 'muted', text: t('common.loading') });

  // A table: headers are language keys, rows are arrays of cells (strings or nodes).
  function table(id, heads, rows, empty) {
    if (!rows.length) return h('p', { class: 'muted empty', id, text: t(empty || 'common.none') });
    const first = rows[0].cells || rows[0]; // a numeric column's head is right-aligned too
    return h('div', { class: 'table-wrap' }, h('table', { id },
      h('thead', {}, h('tr', {}, heads.map((k, i) => h('th', {
        class: first[i] && first[i].cls === 'num' ? 'num' : null, text: t(k) })))),
      h('tbody', {}, rows.map((r) => h('tr', r.attrs || {},
        (r.cells || r).map((c, i) => h('td', { class: c && c.cls, 'data-label': t(heads[i]) },
          c && c.cls ? c.v : c)))))));
  }
  const numCell = (v) => ({ cls: 'num', v: num(v) });
  const orderLink = (id) => h('a', { href: `/admin/orders/${encodeURIComponent(id)}`,
    class: 'mono', text: id });
  const productLink = (id, name) => h('a', { href: `/admin/products/${encodeURIComponent(id)}`,
    text: name });

  function dl(pairs) {
    return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', { text: t(k) }),
      h('dd', {}, v === null || v === undefined || v === '' ? '—' : v)]));
  }

  // ---- sign in -------------------------------------------------------------------------

  function signInPage(message) {
    const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password',
      required: true, spellcheck: 'false' });
    const msg = h('p', { id: 'signin-error', class: 'msg error', role: 'alert', text: message,
      hidden: !message });
    const button = h('button', { type: 'submit', text: t('signin.submit') });
    const form = h('form', { id: 'signin', class: 'card signin' },
      h('h1', { text: t('signin.title') }),
      h('p', { class: 'muted', text: t('signin.hint') }),
      h('label', { for: 'token', text: t('signin.token') }), input, msg, button);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const candidate = input.value.trim();
      if (!candidate) return;
      button.disabled = true;
      token = candidate;
      try {
        await api('GET', '/stats'); // a 401 signs out again, with the message
        store('session', TOKEN_KEY, token);
        signInMessage = '';
        render();
      } catch (e) {
        if (e.status === 401) return;
        token = null;
        button.disabled = false;
        msg.textContent = errorText(e);
        msg.hidden = false;
      }
    });
    return h('div', { class: 'center' }, form);
  }

  // ---- dashboard -----------------------------------------------------------------------

  // Stats has counts, not a time series: the console samples them every REFRESH_MS while the
  // dashboard is open and charts the deltas as rates per minute (kept for the tab's life).
  const samples = { labels: [], orders: [], sold: [], last: null };

  function takeSample(st) {
    const now = Date.now();
    const orders = Object.values(st.orders || {}).reduce((a, b) => a + b, 0);
    const sold = (st.sales && st.sales.keys_delivered) || 0;
    const last = samples.last;
    if (last && now - last.at >= 1000) {
      const minutes = (now - last.at) / 60000;
      samples.labels.push(new Date(now).toLocaleTimeString(lang));
      samples.orders.push(Math.round(Math.max(0, orders - last.orders) / minutes));
      samples.sold.push(Math.round(Math.max(0, sold - last.sold) / minutes));
      if (samples.labels.length > HISTORY_MAX) {
        for (const k of ['labels', 'orders', 'sold']) samples[k].shift();
      }
    }
    samples.last = { at: now, orders, sold };
  }

  function dashboardPage(arg, live) {
    const value = {};
    const tile = (key, href, cls) => {
      value[key] = h('span', { class: 'tile-value', id: `tile-${key}`, text: '…' });
      const body = [value[key], h('span', { class: 'tile-label', text: t(`dash.${key}`) })];
      return href ? h('a', { class: `tile ${cls || ''}`, href }, body)
        : h('div', { class: `tile ${cls || ''}` }, body);
    };
    const tiles = h('div', { class: 'tiles' },
      tile('orders'), tile('sold'),
      tile('refundDue', '/admin/payments', 'attention'),
      tile('backordered', '/admin/deliveries'));
    const stateCanvas = h('canvas', { id: 'chart-states', role: 'img',
      'aria-label': t('dash.byState') });
    const rateCanvas = h('canvas', { id: 'chart-rates', role: 'img',
      'aria-label': t('dash.perMinute') });
    const stateList = h('ul', { class: 'legend', id: 'state-list' });
    const rateNote = h('p', { class: 'muted small', id: 'rate-note' });
    const stock = h('div', { id: 'stock' }, loading());
    const body = page(t('nav.dashboard'), null, tiles,
      h('div', { class: 'grid2 even' },
        card(t('dash.byState'), h('div', { class: 'chart-box' }, stateCanvas), stateList),
        card(t('dash.perMinute'), h('div', { class: 'chart-box' }, rateCanvas), rateNote)),
      card(t('dash.stock'), stock));

    let charts = null; // made on the first answer, once the canvases are in the page
    function makeCharts() {
      if (typeof Chart === 'undefined') return null; // the page still works without charts
      const base = { responsive: true, maintainAspectRatio: false, animation: false };
      // Dots while the series is short (one sample is a dot, not an empty chart), none after.
      const pointRadius = (ctx) => (ctx.chart.data.labels.length > 30 ? 0 : 3);
      return {
        states: new Chart(stateCanvas, {
          type: 'bar',
          data: { labels: [], datasets: [{ data: [], backgroundColor: STATUS_COLORS }] },
          options: { ...base, indexAxis: 'y', plugins: { legend: { display: false } },
            scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
        }),
        rates: new Chart(rateCanvas, {
          type: 'line',
          data: { labels: samples.labels, datasets: [
            { label: t('dash.ordersPerMinute'), data: samples.orders, borderColor: '#1f6feb',
              backgroundColor: '#1f6feb', pointRadius, borderWidth: 2, tension: 0.2 },
            { label: t('dash.soldPerMinute'), data: samples.sold, borderColor: '#1a7f37',
              backgroundColor: '#1a7f37', pointRadius, borderWidth: 2, tension: 0.2 }] },
          options: { ...base, interaction: { mode: 'index', intersect: false },
            plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
            scales: { y: { beginAtZero: true, ticks: { precision: 0 } },
              x: { ticks: { maxTicksLimit: 6, maxRotation: 0 } } } },
        }),
      };
    }

    function show(st) {
      const total = Object.values(st.orders || {}).reduce((a, b) => a + b, 0);
      value.orders.textContent = num(total);
      value.sold.textContent = num(st.sales.keys_delivered);
      value.refundDue.textContent = num(st.payments.refund_due);
      value.backordered.textContent = num(st.deliveries.backordered);
      value.refundDue.parentNode.classList.toggle('alert', st.payments.refund_due > 0);

      fill(stateList, ...STATUSES.map((s, i) => h('li', { 'data-status': s },
        h('span', { class: `swatch c${i}` }), statusText(s), ' ',
        h('b', { text: num((st.orders || {})[s] || 0) }))));
      if (!charts) charts = makeCharts();
      if (charts) {
        charts.states.data.labels = STATUSES.map(statusText);
        charts.states.data.datasets[0].data = STATUSES.map((s) => (st.orders || {})[s] || 0);
        charts.states.update('none');
        charts.rates.update('none');
      }
      const r = st.rates || {};
      fill(rateNote, t('dash.sampled', { s: REFRESH_MS / 1000 }), h('br'),
        t('dash.sinceStart', { uptime: duration(r.uptime_seconds || 0),
          orders: num(r.orders_created_per_minute), payments: num(r.payments_per_minute) }));

      const rows = (st.products || []).map((p) => {
        const active = (products || []).find((x) => x.id === p.id);
        let mark = null;
        if (active && !active.active) mark = h('span', { class: 'badge', text: t('stock.inactive') });
        else if (p.stock <= 0) mark = h('span', { class: 'badge s-refund_due', text: t('stock.soldOut') });
        else if (p.stock < LOW_STOCK) mark = h('span', { class: 'badge s-pending_payment', text: t('stock.low') });
        return { attrs: { 'data-id': p.id, class: mark ? 'low' : null },
          cells: [productLink(p.id, p.name), numCell(p.stock), numCell(p.held), numCell(p.owed),
            numCell(p.delivered), numCell(p.imported), mark] };
      });
      fill(stock, table('stock-table', ['stock.product', 'stock.sellable',
        'stock.held', 'stock.owed', 'stock.delivered', 'stock.imported', 'stock.mark'], rows,
      'products.none'));
    }

    let timer = 0;
    async function refresh() {
      if (!document.hidden) {
        try {
          const [st] = await Promise.all([api('GET', '/stats'), loadProducts()]);
          if (!live()) return;
          takeSample(st);
          show(st);
        } catch (e) {
          if (!live()) return;
          fail(e);
        }
      }
      if (live()) timer = setTimeout(refresh, REFRESH_MS);
    }
    refresh();
    teardown = () => {
      clearTimeout(timer);
      if (charts) Object.values(charts).forEach((c) => c.destroy());
    };
    return body;
  }

  // ---- products ------------------------------------------------------------------------

  // The create / edit form. `p` is the product being edited (null to create).
  function productForm(p, onSaved) {
    const f = {
      name: h('input', { name: 'name', required: true, maxlength: 200, value: p ? p.name : '' }),
      description: h('textarea', { name: 'description', rows: 2,
        value: p ? p.description : '' }),
      price_cents: h('input', { name: 'price_cents', type: 'number', min: 0, step: 1,
        required: true, inputmode: 'numeric', value: p ? String(p.price_cents) : '' }),
      currency: h('input', { name: 'currency', required: true, maxlength: 3, pattern: '[A-Z]{3}',
        placeholder: 'USD', value: p ? p.currency : ((products || [])[0] || {}).currency || '' }),
      stock_mode: h('select', { name: 'stock_mode' },
        ['reserve', 'on_payment'].map((m) => h('option', { value: m, text: t(`mode.${m}`),
          selected: p ? p.stock_mode === m : m === 'reserve' }))),
      max_per_order: h('input', { name: 'max_per_order', type: 'number', min: 1, max: 1000,
        step: 1, required: true, value: String(p ? p.max_per_order : 10) }),
      allow_backorder: h('input', { name: 'allow_backorder', type: 'checkbox',
        checked: p ? p.allow_backorder : false }),
      active: h('input', { name: 'active', type: 'checkbox', checked: p ? p.active : true }),
    };
    const field = (key, label, hint) => h('label', { class: 'field' },
      h('span', { text: t(label) }), f[key], hint ? h('small', { class: 'muted', text: t(hint) }) : null);
    const check = (key, label) => h('label', { class: 'check' }, f[key], h('span', { text: t(label) }));
    const button = h('button', { type: 'submit', text: t(p ? 'common.save' : 'products.create') });
    const form = h('form', { class: 'form', id: p ? 'product-edit' : 'product-new' },
      field('name', 'product.name'), field('description', 'product.description'),
      h('div', { class: 'row' }, field('price_cents', 'product.priceCents', 'product.priceHint'),
        field('currency', 'product.currency')),
      h('div', { class: 'row' }, field('stock_mode', 'product.mode'),
        field('max_per_order', 'product.maxPerOrder')),
      h('div', { class: 'row checks' }, check('allow_backorder', 'product.backorder'),
        check('active', 'product.active')),
      h('div', { class: 'actions' }, button));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const body = {
        name: f.name.value.trim(),
        description: f.description.value,
        price_cents: Number(f.price_cents.value),
        currency: f.currency.value.trim().toUpperCase(),
        stock_mode: f.stock_mode.value,
        max_per_order: Number(f.max_per_order.value),
        allow_backorder: f.allow_backorder.checked,
        active: f.active.checked,
      };
      busy(button, async () => {
        const saved = p ? await api('PATCH', `/products/${encodeURIComponent(p.id)}`, body)
          : await api('POST', '/products', body);
        await loadProducts(true);
        flash(t(p ? 'products.saved' : 'products.created', { name: saved.name }));
        onSaved(saved);
      });
    });
    return form;
  }

  function productsPage(arg, live) {
    const list = h('div', { id: 'products' }, loading());
    const create = h('details', { class: 'card', id: 'create-product' },
      h('summary', { text: t('products.new') }),
      productForm(null, (saved) => go(`/admin/products/${saved.id}`)));
    const body = page(t('nav.products'), null, create, card(null, list));

    const toggle = (p) => h('button', { type: 'button', class: 'small quiet',
      text: t(p.active ? 'products.deactivate' : 'products.activate'),
      onclick: (ev) => {
        if (p.active && !window.confirm(t('products.confirmDeactivate', { name: p.name }))) return;
        busy(ev.currentTarget, async () => {
          await api('PATCH', `/products/${encodeURIComponent(p.id)}`, { active: !p.active });
          flash(t(p.active ? 'products.deactivated' : 'products.activated', { name: p.name }));
          await show(true);
        });
      } });

    async function show(force) {
      const ps = await loadProducts(force);
      if (!live()) return;
      if (!ps.length) create.open = true;
      fill(list, table('products-table', ['product.id', 'product.name', 'product.price',
        'product.stock', 'product.mode', 'product.state', 'common.actions'], ps.map((p) => ({
        attrs: { 'data-id': p.id, class: p.active ? null : 'inactive' },
        cells: [{ cls: 'mono', v: p.id }, productLink(p.id, p.name),
          { cls: 'num', v: money(p.price_cents, p.currency) }, numCell(p.stock),
          t(`mode.${p.stock_mode}`), p.active ? t('product.isActive') : t('stock.inactive'),
          h('span', { class: 'btns' }, h('a', { href: `/admin/products/${p.id}`,
            class: 'button small quiet', text: t('common.edit') }), toggle(p))],
      })), 'products.none'));
    }
    show(true).catch(fail);
    return body;
  }

  function productPage(id, live) {
    const body = page(t('nav.products'), null, loading());
    const batches = h('div', { id: 'batches' }, loading());
    const counts = h('div', { id: 'counts' });

    async function showKeys() {
      const k = await api('GET', `/products/${encodeURIComponent(id)}/keys`);
      if (!live()) return;
      const c = k.counts;
      fill(counts, dl([['keys.available', num(c.available)], ['keys.pool', num(c.pool)],
        ['keys.held', num(c.held)], ['keys.owed', num(c.owed)],
        ['keys.delivered', num(c.delivered)], ['keys.imported', num(c.imported)],
        ['keys.retired', num(c.retired)]]));
      fill(batches, table('batches-table', ['keys.batch', 'keys.created',
        'keys.imported', 'keys.retired', 'product.state', 'common.actions'],
      k.batches.map((b) => [{ cls: 'mono', v: b.batch_id }, when(b.created_at),
        numCell(b.imported), numCell(b.retired),
        b.retired_batch ? t('keys.batchRetired') : t('keys.batchLive'),
        b.retired_batch ? null : h('button', { type: 'button', class: 'small danger',
          text: t('keys.retire'), onclick: (ev) => {
            if (!window.confirm(t('keys.confirmRetire', { batch: b.batch_id }))) return;
            busy(ev.currentTarget, async () => {
              const r = await api('POST', `/products/${encodeURIComponent(id)}/keys/retire`,
                { batch_id: b.batch_id });
              flash(t('keys.retiredDone', { n: num(r.retired), batch: r.batch_id }));
              await showKeys();
            });
          } })]), 'keys.noBatches'));
    }

    (async () => {
      const p = (await loadProducts(true)).find((x) => x.id === id);
      if (!live()) return;
      if (!p) {
        fill(body, ...pageHead(t('nav.products')),
          h('p', { class: 'msg error', text: t('error.product_not_found') }));
        return;
      }
      fill(body, h('div', { class: 'page-head' },
        h('h1', {}, h('a', { href: '/admin/products', class: 'up', text: t('nav.products') }),
          ' / ', h('span', { id: 'product-title', text: p.name }))),
      h('div', { class: 'grid2' },
        card(t('products.edit'), productForm(p, () => render())),
        h('div', {}, card(t('keys.title'), counts),
          card(t('import.title'), importPanel(id, () => showKeys().catch(fail))))),
      card(t('keys.batches'), batches));
      await showKeys();
    })().catch(fail);
    return body;
  }

  // ---- key import ----------------------------------------------------------------------

  function importPanel(pid, onDone) {
    const files = h('input', { id: 'import-files', type: 'file', multiple: true,
      accept: '.txt,.csv,text/plain,text/csv' });
    const column = h('input', { id: 'import-column', placeholder: 'key', maxlength: 64 });
    const button = h('button', { type: 'submit', id: 'import-go', text: t('import.upload') });
    const results = h('div', { id: 'import-results', class: 'uploads' });
    const form = h('form', { class: 'form', id: 'import' },
      h('p', { class: 'muted', text: t('import.hint') }),
      h('div', { class: 'row' }, h('label', { class: 'field' },
        h('span', { text: t('import.files') }), files),
      h('label', { class: 'field narrow' }, h('span', { text: t('import.column') }), column)),
      h('div', { class: 'actions' }, button), results);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!files.files.length) return flash(t('import.pick'), 'error');
      button.disabled = true;
      fill(results);
      // One file at a time: each import is one atomic batch, reported on its own.
      for (const file of files.files) {
        if (!token) break;
        await uploadOne(pid, file, column.value.trim(), results);
      }
      button.disabled = false;
      files.value = '';
      onDone();
    });
    return form;
  }

  function uploadOne(pid, file, column, into) {
    const csv = /\.csv$/i.test(file.name) || file.type === 'text/csv';
    const bar = h('progress', { max: 1, value: 0 });
    const status = h('span', { class: 'muted small', text: t('import.sending') });
    const row = h('div', { class: 'upload' }, h('div', { class: 'upload-head' },
      h('b', { class: 'file', text: file.name }), h('span', { class: 'muted small', text: bytes(file.size) }),
      status), bar);
    into.append(row);
    let url = `${API}/products/${encodeURIComponent(pid)}/keys`;
    if (csv && column) url += `?column=${encodeURIComponent(column)}`;
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', url);
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.setRequestHeader('Content-Type', csv ? 'text/csv' : 'text/plain');
      xhr.upload.addEventListener('progress', (e) => {
        if (!e.lengthComputable) return;
        bar.max = e.total || 1;
        bar.value = e.loaded;
      });
      xhr.upload.addEventListener('load', () => { status.textContent = t('import.checking'); });
      xhr.addEventListener('load', () => {
        bar.value = bar.max;
        try {
          const r = answer(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After'));
          status.textContent = t('import.done');
          row.append(importReport(pid, file.name, r));
        } catch (e) {
          status.textContent = '';
          row.classList.add('failed');
          if (e.status !== 401) row.append(h('p', { class: 'msg error', text: errorText(e) }));
        }
        resolve();
      });
      xhr.addEventListener('error', () => {
        row.classList.add('failed');
        status.textContent = '';
        row.append(h('p', { class: 'msg error', text: t('error.network') }));
        resolve();
      });
      xhr.send(file);
    });
  }

  function importReport(pid, fileName, r) {
    const reason = (x) => (has(`reject.${x}`) ? t(`reject.${x}`) : x);
    const summary = t('import.summary', { imported: num(r.imported), duplicates: num(r.duplicates),
      rejected: num(r.rejected.length), served: num(r.backorders_served) });
    // The same report as plain text, for the download.
    const text = [t('import.reportTitle'), `${t('import.file')}: ${fileName}`,
      `${t('product.id')}: ${pid}`, `${t('keys.batch')}: ${r.batch_id || '—'}`,
      `${t('import.imported')}: ${r.imported}`, `${t('import.duplicates')}: ${r.duplicates}`,
      `${t('import.served')}: ${r.backorders_served}`,
      `${t('import.rejected')}: ${r.rejected.length}`,
      ...r.rejected.map((x) => t('import.lineReason', { line: x.line, reason: reason(x.reason) })),
      ''].join('\n');
    return h('div', { class: 'report' },
      h('p', { class: 'report-summary', text: summary }),
      r.batch_id ? h('p', { class: 'muted small', text: `${t('keys.batch')} ${r.batch_id}` }) : null,
      r.rejected.length ? table(null, ['import.line', 'import.reason'],
        r.rejected.map((x) => [{ cls: 'num', v: String(x.line) }, reason(x.reason)])) : null,
      h('button', { type: 'button', class: 'small quiet', text: t('import.download'),
        onclick: () => download(new Blob([text], { type: 'text/plain;charset=utf-8' }),
          `${fileName}.report.txt`) }));
  }

  // ---- orders --------------------------------------------------------------------------

  // Kept across pages, so that "back" from an order returns to the same list page.
  const listState = { q: '', status: '', cursors: [''], page: 0 };

  function ordersPage(arg, live) {
    const q = h('input', { id: 'order-q', type: 'search', value: listState.q,
      placeholder: t('orders.searchHint'), 'aria-label': t('orders.search') });
    const status = h('select', { id: 'order-status', 'aria-label': t('orders.state') },
      h('option', { value: '', text: t('orders.allStates') }),
      STATUSES.map((s) => h('option', { value: s, text: statusText(s),
        selected: s === listState.status })));
    const searchBtn = h('button', { type: 'submit', text: t('orders.search') });
    const exportBtn = h('button', { type: 'button', id: 'export-csv', class: 'quiet',
      text: t('orders.export'), onclick: () => busy(exportBtn, exportCsv) });
    const results = h('div', { id: 'orders' }, loading());
    const pager = h('div', { class: 'pager' });
    const toolbar = h('form', { class: 'toolbar', id: 'order-search' }, q, status, searchBtn);
    status.addEventListener('change', () => toolbar.requestSubmit());
    toolbar.addEventListener('submit', (ev) => {
      ev.preventDefault();
      Object.assign(listState, { q: q.value.trim(), status: status.value, cursors: [''], page: 0 });
      busy(searchBtn, show);
    });
    const body = page(t('nav.orders'), exportBtn, toolbar, card(null, results, pager));

    const rows = (orders) => orders.map((o) => ({ attrs: { 'data-id': o.order_id },
      cells: [orderLink(o.order_id), badge(o.status), productName(o.product_id),
        numCell(o.quantity), { cls: 'num', v: money(o.amount_cents, o.currency) }, o.contact,
        when(o.created_at)] }));
    const HEADS = ['order.id', 'order.status', 'order.product', 'order.quantity', 'order.amount',
      'order.contact', 'order.created'];

    async function show() {
      await loadProducts();
      const s = listState;
      const filter = s.status ? `&status=${encodeURIComponent(s.status)}` : '';
      let found;
      let note = '';
      fill(pager);
      if (s.q && ORDER_ID.test(s.q)) {
        try {
          found = [await api('GET', `/orders/${encodeURIComponent(s.q.toLowerCase())}`)];
        } catch (e) {
          if (e.code !== 'order_not_found') throw e;
          found = [];
        }
      } else if (s.q) {
        // No contact index in the API: read pages and match here, up to a bound.
        const needle = s.q.toLowerCase();
        found = [];
        let cursor = '';
        let scanned = 0;
        for (let i = 0; i < SCAN_PAGES_MAX; i += 1) {
          const r = await api('GET', `/orders?limit=${SCAN_PAGE_SIZE}${filter}${
            cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
          scanned += r.orders.length;
          found.push(...r.orders.filter((o) => o.contact.toLowerCase().includes(needle)));
          cursor = r.next_cursor;
          if (!cursor) break;
        }
        note = t(cursor ? 'orders.scannedSome' : 'orders.scannedAll', { n: num(scanned) });
      } else {
        const r = await api('GET', `/orders?limit=${PAGE_SIZE}${filter}${
          s.cursors[s.page] ? `&cursor=${encodeURIComponent(s.cursors[s.page])}` : ''}`);
        found = r.orders;
        s.cursors[s.page + 1] = r.next_cursor || null;
        const prev = h('button', { type: 'button', class: 'quiet small', text: t('orders.prev'),
          disabled: s.page === 0, onclick: () => { s.page -= 1; busy(prev, show); } });
        const next = h('button', { type: 'button', class: 'quiet small', id: 'orders-next',
          text: t('orders.next'), disabled: !r.next_cursor,
          onclick: () => { s.page += 1; busy(next, show); } });
        fill(pager, prev, h('span', { class: 'muted small',
          text: t('orders.page', { n: s.page + 1 }) }), next);
      }
      if (!live()) return;
      fill(results, table('orders-table', HEADS, rows(found), 'orders.none'),
        note ? h('p', { class: 'muted small', text: note }) : null);
    }
    show().catch(fail);
    return body;
  }

  async function exportCsv() {
    let res;
    try {
      res = await fetch(`${API}/orders/export`, { headers: { Authorization: `Bearer ${token}` } });
    } catch (e) {
      throw new ApiError(0, 'network');
    }
    if (!res.ok) answer(res.status, await res.text(), res.headers.get('Retry-After'));
    const blob = await res.blob();
    download(blob, `orders-${new Date().toISOString().slice(0, 10)}.csv`);
    flash(t('orders.exported', { size: bytes(blob.size) }));
  }

  function orderPage(id, live) {
    const body = page(t('nav.orders'), null, loading());
    const harmless = (action) => action === 'check-payment';
    const act = (action, o) => h('button', { type: 'button', id: `order-${action}`,
      class: harmless(action) ? 'quiet' : 'danger', text: t(`order.${action}`),
      onclick: (ev) => {
        // Asking the gateways changes nothing they did not say: no confirmation.
        if (action !== 'check-payment' &&
            !window.confirm(t(`order.confirm_${action}`, { id: o.order_id }))) return;
        busy(ev.currentTarget, async () => {
          const answer = await api('POST', `/orders/${encodeURIComponent(o.order_id)}/${action}`, {});
          // check-payment answers {"order", "checked": [{gateway, state, ...}]}.
          const next = answer.order || answer;
          if (action === 'check-payment') {
            flash(t('order.checked', { n: answer.checked.length, status: statusText(next.status) }));
          } else {
            flash(t('order.done', { status: statusText(next.status) }));
          }
          if (live()) showOrder(next);
        });
      } });

    function showOrder(o) {
      const keys = h('ol', { class: 'keys mono', id: 'order-keys', hidden: true },
        o.keys.map((k) => h('li', { text: k })));
      const reveal = o.keys.length ? h('button', { type: 'button', class: 'small quiet', id: 'show-keys',
        text: t('order.showKeys', { n: o.keys.length }), onclick: (ev) => {
          keys.hidden = !keys.hidden;
          ev.currentTarget.textContent = t(keys.hidden ? 'order.showKeys' : 'order.hideKeys',
            { n: o.keys.length });
        } }) : h('span', { class: 'muted', text: t('order.noKeys') });
      const actions = Object.keys(CAN).filter((a) => CAN[a].includes(o.status)).map((a) => act(a, o));
      fill(body, h('div', { class: 'page-head' },
        h('h1', {}, h('a', { href: '/admin/orders', class: 'up', text: t('nav.orders') }), ' / ',
          h('span', { class: 'mono', id: 'order-title', text: o.order_id }))),
      h('div', { class: 'grid2' },
        card(t('order.details'), dl([['order.status', badge(o.status)],
          ['order.product', productLink(o.product_id, productName(o.product_id))],
          ['order.quantity', num(o.quantity)], ['order.amount', money(o.amount_cents, o.currency)],
          ['order.contact', o.contact], ['order.payment', o.payment_id],
          ['order.created', when(o.created_at)], ['order.expires', when(o.expires_at)]])),
        card(t('order.keys'), reveal, keys,
          h('h2', { class: 'sub', text: t('common.actions') }),
          actions.length ? h('div', { class: 'btns' }, actions)
            : h('p', { class: 'muted', text: t('order.noActions') }))));
    }

    (async () => {
      await loadProducts();
      const o = await api('GET', `/orders/${encodeURIComponent(id)}`);
      if (live()) showOrder(o);
    })().catch((e) => {
      if (!live()) return;
      fill(body, ...pageHead(t('nav.orders')), h('p', { class: 'msg error', text: errorText(e) }));
    });
    return body;
  }

  // ---- payments, deliveries, backups ---------------------------------------------------

  // A list page with a state filter: `load(state)` fills `into` (both given by the caller).
  function filtered(id, states, initial, load) {
    const select = h('select', { id, 'aria-label': t('orders.state') },
      states.map(([v, k]) => h('option', { value: v, text: t(k), selected: v === initial })));
    select.addEventListener('change', () => load(select.value).catch(fail));
    return select;
  }

  function paymentsPage(arg, live) {
    const list = h('div', { id: 'payments' }, loading());
    async function load(state) {
      const r = await api('GET', `/payments${state ? `?state=${state}` : ''}`);
      if (!live()) return;
      fill(list, table('payments-table', ['pay.id', 'pay.order', 'pay.amount',
        'pay.received', 'pay.state', 'pay.reason', 'pay.problem'], r.payments.map((p) => [
        { cls: 'mono', v: p.payment_id }, p.order_id ? orderLink(p.order_id) : '—',
        { cls: 'num', v: money(p.amount_cents, p.currency) }, when(p.received_at),
        t(`pay.${p.state}`), has(`flag.${p.reason}`) ? t(`flag.${p.reason}`) : p.reason,
        p.problem ? h('span', {}, p.problem, h('br'), h('code', { text: p.body_excerpt || '' }))
          : '']), state === 'refund_due' ? 'pay.noneDue' : 'common.none'));
    }
    const select = filtered('payment-state', [['refund_due', 'pay.refund_due'],
      ['applied', 'pay.applied'], ['', 'pay.all']], 'refund_due', load);
    load('refund_due').catch(fail);
    return page(t('nav.payments'), select, h('p', { class: 'muted', text: t('pay.hint') }),
      card(null, list));
  }

  function deliveriesPage(arg, live) {
    const list = h('div', { id: 'deliveries' }, loading());
    async function load() {
      const r = await api('GET', '/deliveries');
      if (!live()) return;
      fill(list, table('deliveries-table', ['del.id', 'del.order', 'del.product',
        'del.quantity', 'del.state', 'del.created'],
      r.deliveries.map((d) => [{ cls: 'mono', v: d.id }, orderLink(d.order_id),
        productLink(d.product_id, productName(d.product_id)), numCell(d.quantity),
        has(`del.${d.state}`) ? t(`del.${d.state}`) : d.state, when(d.created_at)]), 'del.none'));
    }
    loadProducts().then(() => load()).catch(fail);
    return page(t('nav.deliveries'), null, h('p', { class: 'muted', text: t('del.hint') }),
      card(null, list));
  }

  function backupsPage(arg, live) {
    const summary = h('div', { id: 'backup-summary' }, loading());
    const list = h('div', { id: 'backups' });
    const take = h('button', { type: 'button', id: 'backup-now', text: t('backup.now'),
      onclick: () => {
        take.textContent = t('backup.running');
        busy(take, async () => {
          try {
            const r = await api('POST', '/backups', {});
            flash(t('backup.taken', { id: r.backup.id, size: bytes(r.backup.size_bytes),
              ms: num(r.duration_ms) }));
          } finally {
            take.textContent = t('backup.now');
          }
          await load();
        });
      } });
    async function load() {
      const r = await api('GET', '/backups');
      if (!live()) return;
      const sch = r.schedule;
      fill(summary, r.backup_dir ? dl([['backup.dir', h('code', { text: r.backup_dir })],
        ['backup.schedule', sch.interval_seconds ? t('backup.every', { s: num(sch.interval_seconds),
          keep: num(sch.keep) }) : t('backup.manual')],
        ['backup.onDisk', bytes(r.bytes_on_disk)],
        ['backup.lastSuccess', when(r.last_success_at)],
        ['backup.lastFailure', when(r.last_failure_at)],
        ['backup.lastError', r.last_error]])
        : h('p', { class: 'msg error', text: t('backup.off') }));
      take.disabled = !r.backup_dir || r.running;
      fill(list, table('backups-table', ['backup.id', 'backup.finished',
        'backup.size', 'backup.files', 'backup.products', 'backup.keys', 'backup.orders',
        'backup.source'], r.backups.slice().reverse().map((b) => [{ cls: 'mono', v: b.id },
        when(b.finished_at), { cls: 'num', v: bytes(b.size_bytes) }, numCell(b.files),
        numCell(b.products), numCell(b.keys), numCell(b.orders),
        b.keyvend ? b.source : h('span', { class: 'msg error', text: b.metadata_error })]),
      'backup.none'),
      r.unreadable.length ? h('p', { class: 'msg error', text: t('backup.unreadable',
        { ids: r.unreadable.join(', ') }) }) : null);
    }
    load().catch(fail);
    return page(t('nav.backups'), take, card(t('backup.summary'), summary),
      card(t('backup.list'), list));
  }

  const PAGES = { dashboard: dashboardPage, products: productsPage, product: productPage,
    orders: ordersPage, order: orderPage, payments: paymentsPage, deliveries: deliveriesPage,
    backups: backupsPage };

  // ---- start ---------------------------------------------------------------------------

  document.addEventListener('click', (ev) => {
    const a = ev.target.closest('a[href]');
    if (!a || a.hasAttribute('download') || ev.button !== 0 || ev.ctrlKey || ev.metaKey ||
      ev.shiftKey || ev.altKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith('/admin')) return;
    ev.preventDefault();
    $('#flash').hidden = true; // the last action's message belongs to the page left behind
    go(url.pathname);
  });
  window.addEventListener('popstate', render);
  $('#signout').addEventListener('click', () => signOut(t('signin.signedOut')));
  $('#lang').addEventListener('change', async (ev) => {
    const l = ev.target.value;
    store('local', LANG_KEY, l);
    try {
      await loadLang(l);
    } catch (e) {
      flash(String(e), 'error');
    }
    render();
  });

  loadLang(lang).catch(() => loadLang('en')).then(render, (e) => {
    $('#main').textContent = String(e); // no language table at all: say why, plainly
  });
})();
