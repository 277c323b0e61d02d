import { describe, expect, it } from 'vitest';
import { SimulatedSampler, SystemSampler } from './sampler.js';

describe('SimulatedSampler', () => {
  it('follows its share of the demand gradually and drops when the group grows', async () => {
    const s = new SimulatedSampler({ noisePercent: 0, slewPercentPerS: 25, random: () => 0.5 });
    const seen: number[] = [];
    let t = 0;
    for (let i = 0; i < 6; i++) seen.push((await s.sample((t += 1_000), { liveInstances: 1, demandPercent: 200 })).cpu);
    expect(seen).toEqual([25, 50, 75, 100, 100, 100]);
    const after: number[] = [];
    for (let i = 0; i < 3; i++) after.push((await s.sample((t += 1_000), { liveInstances: 4, demandPercent: 200 })).cpu);
    expect(after).toEqual([75, 50, 50]);
  });

  it('holds its load without a view or without demand', async () => {
    const s = new SimulatedSampler({ noisePercent: 0, slewPercentPerS: 100, random: () => 0.5 });
    await s.sample(1_000, { liveInstances: 1, demandPercent: 60 });
    expect((await s.sample(2_000, undefined)).cpu).toBe(60);
    expect((await s.sample(3_000, { liveInstances: 1, demandPercent: -1 })).cpu).toBe(60);
  });
});

describe('SystemSampler', () => {
  it('reads this machine\'s CPU and memory as percentages', async () => {
    const s = new SystemSampler();
    await s.sample(); // the first CPU reading has no previous interval
    const { cpu, mem } = await s.sample();
    expect(cpu).toBeGreaterThanOrEqual(0);
    expect(cpu).toBeLessThanOrEqual(100);
    expect(mem).toBeGreaterThan(0);
    expect(mem).toBeLessThanOrEqual(100);
  });
});
