/**
 * Step scaling, as AWS EC2 Auto Scaling defines it (user guide "Step and simple scaling policies";
 * API reference `StepAdjustment`, `PutScalingPolicy`). Pure: no I/O, no clock; `now` is passed.
 */
import type { StepScalingPolicy } from '../../domain/policy.js';
import { metricOf, type Observation, type Proposal } from './types.js';

type Step = StepScalingPolicy['steps'][number];

const METRIC_LABEL = { cpu: 'CPU', mem: 'memory' } as const;

/**
 * Does this step's band contain the breach (metric − threshold)? AWS `StepAdjustment`: when the
 * metric is above the threshold (a `gt` alarm) the lower bound is inclusive and the upper one
 * exclusive, [lower, upper); below it (an `lt` alarm) the lower bound is exclusive and the upper
 * one inclusive, (lower, upper]. A missing lower bound is −∞, a missing upper one +∞.
 */
function contains(step: Step, breach: number, comparison: 'gt' | 'lt'): boolean {
  const lower = step.lower ?? -Infinity;
  const upper = step.upper ?? Infinity;
  return comparison === 'gt' ? breach >= lower && breach < upper : breach > lower && breach <= upper;
}

/**
 * AWS's rounding of a PercentChangeInCapacity result that is not whole (user guide, "Scaling
 * adjustment types"): above 1 rounded down (12.7 → 12), between 0 and 1 → 1 (0.67 → 1), between
 * −1 and 0 → −1 (−0.58 → −1), below −1 rounded up (−6.67 → −6). So toward zero, except that a
 * change smaller than one instance still changes one.
 */
export function roundPercentChange(raw: number): number {
  if (raw === 0) return 0;
  if (raw > 0 && raw < 1) return 1;
  if (raw < 0 && raw > -1) return -1;
  return Math.trunc(raw);
}

const signed = (v: number, digits = 0) => `${v >= 0 ? '+' : ''}${v.toFixed(digits)}`;
const bound = (v: number | undefined, inf: string) => (v === undefined ? inf : String(v));
function band(step: Step, comparison: 'gt' | 'lt'): string {
  const lo = bound(step.lower, '-∞');
  const hi = bound(step.upper, '+∞');
  return comparison === 'gt' ? `[${lo}, ${hi})` : `(${lo}, ${hi}]`;
}

/**
 * One step scaling policy at `now`.
 *
 * The "alarm" is the average of `p.metric` over the ready instances, compared with
 * `p.threshold` (`gt`: strictly above, `lt`: strictly below). When it is breached, the first step
 * whose band contains the breach (metric − threshold, negative for an `lt` alarm) gives the
 * adjustment:
 * - `ChangeInCapacity`: current + adjustment;
 * - `ExactCapacity`: adjustment;
 * - `PercentChangeInCapacity`: current + {@link roundPercentChange}(current × adjustment / 100),
 *   then at least `minAdjustmentMagnitude` instances in the adjustment's direction (AWS's
 *   MinAdjustmentMagnitude; this also lets a percent step scale out an empty group).
 *
 * `current` is `obs.current` (all capacity, ready or not). The result is never below 0 and is not
 * clamped to the group's bounds (the combiner does that).
 *
 * Returns undefined (no opinion) when no instance is ready, the alarm is not breached, no step
 * matches, or the policy is cooling down (`now − lastActionAt < p.cooldownMs`). A cooldown only
 * pauses this policy, as in AWS: it is not a hold, which would block the scale-in of the others.
 * The caller records `lastActionAt` when it acts on this policy's proposal.
 */
export function stepScaling(obs: Observation, p: StepScalingPolicy, lastActionAt: number | undefined, now: number): Proposal | undefined {
  if (obs.ready.length === 0) return undefined;
  if (lastActionAt !== undefined && now - lastActionAt < p.cooldownMs) return undefined;

  const avg = obs.ready.reduce((sum, i) => sum + metricOf(i, p.metric), 0) / obs.ready.length;
  const breached = p.comparison === 'gt' ? avg > p.threshold : avg < p.threshold;
  if (!breached) return undefined;

  const breach = avg - p.threshold;
  const step = p.steps.find((s) => contains(s, breach, p.comparison));
  if (step === undefined) return undefined;

  const current = obs.current;
  let desired: number;
  let how: string;
  switch (p.adjustmentType) {
    case 'ChangeInCapacity':
      desired = current + step.adjustment;
      how = `ChangeInCapacity ${signed(step.adjustment)}`;
      break;
    case 'ExactCapacity':
      desired = step.adjustment;
      how = `ExactCapacity ${step.adjustment}`;
      break;
    case 'PercentChangeInCapacity': {
      const raw = (current * step.adjustment) / 100;
      let change = roundPercentChange(raw);
      how = `PercentChangeInCapacity ${signed(step.adjustment)}% (${signed(raw, 2)} → ${signed(change)}`;
      const min = p.minAdjustmentMagnitude ?? 0;
      if (step.adjustment !== 0 && Math.abs(change) < min) {
        change = Math.sign(step.adjustment) * min;
        how += `, min magnitude ${min} → ${signed(change)}`;
      }
      how += ')';
      desired = current + change;
      break;
    }
  }
  desired = Math.max(0, desired);

  const label = METRIC_LABEL[p.metric];
  const op = p.comparison === 'gt' ? '>' : '<';
  return {
    source: `step ${p.name}`,
    desired,
    reason: 'StepScaling',
    message: `avg ${label} ${avg.toFixed(1)}% ${op} ${p.threshold}% (${signed(breach, 1)}, step ${band(step, p.comparison)}) → ${how}: ${current} → ${desired}`,
    details: {
      metric: p.metric,
      avg: Math.round(avg * 100) / 100,
      threshold: p.threshold,
      breach: Math.round(breach * 100) / 100,
      adjustmentType: p.adjustmentType,
      adjustment: step.adjustment,
      current,
    },
  };
}
