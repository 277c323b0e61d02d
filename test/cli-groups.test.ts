/**
 * The admin CLI for groups and policies, as real `autoscaler` processes on a real SQLite file:
 * every change is validated (errors name the field), lands in the store with a revision, and is
 * recorded with the OS user.
 */
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGroup } from '../lib/testing.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { killAll, runCli, tempDir } from './helpers.js';

let dir: string;
let db: string;
const cli = (...args: string[]) => runCli(args, { AUTOSCALER_DB: db });
const file = (name: string, doc: unknown) => {
  const p = join(dir, name);
  writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return p;
};
const group = (id = 'web') => {
  const s = openStore(db, { readonly: true });
  try {
    return new GroupStore(s).get(id);
  } finally {
    s.close();
  }
};

beforeAll(() => {
  dir = tempDir();
  db = join(dir, 'a.db');
  const s = openStore(db);
  new GroupStore(s).seed(testGroup(), 'controller (config)', Date.now());
  s.close();
});
afterAll(killAll);

describe('autoscaler group / policy / scale / pause / dry-run', () => {
  it('group apply creates a group from a file, and apply again changes it with a revision', async () => {
    const doc = { id: 'api', minSize: 2, maxSize: 6, policy: { targetTracking: [{ metric: 'cpu', target: 60 }] } };
    expect(await cli('group', 'apply', file('api.json', doc))).toMatchObject({ code: 0, output: 'group api created\n' });
    const again = await cli('group', 'apply', file('api2.json', { ...doc, maxSize: 8 }));
    expect(again).toMatchObject({ code: 0, output: 'group api revision 2: maxSize\n' });
    expect(group('api')).toMatchObject({ minSize: 2, maxSize: 8, revision: 2 });
    const list = await cli('group', 'list');
    expect(list.output).toMatch(/^api {2}min 2 max 8 desired 2 {2}revision 2\nweb {2}min 1 max 4/);
  });

  it.each([
    { name: 'bounds the wrong way', doc: { id: 'x', minSize: 5, maxSize: 2 }, want: ['maxSize: must be >= minSize'] },
    { name: 'target × (1 + tolerance) ≥ 100', doc: { id: 'x', minSize: 1, maxSize: 2, policy: { targetTracking: [{ target: 95 }] } }, want: ['policy.targetTracking.0.toleranceUp: target × (1 + toleranceUp) must be below 100'] },
    { name: 'a bad cron and an unknown time zone', doc: { id: 'x', minSize: 1, maxSize: 2, policy: { schedules: [{ name: 'a', cron: 'every day at 8', durationMs: 3_600_000, minSize: 2 }, { name: 'b', cron: '0 8 * * *', timezone: 'Mars/Olympus', durationMs: 3_600_000, minSize: 2 }] } }, want: ['policy.schedules.0.cron:', 'policy.schedules.1.timezone:'] },
    { name: 'not JSON', doc: '{ id: x', want: ['not valid JSON'] },
  ])('group apply refuses $name, naming the field, and changes nothing', async ({ doc, want }) => {
    const r = await cli('group', 'apply', file('bad.json', doc));
    expect(r.code).toBe(2);
    for (const w of want) expect(r.output).toContain(w);
    expect(group('x')).toBeUndefined();
  });

  it('policy set changes fields live, records who did it (old → new), and policy history shows it', async () => {
    const r = await cli('policy', 'set', 'web', 'targetTracking.0.target=60', 'behavior.scaleDown.stabilizationMs=60000', 'maxSize=6');
    expect(r.code).toBe(0);
    expect(r.output).toContain('group web revision 2: maxSize 4 → 6, policy.targetTracking.0.target 50 → 60, policy.behavior.scaleDown.stabilizationMs 1000 → 60000');
    expect(group()?.policy.targetTracking[0]?.target).toBe(60);
    const history = await cli('policy', 'history', 'web');
    const me = userInfo().username;
    expect(history.output.split('\n')[0]).toMatch(new RegExp(`applied +${me} +revision 2: maxSize 4 → 6, policy.targetTracking.0.target 50 → 60`));
    expect(history.output).toMatch(/created +controller \(config\) +created: min 1 max 4/);
  });

  it.each([
    { name: 'an out-of-range value', args: ['targetTracking.0.target=150'], want: 'policy.targetTracking.0.target: must be <= 100' },
    { name: 'an unknown field', args: ['targetTrackin=1'], want: 'Unrecognized key: "targetTrackin"' },
    { name: 'a value of the wrong type', args: ['saturation.enabled=maybe'], want: 'policy.saturation.enabled: must be true or false' },
    { name: 'no change given', args: [], want: 'nothing to change' },
  ])('policy set refuses $name', async ({ args, want }) => {
    const before = group()?.revision;
    const r = await cli('policy', 'set', 'web', ...args);
    expect(r.code).toBe(2);
    expect(r.output).toContain(want);
    expect(group()?.revision).toBe(before);
  });

  it('policy show prints every knob with defaults; --json is a group document apply takes', async () => {
    const text = await cli('policy', 'show', 'web');
    expect(text.output).toContain('target tracking: cpu 60% (tolerance +0.1 / −0.1)');
    expect(text.output).toContain('behavior: up max of [+4/15s, +100%/15s], window 0s; down max of [−100%/15s], window 60s');
    const json = JSON.parse((await cli('policy', 'show', 'web', '--json')).output) as { id: string; policy: unknown };
    expect((await cli('group', 'apply', file('round-trip.json', json))).output).toBe('group web unchanged\n');
  });

  it('policy validate checks a file without applying it', async () => {
    expect((await cli('policy', 'validate', file('p.json', { step: [{ name: 'hot', comparison: 'gt', threshold: 70, steps: [{ lower: 0, adjustment: 1 }] }] }))).output).toMatch(/valid policy document/);
    const bad = await cli('policy', 'validate', file('p2.json', { step: [{ comparison: 'above', threshold: 70, steps: [] }] }));
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('step.0.comparison: must be gt or lt');
    expect(bad.output).toContain('step.0.steps: needs at least one step');
  });

  it('scale sets a manual capacity for a while, within the bounds; --clear gives it back', async () => {
    expect((await cli('scale', 'web', '--desired', '3', '--for', '30m')).code).toBe(0);
    const g = group();
    expect(g?.override).toMatchObject({ desired: 3, by: userInfo().username });
    expect((g?.override?.until ?? 0) - Date.now()).toBeGreaterThan(29 * 60_000);
    const out = await cli('scale', 'web', '--desired', '99');
    expect(out).toMatchObject({ code: 2, output: expect.stringContaining('outside the group\'s bounds 1..6') });
    expect((await cli('scale', 'web', '--clear')).code).toBe(0);
    expect(group()?.override).toBeUndefined();
    expect((await cli('scale', 'web', '--desired', '-1')).code).toBe(2);
  });

  it('pause / resume / dry-run flip the group and are recorded', async () => {
    expect((await cli('pause', 'web', '--reason', 'maintenance')).code).toBe(0);
    expect(group()?.paused).toBe(true);
    expect((await cli('resume', 'web')).code).toBe(0);
    expect((await cli('dry-run', 'web', 'on')).code).toBe(0);
    expect(group()).toMatchObject({ paused: false, dryRun: true });
    expect((await cli('dry-run', 'web', 'maybe')).code).toBe(2);
    const kinds = (await cli('policy', 'history', 'web', '--json')).output.trim().split('\n').map((l) => (JSON.parse(l) as { kind: string; message: string }));
    expect(kinds.slice(0, 5).map((k) => k.kind)).toEqual(['dry-run', 'resume', 'pause', 'scale', 'scale']);
    expect(kinds[2]?.message).toBe('paused: maintenance');
  });

  it.each([
    { name: 'an unknown group', args: ['policy', 'show', 'nope'], want: 'no group "nope"' },
    { name: 'events for an unknown group', args: ['events', '--group', 'nope'], want: 'no group "nope"' },
    { name: 'a negative --decisions', args: ['status', '--decisions', '-1'], want: '--decisions must be a whole number from 1 to 200 (got "-1")' },
    { name: 'a --limit of zero', args: ['policy', 'history', 'web', '--limit', '0'], want: '--limit must be a whole number from 1 to 1000 (got "0")' },
  ])('refused with exit 2: $name', async ({ args, want }) => {
    const r = await cli(...args);
    expect(r.code).toBe(2);
    expect(r.output).toContain(want);
  });
});
