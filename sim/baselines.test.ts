import { describe, expect, it } from 'vitest';
import { awsTargetTrackingPolicy, hpaPolicy, oraclePlan, thresholdPolicy } from './baselines.js';
import type { Trace } from './traces.js';
import type { FleetView, ReadyView } from './types.js';

const START = 1_704_067_200_000;
function view(o: { t?: number; desired: number; cpus: number[]; launching?: number; launchedAt?: number }): FleetView {
  const t = o.t ?? 0;
  const instances: ReadyView[] = o.cpus.map((cpu, i) => ({ id: `i-${i}`, cpu, mem: 30, launchedAt: o.launchedAt ?? START - 86_400_000, readyAt: START - 86_400_000 }));
  return { t, now: START + t * 1000, desired: o.desired, launching: o.launching ?? 0, suspect: 0, readyCount: instances.length, instances: () => instances, minSize: 1, maxSize: 40 };
}
const fill = (n: number, cpu: number) => Array.from({ length: n }, () => cpu);

describe('hpaPolicy (one sync)', () => {
  it.each([
    { name: 'within the 0.1 tolerance holds', desired: 4, cpus: fill(4, 54), want: 4 },
    { name: 'above: ceil(ratio × ready)', desired: 4, cpus: fill(4, 80), want: 7 },
    { name: 'scale-up limited to max(+4, +100 %) per 15 s', desired: 2, cpus: fill(2, 100), want: 4 },
    { name: 'scale-up of 10 limited to +100 %', desired: 10, cpus: fill(10, 100), want: 20 },
    { name: 'booting pods count 0 % on the way up: 4 ready at 80 % + 2 booting', desired: 6, cpus: fill(4, 80), launching: 2, want: 6 },
    { name: 'booting pods count 100 % of target on the way down', desired: 6, cpus: fill(4, 30), launching: 2, want: 5 },
    { name: 'no ready pod: no metrics, hold', desired: 3, cpus: [], launching: 3, want: 3 },
  ])('$name', ({ desired, cpus, launching, want }) => {
    expect(hpaPolicy(50).decide(view({ desired, cpus, launching }))).toBe(want);
  });

  it('scale-down waits for the 300 s stabilization window (highest recommendation)', () => {
    const p = hpaPolicy(50);
    expect(p.decide(view({ t: 0, desired: 8, cpus: fill(8, 50) }))).toBe(8);
    expect(p.decide(view({ t: 15, desired: 8, cpus: fill(8, 20) }))).toBe(8);
    expect(p.decide(view({ t: 285, desired: 8, cpus: fill(8, 20) }))).toBe(8);
    expect(p.decide(view({ t: 300, desired: 8, cpus: fill(8, 20) }))).toBe(4);
  });
});

describe('awsTargetTrackingPolicy', () => {
  it('scales out after 3 datapoints above target, to ceil(counted × metric / target)', () => {
    const p = awsTargetTrackingPolicy(50);
    const got: number[] = [];
    for (let t = 0; t < 180; t += 10) got.push(p.decide(view({ t, desired: 4, cpus: fill(4, 75) })));
    expect(got.slice(0, -1).every((d) => d === 4)).toBe(true);
    expect(got.at(-1)).toBe(6);
  });

  it('instances in their 300 s warm-up are not in the metric, and no datapoint means no action', () => {
    const p = awsTargetTrackingPolicy(50);
    const got: number[] = [];
    for (let t = 0; t < 180; t += 10) got.push(p.decide(view({ t, desired: 4, cpus: fill(4, 90), launchedAt: START })));
    expect(got.every((d) => d === 4)).toBe(true);
  });

  it('scales in only after 15 datapoints below 90 % of the target', () => {
    const p = awsTargetTrackingPolicy(50);
    let last = 0;
    for (let t = 0; t < 14 * 60; t += 10) last = p.decide(view({ t, desired: 8, cpus: fill(8, 20) }));
    expect(last).toBe(8);
    for (let t = 14 * 60; t < 15 * 60; t += 10) last = p.decide(view({ t, desired: 8, cpus: fill(8, 20) }));
    expect(last).toBe(4);
  });
});

describe('thresholdPolicy', () => {
  it('adds one above 70 %, then waits out the 300 s cooldown', () => {
    const p = thresholdPolicy();
    expect(p.decide(view({ t: 0, desired: 3, cpus: fill(3, 90) }))).toBe(4);
    expect(p.decide(view({ t: 240, desired: 4, cpus: fill(4, 90) }))).toBe(4);
    expect(p.decide(view({ t: 300, desired: 4, cpus: fill(4, 90) }))).toBe(5);
    expect(p.decide(view({ t: 600, desired: 5, cpus: fill(5, 20) }))).toBe(4);
    expect(p.decide(view({ t: 900, desired: 4, cpus: fill(4, 50) }))).toBe(4);
  });
});

describe('oraclePlan', () => {
  it('holds the most it needs over the next boot time, within the bounds', () => {
    const demand = new Float64Array([50, 50, 50, 200, 50, 50, 50, 50, 5_000]);
    const trace: Trace = { name: 't', description: '', startAt: START, demand, stepsUp: [] };
    expect([...oraclePlan(trace, 2, 50, 1, 40)]).toEqual([1, 4, 4, 4, 1, 1, 40, 40, 40]);
    expect([...oraclePlan(trace, 0, 50, 2, 40)]).toEqual([2, 2, 2, 4, 2, 2, 2, 2, 40]);
  });
});
