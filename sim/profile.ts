/**
 * Group-wide simulated demand, in percent of one instance's CPU (200 = two instances' worth).
 * Pure: evaluated at an elapsed time the caller passes in.
 */
export type DemandProfile =
  | { readonly kind: 'constant'; readonly value: number }
  /** `from` until `atMs`, then `to`. */
  | { readonly kind: 'step'; readonly from: number; readonly to: number; readonly atMs: number }
  /** Diurnal-style wave: `min` at 0, `max` at half the period, back to `min` at the period. */
  | { readonly kind: 'sine'; readonly min: number; readonly max: number; readonly periodMs: number }
  /** `base`, with `peak` from `atMs` for `durationMs`. */
  | { readonly kind: 'spike'; readonly base: number; readonly peak: number; readonly atMs: number; readonly durationMs: number };

/** Largest demand accepted, percent of one instance (100 instances' worth). */
export const MAX_DEMAND = 10_000;

/** Demand at `elapsedMs` since the profile started (negative elapsed counts as 0). */
export function demandAt(p: DemandProfile, elapsedMs: number): number {
  const t = Math.max(0, elapsedMs);
  switch (p.kind) {
    case 'constant':
      return p.value;
    case 'step':
      return t < p.atMs ? p.from : p.to;
    case 'sine':
      return p.min + ((p.max - p.min) * (1 - Math.cos((2 * Math.PI * t) / p.periodMs))) / 2;
    case 'spike':
      return t >= p.atMs && t < p.atMs + p.durationMs ? p.peak : p.base;
  }
}

/** A profile spec that cannot be used, with the reason. */
export class ProfileSpecError extends Error {
  override name = 'ProfileSpecError';
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** "90s", "5m", "1500ms", "2h"; a bare number is seconds. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (m === null) throw new ProfileSpecError(`"${text}" is not a duration (e.g. 90s, 5m, 1500ms)`);
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] ?? 's'] as number));
}

function demand(text: string | undefined, what: string): number {
  const v = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isFinite(v) || v < 0 || v > MAX_DEMAND) {
    throw new ProfileSpecError(`${what} must be a number from 0 to ${MAX_DEMAND} (got "${text ?? ''}")`);
  }
  return v;
}

function positiveDuration(text: string | undefined, what: string): number {
  const ms = parseDuration(text ?? '');
  if (ms <= 0) throw new ProfileSpecError(`${what} must be longer than 0`);
  return ms;
}

/**
 * Parse a profile spec:
 *   `120` or `constant:120`; `step:30,200@60s`; `sine:30,250/180s`; `spike:40,300@60s+30s`.
 */
export function parseProfileSpec(spec: string): DemandProfile {
  const s = spec.trim();
  const colon = s.indexOf(':');
  const kind = colon < 0 ? 'constant' : s.slice(0, colon);
  const body = colon < 0 ? s : s.slice(colon + 1);
  switch (kind) {
    case 'constant':
      return { kind, value: demand(body, 'demand') };
    case 'step': {
      const m = /^([^,]+),([^@]+)@(.+)$/.exec(body);
      if (m === null) throw new ProfileSpecError('step is written step:FROM,TO@WHEN, e.g. step:30,200@60s');
      return { kind, from: demand(m[1], 'FROM'), to: demand(m[2], 'TO'), atMs: parseDuration(m[3] as string) };
    }
    case 'sine': {
      const m = /^([^,]+),([^/]+)\/(.+)$/.exec(body);
      if (m === null) throw new ProfileSpecError('sine is written sine:MIN,MAX/PERIOD, e.g. sine:30,250/180s');
      const min = demand(m[1], 'MIN');
      const max = demand(m[2], 'MAX');
      if (max < min) throw new ProfileSpecError('sine MAX must be >= MIN');
      return { kind, min, max, periodMs: positiveDuration(m[3], 'PERIOD') };
    }
    case 'spike': {
      const m = /^([^,]+),([^@]+)@([^+]+)\+(.+)$/.exec(body);
      if (m === null) throw new ProfileSpecError('spike is written spike:BASE,PEAK@WHEN+DURATION, e.g. spike:40,300@60s+30s');
      return { kind, base: demand(m[1], 'BASE'), peak: demand(m[2], 'PEAK'), atMs: parseDuration(m[3] as string), durationMs: positiveDuration(m[4], 'DURATION') };
    }
    default:
      throw new ProfileSpecError(`unknown profile "${kind}": use constant, step, sine or spike`);
  }
}

/** The spec form of a profile, for display. */
export function formatProfile(p: DemandProfile): string {
  const d = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);
  switch (p.kind) {
    case 'constant': return `constant:${p.value}`;
    case 'step': return `step:${p.from},${p.to}@${d(p.atMs)}`;
    case 'sine': return `sine:${p.min},${p.max}/${d(p.periodMs)}`;
    case 'spike': return `spike:${p.base},${p.peak}@${d(p.atMs)}+${d(p.durationMs)}`;
  }
}
