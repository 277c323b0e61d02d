import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import { describe, expect, it } from 'vitest';

// The pure-room lint (eslint.config.mjs + lint/pure-room.mjs), run through ESLint's Node API on
// fixture text under virtual paths: no fixture file ever sits inside a pure room.

const root = fileURLToPath(new URL('..', import.meta.url));
const eslint = new ESLint({ cwd: root, overrideConfigFile: path.join(root, 'eslint.config.mjs') });

/** The rules that make up the pure-room check (outside the rooms they are off or unrelated). */
const PURE_RULES = new Set(['pure-room/imports', 'no-restricted-globals', 'no-restricted-properties', 'no-restricted-syntax']);
const WHY = 'pure rooms (controller/policy, monitor-server/liveness, sim) are passed `now` and their randomness; do no I/O';

/** A fixture's text, with `{{root}}` replaced by the path from the virtual file to the repo root. */
function fixture(name: string, up: string): string {
  return readFileSync(path.join(root, 'test/lint-fixtures', `${name}.ts.txt`), 'utf8').replaceAll('{{root}}', up);
}

/** 1-based numbers of the lines marked `// violation`. */
function violationLines(code: string): number[] {
  return code.split('\n').flatMap((line, i) => (line.includes('// violation') ? [i + 1] : []));
}

async function lint(code: string, filePath: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(code, { filePath });
  if (result === undefined) throw new Error(`no lint result for ${filePath}`);
  return result.messages;
}

const pureErrors = (messages: Linter.LintMessage[]): Linter.LintMessage[] =>
  messages.filter((m) => m.severity === 2 && m.ruleId !== null && PURE_RULES.has(m.ruleId));

const rooms = [
  { room: 'controller/policy', file: 'controller/policy/probe.ts', up: '../../' },
  { room: 'monitor-server/liveness', file: 'monitor-server/liveness/probe.ts', up: '../../' },
  { room: 'sim', file: 'sim/probe.ts', up: '../' },
];

const violations = [
  { fixtureName: 'clock', rule: 'no-restricted-globals' },
  { fixtureName: 'random', rule: 'no-restricted-properties' },
  { fixtureName: 'fs', rule: 'pure-room/imports' },
  { fixtureName: 'lib-clock', rule: 'pure-room/imports' },
  { fixtureName: 'timer', rule: 'no-restricted-globals' },
  { fixtureName: 'console', rule: 'no-restricted-globals' },
  { fixtureName: 'env', rule: 'no-restricted-globals' },
];

describe('pure rooms: each violation fails lint in each room', () => {
  it.each(rooms.flatMap((r) => violations.map((v) => ({ ...r, ...v }))))(
    '$room: $fixtureName fails with $rule',
    async ({ file, up, fixtureName, rule }) => {
      const code = fixture(fixtureName, up);
      const lines = violationLines(code);
      expect(lines.length).toBeGreaterThan(0);
      const errors = (await lint(code, file)).filter((m) => m.severity === 2 && m.ruleId === rule);
      for (const line of lines) {
        expect(errors.filter((m) => m.line === line), `${file}:${line} raises ${rule}`).not.toHaveLength(0);
      }
      for (const m of errors) expect(m.message).toContain(WHY);
    },
  );

  it.each(rooms)('$room: a clean file (relative pure import, zod, a function of now) has no errors', async ({ file, up }) => {
    expect(await lint(fixture('clean', up), file)).toEqual([]);
  });
});

describe('pure rooms: where the check applies', () => {
  it.each([
    { name: 'the liveness file room', file: 'monitor-server/liveness.ts', up: '../' },
    { name: 'a nested folder of a room', file: 'controller/policy/step/band.ts', up: '../../../' },
    { name: 'a nested sim folder', file: 'sim/traces/diurnal.ts', up: '../../' },
  ])('$name ($file) is checked', async ({ file, up }) => {
    expect(pureErrors(await lint(fixture('clock', up), file))).toHaveLength(3);
  });

  it.each([
    { name: 'the controller loop', file: 'controller/loop.ts', up: '../' },
    { name: 'a sibling of the liveness file', file: 'monitor-server/liveness-report.ts', up: '../' },
    { name: 'a test beside pure code', file: 'sim/probe.test.ts', up: '../' },
    { name: 'a test in a liveness folder', file: 'monitor-server/liveness/probe.test.ts', up: '../../' },
    { name: 'a test helper beside pure code', file: 'controller/policy/testing.ts', up: '../../' },
  ])('$name ($file) gets no pure-room error', async ({ file, up }) => {
    for (const { fixtureName } of violations) {
      expect(pureErrors(await lint(fixture(fixtureName, up), file)), fixtureName).toEqual([]);
    }
  });
});

describe('pure-room/imports: the allow-list, from controller/policy/probe.ts', () => {
  it.each([
    { name: 'a relative import in its own room', code: "import { a } from './a.js';", allowed: true },
    { name: 'a relative import in a nested folder', code: "import { a } from './step/a.js';", allowed: true },
    { name: 'another room: sim', code: "import { shareOf } from '../../sim/share.js';", allowed: true },
    { name: 'another room: the liveness file', code: "import { sweep } from '../../monitor-server/liveness.js';", allowed: true },
    { name: 'another room: the liveness folder', code: "import { sweep } from '../../monitor-server/liveness/sweep.js';", allowed: true },
    { name: 'zod', code: "import { z } from 'zod';", allowed: true },
    { name: 'a zod subpath', code: "import { z } from 'zod/mini';", allowed: true },
    { name: 'croner', code: "import { Cron } from 'croner';", allowed: true },
    { name: 'cron-parser', code: "import { CronExpressionParser } from 'cron-parser';", allowed: true },
    { name: 'import type from lib', code: "import type { Clock } from '../../lib/clock.js';", allowed: true },
    { name: 'export type from store', code: "export type { Db } from '../../store/db.js';", allowed: true },
    { name: 'an import() type from lib', code: "export type C = import('../../lib/clock.js').Clock;", allowed: true },
    { name: 'an import() type from a package off the list', code: "export type D = import('better-sqlite3').Database;", allowed: false },
    { name: 'a value import from lib/clock', code: "import { systemClock } from '../../lib/clock.js';", allowed: false },
    { name: 'an inline type specifier (a value import)', code: "import { type Clock } from '../../lib/clock.js';", allowed: false },
    { name: 'store', code: "import { openStore } from '../../store/db.js';", allowed: false },
    { name: 'providers', code: "import { LocalProvider } from '../providers/local.js';", allowed: false },
    { name: 'a side-effect import', code: "import '../../lib/logger.js';", allowed: false },
    { name: 're-exporting lib', code: "export * from '../../lib/logger.js';", allowed: false },
    { name: 'a sibling of the liveness file', code: "import { r } from '../../monitor-server/liveness-report.js';", allowed: false },
    { name: 'a test file in a room', code: "import { rows } from './target-tracking.test.js';", allowed: false },
    { name: 'a test helper in a room', code: "import { policyOf } from './testing.js';", allowed: false },
    { name: 'a file that only ends like a test helper', code: "import { x } from './backtesting.js';", allowed: true },
    { name: 'outside the repository', code: "import { x } from '../../../x.js';", allowed: false },
    { name: 'node:crypto', code: "import { randomUUID } from 'node:crypto';", allowed: false },
    { name: 'a bare built-in', code: "import os from 'os';", allowed: false },
    { name: 'an AWS SDK', code: "import { EC2Client } from '@aws-sdk/client-ec2';", allowed: false },
    { name: 'a type from a package off the list', code: "import type { Database } from 'better-sqlite3';", allowed: false },
    { name: 'a name that only starts like zod', code: "import { z } from 'zod-extra';", allowed: false },
    { name: 'a package.json subpath import', code: "import { x } from '#internal';", allowed: false },
    { name: 'import = require', code: "import fs = require('node:fs');", allowed: false },
  ])('$name: allowed=$allowed', async ({ code, allowed }) => {
    const errors = (await lint(code, 'controller/policy/probe.ts')).filter((m) => m.ruleId === 'pure-room/imports');
    expect(errors).toHaveLength(allowed ? 0 : 1);
    for (const m of errors) {
      expect(m.message).toContain(WHY);
      expect(m.message).toContain('zod, croner, cron-parser');
      expect(m.message).toContain('PURE_PACKAGES');
    }
  });
});

describe('forbidden globals: escapes are caught', () => {
  it.each([
    { name: 'globalThis.Date', code: 'export const t = globalThis.Date.now();', rule: 'no-restricted-globals' },
    { name: "Date['now']", code: "export const t = Date['now']();", rule: 'no-restricted-globals' },
    { name: 'global.setTimeout', code: 'export const s = global.setTimeout;', rule: 'no-restricted-globals' },
    { name: 'eval', code: "export const t = eval('Date.now()');", rule: 'no-restricted-globals' },
    { name: 'new Function', code: "export const t = new Function('return Date.now()');", rule: 'no-restricted-globals' },
    { name: "Math['random']", code: "export const r = Math['random']();", rule: 'no-restricted-properties' },
    { name: 'destructured Math.random', code: 'export const { random } = Math;', rule: 'no-restricted-properties' },
    { name: 'dynamic import()', code: "export const m = import('./a.js');", rule: 'no-restricted-syntax' },
    { name: 'import.meta', code: 'export const u = import.meta.url;', rule: 'no-restricted-syntax' },
    { name: 'require', code: "export const fs: unknown = require('node:fs');", rule: 'no-restricted-globals' },
  ])('$name raises $rule', async ({ code, rule }) => {
    const messages = await lint(code, 'controller/policy/probe.ts');
    expect(messages.filter((m) => m.severity === 2 && m.ruleId === rule)).not.toHaveLength(0);
  });

  it('Date as a type (no clock read) is allowed', async () => {
    expect(pureErrors(await lint('export type Stamp = { at: Date };', 'sim/probe.ts'))).toEqual([]);
  });
});

describe('the probe from issue 6', () => {
  it('raises an error for each of its 31 violations', async () => {
    const code = fixture('probe', '../../');
    const lines = violationLines(code);
    expect(lines).toHaveLength(31);
    const errors = pureErrors(await lint(code, 'controller/policy/probe.ts'));
    expect(errors.length).toBeGreaterThanOrEqual(31);
    const missed = lines.filter((line) => !errors.some((m) => m.line === line));
    expect(missed, 'violation lines without a pure-room error').toEqual([]);
  });
});
