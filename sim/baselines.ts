/**
 * Baseline policies the default policy is measured against, each written from its source's
 * rules (docs/simulator.md cites them): the Kubernetes HPA, AWS target tracking, a classic
 * threshold rule, and an oracle that knows the future. Independent of controller/policy/ on
 * purpose: a baseline that shared our code would share our bugs.
 */
import { initialFleet } from './runner.js';
import type { Trace } from './traces.js';
import type { FleetView, SimPolicy } from './types.js';

/** The baselines, in the order tables list them. */
export const BASELINES = ['hpa', 'aws-target-tracking', 'threshold', 'oracle'] as const;
export type BaselineName = (typeof BASELINES)[number];

const EPSILON = 1e-9;
const clamp = (v: number, min: number, max: number) => Math.max(min, Math.min(max, v));
const avgCpu = (view: FleetView) => {
  const ready = view.instances();
  return ready.length === 0 ? undefined : { sum: ready.reduce((a, i) => a + i.cpu, 0), n: ready.length };
};

/** Kubernetes HPA defaults (kube-controller-manager and autoscaling/v2 behavior). */
export const HPA_DEFAULTS = {
  /** --horizontal-pod-autoscaler-sync-period: 15 s. */
  syncS: 15,
  /** --horizontal-pod-autoscaler-tolerance: 0.1. */
  tolerance: 0.1,
  /** behavior.scaleDown.stabilizationWindowSeconds: 300. */
  downStabilizationS: 300,
  /** behavior.scaleUp.policies: max of +4 pods and +100 % per 15 s. */
  upPods: 4,
  upPercent: 100,
  upPeriodS: 15,
  /** behavior.scaleDown.policies: −100 % per 15 s. */
  downPercent: 100,
  downPeriodS: 15,
} as const;

/**
 * The HPA on CPU utilisation (replica_calculator.go GetResourceReplicas, then horizontal.go
 * normalizeDesiredReplicasWithBehaviors):
 * - ratio = average CPU of ready pods / target; no missing pods: within tolerance → hold, else
 *   ceil(ratio × ready);
 * - missing pods (booting or failed: no metric) count as 100 % of target on a scale-down and 0 %
 *   on a scale-up; the ratio is recomputed and a result within tolerance or flipped holds, else
 *   ceil(new ratio × (ready + missing));
 * - stabilization: the highest recommendation of the last 300 s on the way down (none up);
 * - rate limits from the replicas at the start of the period: up max(+4, +100 %) per 15 s,
 *   down −100 % per 15 s; then min / max.
 */
export function hpaPolicy(target = 50): SimPolicy {
  const d = HPA_DEFAULTS;
  const recommendations: { t: number; n: number }[] = [];
  const events: { t: number; delta: number }[] = [];
  return {
    name: 'hpa',
    intervalS: d.syncS,
    decide(view) {
      const current = view.desired;
      const m = avgCpu(view);
      if (m === undefined) return current; // no metrics for any ready pod: FailedGetResourceMetric, hold
      const missing = view.launching + view.suspect;
      const ratio = m.sum / m.n / target;
      let rec: number;
      if (missing === 0) {
        rec = Math.abs(1 - ratio) <= d.tolerance + EPSILON ? current : Math.ceil(ratio * m.n - EPSILON);
      } else {
        const up = ratio > 1;
        const count = m.n + missing;
        const adjusted = (m.sum + (up ? 0 : missing * target)) / count / target;
        if (Math.abs(1 - adjusted) <= d.tolerance + EPSILON || (ratio < 1 && adjusted > 1) || (ratio > 1 && adjusted < 1)) rec = current;
        else {
          rec = Math.ceil(adjusted * count - EPSILON);
          if ((adjusted < 1 && rec > current) || (adjusted > 1 && rec < current)) rec = current;
        }
      }
      // Stabilization (stabilizeRecommendationWithBehaviors): up window 0 s, down window 300 s.
      recommendations.push({ t: view.t, n: rec });
      while (recommendations.length > 0 && (recommendations[0] as { t: number }).t <= view.t - d.downStabilizationS) recommendations.shift();
      const downRec = Math.max(...recommendations.map((r) => r.n));
      let stabilized = current;
      if (stabilized < rec) stabilized = rec;
      if (stabilized > downRec) stabilized = downRec;
      // Rate limits (convertDesiredReplicasWithBehaviorRate).
      while (events.length > 0 && (events[0] as { t: number }).t <= view.t - Math.max(d.upPeriodS, d.downPeriodS)) events.shift();
      const added = events.filter((e) => e.t > view.t - d.upPeriodS && e.delta > 0).reduce((a, e) => a + e.delta, 0);
      const removed = events.filter((e) => e.t > view.t - d.downPeriodS && e.delta < 0).reduce((a, e) => a - e.delta, 0);
      const periodStart = current - added + removed;
      let desired = stabilized;
      if (stabilized > current) {
        const upLimit = Math.max(current, periodStart + d.upPods, Math.ceil(periodStart * (1 + d.upPercent / 100)));
        desired = Math.min(stabilized, upLimit, view.maxSize);
      } else if (stabilized < current) {
        const downLimit = Math.min(current, Math.trunc(periodStart * (1 - d.downPercent / 100)));
        desired = Math.max(stabilized, downLimit, view.minSize);
      }
      desired = clamp(desired, view.minSize, view.maxSize);
      if (desired !== current) events.push({ t: view.t, delta: desired - current });
      return desired;
    },
  };
}

/** AWS EC2 Auto Scaling target tracking defaults (the alarms it creates, instance warm-up). */
export const AWS_DEFAULTS = {
  /** CloudWatch period of the alarms: 60 s. */
  periodS: 60,
  /** Samples per datapoint (the agent's 1 Hz metric, averaged over the period): one every 10 s. */
  sampleS: 10,
  /** Scale-out alarm: 3 consecutive datapoints above the target. */
  outPeriods: 3,
  /** Scale-in alarm: 15 consecutive datapoints below 90 % of the target. */
  inPeriods: 15,
  inFactor: 0.9,
  /** Instance warm-up: 300 s from launch, metric excluded. */
  warmupS: 300,
} as const;

/**
 * AWS target tracking on average CPU: each minute a datapoint (the average over the minute of
 * the instances past their warm-up); out when the last 3 are above the target, in when the last
 * 15 are below 90 % of it, to ceil(counted × metric / target) where `counted` are the instances
 * whose metric the datapoint averages. Warming instances are already capacity: a scale-out never
 * adds to them (it only raises the desired count), and there is no scale-in while any instance is
 * launching or warming, nor on missing data.
 */
export function awsTargetTrackingPolicy(target = 50): SimPolicy {
  const d = AWS_DEFAULTS;
  const datapoints: (number | undefined)[] = [];
  let sum = 0;
  let samples = 0;
  let counted = 0;
  return {
    name: 'aws-target-tracking',
    intervalS: d.sampleS,
    decide(view) {
      const warm = view.instances().filter((i) => view.now - i.launchedAt >= d.warmupS * 1000);
      if (warm.length > 0) {
        sum += warm.reduce((a, i) => a + i.cpu, 0) / warm.length;
        samples++;
      }
      counted = warm.length;
      if ((view.t + d.sampleS) % d.periodS !== 0) return view.desired;
      datapoints.push(samples === 0 ? undefined : sum / samples);
      if (datapoints.length > d.inPeriods) datapoints.shift();
      sum = 0;
      samples = 0;
      const metric = datapoints.at(-1);
      if (metric === undefined || counted === 0) return view.desired;
      const want = Math.ceil((counted * metric) / target - EPSILON);
      const last = (n: number) => datapoints.slice(-n);
      const out = last(d.outPeriods);
      if (out.length === d.outPeriods && out.every((v) => v !== undefined && v > target)) {
        return clamp(Math.max(view.desired, want), view.minSize, view.maxSize);
      }
      const inn = last(d.inPeriods);
      const settling = view.launching > 0 || view.readyCount > counted;
      if (!settling && inn.length === d.inPeriods && inn.every((v) => v !== undefined && v < d.inFactor * target) && want < view.desired) {
        return clamp(want, view.minSize, view.maxSize);
      }
      return clamp(view.desired, view.minSize, view.maxSize);
    },
  };
}

/** The classic student autoscaler's rule. */
export const THRESHOLD_DEFAULTS = {
  intervalS: 60,
  /** Average CPU of ready instances above this: +1. */
  high: 70,
  /** Below this: −1. */
  low: 30,
  /** After an action, nothing for this long. */
  cooldownS: 300,
} as const;

/** Every 60 s: average CPU above 70 % → one more, below 30 % → one fewer; 300 s cooldown after an action. */
export function thresholdPolicy(): SimPolicy {
  const d = THRESHOLD_DEFAULTS;
  let lastAction = Number.NEGATIVE_INFINITY;
  return {
    name: 'threshold',
    intervalS: d.intervalS,
    decide(view) {
      const m = avgCpu(view);
      if (m === undefined || view.t - lastAction < d.cooldownS) return view.desired;
      const avg = m.sum / m.n;
      const next = clamp(avg > d.high ? view.desired + 1 : avg < d.low ? view.desired - 1 : view.desired, view.minSize, view.maxSize);
      if (next !== view.desired) lastAction = view.t;
      return next;
    },
  };
}

/**
 * The oracle's plan: at second t it holds the most instances it will need over [t, t + boot] at
 * `target` percent, ceil(demand / target) within the bounds. A launch at t is ready at t + boot,
 * so every second has its instances ready, and nothing is let go that would have to be launched
 * again before it could boot: the lowest cost with no second above the target.
 */
export function oraclePlan(trace: Trace, bootS: number, target: number, minSize: number, maxSize: number): Uint16Array {
  const n = trace.demand.length;
  const need = new Uint16Array(n);
  for (let t = 0; t < n; t++) need[t] = clamp(Math.ceil((trace.demand[t] as number) / target - EPSILON), minSize, maxSize);
  // Sliding maximum over [t, t + boot], right to left, with a monotonic deque of indices.
  const plan = new Uint16Array(n);
  const dq = new Int32Array(n);
  let head = 0;
  let tail = 0;
  for (let t = n - 1; t >= 0; t--) {
    while (tail > head && (need[dq[tail - 1] as number] as number) <= (need[t] as number)) tail--;
    dq[tail++] = t;
    while ((dq[head] as number) > t + bootS) head++;
    plan[t] = need[dq[head] as number] as number;
  }
  return plan;
}

/** The oracle as a policy: its plan, second by second. Start the run at `initialFleet(trace, boot, target, …)`. */
export function oraclePolicy(trace: Trace, bootS: number, target: number, minSize: number, maxSize: number): SimPolicy {
  const plan = oraclePlan(trace, bootS, target, minSize, maxSize);
  return { name: 'oracle', intervalS: 1, decide: (view) => plan[view.t] ?? view.desired };
}

export interface BaselineOptions {
  readonly trace: Trace;
  readonly bootS: number;
  /** The target the policy under test aims for, percent (HPA, AWS and the oracle use it). Default 50. */
  readonly target?: number;
  readonly minSize: number;
  readonly maxSize: number;
}

/** A fresh baseline policy by name. */
export function baselinePolicy(name: BaselineName, o: BaselineOptions): SimPolicy {
  const target = o.target ?? 50;
  switch (name) {
    case 'hpa': return hpaPolicy(target);
    case 'aws-target-tracking': return awsTargetTrackingPolicy(target);
    case 'threshold': return thresholdPolicy();
    case 'oracle': return oraclePolicy(o.trace, o.bootS, target, o.minSize, o.maxSize);
  }
}

export { initialFleet };
