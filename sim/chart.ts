/**
 * The comparison chart (SVG, written by hand: no dependency) and the HTML report embedding it.
 * Pure: runs in, text out; numbers are printed with fixed decimals, so the same runs give the
 * same bytes.
 */
import { TABLE_HEADER, tableCells, type ComparisonRow } from './metrics.js';
import type { RunResult } from './runner.js';
import type { Trace } from './traces.js';

const WIDTH = 960;
const HEIGHT = 400;
const PAD = { left: 56, right: 20, top: 56, bottom: 44 };
/** At most this many points per line. */
const MAX_POINTS = 900;

const COLORS: Readonly<Record<string, string>> = {
  default: '#1f77b4', hpa: '#ff7f0e', 'aws-target-tracking': '#2ca02c', threshold: '#9467bd', oracle: '#555555',
};
const EXTRA = ['#d62728', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const f1 = (v: number) => (Math.round(v * 10) / 10).toFixed(1);

/** Mean of `values` over `buckets` equal spans. */
function downsample(values: ArrayLike<number>, buckets: number, scale = 1): number[] {
  const n = values.length;
  const out: number[] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * n) / buckets);
    const to = Math.max(from + 1, Math.floor(((b + 1) * n) / buckets));
    let sum = 0;
    for (let i = from; i < to && i < n; i++) sum += values[i] as number;
    out.push((sum / Math.max(1, Math.min(to, n) - from)) * scale);
  }
  return out;
}

/** Points of a line, without the interior points of flat runs (the same picture, a fraction of the bytes). */
function points(values: readonly number[], x: (b: number) => number, y: (v: number) => number): string {
  const out: string[] = [];
  for (let b = 0; b < values.length; b++) {
    const v = f1(y(values[b] as number));
    if (b > 0 && b < values.length - 1 && f1(y(values[b - 1] as number)) === v && f1(y(values[b + 1] as number)) === v) continue;
    out.push(`${f1(x(b))},${v}`);
  }
  return out.join(' ');
}

/** A round step for about `count` ticks over [0, max]. */
function niceStep(max: number, count: number): number {
  const raw = Math.max(max, 1e-9) / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/** Seconds as an axis label: 30m, 2h, 1d12h. */
function timeLabel(s: number): string {
  if (s === 0) return '0';
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  return `${d > 0 ? `${d}d` : ''}${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}`;
}

const TIME_STEPS = [60, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200, 86_400];

export interface ChartOptions {
  /** Target the demand line is drawn at (instances needed = demand / target). Default 50. */
  readonly target?: number;
  readonly title?: string;
}

/** An SVG of the demand (as instances needed at the target) and each run's paid capacity over time. */
export function renderChart(trace: Trace, runs: readonly RunResult[], opts: ChartOptions = {}): string {
  const target = opts.target ?? 50;
  const n = trace.demand.length;
  const buckets = Math.max(1, Math.min(MAX_POINTS, n));
  const need = downsample(trace.demand, buckets, 1 / target);
  const lines = runs.map((r) => ({ name: r.policy, values: downsample(r.capacity, buckets) }));
  const yMaxRaw = Math.max(1, ...need, ...lines.flatMap((l) => l.values));
  const yStep = niceStep(yMaxRaw, 5);
  const yMax = Math.ceil(yMaxRaw / yStep) * yStep;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (b: number) => PAD.left + (buckets === 1 ? 0 : (b / (buckets - 1)) * plotW);
  const y = (v: number) => PAD.top + plotH - (v / yMax) * plotH;
  const xStep = TIME_STEPS.find((s) => n / s <= 10) ?? 86_400 * Math.ceil(n / 86_400 / 10);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  const title = opts.title ?? `${trace.name}: instances over time`;
  parts.push(`<text x="${PAD.left}" y="20" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  // Grid and axes.
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${f1(y(v))}" y2="${f1(y(v))}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${f1(y(v) + 4)}" text-anchor="end">${escapeXml(String(Math.round(v * 100) / 100))}</text>`);
  }
  for (let s = 0; s <= n; s += xStep) {
    const px = PAD.left + (s / Math.max(1, n)) * plotW;
    parts.push(`<line x1="${f1(px)}" x2="${f1(px)}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${f1(px)}" y="${PAD.top + plotH + 16}" text-anchor="middle">${timeLabel(s)}</text>`);
  }
  parts.push(`<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 6}" text-anchor="middle" fill="#444">time</text>`);
  parts.push(`<text x="14" y="${PAD.top + plotH / 2}" text-anchor="middle" fill="#444" transform="rotate(-90 14 ${PAD.top + plotH / 2})">instances</text>`);
  // Demand as an area.
  const area = [`${f1(x(0))},${f1(y(0))}`, ...need.map((v, b) => `${f1(x(b))},${f1(y(v))}`), `${f1(x(buckets - 1))},${f1(y(0))}`];
  parts.push(`<polygon points="${area.join(' ')}" fill="#d9d9d9" stroke="none"/>`);
  // Capacity lines.
  const colorOf = (name: string, i: number) => COLORS[name] ?? EXTRA[i % EXTRA.length] as string;
  for (const [i, l] of lines.entries()) {
    const pts = points(l.values, x, y);
    const dash = l.name === 'oracle' ? ' stroke-dasharray="5 3"' : '';
    const w = l.name === 'default' ? 2.2 : 1.4;
    parts.push(`<polyline points="${pts}" fill="none" stroke="${colorOf(l.name, i)}" stroke-width="${w}"${dash}/>`);
  }
  parts.push(`<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}" stroke="#333"/>`);
  // Legend.
  let lx = PAD.left;
  const legend = [{ name: `demand ÷ ${target} % target`, color: '#d9d9d9', box: true }, ...lines.map((l, i) => ({ name: l.name, color: colorOf(l.name, i), box: false }))];
  for (const item of legend) {
    parts.push(item.box
      ? `<rect x="${lx}" y="32" width="14" height="10" fill="${item.color}"/>`
      : `<line x1="${lx}" x2="${lx + 14}" y1="37" y2="37" stroke="${item.color}" stroke-width="2.5"/>`);
    parts.push(`<text x="${lx + 18}" y="41">${escapeXml(item.name)}</text>`);
    lx += 26 + item.name.length * 7;
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export interface ReportMeta {
  readonly trace: Trace;
  readonly bootS: number;
  readonly seed: number;
  readonly tickS: number;
  readonly policyName: string;
}

/** A self-contained HTML page: the parameters, the comparison table and the chart. */
export function renderReport(meta: ReportMeta, rows: readonly ComparisonRow[], svg: string): string {
  const th = TABLE_HEADER.map((h) => `<th>${escapeXml(h)}</th>`).join('');
  const trs = rows.map((r) => `<tr>${tableCells(r).map((c, i) => (i === 0 ? `<td>${escapeXml(c)}</td>` : `<td class="n">${escapeXml(c)}</td>`)).join('')}</tr>`).join('\n');
  const t = meta.trace;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>autoscaler simulate: ${escapeXml(t.name)}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; }
th { text-align: left; background: #f5f5f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
</style>
</head>
<body>
<h1>What-if: ${escapeXml(t.name)}</h1>
<p>${escapeXml(t.description)}. ${t.demand.length} s at 1 s resolution; boot ${meta.bootS} s; controller tick ${meta.tickS} s; seed ${meta.seed}; policy under test: ${escapeXml(meta.policyName)}.</p>
<table>
<thead><tr>${th}</tr></thead>
<tbody>
${trs}
</tbody>
</table>
<p>Cost counts every instance from launch to termination (booting included); under-provisioned: load per ready instance above 80 %; unserved: demand above 100 % of the ready instances, as a share of all demand; reversals: an action undoing the previous one within 10 min; reaction: step up → first scale-out; recovery: step up → end of under-provisioning.</p>
${svg}
</body>
</html>
`;
}
