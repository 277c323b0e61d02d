/** `autoscaler simulate` through the built CLI: tables, charts, reports, CSV and --from-db. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../store/db.js';
import { MinuteStore } from '../store/minutes.js';
import { TRACE_NAMES } from '../sim/traces.js';
import { killAll, runCli, tempDir } from './helpers.js';

const dir = tempDir('autoscaler-simulate-');
afterAll(() => killAll());

const POLICIES = ['default', 'hpa', 'aws-target-tracking', 'threshold', 'oracle'];

describe('autoscaler simulate', () => {
  it.each(TRACE_NAMES.map((trace) => ({ trace })))('$trace: prints the comparison table and writes the chart', async ({ trace }) => {
    const out = join(dir, `${trace}.svg`);
    const r = await runCli(['simulate', '--trace', trace, '--duration', '40m', '--boot', '60s', '--out', out]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`trace ${trace}:`);
    expect(r.output).toMatch(/policy\s+cost \(inst-h\)\s+× oracle\s+under-prov\./);
    for (const p of POLICIES) expect(r.output).toMatch(new RegExp(`^${p}\\s+\\d+\\.\\d\\d\\s+\\d+\\.\\d\\d`, 'm'));
    expect(r.output).toMatch(/^oracle\s+[\d.]+\s+1\.00\s+0\.00 %\s+0\.00 %/m);
    expect(readFileSync(out, 'utf8')).toMatch(/^<svg [\s\S]*<polyline[\s\S]*<\/svg>\n$/);
  });

  it('the same seed gives byte-identical output; another seed another', async () => {
    const run = async (seed: string, file: string) => {
      const r = await runCli(['simulate', '--trace', 'noisy-plateau', '--duration', '30m', '--seed', seed, '--json', '--out', join(dir, file)]);
      expect(r.code, r.output).toBe(0);
      return r.output.replace(/wrote .*\n/, '') + readFileSync(join(dir, file), 'utf8');
    };
    const a = await run('7', 'a.svg');
    expect(await run('7', 'b.svg')).toBe(a);
    expect(await run('8', 'c.svg')).not.toBe(a);
  });

  it('--json prints the metrics; --compare picks the baselines; --policy reads a document', async () => {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ targetTracking: [{ metric: 'cpu', target: 60 }], saturation: { enabled: false } }));
    const r = await runCli(['simulate', '--trace', 'step', '--duration', '1h', '--policy', policy, '--compare', 'hpa,oracle', '--json']);
    expect(r.code, r.output).toBe(0);
    const doc = JSON.parse(r.output) as { target: number; runs: { policy: string; metrics: { costRatio: number; actions: number } }[] };
    expect(doc.target).toBe(60);
    expect(doc.runs.map((x) => x.policy)).toEqual(['policy', 'hpa', 'oracle']);
    expect(doc.runs[2]?.metrics.costRatio).toBe(1);
    expect(doc.runs[0]?.metrics.actions).toBeGreaterThan(0);
  });

  it('a CSV trace replays; an HTML report embeds the table and the chart', async () => {
    const csv = join(dir, 'mine.csv');
    writeFileSync(csv, `time,demand\n${Array.from({ length: 60 }, (_, i) => `${i * 60},${i < 30 ? 150 : 600}`).join('\n')}\n`);
    const out = join(dir, 'report.html');
    const r = await runCli(['simulate', '--trace', csv, '--out', out]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('(60 rows)');
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<table>');
    expect(html).toContain('<svg ');
  });

  it.each([
    { name: 'a CSV with bad rows names the lines', args: (csv: string) => ['simulate', '--trace', csv], file: 'time,demand\n0,100\n60,lots\n120,100\n90,5\n', want: [/line 3: demand "lots"/, /line 5: time 90 is not after/] },
    { name: 'an unknown trace lists the built-ins', args: () => ['simulate', '--trace', 'nope'], want: [/unknown trace "nope".*diurnal/] },
    { name: 'PNG is refused with the reason', args: () => ['simulate', '--trace', 'step', '--out', join(dir, 'x.png')], want: [/PNG is not supported/] },
    { name: 'an unknown baseline is refused', args: () => ['simulate', '--trace', 'step', '--compare', 'hpa,knative'], want: [/unknown knative/] },
    { name: 'neither --trace nor --from-db', args: () => ['simulate'], want: [/give one of --trace/] },
    { name: 'a bad boot time', args: () => ['simulate', '--trace', 'step', '--boot', 'soon'], want: [/--boot/] },
  ])('$name (exit 2)', async ({ args, file, want }) => {
    const csv = join(dir, 'bad.csv');
    if (file !== undefined) writeFileSync(csv, file);
    const r = await runCli(args(csv));
    expect(r.code, r.output).toBe(2);
    for (const w of want) expect(r.output).toMatch(w);
  });

  it("--from-db replays a group's recorded minutes", async () => {
    const dbPath = join(dir, 'history.db');
    const db = openStore(dbPath);
    const minutes = new MinuteStore(db);
    const t0 = 1_704_067_200_000;
    for (let m = 0; m < 90; m++) minutes.add('web', t0 + m * 60_000, { ready: 4, capacity: 4, cpu: m < 45 ? 200 : 700, mem: 120 });
    db.close();
    const r = await runCli(['simulate', '--from-db', 'web', '--db', dbPath]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('trace db:web: web: 90 recorded minute(s)');
    expect(r.output).toContain('5400 s (1.5 h)');
    const missing = await runCli(['simulate', '--from-db', 'nobody', '--db', dbPath]);
    expect(missing.code).toBe(2);
    expect(missing.output).toMatch(/no group "nobody"/);
    expect(existsSync(dbPath)).toBe(true);
  });
});
