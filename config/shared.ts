import { z } from 'zod';
import { LOG_LEVELS } from '../lib/logger.js';
import { ConfigError } from './errors.js';
import { ID_PATTERN, isHostPort } from './fields.js';
import { mergeSources, type ConfigSources } from './sources.js';

// Defined in a zod-free module so the agent can throw it without loading zod.
export { ConfigError };

export type { ConfigSources } from './sources.js';
export { readConfigFile } from './sources.js';

/** The parsed values of a config shape. */
export type ConfigValues<S extends Record<string, z.ZodType>> = { [K in keyof S]: z.output<S[K]> };

/**
 * A rule across keys. It sees only the keys that parsed, so it runs even when others are wrong,
 * and returns the key to blame with its message, or undefined when satisfied.
 */
export type CrossCheck<S extends Record<string, z.ZodType>> = (c: Partial<ConfigValues<S>>) => readonly [keyof S & string, string] | undefined;

/**
 * Validate raw sources against a shape keyed by variable name. Every problem is collected and
 * reported together, each prefixed by its key and the value given.
 */
export function compileConfig<S extends Record<string, z.ZodType>>(shape: S, sources: ConfigSources, checks: readonly CrossCheck<S>[] = []): ConfigValues<S> {
  const raw = mergeSources(Object.keys(shape), sources);
  const values: Partial<ConfigValues<S>> = {};
  const problems: string[] = [];
  const describe = (key: string, message: string) => {
    const given = raw[key];
    return given === undefined ? `${key}: ${message}` : `${key}: ${message} (got "${given}")`;
  };
  for (const key of Object.keys(shape) as (keyof S & string)[]) {
    const result = (shape[key] as z.ZodType).safeParse(raw[key]);
    if (result.success) values[key] = result.data as ConfigValues<S>[typeof key];
    else problems.push(describe(key, result.error.issues[0]?.message ?? 'invalid'));
  }
  for (const check of checks) {
    const failed = check(values);
    if (failed !== undefined) problems.push(describe(failed[0], failed[1]));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return values as ConfigValues<S>;
}

// Field builders. Each takes a documented default and yields a clear message.

export const int = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}` })
    .default(def);

export const num = (def: number, min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}` })
    .default(def);

export const port = (def: number) => int(def, 0, 65535);

export const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
    .transform((v) => v === 'true' || v === '1' || v === 'yes')
    .default(def);

export const str = (def: string) => z.string().default(def);

export const logLevel = () => z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info');


/** host:port, as agents dial it. */
export { ID_PATTERN, isHostPort };

export const address = (def: string) => z.string().refine(isHostPort, { error: 'must be host:port with port <= 65535' }).default(def);

export const id = (def: string) =>
  z.string().regex(ID_PATTERN, { error: 'must be 1-63 letters, digits, ".", "_" or "-"' }).default(def);

/** Default path of the shared SQLite file. */
export const DEFAULT_DB_PATH = './data/autoscaler.db';
