import { readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { LOG_LEVELS } from '../lib/logger.js';
import { ConfigError } from './errors.js';

// Defined in a zod-free module so the agent can throw it without loading zod.
export { ConfigError };

/** Raw key/value sources, in increasing precedence: the optional file, then the environment. */
export interface ConfigSources {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of an optional config file: `.json` (an object of KEY: value) or dotenv format. */
  readonly file?: string | undefined;
}

/** Reads a config file into string values. Throws ConfigError naming the file when it is unusable. */
export function readConfigFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`], { cause: err });
  }
  if (!path.endsWith('.json')) return parseDotenv(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`config file ${path}: not valid JSON (${(err as Error).message})`], { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([`config file ${path}: must hold a JSON object of KEY: value`]);
  }
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[key] = String(value);
    else problems.push(`${key}: must be a string, number or boolean in ${path}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

/** Merge the sources for the keys a schema knows; empty strings count as unset. */
function mergeSources(keys: readonly string[], sources: ConfigSources): Record<string, string> {
  const fromFile = sources.file ? readConfigFile(sources.file) : {};
  const merged: Record<string, string> = {};
  for (const key of keys) {
    const value = sources.env[key] ?? fromFile[key];
    if (value !== undefined && value.trim() !== '') merged[key] = value.trim();
  }
  return merged;
}

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

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** True for host:port with a port in 0..65535 (IPv6 hosts in brackets). */
export function isHostPort(v: string): boolean {
  const m = HOST_PORT.exec(v);
  return m !== null && Number(m[2]) <= 65535;
}

/** host:port, as agents dial it. */
export const address = (def: string) => z.string().refine(isHostPort, { error: 'must be host:port with port <= 65535' }).default(def);

/** Group and instance ids: what is safe in a file name, a log field and a SQL value. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
export const id = (def: string) =>
  z.string().regex(ID_PATTERN, { error: 'must be 1-63 letters, digits, ".", "_" or "-"' }).default(def);

/** Default path of the shared SQLite file. */
export const DEFAULT_DB_PATH = './data/autoscaler.db';
