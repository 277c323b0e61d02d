/**
 * The dashboard: one self-contained page served at `/` by the monitor server, drawn with uPlot
 * (served from the installed package at /assets/uplot.js and /assets/uplot.css: no CDN, nothing
 * beyond this host). Everything it shows and changes goes through the HTTP API (api/routes.ts):
 *
 *   on open      GET /api/v1/groups (the group picker), then for the chosen group
 *                GET …/metrics (the history the charts start with), GET /api/v1/status?group=
 *                (instances, counts, recent decisions) and GET /api/v1/groups/{g} (the policy form)
 *   then         GET /api/v1/stream?group= read with fetch() (an EventSource cannot send a token):
 *                `sample` appends a point to the charts and updates the table, `decision` the
 *                timeline, `instance` / `activity` / `change` a (debounced) status re-read;
 *                the status is also re-read every 5 s (last seen, zones: not in `sample`).
 *                Reconnects with backoff and Last-Event-ID, and re-reads the history after a gap.
 *   controls     PATCH policy (only the fields changed), pause / resume, scale / clear, dry run,
 *                demand; GET …/simulate for the what-if panel. Writes carry
 *                `Authorization: Bearer <token>`: the token comes from the URL fragment
 *                (`#token=…`, which never reaches a server), is kept in sessionStorage and taken
 *                out of the address bar, or is pasted into the token field.
 *
 * Every string from the API reaches the DOM as text (textContent, setAttribute), never as markup.
 * For tests and scripts the page exposes `window.__dashboard`: the uPlot instances (`charts.cpu`,
 * `charts.capacity`, `charts.whatif`), the history it drew (`history`), `ready` once drawn, the
 * stream state and the number of samples appended. Stable hooks: #group, #window, #token,
 * #cpu-chart / #capacity-chart (data-points: points drawn; data-history-points: points from the
 * history; data-markers: decisions marked), #decisions li[data-decision-id], #instances
 * tr[data-instance], #policy-form, #policy-result, #revision, #conn[data-state], #whatif-form,
 * #whatif-runs tr[data-policy].
 */
import { TRACE_NAMES } from '../sim/traces.js';

/** Per-instance CPU lines drawn at most (the busiest the history returns; the table lists all). */
const MAX_INSTANCE_SERIES = 40;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var TRACES = ${JSON.stringify(['recorded', ...TRACE_NAMES])};
  var MAX_INSTANCE_SERIES = ${MAX_INSTANCE_SERIES};
  var COMPARE = 'hpa,aws-target-tracking,oracle';
  var MAX_DECISIONS_SHOWN = 100;
  var STATUS_REFRESH_MS = 5000;
  var BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
  var TOKEN_KEY = 'autoscaler.token';
  var WINDOWS = [
    { label: '15 min', window: '15m', step: '5s' },
    { label: '1 hour', window: '1h', step: '10s' },
    { label: '6 hours', window: '6h', step: '1m' },
    { label: '24 hours', window: '24h', step: '5m' },
  ];
  var COLORS = { cpu: '#2563eb', target: '#dc2626', desired: '#7c3aed', reporting: '#16a34a', demand: '#d97706' };
  var INSTANCE_COLORS = ['#94a3b8', '#7dd3fc', '#a5b4fc', '#86efac', '#fcd34d', '#f9a8d4', '#c4b5fd', '#5eead4'];
  var POLICY_COLORS = { policy: '#2563eb', hpa: '#16a34a', 'aws-target-tracking': '#db2777', threshold: '#0891b2', oracle: '#64748b' };

  var D = window.__dashboard = { charts: {}, history: null, ready: false, samples: 0, stream: 'idle', group: null };

  // ---- small helpers -------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  /** An element with attributes and children; text only ever through textContent. */
  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
  function enc(s) { return encodeURIComponent(s); }
  function num(v, digits) { return v === null || v === undefined || !isFinite(v) ? '–' : Number(v).toFixed(digits === undefined ? 1 : digits); }
  function pct(v) { return v === null || v === undefined ? '–' : Number(v).toFixed(1) + '%'; }
  function clock(ts) { return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }); }
  function ago(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '–';
    ms = Math.max(0, ms);
    return ms < 60000 ? (ms / 1000).toFixed(1) + ' s ago' : ms < 3600000 ? Math.round(ms / 60000) + ' min ago' : Math.round(ms / 3600000) + ' h ago';
  }
  /** 90s, 5m, 1h, 1500ms, or seconds; null when it is none of those. */
  function parseDuration(s) {
    var m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(String(s).trim());
    if (!m) return null;
    return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2] || 's']);
  }
  function debounce(f, ms) {
    var t = null;
    return function () { clearTimeout(t); t = setTimeout(f, ms); };
  }

  // ---- token -----------------------------------------------------------------------------------
  var token = null;
  function readToken() {
    var frag = new URLSearchParams(location.hash.replace(/^#/, ''));
    var fromUrl = frag.get('token');
    if (fromUrl) {
      setToken(fromUrl);
      frag.delete('token');
      var rest = frag.toString();
      // The secret leaves the address bar (and the history entry) at once.
      history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
    } else {
      try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
    }
    showToken();
  }
  function setToken(t) {
    token = t || null;
    try { if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* memory only */ }
  }
  function showToken() {
    var s = $('token-state');
    s.textContent = token ? 'token set' : 'no token: read only';
    s.setAttribute('data-state', token ? 'set' : 'none');
    $('token-forget').hidden = !token;
  }

  // ---- API -------------------------------------------------------------------------------------
  function ApiError(status, body) {
    this.status = status;
    this.body = body && typeof body === 'object' ? body : {};
    this.message = this.body.error ? String(this.body.error) : 'HTTP ' + status;
  }
  function headers(extra) {
    var hd = { accept: 'application/json' };
    if (token) hd.authorization = 'Bearer ' + token;
    Object.keys(extra || {}).forEach(function (k) { hd[k] = extra[k]; });
    return hd;
  }
  function api(method, path, body) {
    var init = { method: method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }), cache: 'no-store' };
    if (body !== undefined) init.body = JSON.stringify(body);
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var json = null;
        try { json = text ? JSON.parse(text) : null; } catch (e) { json = { error: 'not JSON: ' + text.slice(0, 200) }; }
        if (!res.ok) throw new ApiError(res.status, json);
        return json;
      });
    }, function (err) {
      throw new ApiError(0, { error: 'cannot reach the monitor server (' + (err && err.message ? err.message : String(err)) + ')' });
    });
  }
  var HINTS = {
    401: 'Paste a token with role write into the token field at the top right (the demo prints the dashboard URL with one).',
    403: 'This token may only read: paste one with role write into the token field.',
  };
  /** Field paths of the API to the form inputs they concern. */
  function inputFor(path) {
    if (/targetTracking\.\d+(\.target)?$/.test(path)) return 'cpuTarget';
    if (/(^|\.)minSize$/.test(path)) return 'minSize';
    if (/(^|\.)maxSize$/.test(path)) return 'maxSize';
    if (/scaleDown\.stabilizationMs$/.test(path)) return 'scaleInStabilizationS';
    if (/warmupMs$/.test(path)) return 'warmupS';
    if (/^(desired|forMs|spec)$/.test(path)) return path === 'forMs' ? 'for' : path;
    return null;
  }
  function showError(out, err, form) {
    clear(out);
    out.className = 'result error';
    out.setAttribute('data-status', String(err.status === undefined ? '' : err.status));
    var b = err.body || {};
    var fields = Array.isArray(b.fields) ? b.fields : [];
    var text = String(b.error || err.message || err);
    // The message repeats the fields one per line; with fields, its first line heads the list.
    out.appendChild(h('div', { class: 'msg', text: fields.length > 0 ? text.split('\n')[0] : text }));
    if (fields.length > 0) {
      out.appendChild(h('ul', null, fields.map(function (f) {
        return h('li', { text: (f.in ? f.in + ' ' : '') + (f.path || '(whole)') + ': ' + f.message });
      })));
    }
    if (HINTS[err.status]) out.appendChild(h('div', { class: 'hint', text: HINTS[err.status] }));
    if (form) fields.forEach(function (f) {
      var name = inputFor(String(f.path || ''));
      var input = name && form.elements.namedItem(name);
      if (input) { input.classList.add('invalid'); input.setAttribute('aria-invalid', 'true'); }
    });
  }
  function showOk(out, text) {
    clear(out);
    out.className = 'result ok';
    out.removeAttribute('data-status');
    out.textContent = text;
  }
  function showBusy(out, text, form) {
    clear(out);
    out.className = 'result busy';
    out.textContent = text;
    if (form) Array.prototype.forEach.call(form.querySelectorAll('.invalid'), function (i) { i.classList.remove('invalid'); i.removeAttribute('aria-invalid'); });
  }
  function banner(text) {
    var b = $('banner');
    b.hidden = !text;
    b.textContent = text || '';
  }

  // ---- state -----------------------------------------------------------------------------------
  var st = {
    groups: [], group: null, win: WINDOWS[1], windowMs: 3600000,
    gen: 0,            // bumped when the group changes: answers for an older one are dropped
    series: null,      // columnar chart data: ts, avgCpu, target, desired, reporting, demand, inst{id: []}
    historyPoints: 0,
    status: null,      // the group in GET /api/v1/status
    detail: null,      // GET /api/v1/groups/{g}
    formBase: null,    // the policy form's values as loaded
    decisions: {},     // id -> decision
    now: 0,            // the newest server time seen
    timers: [],
  };

  function fromQuery() {
    var q = new URLSearchParams(location.search);
    var w = q.get('window'), s = q.get('step');
    if (w || s) {
      var custom = WINDOWS.filter(function (x) { return x.window === w && x.step === s; })[0];
      if (!custom) { custom = { label: (w || '1h') + ' · ' + (s || '10s'), window: w || '1h', step: s || '10s' }; WINDOWS.push(custom); }
      st.win = custom;
    }
    return q.get('group');
  }
  function setQuery() {
    var q = new URLSearchParams(location.search);
    q.set('group', st.group);
    if (st.win === WINDOWS[1] && !q.has('window')) { q.delete('window'); q.delete('step'); } else { q.set('window', st.win.window); q.set('step', st.win.step); }
    history.replaceState(null, '', location.pathname + '?' + q.toString() + location.hash);
  }

  // ---- charts ----------------------------------------------------------------------------------
  function cpuTargetOf(detail, fallback) {
    var rules = detail && detail.document && detail.document.policy ? detail.document.policy.targetTracking || [] : [];
    for (var i = 0; i < rules.length; i++) if (rules[i].metric === 'cpu') return rules[i].target;
    return fallback === undefined ? null : fallback;
  }
  function simulated() {
    return !!(st.status && st.status.demand) || (st.series && st.series.demand.some(function (v) { return v !== null; }));
  }
  function seriesFromHistory(doc) {
    var s = { ts: doc.ts.slice(), avgCpu: doc.avgCpu.slice(), desired: doc.desired.slice(), reporting: doc.reporting.slice(), inst: {}, ids: [] };
    s.target = doc.ts.map(function () { return doc.cpuTarget; });
    s.demand = doc.demand.map(function (v) { return v === null ? null : v / 100; });
    doc.instances.slice(0, MAX_INSTANCE_SERIES).forEach(function (i) { s.inst[i.id] = i.cpu.slice(); s.ids.push(i.id); });
    return s;
  }
  function cpuData() {
    var s = st.series;
    return [s.ts, s.avgCpu, s.target].concat(s.ids.map(function (id) { return s.inst[id]; }));
  }
  function capacityData() {
    var s = st.series;
    var d = [s.ts, s.desired, s.reporting];
    if (simulated()) d.push(s.demand);
    return d;
  }
  function chartWidth(el) { return Math.max(320, el.clientWidth); }
  /** Zoom to the data: a fresh group fills the chart instead of a sliver at the right of the window. */
  function xRange(u, min, max) {
    var s = st.series, first = null;
    for (var i = 0; s && i < s.ts.length && first === null; i++) {
      if (s.avgCpu[i] !== null || s.desired[i] !== null || s.reporting[i] > 0) first = s.ts[i];
    }
    var lo = first === null ? min : Math.max(min, first - (st.history ? st.history.stepMs : 0));
    return lo >= max ? [min, max] : [lo, max];
  }
  /** A legend value: at the cursor, or the newest when the cursor is off the chart. */
  function latest(fmt) {
    return function (u, v, sidx, idx) {
      if (idx === null || idx === undefined) {
        var a = u.data[sidx] || [];
        v = null;
        for (var i = a.length - 1; i >= 0 && v === null; i--) if (a[i] !== null && a[i] !== undefined) v = a[i];
      }
      return v === null || v === undefined ? '–' : fmt(v);
    };
  }
  var timeValue = latest(clock);
  var pctValue = latest(function (v) { return Number(v).toFixed(1) + '%'; });
  var instValue = latest(function (v) { return String(Math.round(v * 100) / 100); });
  /** Time ticks on a 24-hour clock; seconds only when the ticks are less than a minute apart. */
  function timeTicks(u, splits, axisIdx, space, incr) {
    return splits.map(function (v) {
      return new Date(v).toLocaleTimeString([], incr < 60000 ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false } : { hour: '2-digit', minute: '2-digit', hour12: false });
    });
  }
  function baseOpts(el, height) {
    return {
      width: chartWidth(el), height: height, ms: 1,
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      scales: { x: { time: true, range: xRange } },
    };
  }
  function markersPlugin() {
    return { hooks: { draw: [function (u) {
      var ctx = u.ctx, b = u.bbox, lo = u.scales.x.min, hi = u.scales.x.max, n = 0;
      ctx.save();
      Object.keys(st.decisions).forEach(function (k) {
        var d = st.decisions[k];
        if (d.ts < lo || d.ts > hi) return;
        var x = Math.round(u.valToPos(d.ts, 'x', true));
        ctx.strokeStyle = d.to > d.from ? 'rgba(22,163,74,.55)' : d.to < d.from ? 'rgba(37,99,235,.55)' : 'rgba(100,116,139,.35)';
        ctx.lineWidth = Math.max(1, devicePixelRatio);
        ctx.setLineDash([3 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath(); ctx.moveTo(x, b.top); ctx.lineTo(x, b.top + b.height); ctx.stroke();
        n++;
      });
      ctx.restore();
      u.root.parentNode && u.root.parentNode.setAttribute('data-markers', String(n));
    }] } };
  }
  function makeCpuChart() {
    var el = $('cpu-chart');
    if (D.charts.cpu) D.charts.cpu.destroy();
    var s = st.series;
    var o = baseOpts(el, 200);
    o.scales.y = { range: function (u, min, max) { return [0, Math.max(100, max || 0)]; } };
    o.axes = [{ values: timeTicks }, { values: function (u, vals) { return vals.map(function (v) { return v + '%'; }); }, size: 48 }];
    o.series = [
      { label: 'time', value: timeValue },
      { label: 'avg CPU', stroke: COLORS.cpu, width: 2.25, value: pctValue },
      { label: 'target', stroke: COLORS.target, width: 1.5, dash: [6, 4], points: { show: false }, value: pctValue },
    ].concat(s.ids.map(function (id, i) {
      return { label: id, class: 'inst', stroke: INSTANCE_COLORS[i % INSTANCE_COLORS.length], width: 1, points: { show: false }, value: pctValue };
    }));
    D.charts.cpu = new uPlot(o, cpuData(), el);
    mark(el);
    $('cpu-note').textContent = s.ids.length === 0 ? '' : 'thin lines: ' + s.ids.length + ' instance' + (s.ids.length === 1 ? '' : 's');
  }
  function makeCapacityChart() {
    var el = $('capacity-chart');
    if (D.charts.capacity) D.charts.capacity.destroy();
    var o = baseOpts(el, 170);
    var maxSize = st.status ? st.status.maxSize : 1;
    o.scales.y = { range: function (u, min, max) { return [0, Math.max(maxSize, max || 0) + 0.5]; } };
    o.axes = [{ values: timeTicks }, { size: 48 }];
    var inst = instValue;
    o.series = [
      { label: 'time', value: timeValue },
      { label: 'desired', stroke: COLORS.desired, width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: inst },
      { label: 'reporting', stroke: COLORS.reporting, width: 1.5, value: inst },
    ];
    if (simulated()) o.series.push({ label: 'demand ÷ 100', stroke: COLORS.demand, width: 1.5, dash: [5, 4], points: { show: false }, value: inst });
    o.plugins = [markersPlugin()];
    D.charts.capacity = new uPlot(o, capacityData(), el);
    mark(el);
  }
  function mark(el) {
    el.setAttribute('data-points', String(st.series.ts.length));
    el.setAttribute('data-history-points', String(st.historyPoints));
  }
  function drawCharts() {
    makeCpuChart();
    makeCapacityChart();
  }
  function redrawData(rebuildCpu, rebuildCapacity) {
    if (rebuildCpu) makeCpuChart(); else { D.charts.cpu.setData(cpuData()); mark($('cpu-chart')); }
    if (rebuildCapacity) makeCapacityChart(); else { D.charts.capacity.setData(capacityData()); mark($('capacity-chart')); }
  }
  window.addEventListener('resize', debounce(function () {
    [['cpu', 'cpu-chart'], ['capacity', 'capacity-chart'], ['whatif', 'whatif-chart']].forEach(function (p) {
      var u = D.charts[p[0]];
      if (u) u.setSize({ width: chartWidth($(p[1])), height: u.height });
    });
  }, 150));

  /** One live point from a "sample" event, after the history; points older than the window go. */
  function appendSample(e) {
    var s = st.series;
    if (!s || e.ts <= s.ts[s.ts.length - 1]) return;
    var wasSimulated = simulated();
    var byId = {};
    e.instances.forEach(function (i) { byId[i.id] = i; });
    var added = false;
    e.instances.forEach(function (i) {
      if (s.inst[i.id] || s.ids.length >= MAX_INSTANCE_SERIES || i.cpu === null) return;
      s.inst[i.id] = s.ts.map(function () { return null; });
      s.ids.push(i.id);
      added = true;
    });
    s.ts.push(e.ts);
    s.avgCpu.push(e.avgCpu);
    s.target.push(cpuTargetOf(st.detail, s.target[s.target.length - 1]));
    s.desired.push(e.desired);
    s.reporting.push(e.counts ? e.counts.running : e.live);
    s.demand.push(e.demand === null || e.demand === undefined ? null : e.demand / 100);
    s.ids.forEach(function (id) { var i = byId[id]; s.inst[id].push(i && i.cpu !== null ? i.cpu : null); });
    var cutoff = e.ts - st.windowMs;
    var drop = 0;
    while (drop < s.ts.length - 1 && s.ts[drop] < cutoff) drop++;
    if (drop > 0) {
      ['ts', 'avgCpu', 'target', 'desired', 'reporting', 'demand'].forEach(function (k) { s[k].splice(0, drop); });
      s.ids.forEach(function (id) { s.inst[id].splice(0, drop); });
      st.historyPoints = Math.max(0, st.historyPoints - drop);
    }
    D.samples++;
    redrawData(added, wasSimulated !== simulated());
  }

  // ---- summary, table, decisions ---------------------------------------------------------------
  function live(g) { return g.counts.pending + g.counts.running + g.counts.suspect; }
  function renderSummary() {
    var g = st.status, box = clear($('summary'));
    if (!g) return;
    var target = cpuTargetOf(st.detail, st.history ? st.history.cpuTarget : null);
    var kpis = [
      ['desired', 'desired', g.desired], ['live', 'live', live(g)], ['running', 'running', g.counts.running],
      ['pending', 'pending', g.counts.pending], ['suspect', 'suspect', g.counts.suspect],
      ['avg-cpu', 'avg CPU', pct(g.avgCpu)], ['target', 'CPU target', target === null ? '–' : target + '%'],
      ['bounds', 'min / max', g.minSize + ' / ' + g.maxSize],
    ];
    if (g.demand) kpis.push(['demand', 'demand', Math.round(g.demand.value) + '%']);
    box.appendChild(h('div', { class: 'kpi group-name' }, [h('div', { class: 'v', text: g.id }), h('div', { class: 'l', text: 'group' })]));
    kpis.forEach(function (k) {
      box.appendChild(h('div', { class: 'kpi', 'data-kpi': k[0] }, [h('div', { class: 'v', text: k[2] }), h('div', { class: 'l', text: k[1] })]));
    });
    var badges = h('div', { class: 'badges' });
    if (g.paused) badges.appendChild(h('span', { class: 'badge warn', 'data-badge': 'paused', text: 'paused' }));
    if (g.dryRun) badges.appendChild(h('span', { class: 'badge warn', 'data-badge': 'dry-run', text: 'dry run' }));
    if (g.override) badges.appendChild(h('span', { class: 'badge info', 'data-badge': 'manual', text: 'manual capacity ' + g.override.desired + (g.override.until === null ? '' : ' until ' + clock(g.override.until)) }));
    box.appendChild(badges);
    $('pause').textContent = g.paused ? 'resume' : 'pause';
    $('pause').setAttribute('data-paused', String(!!g.paused));
    $('dry-run').checked = !!g.dryRun;
    $('load-form').hidden = !g.demand;
    var spec = $('load-form').elements.namedItem('spec');
    if (g.demand && !spec.value) spec.value = g.demand.profile;
  }
  function renderInstances() {
    var body = clear($('instances'));
    var g = st.status;
    if (!g) return;
    var rows = g.instances.slice().sort(function (a, b) {
      var ta = a.state === 'terminated' ? 1 : 0, tb = b.state === 'terminated' ? 1 : 0;
      return ta - tb || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    });
    var shownTerminated = 0;
    rows.forEach(function (i) {
      if (i.state === 'terminated' && ++shownTerminated > 5) return;
      var cpu = i.cpu === null || i.cpu === undefined ? null : i.cpu;
      var bar = h('span', { class: 'bar' }, [h('span')]);
      bar.firstChild.style.width = Math.max(0, Math.min(100, cpu || 0)).toFixed(0) + '%';
      body.appendChild(h('tr', { 'data-instance': i.id, 'data-state': i.state, class: i.state === 'terminated' ? 'gone' : null }, [
        h('td', { class: 'id', text: i.id }),
        h('td', { class: 'state ' + i.state, text: i.state }),
        h('td', { text: i.zone || '–' }),
        h('td', { class: 'cpu' }, [bar, pct(cpu)]),
        h('td', { class: 'mem', text: pct(i.mem) }),
        h('td', { class: 'seen', text: i.lastSeenAt ? ago(st.now - i.lastSeenAt) : '–' }),
        h('td', { class: 'reason', text: i.stateReason || '' }),
      ]));
    });
    if (body.childNodes.length === 0) body.appendChild(h('tr', { class: 'empty' }, [h('td', { colspan: 7, class: 'muted', text: 'no instances' })]));
    $('instances-count').textContent = g.instances.filter(function (i) { return i.state !== 'terminated'; }).length + ' live';
  }
  function addDecision(d) {
    if (!d || d.id === undefined) return;
    st.decisions[d.id] = { id: d.id, ts: d.ts, from: d.from, to: d.to, reason: d.reason, message: d.message };
  }
  function renderDecisions() {
    var list = clear($('decisions'));
    var all = Object.keys(st.decisions).map(function (k) { return st.decisions[k]; }).sort(function (a, b) { return b.ts - a.ts || b.id - a.id; });
    all.slice(0, MAX_DECISIONS_SHOWN).forEach(function (d) {
      var dir = d.to > d.from ? 'out' : d.to < d.from ? 'in' : 'hold';
      list.appendChild(h('li', { 'data-decision-id': d.id, 'data-reason': d.reason, class: dir }, [
        h('div', { class: 'head' }, [
          h('span', { class: 'time', text: clock(d.ts) }),
          h('span', { class: 'badge reason ' + dir, text: d.reason }),
          h('span', { class: 'change', text: d.from + ' → ' + d.to }),
        ]),
        h('div', { class: 'msg', text: d.message }),
      ]));
    });
    if (all.length === 0) list.appendChild(h('li', { class: 'empty muted', text: 'no decisions in this window' }));
    $('decisions-count').textContent = all.length > MAX_DECISIONS_SHOWN ? 'newest ' + MAX_DECISIONS_SHOWN + ' of ' + all.length : String(all.length);
  }

  // ---- loading ---------------------------------------------------------------------------------
  function metricsPath() {
    return '/api/v1/groups/' + enc(st.group) + '/metrics?window=' + enc(st.win.window) + '&step=' + enc(st.win.step);
  }
  function setHistory(doc) {
    D.history = doc;
    st.windowMs = Math.max(60000, doc.to - doc.from);
    st.series = seriesFromHistory(doc);
    st.historyPoints = doc.ts.length;
    st.now = Math.max(st.now, doc.to);
    doc.decisions.forEach(addDecision);
  }
  function setStatus(g) {
    if (!g) return;
    st.status = g;
    (g.decisions || []).forEach(addDecision);
  }
  function loadStatus(gen) {
    return api('GET', '/api/v1/status?group=' + enc(st.group) + '&decisions=20').then(function (r) {
      if (gen !== st.gen) return;
      st.now = Math.max(st.now, r.generatedAt);
      setStatus(r.groups[0]);
      renderSummary(); renderInstances(); renderDecisions();
    });
  }
  function loadDetail(gen, force) {
    return api('GET', '/api/v1/groups/' + enc(st.group)).then(function (d) {
      if (gen !== st.gen) return;
      st.detail = d;
      $('revision').textContent = String(d.group.revision);
      if (force || !formDirty()) fillPolicyForm(d);
      renderSummary();
    });
  }
  function openGroup(id) {
    st.gen++;
    var gen = st.gen;
    stopStream();
    st.timers.forEach(clearInterval);
    st.timers = [];
    st.group = id; D.group = id; D.ready = false;
    st.series = null; st.status = null; st.detail = null; st.decisions = {}; st.formBase = null;
    try { sessionStorage.setItem('autoscaler.group', id); } catch (e) { /* ignore */ }
    setQuery();
    $('group').value = id;
    ['policy-result', 'ops-result', 'scale-result', 'load-result'].forEach(function (o) { clear($(o)).className = 'result'; });
    banner('');
    Promise.all([api('GET', metricsPath()), api('GET', '/api/v1/status?group=' + enc(id) + '&decisions=20'), api('GET', '/api/v1/groups/' + enc(id))])
      .then(function (r) {
        if (gen !== st.gen) return;
        setHistory(r[0]);
        st.now = Math.max(st.now, r[1].generatedAt);
        setStatus(r[1].groups[0]);
        st.detail = r[2];
        $('revision').textContent = String(r[2].group.revision);
        fillPolicyForm(r[2]);
        renderSummary(); renderInstances(); renderDecisions();
        drawCharts();
        D.ready = true;
        document.body.setAttribute('data-ready', 'true');
        startStream(gen);
        st.timers.push(setInterval(function () { refreshStatus(); }, STATUS_REFRESH_MS));
      })
      .catch(function (err) { if (gen === st.gen) banner('cannot load group ' + id + ': ' + err.message + (HINTS[err.status] ? ' ' + HINTS[err.status] : '')); });
  }
  var refreshStatus = debounce(function () { loadStatus(st.gen).catch(function (err) { banner('status: ' + err.message); }); }, 400);
  var refreshDetail = debounce(function () { loadDetail(st.gen, false).catch(function (err) { banner('group: ' + err.message); }); }, 400);
  function reloadHistory(gen) {
    return api('GET', metricsPath()).then(function (doc) {
      if (gen !== st.gen) return;
      setHistory(doc);
      drawCharts();
      renderDecisions();
    });
  }
  var wanted = null;
  function loadGroups() {
    api('GET', '/api/v1/groups').then(function (groups) {
      st.groups = groups;
      var sel = clear($('group'));
      groups.forEach(function (g) { sel.appendChild(h('option', { value: g.id, text: g.id })); });
      $('group-pick').hidden = groups.length < 2;
      if (groups.length === 0) {
        banner('no groups yet: apply one (autoscaler group apply FILE) or start the controller; this page checks again every 5 s');
        setTimeout(loadGroups, 5000);
        return;
      }
      var remembered = null;
      try { remembered = sessionStorage.getItem('autoscaler.group'); } catch (e) { remembered = null; }
      var ids = groups.map(function (g) { return g.id; });
      var pick = [wanted, remembered, ids[0]].filter(function (x) { return x && ids.indexOf(x) >= 0; })[0];
      if (wanted && ids.indexOf(wanted) < 0) banner('no group "' + wanted + '"; showing ' + pick);
      openGroup(pick);
    }, function (err) {
      banner('cannot list groups: ' + err.message + (HINTS[err.status] ? ' ' + HINTS[err.status] : ''));
      setTimeout(loadGroups, 5000);
    });
  }

  // ---- the event stream ------------------------------------------------------------------------
  var stream = { ctrl: null, lastId: null, attempt: 0, retry: null, broken: false };
  function conn(state, text) {
    var c = $('conn');
    c.setAttribute('data-state', state);
    c.textContent = text;
    D.stream = state;
  }
  function stopStream() {
    clearTimeout(stream.retry);
    if (stream.ctrl) stream.ctrl.abort();
    stream = { ctrl: null, lastId: null, attempt: 0, retry: null, broken: false };
    conn('idle', '');
  }
  /** Server-sent events from a byte stream: event, data (joined), id; comments skipped. */
  function sseParser(onEvent) {
    var buf = '', ev = { event: '', data: [], id: null };
    return function (text) {
      buf += text;
      for (var nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        var line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.charAt(line.length - 1) === '\r') line = line.slice(0, -1);
        if (line === '') {
          if (ev.data.length > 0 || ev.event) onEvent(ev.event || 'message', ev.data.join('\n'), ev.id);
          ev = { event: '', data: [], id: null };
          continue;
        }
        if (line.charAt(0) === ':') continue;
        var colon = line.indexOf(':');
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') ev.event = value;
        else if (field === 'data') ev.data.push(value);
        else if (field === 'id') ev.id = value;
      }
    };
  }
  function startStream(gen) {
    var ctrl = new AbortController();
    stream.ctrl = ctrl;
    conn('connecting', stream.attempt === 0 ? 'connecting…' : 'reconnecting…');
    var extra = { accept: 'text/event-stream' };
    if (stream.lastId) extra['last-event-id'] = stream.lastId;
    var parse = sseParser(function (event, data, id) {
      if (gen !== st.gen) return;
      if (id) stream.lastId = id;
      var e;
      try { e = JSON.parse(data); } catch (x) { return; }
      onEvent(event, e, gen);
    });
    fetch('/api/v1/stream?group=' + enc(st.group), { headers: headers(extra), cache: 'no-store', signal: ctrl.signal })
      .then(function (res) {
        if (!res.ok) {
          return res.json().catch(function () { return {}; }).then(function (b) { throw new ApiError(res.status, b); });
        }
        var reader = res.body.getReader(), dec = new TextDecoder();
        function pump() {
          return reader.read().then(function (r) {
            if (r.done) return;
            parse(dec.decode(r.value, { stream: true }));
            return pump();
          });
        }
        return pump();
      })
      .then(function () { if (gen === st.gen) retry(gen, 'the stream ended'); },
        function (err) {
          if (gen !== st.gen || ctrl.signal.aborted) return;
          retry(gen, err instanceof ApiError ? err.message : 'connection lost');
        });
  }
  function retry(gen, why) {
    var delay = BACKOFF_MS[Math.min(stream.attempt, BACKOFF_MS.length - 1)];
    stream.attempt++;
    stream.broken = true;
    conn('retrying', why + ': retrying in ' + Math.round(delay / 1000) + ' s');
    stream.retry = setTimeout(function () { if (gen === st.gen) startStream(gen); }, delay);
  }
  function onEvent(event, e, gen) {
    if (event === 'hello') {
      if (!stream.lastId) stream.lastId = e.cursor;
      var gap = stream.broken;
      stream.attempt = 0;
      stream.broken = false;
      conn('live', 'live');
      // After a gap the charts miss points: read the history again, once.
      if (gap) { reloadHistory(gen).catch(function () { /* next reconnect tries again */ }); refreshStatus(); }
    } else if (event === 'sample') {
      if (e.groupId !== st.group) return;
      onSample(e);
    } else if (event === 'decision') {
      if (e.groupId !== st.group) return;
      addDecision(e);
      renderDecisions();
      if (D.charts.capacity) D.charts.capacity.redraw(false, false);
    } else if (event === 'instance') {
      var row = st.status && st.status.instances.filter(function (i) { return i.id === e.id; })[0];
      if (row) { row.state = e.to; row.stateReason = e.reason; row.stateChangedAt = e.ts; renderInstances(); } else refreshStatus();
    } else if (event === 'activity') {
      refreshStatus();
    } else if (event === 'change') {
      refreshStatus();
      refreshDetail();
    }
  }
  function onSample(e) {
    st.now = Math.max(st.now, e.ts);
    var g = st.status;
    if (g) {
      g.desired = e.desired; g.avgCpu = e.avgCpu; g.paused = e.paused;
      if (e.counts) g.counts = e.counts;
      if (g.demand && e.demand !== null && e.demand !== undefined) g.demand.value = e.demand;
      var known = {};
      g.instances.forEach(function (i) { known[i.id] = i; });
      var unknown = false;
      e.instances.forEach(function (i) {
        var row = known[i.id];
        if (!row) { unknown = true; return; }
        row.state = i.state; row.cpu = i.cpu; row.mem = i.mem;
        if (i.lastSeenAt !== undefined) row.lastSeenAt = i.lastSeenAt;
      });
      if (unknown) refreshStatus();
      renderSummary(); renderInstances();
    }
    appendSample(e);
  }

  // ---- controls --------------------------------------------------------------------------------
  var FORM_FIELDS = ['cpuTarget', 'minSize', 'maxSize', 'scaleInStabilizationS', 'warmupS'];
  function cpuRuleIndex(doc) {
    var rules = doc.policy.targetTracking || [];
    for (var i = 0; i < rules.length; i++) if (rules[i].metric === 'cpu') return i;
    return -1;
  }
  function fillPolicyForm(detail) {
    var doc = detail.document, p = doc.policy, i = cpuRuleIndex(doc), f = $('policy-form');
    st.formBase = {
      cpuTarget: i < 0 ? null : p.targetTracking[i].target, minSize: doc.minSize, maxSize: doc.maxSize,
      scaleInStabilizationS: p.behavior.scaleDown.stabilizationMs / 1000, warmupS: p.warmupMs / 1000, cpuIndex: i, rules: (p.targetTracking || []).length,
    };
    FORM_FIELDS.forEach(function (k) {
      var input = f.elements.namedItem(k);
      input.value = st.formBase[k] === null ? '' : String(st.formBase[k]);
      input.classList.remove('changed', 'invalid');
      input.removeAttribute('aria-invalid');
    });
    f.elements.namedItem('cpuTarget').placeholder = i < 0 ? 'no CPU rule: set one' : '';
  }
  function formDirty() {
    var f = $('policy-form');
    return FORM_FIELDS.some(function (k) { return f.elements.namedItem(k).classList.contains('changed'); });
  }
  $('policy-form').addEventListener('input', function (ev) {
    var t = ev.target, base = st.formBase;
    if (!base || FORM_FIELDS.indexOf(t.name) < 0) return;
    t.classList.toggle('changed', t.value.trim() !== '' && Number(t.value) !== base[t.name]);
  });
  $('policy-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = ev.target, out = $('policy-result'), base = st.formBase;
    if (!base) return;
    var set = {}, bad = [];
    FORM_FIELDS.forEach(function (k) {
      var raw = f.elements.namedItem(k).value.trim();
      if (raw === '') return;
      var v = Number(raw);
      if (!isFinite(v)) { bad.push({ path: k, message: 'not a number' }); return; }
      if (v === base[k]) return;
      if (k === 'cpuTarget') {
        if (base.cpuIndex >= 0) set['targetTracking.' + base.cpuIndex + '.target'] = v;
        else set['targetTracking.' + base.rules] = { metric: 'cpu', target: v };
      } else if (k === 'scaleInStabilizationS') set['behavior.scaleDown.stabilizationMs'] = Math.round(v * 1000);
      else if (k === 'warmupS') set.warmupMs = Math.round(v * 1000);
      else set[k] = v;
    });
    if (bad.length > 0) return showError(out, { status: 0, body: { error: 'the form has values that are not numbers', fields: bad } });
    if (Object.keys(set).length === 0) return showOk(out, 'nothing changed');
    showBusy(out, 'applying…', f);
    var gen = st.gen;
    api('PATCH', '/api/v1/groups/' + enc(st.group) + '/policy', { set: set }).then(function (r) {
      if (gen !== st.gen) return;
      showOk(out, r.changes.length === 0 ? 'unchanged (revision ' + r.revision + ')'
        : 'revision ' + r.revision + ': ' + r.changes.map(function (c) { return c.path + ' ' + JSON.stringify(c.from) + ' → ' + JSON.stringify(c.to); }).join(', '));
      out.setAttribute('data-revision', String(r.revision));
      $('revision').textContent = String(r.revision);
      return loadDetail(gen, true);
    }).catch(function (err) { showError(out, err, f); });
  });
  /** A write whose answer is the group row (pause, resume, dry run, capacity). */
  function groupWrite(method, path, body, out, okText, form) {
    var gen = st.gen;
    showBusy(out, 'sending…', form);
    return api(method, '/api/v1/groups/' + enc(st.group) + path, body).then(function (row) {
      if (gen !== st.gen) return;
      if (st.status && row) ['paused', 'dryRun', 'override', 'desired', 'revision', 'minSize', 'maxSize'].forEach(function (k) { st.status[k] = row[k]; });
      renderSummary();
      showOk(out, okText(row));
    }).catch(function (err) { showError(out, err, form); renderSummary(); });
  }
  $('pause').addEventListener('click', function () {
    var paused = st.status && st.status.paused;
    groupWrite('POST', paused ? '/resume' : '/pause', { reason: 'from the dashboard' }, $('ops-result'),
      function (r) { return r.paused ? 'paused: no scaling or replacing until resumed' : 'resumed: the policies scale the group again'; });
  });
  $('dry-run').addEventListener('change', function (ev) {
    var on = ev.target.checked;
    groupWrite('PUT', '/dry-run', { enabled: on }, $('ops-result'),
      function (r) { return r.dryRun ? 'dry run on: decisions are recorded, nothing is launched or terminated' : 'dry run off'; });
  });
  $('scale-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = ev.target, out = $('scale-result');
    var desired = f.elements.namedItem('desired').value.trim(), forText = f.elements.namedItem('for').value.trim();
    var body = { desired: Number(desired) };
    if (desired === '' || !/^\d+$/.test(desired)) return showError(out, { status: 0, body: { error: 'give the number of instances', fields: [{ path: 'desired', message: 'a whole number' }] } }, f);
    if (forText !== '') {
      var ms = parseDuration(forText);
      if (ms === null) return showError(out, { status: 0, body: { error: 'for must be a duration such as 90s, 10m or 2h', fields: [{ path: 'forMs', message: 'not a duration' }] } }, f);
      body.forMs = ms;
    }
    groupWrite('PUT', '/capacity', body, out, function (r) {
      return r.override ? 'manual capacity ' + r.override.desired + (r.override.until === null ? ' until cleared' : ' until ' + clock(r.override.until)) : 'capacity set';
    }, f);
  });
  $('scale-clear').addEventListener('click', function () {
    groupWrite('DELETE', '/capacity', undefined, $('scale-result'), function () { return 'manual capacity cleared: the policies decide again'; }, $('scale-form'));
  });
  $('load-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = ev.target, out = $('load-result'), gen = st.gen;
    showBusy(out, 'sending…', f);
    api('PUT', '/api/v1/groups/' + enc(st.group) + '/load', { spec: f.elements.namedItem('spec').value.trim() }).then(function (v) {
      if (gen !== st.gen) return;
      if (st.status) st.status.demand = { profile: v.profile, value: v.demand };
      showOk(out, 'demand ' + v.profile + ', now ' + Math.round(v.demand) + '%');
      renderSummary();
    }).catch(function (err) { showError(out, err, f); });
  });
  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var input = $('token');
    if (!input.value.trim()) return;
    setToken(input.value.trim());
    input.value = '';
    showToken();
    if (!D.ready) loadGroups();
  });
  $('token-forget').addEventListener('click', function () { setToken(null); showToken(); });
  $('group').addEventListener('change', function (ev) { openGroup(ev.target.value); });
  $('window').addEventListener('change', function (ev) {
    st.win = WINDOWS[Number(ev.target.value)] || WINDOWS[1];
    if (st.group) openGroup(st.group);
  });

  // ---- what-if ---------------------------------------------------------------------------------
  var METRICS = [
    ['costInstanceHours', 'cost (instance-h)', 2], ['costRatio', 'vs oracle', 2], ['underProvisionedPct', 'under-provisioned %', 1],
    ['unservedPct', 'unserved %', 2], ['aboveTargetPct', 'above target %', 1], ['actions', 'actions', 0], ['reversals', 'reversals', 0],
    ['reactionS', 'reaction s', 0], ['peakCapacity', 'peak', 0],
  ];
  function renderWhatIf(r) {
    var head = clear($('whatif-head')), body = clear($('whatif-runs'));
    head.appendChild(h('tr', null, [h('th', { text: 'policy' })].concat(METRICS.map(function (m) { return h('th', { class: 'n', text: m[1] }); }))));
    r.runs.forEach(function (run) {
      body.appendChild(h('tr', { 'data-policy': run.policy }, [h('td', { class: 'policy' }, [h('i', { class: 'swatch' }), run.policy])].concat(METRICS.map(function (m) {
        return h('td', { class: 'n', text: num(run.metrics[m[0]], m[2]) });
      }))));
      body.lastChild.querySelector('.swatch').style.background = POLICY_COLORS[run.policy] || '#334155';
    });
    $('whatif-about').textContent = r.trace.name + ': ' + r.trace.description + ' · boot ' + r.bootS + ' s · target ' + r.target + '%';
    var el = $('whatif-chart');
    if (D.charts.whatif) D.charts.whatif.destroy();
    var step = r.series.stepS * 1000, start = r.trace.startAt;
    var xs = r.series.demand.map(function (v, i) { return start + i * step; });
    var policies = Object.keys(r.series.capacity);
    var data = [xs, r.series.demand.map(function (v) { return v / 100; })].concat(policies.map(function (p) { return r.series.capacity[p]; }));
    var inst = instValue;
    D.charts.whatif = new uPlot({
      width: chartWidth(el), height: 180, ms: 1, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, (max || 1) * 1.05]; } } },
      axes: [{ values: timeTicks }, { size: 48 }],
      series: [{ label: 'time', value: timeValue }, { label: 'demand ÷ 100', stroke: COLORS.demand, width: 1.5, dash: [5, 4], points: { show: false }, value: inst }]
        .concat(policies.map(function (p) { return { label: p, stroke: POLICY_COLORS[p] || '#334155', width: p === 'policy' ? 2 : 1.25, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: inst }; })),
    }, data, el);
    el.setAttribute('data-points', String(xs.length));
  }
  (function initWhatIf() {
    var sel = $('whatif-trace');
    TRACES.forEach(function (t) { sel.appendChild(h('option', { value: t, text: t === 'recorded' ? 'recorded (this group)' : t })); });
    $('whatif-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var f = ev.target, out = $('whatif-result'), btn = $('simulate'), gen = st.gen;
      btn.disabled = true;
      showBusy(out, 'simulating…');
      var q = '?trace=' + enc(f.elements.namedItem('trace').value) + '&boot=' + enc(f.elements.namedItem('boot').value) + '&compare=' + enc(COMPARE);
      api('GET', '/api/v1/groups/' + enc(st.group) + '/simulate' + q).then(function (r) {
        if (gen !== st.gen) return;
        renderWhatIf(r);
        showOk(out, r.runs.length + ' runs over ' + Math.round(r.trace.seconds / 60) + ' min of virtual time');
      }).catch(function (err) { showError(out, err, f); }).then(function () { btn.disabled = false; });
    });
  })();

  // ---- start -----------------------------------------------------------------------------------
  (function init() {
    var sel = $('window');
    wanted = fromQuery();
    WINDOWS.forEach(function (w, i) { sel.appendChild(h('option', { value: i, text: w.label })); });
    sel.value = String(WINDOWS.indexOf(st.win));
    readToken();
    if (typeof uPlot === 'undefined') { banner('the chart library did not load (/assets/uplot.js)'); return; }
    loadGroups();
  })();
})();
`;

/** The page, served at `/` with a CSP that allows only this origin (monitor-server/http.ts). */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autoscaler</title>
<link rel="stylesheet" href="/assets/uplot.css">
<style>
  :root { --fg:#1e293b; --muted:#64748b; --line:#e2e8f0; --bg:#f5f7fa; --card:#fff; --accent:#2563eb;
          --running:#15803d; --pending:#2563eb; --suspect:#b45309; --dead:#dc2626; --terminating:#7c3aed; --err:#b91c1c; }
  * { box-sizing:border-box; }
  body { margin:0; font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:center; gap:14px; padding:8px 18px; background:var(--card); border-bottom:1px solid var(--line); }
  header h1 { margin:0; font-size:16px; letter-spacing:.01em; }
  header label { color:var(--muted); display:flex; gap:6px; align-items:center; }
  header .spacer { flex:1; }
  select, input, button { font:inherit; color:inherit; }
  select, input { border:1px solid #cbd5e1; border-radius:5px; padding:3px 6px; background:#fff; }
  input.changed { border-color:var(--accent); background:#eff6ff; }
  input.invalid { border-color:var(--err); background:#fef2f2; }
  button { border:1px solid #cbd5e1; border-radius:5px; padding:3px 10px; background:#f8fafc; cursor:pointer; }
  button:hover { background:#eef2f7; }
  button.primary { background:var(--accent); border-color:var(--accent); color:#fff; }
  button:disabled { opacity:.6; cursor:progress; }
  #conn { font-size:12px; color:var(--muted); }
  #conn::before { content:""; display:inline-block; width:8px; height:8px; border-radius:50%; background:#cbd5e1; margin-right:5px; vertical-align:0; }
  #conn[data-state="live"]::before { background:#22c55e; }
  #conn[data-state="retrying"]::before { background:#f59e0b; }
  #token-form { display:flex; gap:6px; align-items:center; }
  #token { width:150px; }
  #token-state { font-size:12px; color:var(--muted); }
  #token-state[data-state="set"] { color:var(--running); }
  #banner { margin:8px 18px 0; padding:6px 10px; border-radius:5px; background:#fef3c7; color:#78350f; white-space:pre-wrap; }
  main { padding:10px 18px 18px; display:grid; gap:10px; }
  .kpis { display:flex; flex-wrap:wrap; align-items:flex-end; gap:6px 22px; background:var(--card); border:1px solid var(--line); border-radius:7px; padding:7px 14px; }
  .kpi .v { font-size:18px; font-weight:600; font-variant-numeric:tabular-nums; }
  .kpi .l { color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.04em; }
  .kpi.group-name .v { color:var(--accent); }
  .badges { display:flex; gap:6px; align-self:center; }
  .badge { display:inline-block; padding:1px 7px; border-radius:4px; font-size:12px; font-weight:600; background:#eef2f7; }
  .badge.warn { background:#fef3c7; color:#92400e; } .badge.info { background:#e0e7ff; color:#3730a3; }
  .grid { display:grid; grid-template-columns:minmax(0,1fr) 400px; gap:10px; align-items:start; }
  .col { display:grid; gap:10px; min-width:0; }
  .card { background:var(--card); border:1px solid var(--line); border-radius:7px; padding:8px 12px 10px; min-width:0; }
  .card h2 { margin:0 0 4px; font-size:13px; font-weight:600; display:flex; gap:8px; align-items:baseline; }
  .card h2 .sub { color:var(--muted); font-weight:400; font-size:12px; }
  .card h3 { margin:8px 0 4px; font-size:12px; color:var(--muted); font-weight:600; text-transform:uppercase; letter-spacing:.04em; }
  .chart { min-height:40px; }
  .u-legend { font-size:12px; text-align:left; margin-top:2px; }
  .u-legend .u-series > * { padding:1px 4px; }
  .u-legend .inst { display:none; }
  table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
  th, td { text-align:left; padding:3px 7px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; font-size:12px; }
  th.n, td.n { text-align:right; }
  td.reason { white-space:normal; color:var(--muted); }
  tr.gone td { color:#94a3b8; }
  .state { font-weight:600; }
  .state.running { color:var(--running); } .state.pending, .state.launching { color:var(--pending); } .state.suspect { color:var(--suspect); }
  .state.dead { color:var(--dead); } .state.terminating { color:var(--terminating); }
  .bar { display:inline-block; height:7px; width:60px; background:#e2e8f0; border-radius:4px; vertical-align:middle; margin-right:6px; position:relative; overflow:hidden; }
  .bar > span { position:absolute; left:0; top:0; bottom:0; background:#60a5fa; }
  #decisions { list-style:none; margin:0; padding:0; max-height:262px; overflow:auto; }
  #decisions li { padding:4px 0; border-bottom:1px solid var(--line); }
  #decisions .head { display:flex; gap:8px; align-items:baseline; }
  #decisions .time { color:var(--muted); font-variant-numeric:tabular-nums; }
  #decisions .change { font-weight:600; }
  #decisions .msg { color:var(--muted); font-size:12px; overflow-wrap:anywhere; }
  .badge.reason.out { background:#dcfce7; color:#166534; } .badge.reason.in { background:#dbeafe; color:#1e40af; }
  #policy-form { display:grid; grid-template-columns:repeat(3, minmax(0,1fr)); gap:6px 10px; }
  #policy-form label { display:flex; flex-direction:column; gap:2px; font-size:12px; color:var(--muted); }
  .row label { display:flex; gap:5px; align-items:center; color:var(--muted); }
  .row + .row, .result + .row { margin-top:6px; }
  #policy-form input { width:100%; }
  #policy-form .actions { display:flex; align-items:flex-end; }
  .row { display:flex; flex-wrap:wrap; gap:8px; align-items:center; }
  #scale-form input[name="desired"] { width:56px; } #scale-form input[name="for"] { width:100px; }
  #load-form input { width:220px; }
  .result { display:block; min-height:0; font-size:12px; margin-top:4px; white-space:pre-wrap; }
  .result:empty { display:none; }
  .result.ok { color:var(--running); } .result.busy { color:var(--muted); }
  .result.error { color:var(--err); background:#fef2f2; border:1px solid #fecaca; border-radius:5px; padding:4px 8px; }
  .result.error ul { margin:2px 0 0; padding-left:18px; }
  .result .hint { color:#7f1d1d; margin-top:2px; }
  #whatif-form { display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
  #whatif-about { color:var(--muted); font-size:12px; }
  .whatif-body { display:grid; grid-template-columns:minmax(0,1fr) minmax(0,1fr); gap:12px; margin-top:6px; }
  i.swatch { display:inline-block; width:10px; height:3px; margin-right:6px; vertical-align:middle; }
  .muted { color:var(--muted); }
  @media (max-width: 1100px) { .grid, .whatif-body { grid-template-columns:1fr; } }
</style>
</head>
<body>
<header>
  <h1>autoscaler</h1>
  <label id="group-pick" hidden>group <select id="group"></select></label>
  <label>window <select id="window"></select></label>
  <span id="conn" data-state="idle"></span>
  <span class="spacer"></span>
  <form id="token-form" autocomplete="off">
    <span id="token-state"></span>
    <input id="token" type="password" placeholder="paste an API token" aria-label="API token">
    <button type="submit">use</button>
    <button type="button" id="token-forget" hidden>forget</button>
  </form>
</header>
<div id="banner" role="alert" hidden></div>
<main>
  <section id="summary" class="kpis" aria-label="summary"></section>
  <div class="grid">
    <div class="col">
      <section class="card"><h2>CPU <span class="sub">group average, each instance, the target</span><span class="sub" id="cpu-note"></span></h2><div id="cpu-chart" class="chart" data-points="0"></div></section>
      <section class="card"><h2>capacity <span class="sub">desired (stepped) vs instances reporting; dashed lines mark decisions</span></h2><div id="capacity-chart" class="chart" data-points="0"></div></section>
      <section class="card"><h2>instances <span class="sub" id="instances-count"></span></h2>
        <table><thead><tr><th>instance</th><th>state</th><th>zone</th><th>CPU</th><th>memory</th><th>last seen</th><th>reason</th></tr></thead><tbody id="instances"></tbody></table>
      </section>
    </div>
    <div class="col">
      <section class="card" id="controls">
        <h2>policy <span class="sub">revision <b id="revision">–</b></span></h2>
        <form id="policy-form" novalidate>
          <label>CPU target %<input name="cpuTarget" type="number" step="any" min="1" max="100"></label>
          <label>min size<input name="minSize" type="number" step="1" min="0"></label>
          <label>max size<input name="maxSize" type="number" step="1" min="0"></label>
          <label>scale-in window s<input name="scaleInStabilizationS" type="number" step="any" min="0"></label>
          <label>warm-up s<input name="warmupS" type="number" step="any" min="0"></label>
          <div class="actions"><button type="submit" class="primary">apply</button></div>
        </form>
        <output id="policy-result" class="result" aria-live="polite"></output>
        <h3>operations</h3>
        <div class="row"><button type="button" id="pause">pause</button><label class="check"><input type="checkbox" id="dry-run"> dry run <span class="muted">(decide, do not act)</span></label></div>
        <output id="ops-result" class="result" aria-live="polite"></output>
        <form id="scale-form" class="row" novalidate>
          <label>scale to <input name="desired" type="number" step="1" min="0"></label>
          <label>for <input name="for" placeholder="until cleared"></label>
          <button type="submit">scale</button><button type="button" id="scale-clear">clear</button>
        </form>
        <output id="scale-result" class="result" aria-live="polite"></output>
        <form id="load-form" class="row" hidden novalidate>
          <label>demand <input name="spec" placeholder="sine:20,260/150s"></label><button type="submit">set</button>
        </form>
        <output id="load-result" class="result" aria-live="polite"></output>
      </section>
      <section class="card"><h2>decisions <span class="sub" id="decisions-count"></span></h2><ol id="decisions"></ol></section>
    </div>
  </div>
  <section class="card" id="whatif">
    <h2>what if <span class="sub">this group's policy and the baselines replayed in virtual time</span></h2>
    <form id="whatif-form">
      <label>trace <select id="whatif-trace" name="trace"></select></label>
      <label>boot <select id="whatif-boot" name="boot"><option value="30s">30 s</option><option value="60s">60 s</option><option value="120s" selected>120 s</option><option value="300s">300 s</option></select></label>
      <button type="submit" id="simulate" class="primary">simulate</button>
      <span id="whatif-about"></span>
    </form>
    <output id="whatif-result" class="result" aria-live="polite"></output>
    <div class="whatif-body"><table><thead id="whatif-head"></thead><tbody id="whatif-runs"></tbody></table><div id="whatif-chart" data-points="0"></div></div>
  </section>
</main>
<script src="/assets/uplot.js"></script>
<script>${SCRIPT}</script>
</body>
</html>
`;
