/** Test doubles shared by unit and integration tests (not part of the build). */
import { Writable } from 'node:stream';
import { ConfigError } from '../config/shared.js';
import { pino } from 'pino';
import { parsePolicy, type GroupDocument, type PolicyDocument, type PolicyDocumentInput } from '../domain/policy.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(private t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(t: number): void {
    this.t = t;
  }
}

/** A logger whose JSON lines are kept in `lines`, parsed (pino's own tests do the same). */
export function captureLogger(level: 'debug' | 'info' | 'warn' = 'debug'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, sink), lines };
}

/** Poll `check` until it returns a value other than undefined/false; bounded in time. */
export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The group most tests use: web, 1..4 instances, target 50 % CPU, 1 s scale-in stabilization. */
export function testGroup(overrides: Partial<GroupDocument> = {}): GroupDocument {
  return {
    id: 'web', minSize: 1, maxSize: 4,
    policy: defaultPolicy({ behavior: { scaleDown: { stabilizationMs: 1_000 } } }),
    ...overrides,
  };
}

/** A policy document with the schema's defaults and these changes. Throws on invalid input. */
export function defaultPolicy(input: PolicyDocumentInput = {}): PolicyDocument {
  const r = parsePolicy(input);
  if (!r.ok) throw new TypeError(r.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  return r.value;
}

/** The problems a config loader reports, one line each; throws if it does not fail with a ConfigError. */
export function configProblems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}
