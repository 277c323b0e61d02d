/**
 * Where raw config values come from (the environment over an optional file), without zod: the
 * agent reads its config through this module (config/fields.ts) and never loads a schema library.
 * config/shared.ts holds the same reader for the zod-based processes.
 */
import { readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError } from './errors.js';

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

/** Merge the sources for the given keys, trimmed; empty strings count as unset. */
export function mergeSources(keys: readonly string[], sources: ConfigSources): Record<string, string> {
  const fromFile = sources.file ? readConfigFile(sources.file) : {};
  const merged: Record<string, string> = {};
  for (const key of keys) {
    const value = sources.env[key] ?? fromFile[key];
    if (value !== undefined && value.trim() !== '') merged[key] = value.trim();
  }
  return merged;
}
