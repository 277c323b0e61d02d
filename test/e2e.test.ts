/**
 * End to end with real processes on loopback: `autoscaler monitor-server` and `autoscaler
 * controller` as separate processes sharing one SQLite file, the local provider starting real
 * `autoscaler agent --simulate` children, load driven through `autoscaler load set`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Db } from '../store/db.js';
import { StatusReader, type GroupStatus } from '../store/status.js';
import { isAlive, killAll, runCli, startCli, tempDir, waitFor, type CliProcess } from './helpers.js';

const GROUP = 'e2e';
const HEARTBEAT_MS = 500;
const env = (dbPath: string) => ({ AUTOSCALER_DB: dbPath, LOG_LEVEL: 'info' });

let dbPath: string;
let monitor: CliProcess;
let controller: CliProcess;
let db: Db;
let status: StatusReader;

function group(): GroupStatus {
  const g = status.report(Date.now(), { groupId: GROUP, decisions: 100 }).groups[0];
  if (g === undefined) throw new Error('group not created yet');
  return g;
}

const running = (g: GroupStatus) => g.instances.filter((i) => i.state === 'running');

/** The pid of a local instance's agent: the first JSON line of its log (pino writes `pid`). */
function agentPid(instanceId: string): number {
  const first = readFileSync(join(dirname(dbPath), 'instances', `${instanceId}.log`), 'utf8').split('\n')[0] ?? '';
  const pid = (JSON.parse(first) as { pid?: number }).pid;
  if (pid === undefined) throw new Error(`no pid in the log of ${instanceId}`);
  return pid;
}

beforeAll(async () => {
  dbPath = join(tempDir(), 'fleet.db');
  monitor = startCli(['monitor-server'], {
    ...env(dbPath),
    MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0',
    MONITOR_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS), MONITOR_SUSPECT_AFTER_MS: '1200', MONITOR_DEAD_AFTER_MS: '2000',
    // Phi accrual (the default detector) with a pause allowance scaled to the 500 ms interval.
    MONITOR_PHI_ACCEPTABLE_PAUSE_MS: '1000',
    // Every local agent proves it is the instance launched: HMAC of its id with the store's key.
    MONITOR_REQUIRE_LAUNCH_TOKEN: 'true',
    MONITOR_FLUSH_INTERVAL_MS: '50',
  });
  await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
  // The group as an operator would seed it: a 3 s scale-down window, a 3 s outage-guard hold.
  const groupsFile = join(dirname(dbPath), 'groups.json');
  writeFileSync(groupsFile, JSON.stringify({
    id: GROUP, minSize: 1, maxSize: 6, policy: { behavior: { scaleDown: { stabilizationMs: 3_000 } }, outageGuard: { holdMs: 3_000 } },
  }));
  controller = startCli(['controller'], {
    ...env(dbPath),
    CONTROLLER_INTERVAL_MS: '400', CONTROLLER_BOOT_TIMEOUT_MS: '15000', CONTROLLER_GROUPS_FILE: groupsFile,
    LOCAL_AGENT_SERVER: 'auto', LOCAL_TERMINATE_TIMEOUT_MS: '2000',
    LOCAL_AGENT_ENV: 'AGENT_SIM_NOISE_PERCENT=1,AGENT_SIM_SLEW_PERCENT_PER_S=100',
  });
  db = openStore(dbPath, { readonly: true });
  status = new StatusReader(db);
  await waitFor('first instance running', () => running(group()).length === 1, 20_000);
}, 60_000);

afterAll(async () => {
  await controller?.stop();
  await monitor?.stop();
  db?.close();
  killAll();
});

describe('e2e: scale out, scale in, replace', () => {
  it('demand of 200 % of one instance → 4 live instances with the average back in the target band', async () => {
    const set = await runCli(['load', 'set', GROUP, '200'], env(dbPath));
    expect(set.code).toBe(0);
    const g = await waitFor('4 running, none pending, avg CPU within 45..55', () => {
      const s = group();
      return running(s).length === 4 && s.counts.pending === 0 && s.avgCpu !== null && s.avgCpu >= 45 && s.avgCpu <= 55 ? s : undefined;
    }, 60_000, 100);
    expect(g.desired).toBe(4);
    // One instance at 100 % says nothing about how far above it demand is: saturated, it scales out
    // at the highest rate the behavior allows (+4 per 15 s from the 0 of the period's start).
    expect(g.decisions.find((d) => d.to > d.from && d.from >= 1)).toMatchObject({ reason: 'Saturated', from: 1, to: 4 });
    expect(Math.max(...g.decisions.map((d) => d.to))).toBe(4);
  }, 90_000);

  it('demand lowered → back to the minimum of 1', async () => {
    // 200 % → 0 within seconds: an upstream outage, as far as the controller can tell.
    expect((await runCli(['load', 'set', GROUP, '0'], env(dbPath))).code).toBe(0);
    const g = await waitFor('back to 1 running', () => {
      const s = group();
      return running(s).length === 1 && s.counts.pending + s.counts.suspect + s.counts.terminating === 0 ? s : undefined;
    }, 60_000, 100);
    expect(g.desired).toBe(1);
    expect(g.decisions.some((d) => d.reason === 'ScaleIn')).toBe(true);
    // The collapse made the outage guard hold scale-in first (3 s here, 10 min by default).
    expect(g.decisions.some((d) => d.reason === 'OutageGuard')).toBe(true);
  }, 90_000);

  it('kill -9 of an agent → the provider sees the exit, the instance is replaced without waiting for heartbeats to time out', async () => {
    const victim = running(group())[0];
    if (victim === undefined) throw new Error('no running instance');
    const pid = agentPid(victim.id);
    process.kill(pid, 'SIGKILL');
    const replacement = await waitFor('replacement running', () => {
      const s = group();
      return running(s).find((i) => i.id !== victim.id);
    }, 30_000, 100);
    const decision = group().decisions.find((d) => d.reason === 'ReplaceUnhealthy' && String(d.details.replaced) === victim.id);
    expect(decision?.message).toMatch(/dead \(instance gone: exited with signal SIGKILL\)/);
    // Caused by the exit, not by the failure detector: the instance was never declared silent.
    expect(decision?.message).not.toMatch(/no heartbeat/);
    expect(replacement.id).not.toBe(victim.id);
    expect(isAlive(pid)).toBe(false);
  }, 60_000);

  it('a hung agent (SIGSTOP) → declared dead by the failure detector within 5 intervals of its last heartbeat, terminated and replaced', async () => {
    const victim = running(group())[0];
    if (victim === undefined) throw new Error('no running instance');
    const pid = agentPid(victim.id);
    process.kill(pid, 'SIGSTOP');
    const decision = await waitFor('replace decision', () =>
      group().decisions.find((d) => d.reason === 'ReplaceUnhealthy' && String(d.details.replaced) === victim.id), 30_000, 100);
    const silent = Number(/no heartbeat for (\d+) ms/.exec(decision.message)?.[1]);
    expect(decision.message).toMatch(/φ \d+\.\d ≥ 8/); // declared by phi accrual
    expect(silent).toBeGreaterThanOrEqual(1_200); // never before the suspect threshold
    expect(silent).toBeLessThanOrEqual(5 * HEARTBEAT_MS);
    await waitFor('replacement running, victim gone', () => {
      const s = group();
      return running(s).some((i) => i.id !== victim.id) && !isAlive(pid);
    }, 30_000, 100);
  }, 60_000);

  it('every decision row has a reason and a message', () => {
    const rows = db.prepare('SELECT reason, message FROM decisions').all() as { reason: string; message: string }[];
    expect(rows.length).toBeGreaterThan(3);
    for (const r of rows) {
      expect(r.reason).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(r.message.length).toBeGreaterThan(0);
    }
  });

  it('`autoscaler status` shows the group, and `--json` the same document as /api/status', async () => {
    const text = await runCli(['status'], env(dbPath));
    expect(text.code).toBe(0);
    expect(text.output).toContain(`group ${GROUP}`);
    expect(text.output).toMatch(/running/);
    const json = await runCli(['status', '--json'], env(dbPath));
    const doc = JSON.parse(json.output) as { groups: { id: string }[]; components: { name: string }[] };
    expect(doc.groups.map((g) => g.id)).toEqual([GROUP]);
    expect(doc.components.map((c) => c.name).sort()).toEqual(['controller', 'monitor-server']);
    const http = monitor.logs().find((l) => l.msg === 'monitor server listening')?.httpAddress as string;
    const api = (await (await fetch(`http://${http}/api/status`)).json()) as { groups: { id: string }[] };
    expect(api.groups.map((g) => g.id)).toEqual([GROUP]);
  });

  it('`autoscaler events` lists decisions with reasons and the launches and terminations they caused', async () => {
    const text = await runCli(['events', '--group', GROUP, '--limit', '200'], env(dbPath));
    expect(text.code).toBe(0);
    expect(text.output).toMatch(/decision .* Saturated 1 → 4: avg CPU (9\d\.\d|100\.0)% .*demand unknown/);
    expect(text.output).toMatch(/launch .* \(Saturated: scale out to 4 .*\) ok/);
    expect(text.output).toMatch(/terminate .* \(replace: \S+ dead \(instance gone: exited with signal SIGKILL\)\) ok/);
    const json = await runCli(['events', '--json', '--limit', '5'], env(dbPath));
    const lines = json.output.trim().split('\n').map((l) => JSON.parse(l) as { kind: string; ts: number });
    expect(lines).toHaveLength(5);
    expect(lines.map((l) => l.ts)).toEqual([...lines.map((l) => l.ts)].sort((a, b) => a - b));
  });

  it('stopping the controller stops its agents: no child process is left behind', async () => {
    const pids = group().instances.map((i) => agentPid(i.id));
    expect(pids.length).toBeGreaterThan(0);
    await controller.stop();
    expect((await controller.exited).code).toBe(0);
    expect(pids.filter(isAlive)).toEqual([]);
  });
});
