/**
 * combine(): every policy's proposal → one decision, with the reason and the trail of every rule
 * that fired. Pure. The order (docs/policies.md):
 *
 * 1. votes: scale out if any proposal says so (the largest wins); scale in only if every voting
 *    proposal says so (the smallest reduction wins); else hold. Out-only proposals (predictive)
 *    may raise the count, never lower it or block a scale-in (AWS's rules for several policies).
 * 2. stabilization windows (HPA behavior);
 * 3. saturation: ready instances at the saturation level → scale out at the highest allowed rate,
 *    whatever capacity is on its way or the windows say;
 * 4. scale-in guards: not on partial data (suspect or stale instances), not while launching, not
 *    while the outage guard holds;
 * 5. rate limits (HPA behavior policies);
 * 6. scheduled windows, then a manual override, then min / max, last.
 */
import type { Behavior, PolicyDocument } from '../../domain/policy.js';
import { memoryMs, scaleDownLimit, scaleUpLimit, stabilize } from './behavior.js';
import { metricOf, type DecisionReason, type Observation, type PolicyState, type Proposal, type ScalingDecision } from './types.js';

/** The outage guard ignores collapses of less than this demand (percent of one instance): noise at idle. */
export const OUTAGE_MIN_DEMAND = 50;

export interface CombineResult {
  readonly decision: ScalingDecision;
  readonly state: PolicyState;
}

/** The group's demand now: the sum of its ready instances' CPU, in percent of one instance. */
export function demandOf(obs: Observation): number {
  return obs.ready.reduce((a, i) => a + metricOf(i, 'cpu'), 0);
}

/** Whether ready instances sit at the saturation level (then their metric says nothing about demand). */
export function saturation(obs: Observation, p: PolicyDocument['saturation']): { saturated: boolean; message: string } {
  const ready = obs.ready.length;
  if (!p.enabled || ready === 0) return { saturated: false, message: '' };
  const at = obs.ready.filter((i) => metricOf(i, p.metric) >= p.level).length;
  const saturated = at / ready >= p.share;
  return { saturated, message: `${at} of ${ready} ready instance(s) at or above ${p.level}% ${p.metric}: demand unknown` };
}

export function combine(obs: Observation, proposals: readonly Proposal[], policy: PolicyDocument, state: PolicyState, now: number): CombineResult {
  const current = obs.current;
  const b: Behavior = policy.behavior;
  const trail: DecisionReason[] = [];
  const notes: string[] = [];
  const details: Record<string, number | string | null> = {
    ready: obs.ready.length, warming: obs.warming, launching: obs.launching, suspect: obs.suspect, stale: obs.stale,
  };
  const first = proposals.find((p) => p.source.startsWith('target-tracking')) ?? proposals[0];
  if (first?.details?.avg !== undefined) details.avgCpu = first.details.avg;

  // 1. Votes.
  const votes = proposals.filter((p) => (p.kind ?? 'vote') === 'vote');
  const outs = proposals.filter((p) => p.desired > current);
  let winner: Proposal | undefined;
  let candidate = current;
  if (outs.length > 0) {
    winner = outs.reduce((a, p) => (p.desired > a.desired ? p : a));
    candidate = winner.desired;
  } else if (votes.length > 0 && votes.every((p) => p.desired < current)) {
    winner = votes.reduce((a, p) => (p.desired > a.desired ? p : a));
    candidate = winner.desired;
  } else {
    winner = votes.find((p) => p.desired === current) ?? votes[0];
  }
  let reason: DecisionReason = winner?.reason ?? 'NoData';
  let message = winner?.message ?? 'no policy has an opinion';
  if (winner !== undefined) trail.push(winner.reason);
  if (winner !== undefined && proposals.length > 1) {
    message = `${winner.source}: ${message}`;
    const others = proposals.filter((p) => p !== winner).map((p) => `${p.source} ${p.desired}`);
    if (others.length > 0) notes.push(`others: ${others.join(', ')}`);
  }
  let raw = candidate;

  // 2. Stabilization.
  const stab = stabilize(candidate, current, state.recommendations, b, now);
  if (stab.window === 'down') {
    candidate = stab.desired;
    notes.push(`held at ${candidate} by the highest recommendation in the last ${Math.round(b.scaleDown.stabilizationMs / 1000)}s`);
    trail.push('ScaleInStabilized');
  } else if (stab.window === 'up') {
    candidate = stab.desired;
    notes.push(`held at ${candidate} by the lowest recommendation in the last ${Math.round(b.scaleUp.stabilizationMs / 1000)}s`);
    trail.push('ScaleOutStabilized');
  }

  // 3. Saturation: the metric is capped at 100 %, so avg / target understates demand.
  const upLimit = scaleUpLimit(current, state.scaleEvents, b, now);
  const sat = saturation(obs, policy.saturation);
  const fastest = Math.min(upLimit, Math.max(current, obs.maxSize));
  let saturated = false;
  if (sat.saturated && fastest > current) {
    if (fastest > candidate) {
      candidate = fastest;
      // The saturated count is the recommendation the windows remember: a scale-in may not undo it early.
      raw = Math.max(raw, fastest);
      saturated = true;
      notes.push(`${sat.message}: scaling out at the highest allowed rate`);
      trail.push('Saturated');
    }
  }

  // 4. Scale-in guards.
  let outageHoldUntil = state.outageHoldUntil;
  const demand = demandOf(obs);
  const window = policy.outageGuard.windowMs;
  let recentDemand = [...state.demand.filter((d) => d.at > now - window && d.at <= now), { at: now, value: demand }];
  if (policy.outageGuard.enabled && obs.ready.length > 0) {
    const peak = Math.max(...recentDemand.map((d) => d.value));
    if (peak >= OUTAGE_MIN_DEMAND && (peak - demand) / peak >= policy.outageGuard.drop) {
      outageHoldUntil = Math.max(outageHoldUntil, now + policy.outageGuard.holdMs);
      // One collapse, one hold: forget the old peak, or every evaluation within the window would re-arm it.
      recentDemand = [{ at: now, value: demand }];
    }
  }
  if (candidate < current) {
    const partial = obs.suspect + obs.stale;
    if (partial > 0) {
      notes.push(`no scale-in on partial data: ${obs.suspect} suspect, ${obs.stale} with a stale metric`);
      candidate = current;
      trail.push('NoData');
    } else if (obs.launching > 0) {
      notes.push(`no scale-in while ${obs.launching} instance(s) are launching`);
      candidate = current;
      trail.push('ScaleOutInProgress');
    } else if (outageHoldUntil > now) {
      notes.push(`demand collapsed (≥ ${Math.round(policy.outageGuard.drop * 100)}% within ${Math.round(window / 1000)}s): no scale-in for ${Math.ceil((outageHoldUntil - now) / 1000)}s more`);
      candidate = current;
      trail.push('OutageGuard');
    }
  }

  // 5. Rate limits.
  if (candidate > current) {
    if (b.scaleUp.selectPolicy === 'disabled') {
      notes.push('scale-up disabled by the behavior');
      candidate = current;
      trail.push('ScalingDisabled');
    } else if (candidate > upLimit) {
      notes.push(`limited to +${upLimit - current} by the scale-up rate limits`);
      candidate = upLimit;
      trail.push('StepLimited');
    }
  } else if (candidate < current) {
    const downLimit = scaleDownLimit(current, state.scaleEvents, b, now);
    if (b.scaleDown.selectPolicy === 'disabled') {
      notes.push('scale-down disabled by the behavior');
      candidate = current;
      trail.push('ScalingDisabled');
    } else if (candidate < downLimit) {
      notes.push(`limited to −${current - downLimit} by the scale-down rate limits`);
      candidate = downLimit;
      trail.push('StepLimited');
    }
  }

  // 6. Schedules, override, bounds.
  // An open window's bounds replace the group's (several windows: the highest min, the lowest max).
  const mins = obs.schedules.flatMap((w) => (w.minSize === undefined ? [] : [w.minSize]));
  const maxes = obs.schedules.flatMap((w) => (w.maxSize === undefined ? [] : [w.maxSize]));
  const min = mins.length > 0 ? Math.max(...mins) : obs.minSize;
  const max = Math.max(min, maxes.length > 0 ? Math.min(...maxes) : obs.maxSize);
  const floor = Math.max(0, ...obs.schedules.map((w) => w.desired ?? 0));
  if (obs.schedules.length > 0) {
    notes.push(`schedule ${obs.schedules.map((w) => w.name).join(', ')}: min ${min} max ${max}${floor > 0 ? ` desired ≥ ${floor}` : ''}`);
    if (floor > candidate) {
      candidate = floor;
      trail.push('Scheduled');
    }
  }
  let overridden = false;
  if (obs.override !== undefined && (obs.override.until === null || obs.override.until > now)) {
    candidate = obs.override.desired;
    overridden = true;
    notes.push(`manual capacity ${obs.override.desired} set by ${obs.override.by}${obs.override.until === null ? '' : `, for ${Math.ceil((obs.override.until - now) / 1000)}s more`}`);
    trail.push('ManualOverride');
  }
  let clamped: DecisionReason | undefined;
  if (candidate > max) {
    notes.push(`capped ${candidate} → ${max} by max size`);
    candidate = max;
    clamped = 'ClampedToMax';
    trail.push(clamped);
  } else if (candidate < min) {
    notes.push(`raised ${candidate} → ${min} by min size`);
    candidate = min;
    clamped = 'ClampedToMin';
    trail.push(clamped);
  }
  const desired = candidate;

  // The reason: what moved the count (or the last rule that held it).
  if (desired > current) {
    reason = overridden ? 'ManualOverride' : clamped === 'ClampedToMin' && raw <= current ? 'ClampedToMin'
      : trail.at(-1) === 'Scheduled' && raw <= current ? 'Scheduled' : saturated ? 'Saturated'
      : winner !== undefined && winner.desired > current ? winner.reason : 'ScaleOut';
  } else if (desired < current) {
    reason = overridden ? 'ManualOverride' : clamped === 'ClampedToMax' ? 'ClampedToMax' : winner !== undefined && winner.desired < current ? winner.reason : 'ScaleIn';
  } else {
    const holds: DecisionReason[] = ['ManualOverride', 'ClampedToMax', 'ClampedToMin', 'ScalingDisabled', 'OutageGuard', 'ScaleOutInProgress', 'NoData', 'ScaleInStabilized', 'ScaleOutStabilized', 'StepLimited'];
    const held = [...trail].reverse().find((r) => holds.includes(r) && r !== winner?.reason);
    if (held !== undefined && raw !== current) reason = held;
    else if (held === 'ClampedToMax' || held === 'ClampedToMin') reason = held;
  }
  if (notes.length > 0) message += `; ${notes.join('; ')}`;

  // State: keep what the windows and periods need.
  const keep = memoryMs(b);
  const recommendations = [...state.recommendations.filter((r) => r.at > now - keep.recommendations && r.at <= now), { at: now, desired: raw }];
  const scaleEvents = [...state.scaleEvents.filter((e) => e.at > now - keep.events && e.at <= now), ...(desired !== current ? [{ at: now, delta: desired - current }] : [])];
  const stepLastAction = { ...state.stepLastAction };
  if (winner !== undefined && winner.source.startsWith('step ') && desired !== current && Math.sign(desired - current) === Math.sign(winner.desired - current)) {
    stepLastAction[winner.source.slice(5)] = now;
  }
  return {
    decision: { current, desired, reason, message, trail, details: { ...details, ...(winner?.details ?? {}) } },
    state: { ...state, recommendations, scaleEvents, stepLastAction, demand: recentDemand, outageHoldUntil: outageHoldUntil > now ? outageHoldUntil : 0 },
  };
}
