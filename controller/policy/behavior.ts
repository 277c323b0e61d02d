/**
 * HPA-style behavior (Kubernetes `autoscaling/v2` HorizontalPodAutoscalerBehavior): a
 * stabilization window per direction and rate limits per period. Pure.
 */
import type { Behavior, RateLimit } from '../../domain/policy.js';
import type { Recommendation, ScaleEvent } from './types.js';

/**
 * Stabilize a recommendation as the HPA does (`stabilizeRecommendationWithBehaviors`): over the
 * scale-up window take the lowest recommendation, over the scale-down window the highest; the
 * current count moves only as far as both allow. `history` holds earlier raw recommendations.
 */
export function stabilize(candidate: number, current: number, history: readonly Recommendation[], b: Behavior, now: number): { desired: number; window?: 'up' | 'down' } {
  let up = candidate;
  let down = candidate;
  for (const r of history) {
    if (r.at > now - b.scaleUp.stabilizationMs) up = Math.min(up, r.desired);
    if (r.at > now - b.scaleDown.stabilizationMs) down = Math.max(down, r.desired);
  }
  let desired = current;
  if (desired < up) desired = up;
  if (desired > down) desired = down;
  if (candidate > current && desired < candidate) return { desired, window: 'up' };
  if (candidate < current && desired > candidate) return { desired, window: 'down' };
  return { desired };
}

const within = (events: readonly ScaleEvent[], now: number, periodMs: number) => events.filter((e) => e.at > now - periodMs);

/**
 * The highest count the scale-up rate limits allow now (HPA `calculateScaleUpLimitWithScalingRules`):
 * per limit, from the count at the start of its period, +value instances or +value percent
 * (rounded up); `max` takes the most permissive, `min` the strictest; never below `current`.
 */
export function scaleUpLimit(current: number, events: readonly ScaleEvent[], b: Behavior, now: number): number {
  const dir = b.scaleUp;
  if (dir.selectPolicy === 'disabled') return current;
  if (dir.policies.length === 0) return Number.POSITIVE_INFINITY;
  const proposals = dir.policies.map((p: RateLimit) => {
    const added = within(events, now, p.periodMs).reduce((n, e) => n + Math.max(0, e.delta), 0);
    const start = current - added;
    return p.type === 'instances' ? start + p.value : Math.ceil(start * (1 + p.value / 100));
  });
  const limit = dir.selectPolicy === 'max' ? Math.max(...proposals) : Math.min(...proposals);
  return Math.max(limit, current);
}

/**
 * The lowest count the scale-down rate limits allow now (HPA `calculateScaleDownLimitWithBehaviors`):
 * from the count at the start of each period, −value instances or −value percent (truncated);
 * `max` takes the most permissive (lowest), `min` the strictest; never above `current`.
 */
export function scaleDownLimit(current: number, events: readonly ScaleEvent[], b: Behavior, now: number): number {
  const dir = b.scaleDown;
  if (dir.selectPolicy === 'disabled') return current;
  if (dir.policies.length === 0) return 0;
  const proposals = dir.policies.map((p: RateLimit) => {
    const removed = within(events, now, p.periodMs).reduce((n, e) => n + Math.max(0, -e.delta), 0);
    const start = current + removed;
    return p.type === 'instances' ? start - p.value : Math.trunc(start * (1 - p.value / 100));
  });
  const limit = dir.selectPolicy === 'max' ? Math.min(...proposals) : Math.max(...proposals);
  return Math.max(0, Math.min(limit, current));
}

/** How long recommendations and events must be kept for this behavior. */
export function memoryMs(b: Behavior): { recommendations: number; events: number } {
  const periods = [...b.scaleUp.policies, ...b.scaleDown.policies].map((p) => p.periodMs);
  return { recommendations: Math.max(b.scaleUp.stabilizationMs, b.scaleDown.stabilizationMs), events: Math.max(0, ...periods) };
}
