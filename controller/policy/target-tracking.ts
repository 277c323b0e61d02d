import type { DecisionReason, GroupSpec, Recommendation, ScalingDecision } from './types.js';

/** What the controller observed about a group at `now`. */
export interface GroupObservation {
  /** CPU percent of each ready instance (running, with a current sample). */
  readonly readyCpu: readonly number[];
  /** Launched, or registered but not reporting or still warming up: capacity on its way. */
  readonly pending: number;
  /** Missed heartbeats but not dead: still capacity, metric not trusted. */
  readonly suspect: number;
}

export interface TargetTrackingInput {
  readonly group: GroupSpec;
  readonly observation: GroupObservation;
  /** Earlier recommendations (any order); those older than the stabilization window are ignored. */
  readonly history: readonly Recommendation[];
  readonly now: number;
}

export interface TargetTrackingResult {
  readonly decision: ScalingDecision;
  /** History to pass next time: this recommendation added, entries outside the window dropped. */
  readonly history: readonly Recommendation[];
}

const pct = (v: number) => `${v.toFixed(1)}%`;
/** Floating-point slack for tolerance comparisons: 55 / 50 − 1 is 0.10000000000000009. */
const EPSILON = 1e-9;
const within = (ratio: number, tolerance: number) => Math.abs(ratio - 1) <= tolerance + EPSILON;

/**
 * Target tracking on average CPU, as K8s HPA computes it:
 *   ratio = avg / target; within tolerance → hold; else desired = ceil(ratio × count).
 * Instances without a trusted metric (pending, suspect) count as 0 % when scaling out and as
 * 100 % of target when scaling in, so neither direction over-reacts to capacity in transit; a
 * result that then lands within tolerance, or flips direction, holds. Scale-out is limited to
 * +max(step, percent); scale-in takes the highest recommendation over the stabilization window;
 * nothing scales in while instances are still launching. The result is clamped to [min, max].
 */
export function targetTracking(input: TargetTrackingInput): TargetTrackingResult {
  const { group, observation: obs, now } = input;
  const policy = group.policy;
  const ready = obs.readyCpu.length;
  const missing = obs.pending + obs.suspect;
  const current = ready + missing;
  const trail: DecisionReason[] = [];
  const details: Record<string, number | string | null> = {
    ready, pending: obs.pending, suspect: obs.suspect, targetCpu: policy.targetCpu, avgCpu: null,
  };

  let proposed = current;
  let reason: DecisionReason;
  let message: string;

  if (ready === 0) {
    reason = 'NoData';
    message = current === 0 ? 'no instances' : `no ready instance reports CPU (${obs.pending} launching or warming up, ${obs.suspect} suspect)`;
    trail.push('NoData');
  } else {
    const sum = obs.readyCpu.reduce((a, b) => a + b, 0);
    const avg = sum / ready;
    const ratio = avg / policy.targetCpu;
    details.avgCpu = round(avg);
    details.ratio = round(ratio, 3);
    if (within(ratio, policy.tolerance)) {
      reason = 'WithinTolerance';
      message = `avg CPU ${pct(avg)} is within ${policy.tolerance * 100}% of target ${policy.targetCpu}%`;
      trail.push('WithinTolerance');
    } else {
      const up = ratio > 1;
      // HPA's rule for instances without a trusted metric: 0 % on scale-out, 100 % of target on scale-in.
      const adjusted = missing === 0 ? ratio : (sum + (up ? 0 : missing * policy.targetCpu)) / current / policy.targetCpu;
      details.adjustedRatio = round(adjusted, 3);
      if (within(adjusted, policy.tolerance) || adjusted > 1 !== up) {
        reason = 'WithinTolerance';
        message = `avg CPU ${pct(avg)} vs target ${policy.targetCpu}%, but ${missing} instance(s) not yet ready absorb the difference`;
        trail.push('WithinTolerance');
      } else {
        proposed = Math.ceil(adjusted * current);
        reason = proposed > current ? 'ScaleOut' : proposed < current ? 'ScaleIn' : 'WithinTolerance';
        message = `avg CPU ${pct(avg)} vs target ${policy.targetCpu}% → ceil(${current} × ${adjusted.toFixed(2)}) = ${proposed}`;
        trail.push(reason);
      }
    }
  }

  // Scale-out rate limit.
  if (proposed > current) {
    const limit = current + Math.max(policy.scaleOutMaxStep, Math.ceil((current * policy.scaleOutMaxPercent) / 100));
    if (proposed > limit) {
      message += `; limited to +${limit - current} per evaluation`;
      proposed = limit;
      trail.push('StepLimited');
    }
  }

  // Bounds.
  if (proposed > group.maxSize) {
    message += `; capped ${proposed} → ${group.maxSize} by max size`;
    proposed = group.maxSize;
    trail.push('ClampedToMax');
    if (proposed <= current) reason = 'ClampedToMax';
  } else if (proposed < group.minSize) {
    message += `; raised ${proposed} → ${group.minSize} by min size`;
    proposed = group.minSize;
    trail.push('ClampedToMin');
    if (proposed >= current) reason = 'ClampedToMin';
  }

  // Scale-in stabilization: the highest recommendation within the window wins.
  const windowStart = now - policy.scaleInStabilizationMs;
  const history = [...input.history.filter((r) => r.at > windowStart && r.at <= now), { at: now, desired: proposed }];
  let desired = proposed;
  if (desired < current) {
    const highest = Math.min(group.maxSize, Math.max(...history.map((r) => r.desired)));
    if (highest > desired) {
      desired = Math.min(current, highest);
      message += `; held at ${desired} by the highest recommendation in the last ${Math.round(policy.scaleInStabilizationMs / 1000)}s`;
      trail.push('ScaleInStabilized');
      if (desired === current) reason = 'ScaleInStabilized';
    }
  }
  if (desired < current && obs.pending > 0) {
    message += `; no scale-in while ${obs.pending} instance(s) are launching`;
    desired = current;
    reason = 'ScaleOutInProgress';
    trail.push('ScaleOutInProgress');
  }

  if (desired > current) reason = trail.includes('ClampedToMin') && reason === 'ClampedToMin' ? 'ClampedToMin' : 'ScaleOut';
  else if (desired < current) reason = trail.includes('ClampedToMax') ? 'ClampedToMax' : 'ScaleIn';

  return {
    decision: { current, desired, reason, message, trail, details },
    history,
  };
}

function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
