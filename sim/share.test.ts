import { describe, expect, it } from 'vitest';
import { nextCpu, shareOf } from './share.js';

describe('shareOf', () => {
  it.each([
    { name: 'one instance carries it all, capped at 100', demand: 200, live: 1, want: 100 },
    { name: 'split evenly', demand: 200, live: 4, want: 50 },
    { name: 'no demand', demand: -1, live: 3, want: 0 },
    { name: 'no live instance counts as one', demand: 40, live: 0, want: 40 },
  ])('$name', ({ demand, live, want }) => {
    expect(shareOf(demand, live)).toBe(want);
  });
});

describe('nextCpu', () => {
  const base = { slewPerSecond: 20, noise: 0, random: 0.5 };
  it.each([
    { name: 'moves at most the slew rate per second', previous: 100, target: 50, elapsedMs: 1_000, want: 80 },
    { name: 'reaches a close target', previous: 45, target: 50, elapsedMs: 1_000, want: 50 },
    { name: 'slew scales with elapsed time', previous: 0, target: 100, elapsedMs: 500, want: 10 },
    { name: 'never below zero', previous: 0, target: 0, elapsedMs: 1_000, want: 0 },
  ])('$name', ({ previous, target, elapsedMs, want }) => {
    expect(nextCpu({ ...base, previous, target, elapsedMs }).trend).toBeCloseTo(want, 9);
  });

  it('keeps noise within its bound and the result within 0..100', () => {
    for (const random of [0, 0.25, 0.999]) {
      const r = nextCpu({ previous: 99, target: 99, elapsedMs: 1_000, slewPerSecond: 20, noise: 3, random });
      expect(Math.abs(r.reported - r.trend)).toBeLessThanOrEqual(3);
      expect(r.reported).toBeLessThanOrEqual(100);
      expect(r.reported).toBeGreaterThanOrEqual(0);
    }
  });
});
