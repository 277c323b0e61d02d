/**
 * Policy quality: every built-in trace × every policy (the default policy through the real
 * engine, the HPA, AWS target tracking, a threshold rule, the oracle) × boots of 60 s and 180 s,
 * in virtual time. Prints one markdown table (the README quotes it) with the goal marked
 * per row, then how long the runs took.
 *
 *   npm run build && node dist/bench/policy-quality.js [--seed N]
 *
 * Goal: the default policy costs at most 1.10 × the oracle and is under-provisioned at most half
 * as long as the best of the baselines (HPA, AWS target tracking, threshold).
 */
import { performance } from 'node:perf_hooks';
import { parsePolicy } from '../domain/policy.js';
import { BASELINES } from '../sim/baselines.js';
import { runComparison } from '../sim/compare.js';
import { enginePolicy } from '../sim/engine-policy.js';
import { formatMarkdown, type ComparisonRow } from '../sim/metrics.js';
import { runSimulation } from '../sim/runner.js';
import { builtinTrace, TRACE_NAMES } from '../sim/traces.js';

const COST_GOAL = 1.1;
const UNDER_GOAL = 0.5;
const BOOTS = [60, 180];
const BASELINES_ONLY = ['hpa', 'aws-target-tracking', 'threshold'];

const seedArg = process.argv.indexOf('--seed');
const seed = seedArg >= 0 ? Number(process.argv[seedArg + 1]) : 1;
if (!Number.isInteger(seed) || seed < 0) throw new Error('--seed must be a whole number >= 0');
const parsed = parsePolicy({});
if (!parsed.ok) throw new Error('the default policy does not parse');
const policy = parsed.value;

const pct = (v: number) => `${v.toFixed(2)} %`;
const cell = (r: ComparisonRow | undefined) => (r === undefined ? '—' : `${(r.metrics.costRatio ?? 0).toFixed(2)}× · ${pct(r.metrics.underProvisionedPct)}`);

function goal(rows: readonly ComparisonRow[]): string {
  const ours = rows.find((r) => r.policy === 'default')?.metrics;
  const others = rows.filter((r) => BASELINES_ONLY.includes(r.policy));
  if (ours === undefined || others.length === 0) return '—';
  const best = others.reduce((a, r) => (r.metrics.underProvisionedPct < a.metrics.underProvisionedPct ? r : a));
  const misses: string[] = [];
  const ratio = ours.costRatio ?? Number.POSITIVE_INFINITY;
  if (ratio > COST_GOAL + 1e-9) misses.push(`cost ${ratio.toFixed(3)}× > ${COST_GOAL.toFixed(2)}×`);
  const allowed = UNDER_GOAL * best.metrics.underProvisionedPct;
  if (ours.underProvisionedPct > allowed + 1e-9) misses.push(`under ${pct(ours.underProvisionedPct)} > half of ${best.policy}'s ${pct(best.metrics.underProvisionedPct)}`);
  return misses.length === 0 ? 'met' : `**not met**: ${misses.join('; ')}`;
}

const header = ['trace', 'boot', 'default', ...BASELINES, 'goal'];
const table: string[][] = [];
const sums = new Map<string, { cost: number; under: number; n: number }>();
let met = 0;
let total = 0;
const started = performance.now();
for (const bootS of BOOTS) {
  for (const name of TRACE_NAMES) {
    const trace = builtinTrace(name, seed);
    const c = runComparison({ trace, policy, baselines: BASELINES, bootS, seed });
    const g = goal(c.rows);
    total++;
    if (g === 'met') met++;
    for (const r of c.rows) {
      const key = `${r.policy}@${bootS}`;
      const s = sums.get(key) ?? { cost: 0, under: 0, n: 0 };
      sums.set(key, { cost: s.cost + (r.metrics.costRatio ?? 0), under: s.under + r.metrics.underProvisionedPct, n: s.n + 1 });
    }
    table.push([name, `${bootS} s`, ...['default', ...BASELINES].map((p) => cell(c.rows.find((r) => r.policy === p))), g]);
  }
  const mean = (p: string) => {
    const s = sums.get(`${p}@${bootS}`);
    return s === undefined ? '—' : `${(s.cost / s.n).toFixed(2)}× · ${pct(s.under / s.n)}`;
  };
  table.push([`**mean**`, `${bootS} s`, ...['default', ...BASELINES].map(mean), '']);
}
const elapsed = performance.now() - started;

process.stdout.write(`Policy quality (seed ${seed}; min 1, max 40, target 50 %, tick 5 s; each cell: cost ÷ oracle · under-provisioned time, load per ready instance > 80 %)\n\n`);
process.stdout.write(`${formatMarkdown(header, table)}\n\n`);
process.stdout.write(`goal (cost ≤ ${COST_GOAL.toFixed(2)}× oracle and under-provisioned ≤ ${UNDER_GOAL} × the best baseline's): met on ${met} of ${total} trace × boot rows\n`);
process.stdout.write(`${total} comparisons (${total * (BASELINES.length + 1)} runs) in ${(elapsed / 1000).toFixed(1)} s\n`);

// The two-day trace at 1 s resolution, the default policy alone, best of three.
const diurnal = builtinTrace('diurnal', seed);
const times: number[] = [];
for (let i = 0; i < 3; i++) {
  const t0 = performance.now();
  runSimulation({ trace: diurnal, policy: enginePolicy(policy), bootS: 120, seed });
  times.push(performance.now() - t0);
}
process.stdout.write(`two-day trace (diurnal, ${diurnal.demand.length.toLocaleString('en-US')} s at 1 s, ${diurnal.demand.length / 5} engine evaluations), default policy: ${Math.min(...times).toFixed(0)} ms (best of 3)\n`);
