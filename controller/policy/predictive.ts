/**
 * Predictive scaling from the group's per-minute history: a seasonal forecast with a trend,
 * scaling out a boot time ahead of the demand (AWS predictive scaling, simplified: AWS fits
 * 14 days into an hourly 48 h forecast; this reads the stored minutes directly). Pure: no I/O,
 * no clock; `now` is passed.
 */
import type { Metric, PredictivePolicy } from '../../domain/policy.js';
import type { MinuteSample, Observation, Proposal } from './types.js';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** The seasonal value is the average of the minutes this far either side of t − season: ±5 min. */
export const SEASONAL_HALF_WIDTH_MS = 5 * MINUTE_MS;
/** The level compared for the trend: the last 30 minutes, and the same 30 minutes a season earlier. */
export const LEVEL_WINDOW_MS = 30 * MINUTE_MS;
/** The trend ratio is bounded to [0.5, 2] so that a quiet hour a season ago cannot blow it up. */
export const MIN_TREND = 0.5;
export const MAX_TREND = 2;
/** Share of the minutes of a window that must be in the history for the window to count: half. */
export const MIN_COVERAGE = 0.5;
/** A level below this (percent of one instance) is idle: no ratio is taken from it. */
const IDLE_LEVEL = 1;
/** Floating-point slack for ceil: 350 / 50 must stay 7. */
const EPSILON = 1e-9;

const METRIC_LABEL: Readonly<Record<Metric, string>> = { cpu: 'CPU', mem: 'memory' };

/** What predictive scaling expects at `forAt`; its first four fields are `PolicyState['forecast']`. */
export interface Forecast {
  /** When the forecast was made (`now`), epoch ms. */
  readonly at: number;
  /** The time it is for: `at + leadMs`, epoch ms. */
  readonly forAt: number;
  /** Forecast demand of the group, percent of one instance (3 instances at 50 % = 150). */
  readonly demand: number;
  /** Instances for that demand at the policy's target: ceil(demand / target), at least 0. */
  readonly desired: number;
  readonly metric: Metric;
  /** The target used, percent. */
  readonly target: number;
  /** Demand one season before `forAt` (average of the minutes within ±5 min), percent of one instance. */
  readonly seasonal: number;
  /** Recent level / the same window a season earlier, bounded to [0.5, 2]; 1 when that level was idle. */
  readonly trend: number;
}

const floorMinute = (t: number) => Math.floor(t / MINUTE_MS) * MINUTE_MS;

/**
 * Average of the metric over the minutes starting in [from, to), or undefined when fewer than
 * {@link MIN_COVERAGE} of them are in the history. Bounded: at most (to − from) / 1 min steps.
 */
function average(byMinute: ReadonlyMap<number, number>, from: number, to: number): number | undefined {
  let sum = 0;
  let present = 0;
  let expected = 0;
  for (let m = floorMinute(from); m < to; m += MINUTE_MS) {
    expected += 1;
    const v = byMinute.get(m);
    if (v !== undefined) {
      sum += v;
      present += 1;
    }
  }
  if (expected === 0 || present < expected * MIN_COVERAGE) return undefined;
  return sum / present;
}

/**
 * The demand expected at t = now + leadMs, from the per-minute history (any order).
 *
 * Seasonal with trend, kept simple so that it is robust and explainable:
 * 1. seasonal = the average demand over the minutes within ±5 min of t − seasonMs (one day
 *    before, by default);
 * 2. trend = level(last 30 min) / level(the same 30 min one season earlier), bounded to
 *    [0.5, 2] so that a quiet window a season ago cannot blow the forecast up; 1 when that
 *    earlier level is idle (below 1 % of one instance), as no ratio can be taken from it;
 * 3. forecast = seasonal × trend, and desired = ceil(forecast / target).
 *
 * Undefined (no forecast) when the history spans less than `minHistoryMs` (default one season)
 * before `now`, or when fewer than half of the minutes of any of the three windows are there.
 * Deterministic: the same history, policy and `now` give the same forecast.
 *
 * The history's demand is what ready instances reported: a saturated group under-reports its
 * demand, and the forecast inherits that.
 */
export function forecastDemand(history: readonly MinuteSample[], p: PredictivePolicy, now: number): Forecast | undefined {
  const needMs = p.minHistoryMs ?? p.seasonMs;
  const byMinute = new Map<number, number>();
  let oldest = Infinity;
  for (const s of history) {
    if (s.minute > now) continue;
    const m = floorMinute(s.minute);
    byMinute.set(m, p.metric === 'cpu' ? s.cpu : s.mem);
    if (m < oldest) oldest = m;
  }
  if (byMinute.size === 0 || now - oldest < needMs) return undefined;

  const forAt = now + p.leadMs;
  const center = floorMinute(forAt - p.seasonMs);
  const seasonal = average(byMinute, center - SEASONAL_HALF_WIDTH_MS, center + SEASONAL_HALF_WIDTH_MS + MINUTE_MS);
  const end = floorMinute(now);
  const recent = average(byMinute, end - LEVEL_WINDOW_MS, end);
  const past = average(byMinute, end - p.seasonMs - LEVEL_WINDOW_MS, end - p.seasonMs);
  if (seasonal === undefined || recent === undefined || past === undefined) return undefined;

  const trend = past < IDLE_LEVEL ? 1 : Math.min(MAX_TREND, Math.max(MIN_TREND, recent / past));
  const demand = Math.max(0, seasonal * trend);
  const desired = Math.max(0, Math.ceil(demand / p.target - EPSILON));
  return { at: now, forAt, demand, desired, metric: p.metric, target: p.target, seasonal, trend };
}

const two = (n: number) => String(n).padStart(2, '0');
/** Percent for a message: whole when it is, else one decimal ("340", "350.4"). */
const pct = (v: number) => {
  const r = Math.round(v * 10) / 10;
  return Number.isInteger(r) ? String(r) : r.toFixed(1);
};

/** "14:05 UTC", without `Date` (pure room). */
function clockUtc(t: number): string {
  const minuteOfDay = Math.floor((((t % DAY_MS) + DAY_MS) % DAY_MS) / MINUTE_MS);
  return `${two(Math.floor(minuteOfDay / 60))}:${two(minuteOfDay % 60)} UTC`;
}

/** "5m", "1h", "1h30m", "45s". */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const parts = [h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', sec > 0 ? `${sec}s` : ''].join('');
  return parts === '' ? '0s' : parts;
}

/** The sentence of a forecast: "forecast 340% CPU at 14:05 UTC (in 5m; …) → ceil(340 / 50) = 7". */
export function describeForecast(f: Forecast): string {
  return `forecast ${pct(f.demand)}% ${METRIC_LABEL[f.metric]} at ${clockUtc(f.forAt)} (in ${duration(f.forAt - f.at)}; `
    + `${pct(f.seasonal)}% a season earlier × trend ${f.trend.toFixed(2)}) → ceil(${pct(f.demand)} / ${f.target}) = ${f.desired}`;
}

/**
 * Predictive scaling at `now`. `off`: nothing. `forecast-only` (AWS's default): the forecast
 * alone, for the state and status to record what it would have done. `forecast-and-scale`: the
 * forecast and an `out-only` proposal of its desired count (AWS: predictive scaling never scales
 * in; the combiner only lets it raise the count). No forecast (too little history): nothing.
 */
export function predictive(obs: Observation, p: PredictivePolicy, now: number): { proposal?: Proposal; forecast?: Forecast } {
  if (p.mode === 'off') return {};
  const forecast = forecastDemand(obs.history, p, now);
  if (forecast === undefined) return {};
  if (p.mode === 'forecast-only') return { forecast };
  return {
    forecast,
    proposal: {
      source: 'predictive',
      desired: forecast.desired,
      kind: 'out-only',
      reason: 'Predictive',
      message: describeForecast(forecast),
      details: {
        metric: forecast.metric,
        forAt: forecast.forAt,
        demand: Math.round(forecast.demand * 10) / 10,
        seasonal: Math.round(forecast.seasonal * 10) / 10,
        trend: Math.round(forecast.trend * 1000) / 1000,
        target: forecast.target,
        current: obs.current,
      },
    },
  };
}
