import type { DecisionRow } from '../store/events.js';
import type { GroupStatus, StatusReport } from '../store/status.js';

/** Longest text taken from the store into one cell or line, characters. */
export const MAX_SHOWN_CHARS = 200;

// ANSI/VT sequences whole: CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \), other two-byte escapes,
// and their 8-bit forms. Then any C0/C1 control, DEL, and bidi overrides that reorder what is shown.
// eslint-disable-next-line no-control-regex
const ESCAPES = /(?:\u001b\[|\u009b)[0-?]*[ -/]*[@-~]|(?:\u001b\]|\u009d)[^\u0007\u001b\u009c]*(?:\u0007|\u001b\\|\u009c)?|\u001b[@-Z\\-_]?/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Text from the store (agent-sent reasons, provider errors) made safe for a terminal: escape
 * sequences removed, other control characters (CR, LF, TAB, …) shown as a space, and the result
 * capped at `max` characters. What is stored is left as it was sent.
 */
export function clean(text: string, max = MAX_SHOWN_CHARS): string {
  const plain = text.replace(ESCAPES, '').replace(CONTROLS, ' ');
  return plain.length > max ? `${plain.slice(0, max - 1)}…` : plain;
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const pct = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)}%`);

/** "0.4s ago", "3m ago"; "-" for never. */
export function ago(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 60_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s ago`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)}m ago`;
  return `${Math.round(ms / 3_600_000)}h ago`;
}

export function clockTime(ts: number): string {
  return new Date(ts).toISOString().slice(11, 19);
}

/** A plain-text table: header row then rows, columns padded to their widest cell; every cell is cleaned. */
export function table(header: readonly string[], rawRows: readonly (readonly string[])[]): string {
  const rows = rawRows.map((r) => r.map((cell) => clean(cell)));
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, c) => pad(cell, widths[c] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function formatDecision(d: DecisionRow): string {
  const arrow = d.to > d.from ? '▲' : d.to < d.from ? '▼' : '=';
  return `${clockTime(d.ts)} ${arrow} ${clean(d.reason)} ${d.from} → ${d.to}: ${clean(d.message)}`;
}

/** The CPU target of a group's target-tracking rules, "50%"; "-" when it tracks no CPU target. */
function cpuTarget(g: GroupStatus): string {
  const rule = g.policy.targetTracking.find((r) => r.metric === 'cpu');
  return rule === undefined ? '-' : `${rule.target}%`;
}

export function formatGroup(g: GroupStatus, now: number, opts: { decisions?: number } = {}): string {
  const live = g.counts.pending + g.counts.running + g.counts.suspect;
  const head = [
    `group ${clean(g.id)}${g.paused ? ' (PAUSED)' : ''}`,
    `min ${g.minSize} max ${g.maxSize} desired ${g.desired} live ${live}`,
    `(running ${g.counts.running}, pending ${g.counts.pending}, suspect ${g.counts.suspect}, dead ${g.counts.dead}, terminating ${g.counts.terminating})`,
    `avg CPU ${pct(g.avgCpu)} target ${cpuTarget(g)}`,
    ...(g.demand ? [`demand ${g.demand.value.toFixed(0)}% (${g.demand.profile})`] : []),
  ].join(' · ');
  const rows = g.instances.map((i) => [i.id, i.state, pct(i.cpu), pct(i.mem), ago(i.lastSeenAt === null ? null : now - i.lastSeenAt), i.zone ?? '-', i.origin, i.stateReason ?? '']);
  const parts = [head, table(['INSTANCE', 'STATE', 'CPU', 'MEM', 'LAST SEEN', 'ZONE', 'ORIGIN', 'REASON'], rows)];
  const n = opts.decisions ?? 3;
  if (n > 0 && g.decisions.length > 0) {
    parts.push('recent decisions:', ...g.decisions.slice(0, n).map((d) => `  ${formatDecision(d)}`));
  }
  return parts.join('\n');
}

export function formatStatus(r: StatusReport, opts: { decisions?: number } = {}): string {
  const comps = r.components.length === 0 ? 'no daemon is running'
    : r.components.map((c) => `${clean(c.name)} pid ${c.pid} (beat ${ago(c.ageMs)})`).join(', ');
  const groups = r.groups.length === 0 ? ['no groups yet: start the controller'] : r.groups.map((g) => formatGroup(g, r.generatedAt, opts));
  return [`components: ${comps}`, ...groups].join('\n\n');
}
