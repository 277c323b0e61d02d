/**
 * Quality metrics of a run (trace-driven, after SPEC RG's elasticity metrics): cost, under-
 * provisioning, unserved demand, actions, flapping and reaction to steps. Pure.
 */
import type { RunResult } from './runner.js';
import type { Trace } from './traces.js';

/** A second is under-provisioned when the load per ready instance is above this, percent. */
export const UNDER_PROVISIONED_LOAD = 80;
/** An action reverses the previous one (flapping) when it goes the other way within this, seconds. */
export const REVERSAL_WINDOW_S = 600;
/** Recovery from a step is looked for within this long after it (or until the next step), seconds. */
export const RECOVERY_WINDOW_S = 1_800;

export interface RunMetrics {
  /** Instance-hours paid for: every second of every instance from launch to termination, booting included. */
  readonly costInstanceHours: number;
  /** Cost / the oracle's cost on the same trace and boot; null when the oracle was not run. */
  readonly costRatio: number | null;
  /** Share of the seconds with load per ready instance above 80 % (or demand and no ready instance), percent. */
  readonly underProvisionedPct: number;
  /** Demand above 100 % of the ready instances, as a share of all demand, percent. */
  readonly unservedPct: number;
  /** Share of the seconds with load per ready instance above the target, percent. */
  readonly aboveTargetPct: number;
  /** Changes of the desired count. */
  readonly actions: number;
  /** Actions that went the other way from the previous one within 10 minutes. */
  readonly reversals: number;
  /**
   * Mean time from each step up of the trace to the first scale-out at or after it, seconds (a
   * scale-out within the boot time before the step, which only the oracle makes, counts as 0);
   * null when the trace has no step or the policy never scaled out after one.
   */
  readonly reactionS: number | null;
  /** Mean time from each step up to the end of the last under-provisioned second within 30 min after it, seconds; null without steps. */
  readonly recoveryS: number | null;
  /** Most instances paid for at once. */
  readonly peakCapacity: number;
}

/** The metrics of one run. `target` (percent) only sets `aboveTargetPct`. */
export function measure(trace: Trace, run: RunResult, target = 50): RunMetrics {
  const n = trace.demand.length;
  let cost = 0;
  let under = 0;
  let above = 0;
  let unserved = 0;
  let total = 0;
  let peak = 0;
  for (let t = 0; t < n; t++) {
    const d = trace.demand[t] as number;
    const r = run.ready[t] as number;
    const c = run.capacity[t] as number;
    cost += c;
    if (c > peak) peak = c;
    total += d;
    if (d > 0) {
      if (r === 0 || d / r > UNDER_PROVISIONED_LOAD) under++;
      if (r === 0 || d / r > target) above++;
      if (d > 100 * r) unserved += d - 100 * r;
    }
  }
  let reversals = 0;
  for (let i = 1; i < run.actions.length; i++) {
    const a = run.actions[i - 1];
    const b = run.actions[i];
    if (a === undefined || b === undefined) continue;
    if (Math.sign(a.to - a.from) !== Math.sign(b.to - b.from) && b.t - a.t <= REVERSAL_WINDOW_S) reversals++;
  }
  const reactions: number[] = [];
  const recoveries: number[] = [];
  for (const [k, s] of trace.stepsUp.entries()) {
    const first = run.actions.find((a) => a.to > a.from && a.t >= s - run.bootS);
    if (first !== undefined && (trace.stepsUp[k + 1] === undefined || first.t < (trace.stepsUp[k + 1] as number))) reactions.push(Math.max(0, first.t - s));
    const end = Math.min(n, s + RECOVERY_WINDOW_S, trace.stepsUp[k + 1] ?? n);
    let last = s;
    for (let t = s; t < end; t++) {
      const d = trace.demand[t] as number;
      const r = run.ready[t] as number;
      if (d > 0 && (r === 0 || d / r > UNDER_PROVISIONED_LOAD)) last = t + 1;
    }
    recoveries.push(last - s);
  }
  const mean = (xs: readonly number[]) => (xs.length === 0 ? null : xs.reduce((a, x) => a + x, 0) / xs.length);
  return {
    costInstanceHours: cost / 3_600,
    costRatio: null,
    underProvisionedPct: n === 0 ? 0 : (100 * under) / n,
    unservedPct: total === 0 ? 0 : (100 * unserved) / total,
    aboveTargetPct: n === 0 ? 0 : (100 * above) / n,
    actions: run.actions.length,
    reversals,
    reactionS: mean(reactions),
    recoveryS: trace.stepsUp.length === 0 ? null : mean(recoveries),
    peakCapacity: peak,
  };
}

/** One policy's line of a comparison. */
export interface ComparisonRow {
  readonly policy: string;
  readonly metrics: RunMetrics;
}

/** Metrics of every run, with each cost's ratio to the oracle's (when an `oracle` run is among them). */
export function compareRuns(trace: Trace, runs: readonly RunResult[], target = 50): ComparisonRow[] {
  const rows = runs.map((r) => ({ policy: r.policy, metrics: measure(trace, r, target) }));
  const oracle = rows.find((r) => r.policy === 'oracle');
  const base = oracle?.metrics.costInstanceHours;
  return rows.map((r) => ({
    policy: r.policy,
    metrics: { ...r.metrics, costRatio: base === undefined || base === 0 ? null : r.metrics.costInstanceHours / base },
  }));
}

const fixed = (v: number | null, digits: number, suffix = '') => (v === null ? '—' : `${v.toFixed(digits)}${suffix}`);

/** The columns of a comparison table. */
export const TABLE_HEADER = ['policy', 'cost (inst-h)', '× oracle', 'under-prov.', 'unserved', 'actions', 'reversals', 'reaction', 'recovery'] as const;

/** A row's cells, formatted (fixed decimals: the same run prints the same text). */
export function tableCells(row: ComparisonRow): string[] {
  const m = row.metrics;
  return [row.policy, fixed(m.costInstanceHours, 2), fixed(m.costRatio, 2), fixed(m.underProvisionedPct, 2, ' %'), fixed(m.unservedPct, 2, ' %'),
    String(m.actions), String(m.reversals), fixed(m.reactionS, 0, ' s'), fixed(m.recoveryS, 0, ' s')];
}

/** An aligned plain-text table (the terminal's). */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A markdown table. */
export function formatMarkdown(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map(line)].join('\n');
}
