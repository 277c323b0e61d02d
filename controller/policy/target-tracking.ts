import type { TargetTrackingPolicy } from '../../domain/policy.js';
import { metricOf, type Observation, type Proposal } from './types.js';

const pct = (v: number) => `${v.toFixed(1)}%`;
/** Floating-point slack for tolerance comparisons: 55 / 50 − 1 is 0.10000000000000009. */
const EPSILON = 1e-9;

/**
 * Target tracking on one metric, as the Kubernetes HPA computes it:
 *   ratio = avg / target; within the tolerance of its direction → hold; else desired = ceil(ratio × count).
 * Instances without a trusted metric (warming, launching, suspect, stale) count as 0 % when
 * scaling out and as 100 % of target when scaling in, so neither direction over-reacts to capacity
 * in transit; a result that then lands within tolerance, or flips direction, holds (HPA
 * `replica_calculator.go`). A hold is a vote for the current count.
 */
export function trackTarget(obs: Observation, rule: TargetTrackingPolicy): Proposal {
  const source = `target-tracking ${rule.metric}`;
  const name = rule.metric === 'cpu' ? 'CPU' : 'memory';
  const ready = obs.ready.length;
  const current = obs.current;
  const missing = current - ready;
  if (ready === 0) {
    const message = current === 0 ? 'no instances'
      : `no ready instance reports ${name} (${obs.launching} launching, ${obs.warming} warming up, ${obs.suspect} suspect, ${obs.stale} stale)`;
    return { source, desired: current, reason: 'NoData', message, details: { ready, avg: null } };
  }
  const sum = obs.ready.reduce((a, i) => a + metricOf(i, rule.metric), 0);
  const avg = sum / ready;
  const ratio = avg / rule.target;
  const within = (r: number) => (r > 1 ? r - 1 <= rule.toleranceUp + EPSILON : 1 - r <= rule.toleranceDown + EPSILON);
  const details = { ready, avg: round(avg), ratio: round(ratio, 3), target: rule.target };
  if (within(ratio)) {
    return { source, desired: current, reason: 'WithinTolerance', message: `avg ${name} ${pct(avg)} is within tolerance of target ${rule.target}%`, details };
  }
  const up = ratio > 1;
  const adjusted = missing === 0 ? ratio : (sum + (up ? 0 : missing * rule.target)) / current / rule.target;
  if (within(adjusted) || adjusted > 1 !== up) {
    return {
      source, desired: current, reason: 'WithinTolerance',
      message: `avg ${name} ${pct(avg)} vs target ${rule.target}%, but ${missing} instance(s) not yet ready absorb the difference`,
      details: { ...details, adjustedRatio: round(adjusted, 3) },
    };
  }
  const desired = Math.ceil(adjusted * current - EPSILON);
  return {
    source, desired, reason: desired > current ? 'ScaleOut' : desired < current ? 'ScaleIn' : 'WithinTolerance',
    message: `avg ${name} ${pct(avg)} vs target ${rule.target}% → ceil(${current} × ${adjusted.toFixed(2)}) = ${desired}`,
    details: { ...details, adjustedRatio: round(adjusted, 3) },
  };
}

export function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
