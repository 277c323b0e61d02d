/**
 * The simulator's virtual-time runner: a fleet model driven second by second by a trace, with a
 * policy asked every interval for the desired count (read → decide → act, as the controller's
 * loop does; sim/engine-policy.ts feeds the real observe() and decide()). Pure and deterministic:
 * the randomness comes from the seed, the clock from the trace, so the same inputs give the
 * same result, byte for byte.
 *
 * The fleet model:
 * - a launch is capacity (and costs) at once, and is ready (serves, reports) `bootS` later;
 * - demand is shared equally by the ready instances; each reports CPU = min(100, share) plus
 *   uniform noise of ±`noise` points, clamped to [0, 100];
 * - optional failures: each ready instance fails at `failuresPerHour` per hour (exponential);
 *   a failed instance serves nothing, stays capacity (suspect) for `detectS`, is then gone and
 *   replaced at once to the desired count (as an Auto Scaling group's health check does);
 * - a scale-in removes suspect instances first, then launching ones (newest first), then ready
 *   ones (oldest first).
 */
import { mulberry32 } from './random.js';
import type { Trace } from './traces.js';
import type { FleetView, ReadyView, SimPolicy } from './types.js';

/** Defaults of a run. */
export const DEFAULT_BOOT_S = 120;
/** Noise on each reported CPU sample, ± CPU points. */
export const DEFAULT_NOISE = 3;
/** A failed instance is detected (and replaced) after this long: the monitor's dead-after. */
export const DEFAULT_DETECT_S = 15;
export const DEFAULT_MIN_SIZE = 1;
export const DEFAULT_MAX_SIZE = 40;
/** A hard cap on the fleet whatever a policy asks (bounds memory and time). */
export const FLEET_CAP = 10_000;
/** The progress callback is called about this often, in virtual seconds. */
const PROGRESS_EVERY_S = 3_600;
/** How long the starting fleet has been running at second 0: a day. */
const INITIAL_AGE_S = 86_400;

export interface RunOptions {
  readonly trace: Trace;
  readonly policy: SimPolicy;
  /** Seconds from launch to ready. Default 120. */
  readonly bootS?: number;
  /** Seed of the noise and the failures. Default 1. */
  readonly seed?: number;
  /** ± CPU points on each sample. Default 3. */
  readonly noise?: number;
  /** Failures per ready instance per hour. Default 0 (none). */
  readonly failuresPerHour?: number;
  /** Seconds before a failure is detected. Default 15. */
  readonly detectS?: number;
  readonly minSize?: number;
  readonly maxSize?: number;
  /** Ready instances at second 0. Default: enough for the first boot time at 50 % (the oracle's start). */
  readonly initial?: number;
  /** Called with the share done, in [0, 1], about every virtual hour and at the end. */
  readonly onProgress?: (done: number) => void;
}

/** One change of the desired count by the policy. */
export interface ScalingAction {
  /** Seconds since the start. */
  readonly t: number;
  readonly from: number;
  readonly to: number;
}

export interface RunResult {
  readonly policy: string;
  readonly trace: string;
  readonly bootS: number;
  readonly seed: number;
  /** Ready instances during each second. */
  readonly ready: Uint16Array;
  /** Instances paid for during each second: ready + launching + suspect. */
  readonly capacity: Uint16Array;
  readonly actions: readonly ScalingAction[];
  /** Instances that failed (and were replaced). */
  readonly failures: number;
}

interface Instance {
  readonly id: string;
  readonly launchedAt: number;
  readonly readyAt: number;
  detectAt: number;
}

/** Instances needed at `target` percent for the first `bootS` seconds, within the bounds. */
export function initialFleet(trace: Trace, bootS: number, target: number, minSize: number, maxSize: number): number {
  let peak = 0;
  const end = Math.min(trace.demand.length, bootS + 1);
  for (let t = 0; t < end; t++) peak = Math.max(peak, trace.demand[t] as number);
  return Math.max(minSize, Math.min(maxSize, Math.ceil(peak / target - 1e-9)));
}

const clampCpu = (v: number) => (v < 0 ? 0 : v > 100 ? 100 : v);

/** Run one policy over one trace. */
export function runSimulation(o: RunOptions): RunResult {
  const bootS = o.bootS ?? DEFAULT_BOOT_S;
  const seed = o.seed ?? 1;
  const noise = o.noise ?? DEFAULT_NOISE;
  const failRate = (o.failuresPerHour ?? 0) / 3_600;
  const detectS = o.detectS ?? DEFAULT_DETECT_S;
  const minSize = o.minSize ?? DEFAULT_MIN_SIZE;
  const maxSize = o.maxSize ?? DEFAULT_MAX_SIZE;
  const { trace, policy } = o;
  if (!Number.isInteger(policy.intervalS) || policy.intervalS < 1) throw new TypeError(`policy ${policy.name}: intervalS must be a whole number >= 1`);
  if (!Number.isInteger(bootS) || bootS < 0) throw new TypeError('bootS must be a whole number >= 0');
  const seconds = trace.demand.length;
  const random = mulberry32(seed);
  const failRandom = mulberry32(seed ^ 0x5bd1e995);

  const readyList: Instance[] = [];
  const launching: Instance[] = []; // launch order = ready order: boot time is the same for all
  const suspect: Instance[] = [];
  let nextId = 0;
  let failures = 0;
  const launch = (t: number, n: number) => {
    for (let k = 0; k < n; k++) launching.push({ id: `sim-${nextId++}`, launchedAt: t, readyAt: t + bootS, detectAt: 0 });
  };
  const live = () => readyList.length + launching.length + suspect.length;
  const removeN = (n: number) => {
    let left = n;
    while (left > 0 && suspect.length > 0) { suspect.pop(); left--; }
    while (left > 0 && launching.length > 0) { launching.pop(); left--; }
    if (left > 0) readyList.splice(0, left);
  };

  const initial = Math.min(FLEET_CAP, o.initial ?? initialFleet(trace, bootS, 50, minSize, maxSize));
  // The starting fleet has run for a long time: past any boot and warm-up.
  for (let k = 0; k < initial; k++) readyList.push({ id: `sim-${nextId++}`, launchedAt: -INITIAL_AGE_S, readyAt: -INITIAL_AGE_S, detectAt: 0 });
  let desired = initial;

  const readyOut = new Uint16Array(seconds);
  const capacityOut = new Uint16Array(seconds);
  const actions: ScalingAction[] = [];
  const startAt = trace.startAt;

  for (let t = 0; t < seconds; t++) {
    while (launching.length > 0 && (launching[0] as Instance).readyAt <= t) readyList.push(launching.shift() as Instance);
    if (failRate > 0 && readyList.length > 0 && failRandom() < failRate * readyList.length) {
      const [failed] = readyList.splice(Math.floor(failRandom() * readyList.length), 1) as [Instance];
      failed.detectAt = t + detectS;
      suspect.push(failed);
    }
    while (suspect.length > 0 && (suspect[0] as Instance).detectAt <= t) {
      suspect.shift();
      failures++;
    }
    // Replacements: the group holds its desired count whatever the policy's interval.
    if (live() < desired) launch(t, desired - live());

    if (t % policy.intervalS === 0) {
      const demand = trace.demand[t] as number;
      const now = startAt + t * 1000;
      let views: ReadyView[] | undefined;
      const view: FleetView = {
        t, now, desired, launching: launching.length, suspect: suspect.length, readyCount: readyList.length, minSize, maxSize,
        instances: () => {
          if (views === undefined) {
            const share = Math.min(100, demand / Math.max(1, readyList.length));
            views = readyList.map((i) => {
              const cpu = clampCpu(share + (random() * 2 - 1) * noise);
              return { id: i.id, cpu, mem: 20 + 0.3 * cpu, launchedAt: startAt + i.launchedAt * 1000, readyAt: startAt + i.readyAt * 1000 };
            });
          }
          return views;
        },
      };
      const asked = policy.decide(view);
      const next = Math.max(0, Math.min(FLEET_CAP, Math.round(Number.isFinite(asked) ? asked : desired)));
      if (next !== desired) {
        actions.push({ t, from: desired, to: next });
        desired = next;
      }
      const n = live();
      if (desired > n) launch(t, desired - n);
      else if (desired < n) removeN(n - desired);
    }

    readyOut[t] = readyList.length;
    capacityOut[t] = live();
    if (o.onProgress !== undefined && t % PROGRESS_EVERY_S === 0 && t > 0) o.onProgress(t / seconds);
  }
  o.onProgress?.(1);
  return { policy: policy.name, trace: trace.name, bootS, seed, ready: readyOut, capacity: capacityOut, actions, failures };
}
