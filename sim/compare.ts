/**
 * One what-if: the policy under test and the chosen baselines over the same trace, fleet and
 * seed, with their metrics side by side. Pure; the CLI and bench/policy-quality.ts call it.
 */
import type { ScheduleWindow } from '../controller/policy/types.js';
import type { PolicyDocument } from '../domain/policy.js';
import { baselinePolicy, type BaselineName } from './baselines.js';
import { DEFAULT_TICK_S, enginePolicy } from './engine-policy.js';
import { compareRuns, type ComparisonRow } from './metrics.js';
import { DEFAULT_BOOT_S, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE, initialFleet, runSimulation, type RunResult } from './runner.js';
import type { Trace } from './traces.js';

export interface ComparisonOptions {
  readonly trace: Trace;
  /** The policy under test (parsePolicy({}) is the default policy). */
  readonly policy: PolicyDocument;
  /** Its name in the table. Default "default". */
  readonly policyName?: string;
  readonly baselines: readonly BaselineName[];
  /** Seconds. Default 120. */
  readonly bootS?: number;
  /** The controller's tick, seconds. Default 5. */
  readonly tickS?: number;
  readonly seed?: number;
  readonly noise?: number;
  readonly failuresPerHour?: number;
  readonly minSize?: number;
  readonly maxSize?: number;
  readonly windows?: (now: number) => ScheduleWindow[];
  /** Progress over all the runs, in [0, 1]. */
  readonly onProgress?: (done: number) => void;
}

export interface Comparison {
  readonly runs: readonly RunResult[];
  readonly rows: readonly ComparisonRow[];
  /** The target (percent) the baselines and the oracle aim for: the policy's CPU target. */
  readonly target: number;
  readonly bootS: number;
  readonly tickS: number;
  readonly seed: number;
}

/** The CPU target of a policy (its first CPU target-tracking rule), else 50 %. */
export function targetOf(policy: PolicyDocument): number {
  return policy.targetTracking.find((r) => r.metric === 'cpu')?.target ?? 50;
}

/** Run the policy, then each baseline, over the same trace and fleet. */
export function runComparison(o: ComparisonOptions): Comparison {
  const bootS = o.bootS ?? DEFAULT_BOOT_S;
  const tickS = o.tickS ?? DEFAULT_TICK_S;
  const seed = o.seed ?? 1;
  const minSize = o.minSize ?? DEFAULT_MIN_SIZE;
  const maxSize = o.maxSize ?? DEFAULT_MAX_SIZE;
  const target = targetOf(o.policy);
  // Every run starts from the same fleet: what the oracle would hold at second 0.
  const initial = initialFleet(o.trace, bootS, target, minSize, maxSize);
  const makers = [
    () => enginePolicy(o.policy, { name: o.policyName ?? 'default', tickS, windows: o.windows }),
    ...o.baselines.map((b) => () => baselinePolicy(b, { trace: o.trace, bootS, target, minSize, maxSize })),
  ];
  const runs: RunResult[] = [];
  for (const [i, make] of makers.entries()) {
    runs.push(runSimulation({
      trace: o.trace, policy: make(), bootS, seed, noise: o.noise, failuresPerHour: o.failuresPerHour, minSize, maxSize, initial,
      onProgress: o.onProgress === undefined ? undefined : (done) => o.onProgress?.((i + done) / makers.length),
    }));
  }
  return { runs, rows: compareRuns(o.trace, runs, target), target, bootS, tickS, seed };
}
