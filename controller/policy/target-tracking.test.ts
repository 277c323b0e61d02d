import { describe, expect, it } from 'vitest';
import { trackTarget } from './target-tracking.js';
import { obsOf } from './testing.js';

const rule = { metric: 'cpu' as const, target: 50, toleranceUp: 0.1, toleranceDown: 0.1 };

describe('trackTarget (HPA ratio rule)', () => {
  it.each([
    { name: 'one instance at 100% doubles', o: obsOf([100]), want: { desired: 2, reason: 'ScaleOut' } },
    { name: 'two at 100% double again', o: obsOf([100, 100]), want: { desired: 4, reason: 'ScaleOut' } },
    { name: 'four at the target hold', o: obsOf([52, 49, 50, 51]), want: { desired: 4, reason: 'WithinTolerance' } },
    { name: 'edge of tolerance holds (55/50 − 1 = 0.1 in floating point)', o: obsOf([55, 55]), want: { desired: 2, reason: 'WithinTolerance' } },
    { name: 'low load scales in', o: obsOf([10, 10, 10, 10]), want: { desired: 1, reason: 'ScaleIn' } },
    { name: 'no ready instance: no data, hold', o: obsOf([], { launching: 2 }), want: { desired: 2, reason: 'NoData' } },
    { name: 'launching count as 0% on scale-out', o: obsOf([100, 100], { launching: 2 }), want: { desired: 4, reason: 'WithinTolerance' } },
    { name: 'suspect counts as 100% of target on scale-in', o: obsOf([30], { suspect: 1 }), want: { desired: 2, reason: 'WithinTolerance' } },
  ])('$name', ({ o, want }) => {
    expect(trackTarget(o, rule)).toMatchObject(want);
  });

  it.each([
    { name: 'a wide scale-in tolerance holds at 20% of a 50% target', tol: { toleranceUp: 0.1, toleranceDown: 0.7 }, cpu: [20, 20], want: 'WithinTolerance' },
    { name: 'the same load scales in with the default', tol: { toleranceUp: 0.1, toleranceDown: 0.1 }, cpu: [20, 20], want: 'ScaleIn' },
    { name: 'a tight scale-out tolerance acts at 53%', tol: { toleranceUp: 0.05, toleranceDown: 0.1 }, cpu: [53, 53, 53, 53, 53, 53, 53, 53, 53, 53], want: 'ScaleOut' },
  ])('tolerance per direction: $name', ({ tol, cpu, want }) => {
    expect(trackTarget(obsOf(cpu), { ...rule, ...tol }).reason).toBe(want);
  });

  it('tracks memory as well', () => {
    expect(trackTarget(obsOf([10, 10]), { ...rule, metric: 'mem', target: 15 })).toMatchObject({ desired: 4, reason: 'ScaleOut', source: 'target-tracking mem' });
  });
});
