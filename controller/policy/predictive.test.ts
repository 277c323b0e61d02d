import { describe, expect, it } from 'vitest';
import { PredictiveSchema, type PredictivePolicy } from '../../domain/policy.js';
import { forecastDemand, predictive } from './predictive.js';
import type { MinuteSample, Observation } from './types.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Midnight UTC, Monday 2 June 2025 (a fixed epoch, not the clock). */
const D0 = Date.UTC(2025, 5, 2);

const policy = (p: Partial<PredictivePolicy> = {}): PredictivePolicy => PredictiveSchema.parse({ mode: 'forecast-and-scale', ...p });

/** One sample per minute in [from, to), demand given by `cpu(minute)`; mem is half of it. */
function history(from: number, to: number, cpu: (t: number) => number): MinuteSample[] {
  const out: MinuteSample[] = [];
  for (let m = from; m < to; m += MIN) out.push({ minute: m, ready: 4, capacity: 4, cpu: cpu(m), mem: cpu(m) / 2 });
  return out;
}

/** A daily pattern: 100 % at 02:00 UTC, 400 % at 14:00 UTC, cosine in between, ±8 of deterministic noise. */
const daily = (t: number) => 250 + 150 * Math.cos((2 * Math.PI * (t - D0 - 14 * HOUR)) / DAY) + 8 * Math.sin(t / (7 * MIN));
const PEAK = 400;

const obs = (h: readonly MinuteSample[], current = 4): Observation => ({
  now: 0, minSize: 1, maxSize: 40, current, ready: [], warming: 0, launching: 0, suspect: 0, stale: 0, history: h, schedules: [],
});

describe('forecastDemand: follows the data', () => {
  it('forecasts tomorrow\'s peak from a two-day daily pattern within 10 %', () => {
    const now = D0 + 2 * DAY + 13 * HOUR + 55 * MIN; // lead 5 min → the 14:00 peak
    const h = history(now - 2 * DAY, now, daily);
    const f = forecastDemand(h, policy(), now);
    expect(f?.forAt).toBe(D0 + 2 * DAY + 14 * HOUR);
    expect(Math.abs((f?.demand ?? 0) - PEAK) / PEAK).toBeLessThan(0.1);
    expect(f?.desired).toBe(Math.ceil((f?.demand ?? 0) / 50));
  });

  it.each([
    { name: 'rising 30 % a day', growth: 1.3 },
    { name: 'falling 30 % a day', growth: 0.7 },
    { name: 'rising 80 % a day', growth: 1.8 },
  ])('follows a trend: $name', ({ growth }) => {
    const truth = (t: number) => daily(t) * growth ** ((t - D0) / DAY);
    const now = D0 + 3 * DAY + 9 * HOUR;
    const p = policy({ leadMs: 10 * MIN });
    const f = forecastDemand(history(now - 2 * DAY, now, truth), p, now);
    const want = truth(now + p.leadMs);
    expect(Math.abs((f?.demand ?? 0) - want) / want).toBeLessThan(0.05);
    // The season alone would be a day behind the trend.
    expect(Math.abs((f?.seasonal ?? 0) - want) / want).toBeGreaterThan(0.2);
  });

  it.each([
    { name: 'a 10× jump is capped at 2× the season', recent: 1000, want: { trend: 2, demand: 200 } },
    { name: 'a collapse is capped at 0.5× the season', recent: 5, want: { trend: 0.5, demand: 50 } },
    { name: 'an idle season gives no ratio (trend 1)', base: 0.5, recent: 300, want: { trend: 1, demand: 0.5 } },
  ])('$name', ({ base = 100, recent, want }) => {
    const now = D0 + DAY + 12 * HOUR;
    const h = history(now - DAY - HOUR, now, (t) => (t >= now - 30 * MIN ? recent : base));
    expect(forecastDemand(h, policy(), now)).toMatchObject(want);
  });

  it('reads the policy\'s metric', () => {
    const now = D0 + DAY + 12 * HOUR;
    const h = history(now - DAY - HOUR, now, () => 300);
    expect(forecastDemand(h, policy({ metric: 'mem' }), now)).toMatchObject({ demand: 150, desired: 3, metric: 'mem' });
  });

  it('gives the same forecast whatever the order of the history', () => {
    const now = D0 + 2 * DAY + 13 * HOUR;
    const h = history(now - 2 * DAY, now, daily);
    expect(forecastDemand([...h].reverse(), policy(), now)).toEqual(forecastDemand(h, policy(), now));
  });
});

describe('forecastDemand: no forecast without the data', () => {
  const now = D0 + 2 * DAY + 12 * HOUR;
  const seasonAgo = now + 5 * MIN - DAY; // the minutes the seasonal value reads
  const full = history(now - 2 * DAY, now, daily);
  it.each([
    { name: 'empty history', h: [] as MinuteSample[], p: policy() },
    { name: 'less than a season (23 h of 24)', h: history(now - 23 * HOUR, now, daily), p: policy() },
    { name: 'every window there, but less than minHistoryMs (24 h 45 min of 26 h)', h: history(now - 24 * HOUR - 45 * MIN, now, daily), p: policy({ minHistoryMs: 26 * HOUR }) },
    { name: 'minHistoryMs met but nothing a season ago', h: history(now - 3 * HOUR, now, daily), p: policy({ minHistoryMs: 2 * HOUR }) },
    { name: 'the minutes around t − season are missing', h: full.filter((s) => Math.abs(s.minute - seasonAgo) > 4 * MIN), p: policy() },
    { name: 'the last 30 minutes are missing', h: full.filter((s) => s.minute < now - 20 * MIN), p: policy() },
    { name: 'only samples from the future', h: history(now + MIN, now + 2 * DAY, daily), p: policy() },
  ])('$name', ({ h, p }) => {
    expect(forecastDemand(h, p, now)).toBeUndefined();
  });

  it('the same 24 h 45 min forecast once minHistoryMs (default: one season) is met', () => {
    expect(forecastDemand(history(now - 24 * HOUR - 45 * MIN, now, daily), policy(), now)).toBeDefined();
  });

  it('a few missing minutes do not stop it', () => {
    const h = full.filter((s) => s.minute !== seasonAgo && s.minute !== now - 10 * MIN);
    expect(forecastDemand(h, policy(), now)).toBeDefined();
  });
});

describe('predictive: modes', () => {
  const now = D0 + DAY + 14 * HOUR;
  const flat = history(now - DAY - HOUR, now, () => 340);

  it.each([
    { name: 'off: nothing, even with history', mode: 'off' as const, keys: [], want: {} },
    { name: 'forecast-only: the forecast, no proposal', mode: 'forecast-only' as const, keys: ['forecast'], want: { forecast: { desired: 7, demand: 340 } } },
    {
      name: 'forecast-and-scale: an out-only proposal citing the forecast',
      mode: 'forecast-and-scale' as const,
      keys: ['forecast', 'proposal'],
      want: {
        forecast: { at: now, forAt: now + 5 * MIN, desired: 7, demand: 340 },
        proposal: {
          source: 'predictive', desired: 7, kind: 'out-only', reason: 'Predictive',
          message: 'forecast 340% CPU at 14:05 UTC (in 5m; 340% a season earlier × trend 1.00) → ceil(340 / 50) = 7',
        },
      },
    },
  ])('$name', ({ mode, keys, want }) => {
    const got = predictive(obs(flat), policy({ mode }), now);
    expect(Object.keys(got).sort()).toEqual(keys);
    expect(got).toMatchObject(want);
  });

  it.each([
    { name: 'too little history', h: history(now - HOUR, now, () => 340) },
    { name: 'no history', h: [] },
  ])('forecast-and-scale without a forecast proposes nothing: $name', ({ h }) => {
    expect(predictive(obs(h), policy(), now)).toEqual({});
  });

  it('proposes out-only even when the forecast is below the current count (the combiner ignores it for scale-in)', () => {
    const quiet = history(now - DAY - HOUR, now, () => 60);
    expect(predictive(obs(quiet, 10), policy(), now).proposal).toMatchObject({ desired: 2, kind: 'out-only' });
  });
});
