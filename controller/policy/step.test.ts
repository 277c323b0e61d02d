import { describe, expect, it } from 'vitest';
import { StepScalingSchema, type StepScalingPolicy } from '../../domain/policy.js';
import { roundPercentChange, stepScaling } from './step.js';
import type { Observation } from './types.js';

const NOW = 1_750_000_000_000;

/** An observation with `current` instances, `cpus.length` of them ready at these CPU values. */
function obs(cpus: readonly number[], current = cpus.length, mem = 40): Observation {
  return {
    now: NOW, minSize: 0, maxSize: 100, current,
    ready: cpus.map((cpu, i) => ({ id: `i-${i}`, cpu, mem })),
    warming: current - cpus.length, launching: 0, suspect: 0, stale: 0,
    history: [], schedules: [],
  };
}

const policy = (p: Partial<StepScalingPolicy> & Pick<StepScalingPolicy, 'comparison' | 'threshold' | 'steps'>): StepScalingPolicy =>
  StepScalingSchema.parse({ name: 'test', ...p });

// AWS's example shape: three bands above 70 %.
const high = policy({
  name: 'high-cpu', comparison: 'gt', threshold: 70,
  steps: [{ lower: 0, upper: 10, adjustment: 1 }, { lower: 10, upper: 20, adjustment: 2 }, { lower: 20, adjustment: 3 }],
});
const low = policy({
  name: 'low-cpu', comparison: 'lt', threshold: 30,
  steps: [{ lower: -10, upper: 0, adjustment: -1 }, { upper: -10, adjustment: -2 }],
});

describe('stepScaling: alarm and bands', () => {
  it.each([
    { name: 'gt: first band', p: high, cpus: [75, 75, 75], want: 4 },
    { name: 'gt: middle band', p: high, cpus: [82, 82, 82], want: 5 },
    { name: 'gt: lower bound is inclusive above the threshold (80 is in [10, 20))', p: high, cpus: [80, 80], want: 4 },
    { name: 'gt: open upper band', p: high, cpus: [99, 95], want: 5 },
    { name: 'lt: first band below the threshold', p: low, cpus: [25, 25, 25, 25], want: 3 },
    { name: 'lt: upper bound is inclusive below the threshold (20 is in (-∞, -10])', p: low, cpus: [20, 20, 20, 20], want: 2 },
    { name: 'lt: open lower band', p: low, cpus: [2, 4, 3, 1], want: 2 },
    { name: 'the average decides, not one hot instance', p: high, cpus: [100, 40, 40], want: undefined },
    { name: 'gt: at the threshold is not a breach', p: high, cpus: [70, 70], want: undefined },
    { name: 'lt: at the threshold is not a breach', p: low, cpus: [30, 30], want: undefined },
    { name: 'gt: below the threshold is no opinion', p: high, cpus: [10, 10], want: undefined },
    { name: 'no ready instance is no opinion', p: high, cpus: [], want: undefined },
    { name: 'a breach outside every band is no opinion', p: policy({ comparison: 'gt', threshold: 50, steps: [{ lower: 10, adjustment: 1 }] }), cpus: [55], want: undefined },
  ])('$name', ({ p, cpus, want }) => {
    expect(stepScaling(obs(cpus), p, undefined, NOW)?.desired).toBe(want);
  });

  it('counts capacity that is not ready in current', () => {
    expect(stepScaling(obs([85, 85], 5), high, undefined, NOW)?.desired).toBe(7);
  });

  it('reads the memory metric when told', () => {
    const p = policy({ metric: 'mem', comparison: 'gt', threshold: 60, steps: [{ lower: 0, adjustment: 1 }] });
    expect(stepScaling(obs([10, 10], 2, 90), p, undefined, NOW)?.desired).toBe(3);
    expect(stepScaling(obs([95, 95], 2, 20), p, undefined, NOW)).toBeUndefined();
  });
});

describe('stepScaling: adjustment types', () => {
  const one = (adjustmentType: StepScalingPolicy['adjustmentType'], adjustment: number, minAdjustmentMagnitude?: number) =>
    policy({ comparison: adjustment >= 0 ? 'gt' : 'lt', threshold: 50, adjustmentType, minAdjustmentMagnitude, steps: [adjustment >= 0 ? { lower: 0, adjustment } : { upper: 0, adjustment }] });
  const hot = (n: number) => Array.from({ length: n }, () => 90);
  const cold = (n: number) => Array.from({ length: n }, () => 10);

  it.each([
    { name: 'ChangeInCapacity adds', p: one('ChangeInCapacity', 2), cpus: hot(3), want: 5 },
    { name: 'ChangeInCapacity removes', p: one('ChangeInCapacity', -2), cpus: cold(3), want: 1 },
    { name: 'ChangeInCapacity never goes below 0', p: one('ChangeInCapacity', -5), cpus: cold(3), want: 0 },
    { name: 'ExactCapacity sets the count', p: one('ExactCapacity', 8), cpus: hot(3), want: 8 },
    { name: 'ExactCapacity 0 is allowed', p: one('ExactCapacity', 0), cpus: hot(3), want: 0 },
    { name: 'percent: 50% of 4 is +2', p: one('PercentChangeInCapacity', 50), cpus: hot(4), want: 6 },
    { name: 'percent: 25% of 10 is +2.5, rounded down to +2', p: one('PercentChangeInCapacity', 25), cpus: hot(10), want: 12 },
    { name: 'percent: 10% of 3 is +0.3, rounded to +1', p: one('PercentChangeInCapacity', 10), cpus: hot(3), want: 4 },
    { name: 'percent: -10% of 3 is -0.3, rounded to -1', p: one('PercentChangeInCapacity', -10), cpus: cold(3), want: 2 },
    { name: 'percent: -25% of 10 is -2.5, rounded up to -2', p: one('PercentChangeInCapacity', -25), cpus: cold(10), want: 8 },
    { name: 'percent: AWS example, 25% of 4 with MinAdjustmentMagnitude 2 adds 2', p: one('PercentChangeInCapacity', 25, 2), cpus: hot(4), want: 6 },
    { name: 'percent: min magnitude applies downwards too', p: one('PercentChangeInCapacity', -10, 3), cpus: cold(10), want: 7 },
    { name: 'percent: min magnitude does not shrink a larger change', p: one('PercentChangeInCapacity', 50, 2), cpus: hot(10), want: 15 },
    { name: 'percent: 100% of 1 is +1, min magnitude 2 makes it +2', p: one('PercentChangeInCapacity', 100, 2), cpus: hot(1), want: 3 },
    { name: 'percent: -100% empties, never below 0', p: one('PercentChangeInCapacity', -100, 5), cpus: cold(2), want: 0 },
  ])('$name', ({ p, cpus, want }) => {
    expect(stepScaling(obs(cpus), p, undefined, NOW)?.desired).toBe(want);
  });

  it.each([
    { name: '12.7 → 12', raw: 12.7, want: 12 },
    { name: '0.67 → 1', raw: 0.67, want: 1 },
    { name: '-0.58 → -1', raw: -0.58, want: -1 },
    { name: '-6.67 → -6', raw: -6.67, want: -6 },
    { name: 'whole values are kept', raw: -3, want: -3 },
    { name: '0 stays 0', raw: 0, want: 0 },
  ])('AWS rounding of a percent change: $name', ({ raw, want }) => {
    expect(roundPercentChange(raw)).toBe(want);
  });
});

describe('stepScaling: cooldown', () => {
  it.each([
    { name: 'never acted', lastActionAt: undefined, want: 4 },
    { name: 'within the cooldown: no opinion, not a hold', lastActionAt: NOW - 299_999, want: undefined },
    { name: 'the cooldown has just run out', lastActionAt: NOW - 300_000, want: 4 },
    { name: 'long ago', lastActionAt: NOW - 86_400_000, want: 4 },
  ])('$name', ({ lastActionAt, want }) => {
    expect(stepScaling(obs([75, 75, 75]), high, lastActionAt, NOW)?.desired).toBe(want);
  });
});

describe('stepScaling: the proposal explains itself', () => {
  it.each([
    { name: 'gt band', p: high, cpus: [82, 82, 82], want: 'avg CPU 82.0% > 70% (+12.0, step [10, 20)) → ChangeInCapacity +2: 3 → 5' },
    { name: 'lt band', p: low, cpus: [15, 15, 15, 15], want: 'avg CPU 15.0% < 30% (-15.0, step (-∞, -10]) → ChangeInCapacity -2: 4 → 2' },
    {
      name: 'percent with min magnitude',
      p: policy({ comparison: 'gt', threshold: 50, adjustmentType: 'PercentChangeInCapacity', minAdjustmentMagnitude: 2, steps: [{ lower: 0, adjustment: 25 }] }),
      cpus: [60, 60, 60, 60],
      want: 'avg CPU 60.0% > 50% (+10.0, step [0, +∞)) → PercentChangeInCapacity +25% (+1.00 → +1, min magnitude 2 → +2): 4 → 6',
    },
  ])('$name', ({ p, cpus, want }) => {
    expect(stepScaling(obs(cpus), p, undefined, NOW)).toMatchObject({ source: `step ${p.name}`, reason: 'StepScaling', message: want });
  });
});

describe('stepScaling: the classic "above 70 % add one, below 30 % remove one"', () => {
  const addOne = policy({ name: 'add-one', comparison: 'gt', threshold: 70, steps: [{ lower: 0, adjustment: 1 }] });
  const removeOne = policy({ name: 'remove-one', comparison: 'lt', threshold: 30, steps: [{ upper: 0, adjustment: -1 }] });
  const both = (cpus: number[]) => [addOne, removeOne].map((p) => stepScaling(obs(cpus), p, undefined, NOW)).filter((x) => x !== undefined);

  it.each([
    { name: 'hot: add one', cpus: [85, 75], want: [{ source: 'step add-one', desired: 3 }] },
    { name: 'cold: remove one', cpus: [10, 20, 15], want: [{ source: 'step remove-one', desired: 2 }] },
    { name: 'between 30 and 70: nothing', cpus: [50, 40], want: [] },
    { name: 'exactly 70: nothing', cpus: [70, 70], want: [] },
    { name: 'exactly 30: nothing', cpus: [30, 30], want: [] },
    { name: 'far above: still one', cpus: [100, 100], want: [{ source: 'step add-one', desired: 3 }] },
  ])('$name', ({ cpus, want }) => {
    expect(both(cpus)).toMatchObject(want);
  });
});
