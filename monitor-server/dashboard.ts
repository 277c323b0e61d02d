/**
 * The dashboard: one self-contained page served at `/` by the monitor server. It polls
 * `/api/status` every 2 s and keeps its own short history for the chart, so it adds no query
 * beyond the status report. No external assets: it works on a host with no internet.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autoscaler</title>
<style>
  :root { --fg:#1d2430; --muted:#6b7687; --line:#e3e7ee; --bg:#f7f8fa; --card:#fff;
          --running:#1f9d55; --pending:#3b82f6; --suspect:#d97706; --dead:#dc2626; --terminating:#7c3aed; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:var(--card); border-bottom:1px solid var(--line); }
  header h1 { margin:0; font-size:18px; }
  header .meta { color:var(--muted); }
  main { padding:16px 24px; display:grid; gap:16px; }
  section.group { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px; }
  .kpis { display:flex; flex-wrap:wrap; gap:24px; margin-bottom:12px; }
  .kpi .v { font-size:22px; font-weight:600; }
  .kpi .l { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
  .row { display:grid; grid-template-columns: minmax(0,3fr) minmax(0,2fr); gap:16px; }
  @media (max-width: 1000px) { .row { grid-template-columns: 1fr; } }
  svg.chart { width:100%; height:220px; background:#fbfcfd; border:1px solid var(--line); border-radius:6px; }
  .legend { display:flex; gap:14px; color:var(--muted); font-size:12px; margin-top:4px; }
  .legend i { display:inline-block; width:10px; height:3px; vertical-align:middle; margin-right:4px; }
  table { width:100%; border-collapse:collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--muted); font-weight:500; font-size:12px; }
  td.reason { white-space:normal; color:var(--muted); }
  .state { font-weight:600; }
  .state.running { color:var(--running); } .state.pending { color:var(--pending); } .state.suspect { color:var(--suspect); }
  .state.dead { color:var(--dead); } .state.terminating { color:var(--terminating); }
  .bar { display:inline-block; height:8px; background:#cbd5e1; border-radius:4px; width:80px; vertical-align:middle; margin-right:6px; position:relative; overflow:hidden; }
  .bar > span { position:absolute; left:0; top:0; bottom:0; background:var(--pending); }
  ol.decisions { list-style:none; padding:0; margin:0; max-height:320px; overflow:auto; }
  ol.decisions li { padding:6px 0; border-bottom:1px solid var(--line); }
  .badge { display:inline-block; padding:1px 6px; border-radius:4px; font-size:12px; font-weight:600; background:#eef2f7; margin-right:6px; }
  .badge.ScaleOut { background:#dcfce7; color:#166534; } .badge.ScaleIn { background:#e0e7ff; color:#3730a3; }
  .badge.ReplaceUnhealthy { background:#fee2e2; color:#991b1b; } .badge.MonitorUnavailable, .badge.Paused { background:#fef3c7; color:#92400e; }
  .muted { color:var(--muted); }
  #error { color:var(--dead); }
</style>
</head>
<body>
<header><h1>autoscaler</h1><span class="meta" id="components">connecting…</span><span id="error" role="alert"></span></header>
<main id="groups"></main>
<script>
(function () {
  'use strict';
  var POLL_MS = 2000, KEEP = 300;
  var history = {};
  function esc(s) { return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) { return { '&':'&amp;', '<':'&lt;', '>':'&gt;', '"':'&quot;', "'":'&#39;' }[c]; }); }
  function pct(v) { return v == null ? '–' : v.toFixed(1) + '%'; }
  function ago(ms) { if (ms == null) return '–'; return ms < 60000 ? (Math.max(0, ms) / 1000).toFixed(1) + 's ago' : Math.round(ms / 60000) + 'm ago'; }
  function time(ts) { return new Date(ts).toLocaleTimeString(); }
  // The CPU target: a targetTracking rule on cpu (policy documents), or targetCpu (older rows).
  function targetCpu(p) {
    if (p && typeof p.targetCpu === 'number') return p.targetCpu;
    var rules = p && Array.isArray(p.targetTracking) ? p.targetTracking : [];
    for (var i = 0; i < rules.length; i++) if (rules[i] && rules[i].metric === 'cpu' && typeof rules[i].target === 'number') return rules[i].target;
    return null;
  }
  function line(points, key, maxY, w, h, color) {
    var xs = Math.max(1, points.length - 1), d = '', pen = false;
    points.forEach(function (p, i) {
      var v = p[key];
      if (v == null) { pen = false; return; }
      d += (pen ? ' L' : ' M') + (i / xs * w).toFixed(1) + ',' + (h - Math.min(1, v / maxY) * h).toFixed(1);
      pen = true;
    });
    return d ? '<path class="series-' + key + '" d="' + d.trim() + '" fill="none" stroke="' + color + '" stroke-width="2" vector-effect="non-scaling-stroke"/>' : '';
  }
  function chart(g) {
    var pts = history[g.id] || [], w = 600, h = 200;
    var maxCount = Math.max(g.maxSize, 1);
    var t = targetCpu(g.policy), target = t == null ? null : h - (t / 100) * h;
    return '<svg class="chart" viewBox="0 0 ' + w + ' ' + h + '" preserveAspectRatio="none" data-points="' + pts.length + '">' +
      (target == null ? '' : '<line x1="0" x2="' + w + '" y1="' + target + '" y2="' + target + '" stroke="#94a3b8" stroke-dasharray="4 4"/>') +
      line(pts, 'cpu', 100, w, h, '#2563eb') +
      line(pts, 'live', maxCount, w, h, '#16a34a') +
      line(pts, 'demand', maxCount * 100, w, h, '#f59e0b') +
      '</svg><div class="legend"><span><i style="background:#2563eb"></i>avg CPU (0–100%)</span>' +
      (t == null ? '' : '<span><i style="background:#94a3b8"></i>target ' + esc(t) + '%</span>') +
      '<span><i style="background:#16a34a"></i>live instances (0–' + maxCount + ')</span>' +
      (g.demand ? '<span><i style="background:#f59e0b"></i>demand (0–' + maxCount * 100 + '%)</span>' : '') +
      '<span>' + pts.length + ' points, last ' + Math.round(pts.length * POLL_MS / 1000) + 's</span></div>';
  }
  function render(r) {
    document.getElementById('error').textContent = '';
    document.getElementById('components').textContent = r.components.length === 0 ? 'no daemon reports' :
      r.components.map(function (c) { return c.name + ' (beat ' + ago(c.ageMs) + ')'; }).join(' · ');
    var html = r.groups.map(function (g) {
      var live = g.counts.running + g.counts.pending + g.counts.suspect;
      var h = history[g.id] = (history[g.id] || []);
      h.push({ at: r.generatedAt, cpu: g.avgCpu, live: live, demand: g.demand ? g.demand.value : null });
      if (h.length > KEEP) h.shift();
      var kpis = [['desired', g.desired], ['live', live], ['running', g.counts.running], ['pending', g.counts.pending],
        ['suspect', g.counts.suspect], ['avg CPU', pct(g.avgCpu)], ['target', targetCpu(g.policy) == null ? '–' : targetCpu(g.policy) + '%'], ['min / max', g.minSize + ' / ' + g.maxSize]];
      if (g.demand) kpis.push(['demand', g.demand.value.toFixed(0) + '%']);
      var rows = g.instances.map(function (i) {
        var cpu = i.cpu == null ? 0 : i.cpu;
        return '<tr data-instance="' + esc(i.id) + '"><td>' + esc(i.id) + '</td><td class="state ' + esc(i.state) + '">' + esc(i.state) + '</td>' +
          '<td><span class="bar"><span style="width:' + cpu.toFixed(0) + '%"></span></span>' + pct(i.cpu) + '</td><td>' + pct(i.mem) + '</td>' +
          '<td>' + ago(i.lastSeenAt == null ? null : r.generatedAt - i.lastSeenAt) + '</td><td class="reason">' + esc(i.stateReason) + '</td></tr>';
      }).join('');
      var decisions = g.decisions.map(function (d) {
        return '<li><span class="muted">' + esc(time(d.ts)) + '</span> <span class="badge ' + esc(d.reason) + '">' + esc(d.reason) + '</span>' +
          esc(d.from) + ' → ' + esc(d.to) + '<div class="muted">' + esc(d.message) + '</div></li>';
      }).join('');
      return '<section class="group" data-group="' + esc(g.id) + '"><h2>group ' + esc(g.id) + (g.paused ? ' <span class="badge Paused">paused</span>' : '') + '</h2>' +
        '<div class="kpis">' + kpis.map(function (k) { return '<div class="kpi"><div class="v">' + esc(k[1]) + '</div><div class="l">' + esc(k[0]) + '</div></div>'; }).join('') + '</div>' +
        '<div class="row"><div>' + chart(g) +
        '<table class="instances"><thead><tr><th>instance</th><th>state</th><th>CPU</th><th>memory</th><th>last seen</th><th>reason</th></tr></thead><tbody>' +
        (rows || '<tr><td colspan="6" class="muted">no instances</td></tr>') + '</tbody></table></div>' +
        '<div><h3>decisions</h3><ol class="decisions">' + (decisions || '<li class="muted">none yet</li>') + '</ol></div></div></section>';
    }).join('');
    document.getElementById('groups').innerHTML = html || '<p class="muted">no groups yet: start the controller</p>';
  }
  function poll() {
    fetch('/api/status?decisions=20', { cache: 'no-store' })
      .then(function (res) { if (!res.ok) throw new Error('HTTP ' + res.status); return res.json(); })
      .then(render)
      .catch(function (err) { document.getElementById('error').textContent = 'status unavailable: ' + err.message; })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
</script>
</body>
</html>
`;
