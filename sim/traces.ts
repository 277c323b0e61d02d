/**
 * Demand traces for the simulator: built-in shapes and operators' own metrics (CSV, or a group's
 * recorded per-minute history). Demand is in percent of one instance (200 = two instances' worth
 * of CPU), one value per second. Pure: text or rows in, a trace out; the seed makes the noise.
 */
import { MAX_DEMAND } from './profile.js';
import { deriveSeed, mulberry32, type Random } from './random.js';

/** A demand trace at 1 s resolution. */
export interface Trace {
  readonly name: string;
  readonly description: string;
  /** Epoch ms of second 0: cron windows and weekdays follow it. Built-ins: Monday 2024-01-01 00:00 UTC. */
  readonly startAt: number;
  /** Demand of second `i`, percent of one instance; the length is the duration in seconds. */
  readonly demand: Float64Array;
  /** Seconds (from the start) at which demand steps up: reaction times are measured from them. */
  readonly stepsUp: readonly number[];
}

/** Monday 2024-01-01 00:00:00 UTC, epoch ms: second 0 of every built-in trace. */
export const BUILTIN_START = 1_704_067_200_000;
/** Longest trace accepted: 31 days of seconds (bounds memory: 8 bytes a second). */
export const MAX_TRACE_S = 31 * 86_400;

const MIN = 60;
const HOUR = 3_600;
const DAY = 86_400;

/** A trace that cannot be used; `problems` name the lines at fault (CSV). */
export class TraceError extends Error {
  override name = 'TraceError';
  constructor(message: string, readonly problems: readonly string[] = []) {
    super(message);
  }
}

/**
 * Slowly wandering multiplicative noise (AR(1) with a ~3 min memory): `scale` is its typical
 * size, e.g. 0.03 for ±3 %.
 */
function wander(random: Random, scale: number): () => number {
  const rho = 0.995;
  // Uniform [−1, 1) has variance 1/3; the stationary AR(1) std is sigma·√(1/3) / √(1 − ρ²).
  const sigma = (scale * Math.sqrt(1 - rho * rho)) / Math.sqrt(1 / 3);
  let x = 0;
  return () => {
    x = rho * x + sigma * (random() * 2 - 1);
    return x;
  };
}

function build(seconds: number, seed: number, name: string, noise: number, shape: (t: number) => number): Float64Array {
  const random = mulberry32(deriveSeed(seed, name));
  const next = wander(random, noise);
  const out = new Float64Array(seconds);
  for (let t = 0; t < seconds; t++) out[t] = Math.max(0, Math.min(MAX_DEMAND, shape(t) * (1 + next())));
  return out;
}

/** 0 at 04:00, 1 at 16:00: a working day's shape. */
const daily = (t: number) => (1 - Math.cos((2 * Math.PI * (t - 4 * HOUR)) / DAY)) / 2;
const ramp = (t: number, from: number, to: number) => Math.max(0, Math.min(1, (t - from) / (to - from)));

interface Builtin {
  readonly description: string;
  readonly seconds: number;
  readonly stepsUp: readonly number[];
  readonly make: (seed: number) => Float64Array;
}

// Steps fall 7 s off the minute, so that no policy's interval happens to line up with them.
const STEP_AT = 30 * MIN + 7;
const RETRY_AT = 45 * MIN + 7;
const BATCH_AT = Array.from({ length: 6 }, (_, h) => h * HOUR + 15 * MIN);

const BUILTINS: Readonly<Record<string, Builtin>> = {
  diurnal: {
    description: 'two days of a daily cycle: 150 % at 04:00, 1000 % at 16:00, ±3 % noise',
    seconds: 2 * DAY, stepsUp: [],
    make: (seed) => build(2 * DAY, seed, 'diurnal', 0.03, (t) => 150 + 850 * daily(t)),
  },
  week: {
    description: 'Monday to Sunday: weekdays peak at 1000 %, Saturday and Sunday at 450 %',
    seconds: 7 * DAY, stepsUp: [],
    // The day's amplitude changes at 04:00, the trough, so that the curve has no jump.
    make: (seed) => build(7 * DAY, seed, 'week', 0.03, (t) => 150 + (Math.floor((t - 4 * HOUR) / DAY) >= 5 ? 300 : 850) * daily(t)),
  },
  'flash-crowd': {
    description: '200 %, then ×8 (1600 %) within 60 s at 30 min for 15 min, back down over 20 min',
    seconds: 2 * HOUR, stepsUp: [30 * MIN],
    make: (seed) => build(2 * HOUR, seed, 'flash-crowd', 0.03, (t) => 200 + 1400 * (ramp(t, 30 * MIN, 31 * MIN) - ramp(t, 46 * MIN, 66 * MIN))),
  },
  step: {
    description: '200 %, ×4 (800 %) at 30 min, back to 200 % at 80 min',
    seconds: 2 * HOUR, stepsUp: [STEP_AT],
    make: (seed) => build(2 * HOUR, seed, 'step', 0.02, (t) => (t >= STEP_AT && t < STEP_AT + 50 * MIN ? 800 : 200)),
  },
  ramp: {
    description: 'slow ramp: 100 % for 30 min, rising to 1500 % over 5 h, then held',
    seconds: 6 * HOUR, stepsUp: [],
    make: (seed) => build(6 * HOUR, seed, 'ramp', 0.03, (t) => 100 + 1400 * ramp(t, 30 * MIN, 5.5 * HOUR)),
  },
  'noisy-plateau': {
    description: '500 % with ±15 % wandering noise and ±10 % jitter every second',
    seconds: 2 * HOUR, stepsUp: [],
    make: (seed) => {
      const jitter = mulberry32(deriveSeed(seed, 'noisy-plateau-jitter'));
      return build(2 * HOUR, seed, 'noisy-plateau', 0.15, () => 500 * (1 + 0.1 * (jitter() * 2 - 1)));
    },
  },
  'outage-retry': {
    description: '400 %, an upstream outage at 40 min (5 min at 0), then a retry storm at 3× (1200 %) easing back over 12 min',
    seconds: 2 * HOUR, stepsUp: [RETRY_AT],
    make: (seed) => build(2 * HOUR, seed, 'outage-retry', 0.03, (t) => (t >= RETRY_AT - 5 * MIN && t < RETRY_AT ? 0
      : t >= RETRY_AT ? 400 + 800 * (1 - ramp(t, RETRY_AT + 2 * MIN, RETRY_AT + 12 * MIN)) : 400)),
  },
  batch: {
    description: '100 %, with a 1200 % batch burst of 10 min every hour at :15',
    seconds: 6 * HOUR, stepsUp: BATCH_AT,
    make: (seed) => build(6 * HOUR, seed, 'batch', 0.03, (t) => {
      const inHour = t % HOUR;
      return 100 + 1100 * (ramp(inHour, 15 * MIN, 15 * MIN + 30) - ramp(inHour, 25 * MIN, 25 * MIN + 30));
    }),
  },
};

/** Names of the built-in traces, in the order tables list them. */
export const TRACE_NAMES: readonly string[] = Object.keys(BUILTINS);

export function isBuiltinTrace(name: string): boolean {
  return Object.hasOwn(BUILTINS, name);
}

/** A built-in trace; its noise follows `seed`. */
export function builtinTrace(name: string, seed: number): Trace {
  const b = BUILTINS[name];
  if (b === undefined || !Object.hasOwn(BUILTINS, name)) throw new TraceError(`unknown trace "${name}": use one of ${TRACE_NAMES.join(', ')} or a .csv file`);
  return { name, description: b.description, startAt: BUILTIN_START, demand: b.make(seed), stepsUp: b.stepsUp };
}

/** The first `seconds` of a trace (the whole trace when it is shorter). */
export function truncate(trace: Trace, seconds: number): Trace {
  if (seconds >= trace.demand.length) return trace;
  return { ...trace, demand: trace.demand.slice(0, Math.max(1, seconds)), stepsUp: trace.stepsUp.filter((s) => s < seconds) };
}

/** One point of a trace: demand from `t` (seconds) until the next point. */
export interface TracePoint {
  readonly t: number;
  readonly demand: number;
}

/**
 * A trace from points (strictly increasing `t`, seconds): each demand holds until the next point;
 * the last lasts as long as the gap before it (1 s when there is one point). Second 0 is the
 * first point's time.
 */
export function traceFromPoints(points: readonly TracePoint[], meta: { name: string; description: string; startAt: number }): Trace {
  const first = points[0];
  const last = points.at(-1);
  if (first === undefined || last === undefined) throw new TraceError(`${meta.name}: no data points`);
  const before = points.length > 1 ? (points.at(-2) as TracePoint).t : last.t - 1;
  const seconds = Math.max(1, Math.ceil(last.t - first.t + (last.t - before)));
  if (seconds > MAX_TRACE_S) throw new TraceError(`${meta.name}: spans ${seconds} s, more than the ${MAX_TRACE_S} s (31 days) accepted`);
  const demand = new Float64Array(seconds);
  let p = 0;
  for (let s = 0; s < seconds; s++) {
    while (p + 1 < points.length && (points[p + 1] as TracePoint).t - first.t <= s) p++;
    demand[s] = (points[p] as TracePoint).demand;
  }
  return { ...meta, demand, stepsUp: [] };
}

/** At most this many bad lines are listed in a CSV error. */
const MAX_LISTED = 10;

/**
 * Parse `time,demand` CSV: seconds (strictly increasing) and percent of one instance (0 to
 * {@link MAX_DEMAND}). A header line, blank lines and `#` comments are skipped. Every bad row is
 * reported with its line number (the first ten are listed).
 */
export function parseCsvTrace(text: string, name: string, startAt = BUILTIN_START): Trace {
  const problems: string[] = [];
  const points: TracePoint[] = [];
  const lines = text.split(/\r?\n/);
  let seenData = false;
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    const n = i + 1;
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(',').map((f) => f.trim());
    if (!seenData && fields[0]?.toLowerCase() === 'time') {
      if (fields[1]?.toLowerCase() !== 'demand' || fields.length !== 2) problems.push(`line ${n}: the header must be "time,demand" (got "${line}")`);
      seenData = true;
      continue;
    }
    seenData = true;
    if (fields.length !== 2) {
      problems.push(`line ${n}: expected 2 fields "time,demand", got ${fields.length} ("${line.slice(0, 60)}")`);
      continue;
    }
    const [tt, dd] = fields as [string, string];
    const t = Number(tt);
    const d = Number(dd);
    if (tt === '' || !Number.isFinite(t) || t < 0) problems.push(`line ${n}: time "${tt}" is not a number of seconds >= 0`);
    else if (dd === '' || !Number.isFinite(d) || d < 0 || d > MAX_DEMAND) problems.push(`line ${n}: demand "${dd}" is not a number from 0 to ${MAX_DEMAND}`);
    else if (points.length > 0 && t <= (points.at(-1) as TracePoint).t) problems.push(`line ${n}: time ${t} is not after the previous row's ${(points.at(-1) as TracePoint).t}`);
    else points.push({ t, demand: d });
  }
  if (problems.length > 0) {
    const listed = problems.slice(0, MAX_LISTED);
    const more = problems.length > MAX_LISTED ? [`… and ${problems.length - MAX_LISTED} more bad line(s)`] : [];
    throw new TraceError(`${name}: ${problems.length} bad line(s):\n${[...listed, ...more].map((p) => `  ${p}`).join('\n')}`, problems);
  }
  if (points.length === 0) throw new TraceError(`${name}: no data rows (expected "time,demand" lines)`);
  return traceFromPoints(points, { name, description: `${name} (${points.length} rows)`, startAt });
}

/** One recorded minute of a group (store/minutes.ts): `cpu` is the demand, percent of one instance. */
export interface RecordedMinute {
  /** Start of the minute, epoch ms. */
  readonly minute: number;
  readonly cpu: number;
}

/**
 * A trace from a group's recorded per-minute history: each minute's demand holds for its 60 s; a
 * missing minute holds the one before it. Second 0 is the first recorded minute.
 */
export function traceFromMinutes(minutes: readonly RecordedMinute[], groupId: string): Trace {
  const first = minutes[0];
  if (first === undefined) throw new TraceError(`group ${groupId}: no recorded history (the controller records a row per minute while it runs)`);
  const points = minutes.map((m) => ({ t: (m.minute - first.minute) / 1000, demand: Math.max(0, Math.min(MAX_DEMAND, m.cpu)) }));
  const withEnd = [...points];
  // The last minute lasts 60 s, whatever the gap before it.
  const last = points.at(-1) as TracePoint;
  withEnd.push({ t: last.t + 60, demand: last.demand });
  const trace = traceFromPoints(withEnd, { name: `db:${groupId}`, description: `${groupId}: ${minutes.length} recorded minute(s)`, startAt: first.minute });
  return { ...trace, demand: trace.demand.slice(0, Math.max(1, trace.demand.length - 60)) };
}
