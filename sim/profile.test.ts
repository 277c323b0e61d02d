import { describe, expect, it } from 'vitest';
import { ProfileSpecError, demandAt, formatProfile, parseDuration, parseProfileSpec } from './profile.js';

describe('parseProfileSpec', () => {
  it.each([
    { name: 'bare number', spec: '200', want: { kind: 'constant', value: 200 } },
    { name: 'constant', spec: 'constant:80', want: { kind: 'constant', value: 80 } },
    { name: 'step', spec: 'step:30,200@60s', want: { kind: 'step', from: 30, to: 200, atMs: 60_000 } },
    { name: 'sine', spec: 'sine:30,250/3m', want: { kind: 'sine', min: 30, max: 250, periodMs: 180_000 } },
    { name: 'spike', spec: 'spike:40,300@60s+1500ms', want: { kind: 'spike', base: 40, peak: 300, atMs: 60_000, durationMs: 1_500 } },
  ])('$name', ({ spec, want }) => {
    const p = parseProfileSpec(spec);
    expect(p).toEqual(want);
    expect(parseProfileSpec(formatProfile(p))).toEqual(p);
  });

  it.each([
    { name: 'negative', spec: '-5', msg: /from 0 to/ },
    { name: 'not a number', spec: 'lots', msg: /unknown profile|from 0 to/ },
    { name: 'unknown kind', spec: 'square:1,2', msg: /unknown profile "square"/ },
    { name: 'malformed step', spec: 'step:30', msg: /step:FROM,TO@WHEN/ },
    { name: 'sine max below min', spec: 'sine:90,10/60s', msg: /MAX must be >= MIN/ },
    { name: 'zero period', spec: 'sine:10,90/0s', msg: /longer than 0/ },
    { name: 'too large', spec: '20000', msg: /from 0 to 10000/ },
  ])('refuses $name', ({ spec, msg }) => {
    expect(() => parseProfileSpec(spec)).toThrow(ProfileSpecError);
    expect(() => parseProfileSpec(spec)).toThrow(msg);
  });
});

describe('demandAt', () => {
  it.each([
    { name: 'step before', p: parseProfileSpec('step:30,200@60s'), t: 59_999, want: 30 },
    { name: 'step after', p: parseProfileSpec('step:30,200@60s'), t: 60_000, want: 200 },
    { name: 'sine start', p: parseProfileSpec('sine:20,260/150s'), t: 0, want: 20 },
    { name: 'sine peak', p: parseProfileSpec('sine:20,260/150s'), t: 75_000, want: 260 },
    { name: 'sine end', p: parseProfileSpec('sine:20,260/150s'), t: 150_000, want: 20 },
    { name: 'spike inside', p: parseProfileSpec('spike:40,300@10s+5s'), t: 12_000, want: 300 },
    { name: 'spike after', p: parseProfileSpec('spike:40,300@10s+5s'), t: 15_000, want: 40 },
    { name: 'negative elapsed counts as 0', p: parseProfileSpec('step:30,200@0s'), t: -5, want: 200 },
  ])('$name', ({ p, t, want }) => {
    expect(demandAt(p, t)).toBeCloseTo(want, 6);
  });

  it('parses durations', () => {
    expect([parseDuration('90'), parseDuration('90s'), parseDuration('1.5m'), parseDuration('250ms'), parseDuration('1h')]).toEqual([90_000, 90_000, 90_000, 250, 3_600_000]);
    expect(() => parseDuration('soon')).toThrow(ProfileSpecError);
  });
});
