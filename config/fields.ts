/**
 * A tiny typed field spec for configs that must not load zod (the agent: zod is ~4 MiB of its
 * resident memory, bench/agent-rss.ts). It mirrors config/shared.ts's `compileConfig` and field
 * builders: the same coercions, bounds, messages, `(got "...")` echo and collected problems, so a
 * key validated here reads exactly as it would through zod. Used by config/agent.ts only.
 */
import { ConfigError } from './errors.js';
import { mergeSources, type ConfigSources } from './sources.js';

/** What a field made of one raw value: the value, or why it is unusable. */
export type FieldResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

/** One config key: how to read its trimmed, non-empty raw value, and the value when it is unset. */
export interface Field<T> {
  /** Used as is (not validated) when the key is unset or empty. */
  readonly fallback: T;
  parse(raw: string): FieldResult<T>;
}

/** The parsed values of a field spec. */
export type FieldValues<S extends Record<string, Field<unknown>>> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/**
 * A rule across keys. It sees only the keys that parsed, so it runs even when others are wrong,
 * and returns the key to blame with its message, or undefined when satisfied.
 */
export type FieldCheck<S extends Record<string, Field<unknown>>> = (c: Partial<FieldValues<S>>) => readonly [keyof S & string, string] | undefined;

/**
 * Validate raw sources against a spec keyed by variable name. Every problem is collected and
 * reported together, each prefixed by its key and the value given; throws ConfigError.
 */
export function compileFields<S extends Record<string, Field<unknown>>>(spec: S, sources: ConfigSources, checks: readonly FieldCheck<S>[] = []): FieldValues<S> {
  const raw = mergeSources(Object.keys(spec), sources);
  const values: Partial<FieldValues<S>> = {};
  const problems: string[] = [];
  const describe = (key: string, message: string) => {
    const given = raw[key];
    return given === undefined ? `${key}: ${message}` : `${key}: ${message} (got "${given}")`;
  };
  for (const key of Object.keys(spec) as (keyof S & string)[]) {
    const field = spec[key] as Field<unknown>;
    const given = raw[key];
    const result = given === undefined ? { ok: true as const, value: field.fallback } : field.parse(given);
    if (result.ok) values[key] = result.value as FieldValues<S>[typeof key];
    else problems.push(describe(key, result.problem));
  }
  for (const check of checks) {
    const failed = check(values);
    if (failed !== undefined) problems.push(describe(failed[0], failed[1]));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values as FieldValues<S>;
}

const ok = <T>(value: T): FieldResult<T> => ({ ok: true, value });
const bad = (problem: string): FieldResult<never> => ({ ok: false, problem });

/** A finite number (as `Number()` reads it: 1e3, 0x10 and +5 too) within min..max. */
export const num = (fallback: number, min: number, max: number): Field<number> => ({
  fallback,
  parse: (raw) => {
    const n = Number(raw);
    if (!Number.isFinite(n)) return bad('must be a number');
    if (n < min) return bad(`must be >= ${min}`);
    if (n > max) return bad(`must be <= ${max}`);
    return ok(n);
  },
});

/** A whole number (a safe integer) within min..max. */
export const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): Field<number> => ({
  fallback,
  parse: (raw) => {
    const n = Number(raw);
    if (!Number.isFinite(n)) return bad('must be a number');
    if (!Number.isSafeInteger(n)) return bad('must be a whole number');
    if (n < min) return bad(`must be >= ${min}`);
    if (n > max) return bad(`must be <= ${max}`);
    return ok(n);
  },
});

const TRUE = ['true', '1', 'yes'];
const FALSE = ['false', '0', 'no'];

/** true/1/yes or false/0/no, lower case. */
export const bool = (fallback: boolean): Field<boolean> => ({
  fallback,
  parse: (raw) => (TRUE.includes(raw) ? ok(true) : FALSE.includes(raw) ? ok(false) : bad('must be true or false')),
});

/** Any string. */
export const str = (fallback: string): Field<string> => ({ fallback, parse: ok });

/** One of `values`, exactly; `fallback` may be undefined for a key with no default. */
export const oneOf = <const V extends string, D extends V | undefined>(values: readonly V[], fallback: D, message = `must be one of ${values.join(', ')}`): Field<V | D> => ({
  fallback,
  parse: (raw) => ((values as readonly string[]).includes(raw) ? ok(raw as V) : bad(message)),
});

/** A string matching `pattern`, then mapped by `map`; `fallback` may be undefined for a key with no default. */
export const matching = <D extends string | undefined>(pattern: RegExp, fallback: D, message: string, map: (v: string) => string = (v) => v): Field<string | D> => ({
  fallback,
  parse: (raw) => (pattern.test(raw) ? ok(map(raw)) : bad(message)),
});

/** A string `check` finds no problem with (it returns the message, or undefined). */
export const checked = (fallback: string, check: (v: string) => string | undefined): Field<string> => ({
  fallback,
  parse: (raw) => {
    const problem = check(raw);
    return problem === undefined ? ok(raw) : bad(problem);
  },
});

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** True for host:port with a port in 0..65535 (IPv6 hosts in brackets); the same rule as config/shared.ts. */
export function isHostPort(v: string): boolean {
  const m = HOST_PORT.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}

/** host:port, as agents dial it. */
export const address = (fallback: string): Field<string> => ({
  fallback,
  parse: (raw) => (isHostPort(raw) ? ok(raw) : bad('must be host:port with port <= 65535')),
});

/** Group and instance ids: what is safe in a file name, a log field and a SQL value (config/shared.ts's ID_PATTERN). */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const id = (fallback: string): Field<string> => matching(ID_PATTERN, fallback, 'must be 1-63 letters, digits, ".", "_" or "-"');
