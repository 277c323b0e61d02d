import { describe, expect, it } from 'vitest';
import { targetTracking, type GroupObservation } from './target-tracking.js';
import type { GroupSpec, Recommendation } from './types.js';

const group: GroupSpec = {
  id: 'g',
  minSize: 1,
  maxSize: 6,
  policy: { kind: 'target-tracking', targetCpu: 50, tolerance: 0.1, scaleInStabilizationMs: 60_000, scaleOutMaxStep: 4, scaleOutMaxPercent: 100, warmupMs: 0 },
};
const now = 1_000_000;
const obs = (readyCpu: number[], pending = 0, suspect = 0): GroupObservation => ({ readyCpu, pending, suspect });

describe('targetTracking', () => {
  it.each([
    { name: 'one instance at 100% doubles', o: obs([100]), want: { current: 1, desired: 2, reason: 'ScaleOut' } },
    { name: 'two at 100% double again', o: obs([100, 100]), want: { current: 2, desired: 4, reason: 'ScaleOut' } },
    { name: 'four at the target hold', o: obs([52, 49, 50, 51]), want: { desired: 4, reason: 'WithinTolerance' } },
    { name: 'edge of tolerance holds', o: obs([55, 55]), want: { desired: 2, reason: 'WithinTolerance' } },
    { name: 'low load scales in', o: obs([10, 10, 10, 10]), want: { desired: 1, reason: 'ScaleIn' } },
    { name: 'never below min', o: obs([0]), want: { desired: 1, reason: 'ClampedToMin' } },
    { name: 'capped by max', o: obs([100, 100, 100, 100, 100]), want: { desired: 6, reason: 'ScaleOut', trail: ['ScaleOut', 'ClampedToMax'] } },
    { name: 'at max, more wanted', o: obs([100, 100, 100, 100, 100, 100]), want: { desired: 6, reason: 'ClampedToMax' } },
    { name: 'no ready instance, none at all: raise to min', o: obs([]), want: { current: 0, desired: 1, reason: 'ClampedToMin' } },
    { name: 'no ready instance but pending: hold', o: obs([], 2), want: { current: 2, desired: 2, reason: 'NoData' } },
    { name: 'pending count as 0% on scale-out', o: obs([100, 100], 2), want: { current: 4, desired: 4, reason: 'WithinTolerance' } },
    { name: 'suspect counts as 100% of target on scale-in', o: obs([30], 0, 1), want: { current: 2, desired: 2, reason: 'WithinTolerance' } },
    { name: 'no scale-in while launching', o: obs([5, 5, 5], 1), want: { current: 4, desired: 4, reason: 'ScaleOutInProgress' } },
  ])('$name', ({ o, want }) => {
    const { decision } = targetTracking({ group, observation: o, history: [], now });
    expect(decision).toMatchObject(want);
    expect(decision.message).not.toBe('');
  });

  it('limits one scale-out to max(step, 100 %)', () => {
    const big: GroupSpec = { ...group, maxSize: 100 };
    const { decision } = targetTracking({ group: big, observation: obs([100, 100]), history: [], now });
    // 2 at 100 % of a 50 % target wants 4: within +max(4, 2). 10 at 100 % of a 10 % target wants 100: capped at +10.
    expect(decision.desired).toBe(4);
    const hot: GroupSpec = { ...big, policy: { ...big.policy, targetCpu: 10 } };
    const r = targetTracking({ group: hot, observation: obs(Array(10).fill(100)), history: [], now });
    expect(r.decision).toMatchObject({ current: 10, desired: 20, reason: 'ScaleOut', trail: ['ScaleOut', 'StepLimited'] });
  });

  it.each([
    { name: 'recent higher recommendation holds scale-in', history: [{ at: now - 30_000, desired: 4 }], want: { desired: 4, reason: 'ScaleInStabilized' } },
    { name: 'partial hold', history: [{ at: now - 30_000, desired: 3 }], want: { desired: 3, reason: 'ScaleIn' } },
    { name: 'outside the window is forgotten', history: [{ at: now - 61_000, desired: 4 }], want: { desired: 1, reason: 'ScaleIn' } },
  ])('stabilization: $name', ({ history, want }) => {
    const r = targetTracking({ group, observation: obs([10, 10, 10, 10]), history: history as Recommendation[], now });
    expect(r.decision).toMatchObject(want);
    expect(r.history.every((h) => h.at > now - 60_000)).toBe(true);
    expect(r.history.at(-1)).toEqual({ at: now, desired: 1 });
  });

  it('is pure: the same input gives the same output', () => {
    const input = { group, observation: obs([80, 90]), history: [], now };
    expect(targetTracking(input)).toEqual(targetTracking(input));
  });
});
